import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { published, registerBase, toyConfig, vlmAdapter } from '../helpers/adapters.ts';
import { startVersa, versa } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';

/**
 * The operator's command line: every registry action without raw HTTP (experiments, version
 * statuses, tenants, keys, forced alias moves), `--json` everywhere, no secret in `--help`, and the
 * local admin key of `versa start` found by the commands. Real processes against a real registry.
 */
// Each case runs several CLI processes (about a second each on a busy 2-core machine).
describe('versa operator commands', { timeout: 180_000 }, () => {
  let reg: TestRegistry;
  let work: string;
  let env: Record<string, string>;
  const cli = (...args: string[]) => versa(args, { env, cwd: work });
  const json = async (...args: string[]) => {
    const r = await cli(...args, '--json');
    if (r.code !== 0) throw new Error(`versa ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const oneLineError = (r: { code: number | null; stdout: string; stderr: string }) => {
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^versa: error: [^\n]+\n$/);
  };

  beforeAll(async () => {
    reg = await startRegistry('sqlite');
    work = mkdtempSync(join(tmpdir(), 'versa-operator-'));
    env = { VERSA_REGISTRY: reg.url, VERSA_API_KEY: reg.adminKey, VERSA_HOME: join(work, '.versa') };
    await registerBase(reg, 'toy');
    for (let seed = 1; seed <= 3; seed++)
      await published(reg, 'writer', { base: 'toy@1', ...(seed === 1 ? { alias: 'production' } : {}) }, [
        ...vlmAdapter(toyConfig(), { seed }),
      ]);
  });
  afterAll(async () => {
    await reg?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('--help never prints the API key', async () => {
    const secret = `vsk_help-must-not-show-${'x'.repeat(20)}`;
    for (const command of [
      ['models', 'ls'],
      ['alias', 'set'],
      ['publish'],
      ['experiments', 'create'],
      ['versions', 'yank'],
      ['keys', 'create'],
      ['tenants', 'ls'],
    ]) {
      const r = await versa([...command, '--help'], { env: { ...env, VERSA_API_KEY: secret } });
      expect(r.code, command.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/--key <key>/);
      expect(r.stdout).not.toContain(secret);
    }
  });

  it('finds the local admin key in $VERSA_HOME when the registry is the local default', async () => {
    const home = join(work, 'home');
    mkdirSync(home);
    writeFileSync(join(home, 'admin-key'), `${await reg.key('acme', ['admin'], 'local')}\n`, { mode: 0o600 });
    const local = { VERSA_HOME: home, PORT: new URL(reg.url).port, VERSA_REGISTRY: '', VERSA_API_KEY: '' };
    const found = await versa(['keys', 'ls', '--json'], { env: local, cwd: work });
    expect(found.stderr).toBe('');
    expect(JSON.parse(found.stdout).map((k: { name: string }) => k.name)).toContain('local');
    // Another registry never gets the local key.
    const elsewhere = await versa(['models', 'ls', '--registry', `http://localhost:${local.PORT}`], {
      env: local,
      cwd: work,
    });
    oneLineError(elsewhere);
    expect(elsewhere.stderr).toMatch(/401/);
  });

  it('next to a running `versa start`, needs no key', async () => {
    const home = join(work, 'start-home');
    const started = await startVersa(home);
    try {
      const local = { VERSA_HOME: home, PORT: new URL(started.url).port, VERSA_REGISTRY: '', VERSA_API_KEY: '' };
      const r = await versa(['experiments', 'ls', 'demo-writer'], { env: local, cwd: work });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^ID\s+NAME\s+STATUS/);
    } finally {
      const exited = new Promise((done) => started.child.once('exit', done));
      started.child.kill('SIGTERM');
      await exited;
    }
  });

  it('tenants create|ls and keys create|ls|revoke; a read-only key for a compute node', async () => {
    expect((await cli('tenants', 'create', 'globex', '--name', 'Globex Inc')).stdout).toBe('created tenant globex\n');
    expect(await json('tenants', 'create', 'initech')).toMatchObject({ id: 'initech', name: 'initech' });
    const tenants = await cli('tenants', 'ls');
    expect(tenants.stdout).toMatch(/^ID\s+NAME\s+CREATED\n/);
    expect(tenants.stdout).toMatch(/\nglobex\s+Globex Inc\s+\d{4}-/);
    expect((await cli('tenants', 'update', 'initech', '--max-adapter-fraction', '0.5')).stdout).toBe(
      'updated tenant initech\n',
    );
    expect(
      await json('tenants', 'update', 'initech', '--max-adapter-fraction', 'default', '--name', 'Initech'),
    ).toMatchObject({ id: 'initech', name: 'Initech' });
    expect((await json('tenants', 'ls')).map((t: { id: string }) => t.id)).toEqual(
      expect.arrayContaining(['acme', 'globex', 'initech']),
    );

    // Without --tenant, the key is made for the caller's own tenant. Text output: the key alone on stdout.
    const made = await cli('keys', 'create', '--scopes', 'read', '--name', 'node-1');
    expect(made.code).toBe(0);
    const nodeKey = made.stdout.trim();
    expect(made.stdout).toMatch(/^vsk_\S+\n$/);
    expect(made.stderr).toMatch(/^versa: created key key_\w+ "node-1" for tenant acme \(read\); shown only once\n$/);
    expect((await versa(['adapters', 'ls', '--json'], { env: { ...env, VERSA_API_KEY: nodeKey } })).code).toBe(0);
    const readOnly = await versa(['alias', 'set', 'writer', 'staging', '1'], {
      env: { ...env, VERSA_API_KEY: nodeKey },
    });
    oneLineError(readOnly);
    expect(readOnly.stderr).toMatch(/403/);

    const globex = await json('keys', 'create', '--tenant', 'globex', '--scopes', 'read,generate');
    expect(globex).toMatchObject({
      tenant: 'globex',
      scopes: ['read', 'generate'],
      key: expect.stringMatching(/^vsk_/),
    });
    const ls = await cli('keys', 'ls', '--tenant', 'globex');
    expect(ls.stdout).toMatch(/^ID\s+TENANT\s+NAME\s+PREFIX\s+SCOPES\s+CREATED\s+REVOKED\n/);
    expect(ls.stdout).toContain(globex.id);
    expect(ls.stdout).not.toContain(globex.key);

    const nodeKeyId = (await json('keys', 'ls', '--tenant', 'acme')).find(
      (k: { name: string }) => k.name === 'node-1',
    ).id;
    expect((await cli('keys', 'revoke', nodeKeyId)).stdout).toBe(`revoked ${nodeKeyId} "node-1" (acme)\n`);
    const revoked = await versa(['adapters', 'ls'], { env: { ...env, VERSA_API_KEY: nodeKey } });
    oneLineError(revoked);
    expect(revoked.stderr).toMatch(/401/);
    expect(await json('keys', 'revoke', globex.id)).toMatchObject({ id: globex.id, revoked_at: expect.any(String) });
  });

  it('adapters update: visibility, task, description', async () => {
    expect((await cli('adapters', 'update', 'writer', '--visibility', 'public', '--task', 'tone')).stdout).toBe(
      'writer: public, task tone\n',
    );
    expect(await json('adapters', 'update', 'writer', '--task', '', '--description', 'Writes.')).toMatchObject({
      name: 'writer',
      visibility: 'public',
      task: null,
      description: 'Writes.',
    });
    oneLineError(await cli('adapters', 'update', 'writer', '--visibility', 'secret'));
  });

  it('versions deprecate|yank|restore an adapter version', async () => {
    expect((await cli('versions', 'deprecate', 'writer', '2')).stdout).toBe('writer@2: deprecated\n');
    expect((await reg.fetch('/v1/adapters/writer/versions/2').then((r) => r.json())).status).toBe('deprecated');
    expect(await json('versions', 'yank', 'writer', '2')).toMatchObject({ version: 2, status: 'yanked' });
    expect((await cli('versions', 'restore', 'writer', '2')).stdout).toBe('writer@2: active\n');
    expect((await reg.fetch('/v1/adapters/writer/versions/2').then((r) => r.json())).status).toBe('active');
    // A base model version: --model.
    expect((await cli('versions', 'deprecate', 'toy', '1', '--model')).stdout).toBe('toy@1: deprecated\n');
    expect((await cli('versions', 'restore', 'toy', '1', '--model')).stdout).toBe('toy@1: active\n');
    oneLineError(await cli('versions', 'yank', 'writer', '99'));
  });

  it('experiments create (flags, then a spec file), update, alias set --force, promote, stop', async () => {
    const created = await cli(
      ...['experiments', 'create', '--adapter', 'writer', '--name', 'tone'],
      ...['--arm', 'control=alias:production:50', '--arm', 'test=version:2:50'],
      ...['--metric', 'thumbs:binary', '--metric', 'stars:scale:1:5', '--guardrail', 'error_rate=0.02', '--start'],
    );
    expect(created.stderr).toBe('');
    const id = /^(exp_\w+) tone \(writer\) running: control=v1:50 test=v2:50\n$/.exec(created.stdout)?.[1];
    expect(id, created.stdout).toBeDefined();
    const e = await (await reg.fetch(`/v1/experiments/${id}`)).json();
    expect(e).toMatchObject({
      status: 'running',
      arms: [
        { name: 'control', alias: 'production', version: null, weight: 50 },
        { name: 'test', alias: null, version: 2, weight: 50 },
      ],
      metrics: [
        { name: 'thumbs', kind: 'binary', min: 0, max: 1 },
        { name: 'stars', kind: 'scale', min: 1, max: 5 },
      ],
      guardrails: { error_rate: 0.02 },
    });

    expect(await json('experiments', 'update', id!, '--weights', '90,10', '--kill')).toMatchObject({
      killed: true,
      auto_promote: false,
      arms: [{ weight: 90 }, { weight: 10 }],
    });
    expect((await cli('experiments', 'update', id!, '--no-kill')).stdout).toMatch(
      / running: control=v1:90 test=v2:10\n$/,
    );

    // The production alias is an arm: a plain move is refused, and the error says how to force it.
    const refused = await cli('alias', 'set', 'writer', 'production', '3');
    oneLineError(refused);
    expect(refused.stderr).toMatch(/409: .*force/);
    expect((await cli('alias', 'set', 'writer', 'production', '3', '--force', '--reason', 'hotfix')).stdout).toBe(
      'writer@production: 1 -> 3\n',
    );

    const promoted = await json('experiments', 'promote', id!, 'test');
    expect(promoted).toMatchObject({ alias: 'production', version: 2, experiment: { status: 'stopped' } });

    // From a spec file (the API's body), with a flag on top; then stop.
    const spec = join(work, 'spec.json');
    writeFileSync(
      spec,
      JSON.stringify({
        adapter: 'writer',
        name: 'from-file',
        arms: [
          { name: 'a', version: 2, weight: 1 },
          { name: 'b', version: 3, weight: 1 },
        ],
      }),
    );
    const fromFile = await json('experiments', 'create', '--file', spec, '--name', 'renamed');
    expect(fromFile).toMatchObject({ name: 'renamed', status: 'draft', arms: [{ name: 'a' }, { name: 'b' }] });
    expect(await json('experiments', 'update', fromFile.id, '--status', 'running')).toMatchObject({
      status: 'running',
    });
    expect((await cli('experiments', 'stop', fromFile.id)).stdout).toBe(`${fromFile.id} stopped\n`);
  });

  it('bad input is one line on stderr and exit 1, before any request', async () => {
    const create = ['experiments', 'create', '--adapter', 'writer', '--name', 'x'];
    const cases: Array<[string[], RegExp]> = [
      [[...create, '--arm', 'control=production:50'], /--arm .*expected NAME=version:N:WEIGHT or NAME=alias/],
      [[...create, '--arm', 'a=version:two:1'], /--arm .*expected NAME=version:N:WEIGHT/],
      [[...create, '--arm', 'a=version:1:1', '--metric', 'm:odd'], /--metric .*expected NAME:binary/],
      [[...create, '--arm', 'a=version:1:1', '--guardrail', 'x'], /--guardrail .*expected NAME=LIMIT/],
      [['experiments', 'create', '--name', 'x', '--arm', 'a=version:1:1'], /missing --adapter \(or --file\)/],
      [['experiments', 'create', '--file', join(work, 'missing.json')], /cannot read --file .*missing\.json/],
      [['experiments', 'update', 'exp_x', '--weights', '1,a'], /--weights .*comma-separated weights/],
      [['experiments', 'update', 'exp_x'], /nothing to update/],
      [['keys', 'create', '--scopes', 'read,root'], /--scopes .*not "root"/],
      [['keys', 'create'], /required option '--scopes <list>'/],
      [['versions', 'yank', 'writer', 'v2'], /version.*expected an integer/],
      [['tenants', 'update', 'acme'], /nothing to update/],
      [['tenants', 'update', 'acme', '--max-adapter-fraction', '-1'], /expected a positive number, or "default"/],
      [['adapters', 'update', 'writer'], /nothing to update/],
    ];
    // No registry listens there: every one of these is refused before a request is made.
    const offline = { ...env, VERSA_REGISTRY: 'http://127.0.0.1:9' };
    for (const [args, message] of cases) {
      const r = await versa(args, { env: offline, cwd: work });
      oneLineError(r);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
});
