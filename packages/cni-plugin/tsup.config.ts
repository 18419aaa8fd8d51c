import { packageConfig } from '../../scripts/tsup.base';

// The shims are built too: bundlePlugin (src/install.ts) points esbuild at them when it bundles a user's plugin.
export default packageConfig({ entry: ['src/index.ts', 'src/shims/koffi.ts', 'src/shims/crypto.ts'] });
