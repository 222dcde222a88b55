import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

const BIN = resolve(import.meta.dirname, '../../bin/versa.js');

/** Runs `versa ARGS` as a user would, returning exit code, stdout and stderr. */
export function versa(args: string[], opts: { env?: Record<string, string>; cwd?: string; input?: string } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...opts.env }, cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    if (opts.input !== undefined) child.stdin.end(opts.input);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/**
 * Starts `versa start ARGS` (VERSA_HOME = `home`, PORT 0 unless `env` says otherwise) and waits for its
 * banner. The caller kills `child` when done.
 */
export async function startVersa(home: string, args: string[] = [], env: Record<string, string> = {}) {
  const child: ChildProcess = spawn(process.execPath, [BIN, 'start', ...args], {
    env: { ...process.env, VERSA_HOME: home, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const banner = await new Promise<string>((done, fail) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('curl -N') && out.endsWith('\n\n')) done(out);
    });
    child.on('exit', (code) => fail(new Error(`versa start exited ${code}: ${err}`)));
  });
  const url = /running on (\S+)/.exec(banner)![1];
  const key = /API key\s+(\S+)/.exec(banner)![1];
  const curl = /curl -N (\S+) -H 'Authorization: Bearer (\S+)' -H 'Content-Type: application\/json' -d '(.*)'/.exec(
    banner,
  )!;
  return { child, banner, url, key, curl: { url: curl[1], key: curl[2], body: curl[3] } };
}
