// The plugin loader (installed as BIN/NAME.d/run.cjs by src/install.ts; the launcher execs it), for
// datapath-cni and for any plugin installed with installPlugin: it runs BIN/NAME.d/NAME.cjs.
// Runs the bundle through a V8 code cache made *after* an invocation ran: Node's own compile cache is
// created when a file is compiled, so it holds only the top-level code, and every function an ADD calls
// is compiled again by every process. One cache per command (ADD, DEL, CHECK; GC and STATUS share one):
// each holds exactly the functions its command runs (a DEL compiles little of what an ADD does, and the
// reverse). A cache is written once, atomically, by the first invocation of its command, and rewritten
// when V8 rejects it (another Node or another bundle); VERSION writes none (it runs too little).
// DATAPATH_CNI_CODE_CACHE=0 turns caching off (benchmarks). The bundle needs only Node built-ins, so it
// gets this file's `require`.
'use strict';
// Written for any Node: an older one than the bundle needs fails here, loudly, as a CNI error on stdout.
if (Number(process.versions.node.split('.')[0]) < 22) {
  process.stdout.write(
    `${JSON.stringify({
      cniVersion: '0.1.0',
      code: 999,
      msg: `this CNI plugin needs Node >= 22; ${process.execPath} is ${process.version}`,
      details:
        'reinstall it with a newer Node: npx @datapath/cni-plugin install BIN_DIR (or installPlugin({ node }))',
    })}\n`,
  );
  process.exit(1);
}
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const file = path.join(__dirname, `${path.basename(__dirname).replace(/\.d$/, '')}.cjs`);
const command = process.env.CNI_COMMAND;
const kind = command === 'ADD' || command === 'DEL' || command === 'CHECK' ? command : 'other';
const cacheFile = `${file}.${kind}.v8cache`;
const useCache = process.env.DATAPATH_CNI_CODE_CACHE !== '0';
const source = fs.readFileSync(file, 'utf8');
let cachedData;
if (useCache) {
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    // first run: no cache yet
  }
}
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
  filename: file,
  cachedData,
  importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
if (useCache && (cachedData === undefined || script.cachedDataRejected) && command !== 'VERSION') {
  process.on('exit', () => {
    try {
      const tmp = `${cacheFile}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      // a read-only install still works, only slower
    }
  });
}
const mod = { exports: {} };
script.runInThisContext()(mod.exports, require, mod, file, __dirname);
