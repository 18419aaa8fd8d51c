// `agent service apply` files and `agent service delete` names, pure: the shapes a file may take, typed
// errors for zero ports, a bad protocol, a frontend two services share (in the file or with the agent's).
import { describe, expect, it } from 'vitest';
import { serviceToDelete } from '../src/api/commands.js';
import { AgentError } from '../src/errors.js';
import { mergeServices, parseServiceFile } from '../src/service-file.js';

const web = `namespace: shop
name: web
clusterIP: 10.96.0.10
ports: [{ port: 80, targetPort: 8080 }]
selector: { app: web }
`;
const db = `namespace: shop
name: db
clusterIP: 10.96.0.11
ports: [{ port: 5432 }]
`;

function thrown(fn: () => unknown): AgentError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('did not throw');
}

describe('parseServiceFile', () => {
  it('takes one service, a list, several YAML documents, JSON or a scenario', () => {
    const one = parseServiceFile(web);
    expect(one.map((s) => [s.name, s.type, s.clusterIPs, s.ports])).toEqual([
      ['web', 'ClusterIP', ['10.96.0.10'], [{ port: 80, protocol: 'TCP', targetPort: 8080 }]],
    ]);
    const names = (t: string) => parseServiceFile(t).map((s) => `${s.namespace}/${s.name}`);
    expect(names(`${web}---\n${db}`)).toEqual(['shop/web', 'shop/db']);
    expect(names(`- ${web.replaceAll('\n', '\n  ').trimEnd()}\n- ${db.replaceAll('\n', '\n  ')}`)).toEqual([
      'shop/web',
      'shop/db',
    ]);
    expect(names(JSON.stringify({ namespaces: {}, services: parseServiceFile(db) }))).toEqual(['shop/db']);
    expect(names(JSON.stringify(parseServiceFile(web)[0]))).toEqual(['shop/web']);
  });

  it('refuses zero ports, a bad protocol, a bad address, unknown fields, two services on one frontend', () => {
    const cases: [string, RegExp][] = [
      [web.replace(/ports: .*/, 'ports: []'), /services\[0\]\.ports: .*>=1/],
      [web.replace('{ port: 80,', '{ port: 80, protocol: SCTP,'), /services\[0\]\.ports\.0\.protocol/],
      [web.replace('10.96.0.10', '10.96.0.300'), /not an IP address/],
      [`${web}color: blue\n`, /color/],
      [`${web}---\n${db.replace('10.96.0.11', '10.96.0.10').replace('5432', '80')}`, /DuplicateFrontend/],
      ['', /no service/],
      ['{ nope', /not YAML or JSON/],
    ];
    for (const [text, msg] of cases) {
      const e = thrown(() => parseServiceFile(text, 'f.yaml'));
      expect(e.code, text).toBe('InvalidArgument');
      expect(e.reason, text).toBe('InvalidScenario');
      expect(e.message, text).toMatch(msg);
      expect(e.message, text).toMatch(/^f\.yaml: /);
    }
  });
});

describe('mergeServices', () => {
  const [w] = parseServiceFile(web);
  const [d] = parseServiceFile(db);
  it('replaces by ns/name in place and appends new services', () => {
    const w2 = { ...w!, selector: { app: 'web2' } };
    const m = mergeServices([w!], [d!, w2]);
    expect(m.services).toEqual([w2, d]);
    expect(m.created).toEqual(['shop/db']);
    expect(m.replaced).toEqual(['shop/web']);
  });

  it("refuses a frontend another of the agent's services has (ServiceConflict) and a node port used twice", () => {
    const [other] = parseServiceFile(web.replace('name: web', 'name: other'));
    const e = thrown(() => mergeServices([w!], [other!]));
    expect(e.code).toBe('AlreadyExists');
    expect(e.reason).toBe('ServiceConflict');
    const np = (name: string, ip: string) =>
      parseServiceFile(
        `{namespace: shop, name: ${name}, type: NodePort, clusterIP: ${ip}, ports: [{port: 80, nodePort: 30080}]}`,
      )[0]!;
    expect(thrown(() => mergeServices([np('a', '10.96.0.20')], [np('b', '10.96.0.21')])).reason).toBe(
      'ServiceConflict',
    );
    // the same service applied again is a replacement, not a conflict with itself
    expect(mergeServices([w!], [w!]).replaced).toEqual(['shop/web']);
  });
});

describe('serviceToDelete', () => {
  const specs = [...parseServiceFile(`${web}---\n${db}`), ...parseServiceFile(db.replace('shop', 'bank'))];
  it('takes ns/name, or a bare name one namespace has', () => {
    expect(serviceToDelete('shop/web', specs)).toBe('shop/web');
    expect(serviceToDelete('web', specs)).toBe('shop/web');
  });
  it('unknown → NotFound; ambiguous or missing → InvalidArgument', () => {
    expect(thrown(() => serviceToDelete('shop/nope', specs)).code).toBe('NotFound');
    expect(thrown(() => serviceToDelete('nope', specs)).code).toBe('NotFound');
    expect(thrown(() => serviceToDelete('db', specs)).message).toMatch(
      /bank\/db, shop\/db|shop\/db, bank\/db/,
    );
    expect(thrown(() => serviceToDelete(undefined, specs)).code).toBe('InvalidArgument');
  });
});
