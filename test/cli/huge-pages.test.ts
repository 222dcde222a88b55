import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { spawnComputeNode } from '../helpers/compute.ts';

const THP = '/sys/kernel/mm/transparent_hugepage/enabled';
/** The kernel gives huge pages where asked (the launcher's case), as on this project's machines. */
const thpOnRequest = existsSync(THP) && readFileSync(THP, 'utf8').includes('[madvise]');

const childrenOf = (pid: number) =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** `versa compute` as an operator asking for huge pages starts it: through the launcher where they can be had. */
const startCompute = (env: Record<string, string> = {}) =>
  spawnComputeNode([], { VERSA_HUGE_PAGES: '1', GLIBC_TUNABLES: '', ...env });

/**
 * With VERSA_HUGE_PAGES=1, bin/versa.js runs the commands that load a model in a child process started
 * with glibc's huge pages (GLIBC_TUNABLES), when the kernel gives them on request; it forwards the stop signals, and
 * a stop that reaches the child both directly and through it is one stop.
 */
describe('the launcher of model commands', () => {
  it('runs `versa compute` in a child with huge pages; one SIGTERM drains it once and exits 0', async () => {
    const { child, url, closed, stderr } = await startCompute();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const kids = childrenOf(child.pid!);
    if (thpOnRequest) {
      expect(kids).toHaveLength(1);
      const environ = readFileSync(`/proc/${kids[0]}/environ`, 'utf8').split('\0');
      expect(environ).toContain('GLIBC_TUNABLES=glibc.malloc.hugetlb=1');
    } else {
      expect(kids).toEqual([]); // no huge pages to ask for: the command runs in this process
    }
    child.kill('SIGTERM');
    expect(await closed).toEqual({ code: 0, signal: null });
    expect(stderr().match(/SIGTERM: draining/g)).toHaveLength(1);
    for (const pid of kids) expect(alive(pid)).toBe(false);
  });

  it('takes a stop delivered twice at once (a terminal or systemd, and the launcher) for one', async () => {
    const { child, closed, stderr } = await startCompute();
    const [node] = childrenOf(child.pid!);
    // The process group's Ctrl-C: the launcher forwards it, and the node gets it directly too.
    child.kill('SIGINT');
    if (node) process.kill(node, 'SIGINT');
    expect(await closed).toEqual({ code: 0, signal: null });
    expect(stderr().match(/SIGINT: draining/g)).toHaveLength(1);
  });

  it('ends the command when the launcher is killed (SIGKILL, as a supervisor or the chaos bench does)', async () => {
    const { child, closed } = await startCompute();
    const kids = childrenOf(child.pid!);
    child.kill('SIGKILL');
    expect(await closed).toEqual({ code: null, signal: 'SIGKILL' });
    for (let waited = 0; kids.some(alive) && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    for (const pid of kids) expect(alive(pid)).toBe(false);
  });

  it('leaves the command in its own process by default, or with GLIBC_TUNABLES already set', async () => {
    const envs: Array<Record<string, string>> = [
      { VERSA_HUGE_PAGES: '' },
      { VERSA_HUGE_PAGES: '0' },
      { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' },
    ];
    for (const env of envs) {
      const { child, closed } = await startCompute(env);
      expect(childrenOf(child.pid!)).toEqual([]);
      child.kill('SIGTERM');
      expect(await closed).toEqual({ code: 0, signal: null });
    }
  });
});
