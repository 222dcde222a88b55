import { spawn } from 'node:child_process';
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
