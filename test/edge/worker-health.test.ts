import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPUTE_TOKEN, spawnComputeNode, type ComputeProcess } from '../helpers/compute.ts';
import { startWorkerRegistry, type TestWorker } from '../helpers/registry.ts';

/**
 * The Worker has no timers: its requests run the active health checks (at most one round per
 * VERSA_NODE_HEALTH_INTERVAL), which take a frozen node out and put it back once it answers.
 */
describe('Worker entry: active health checks', () => {
  let node: ComputeProcess;
  let worker: TestWorker;
  beforeAll(async () => {
    node = await spawnComputeNode();
    worker = await startWorkerRegistry({
      COMPUTE_NODES: JSON.stringify([node.url]),
      VERSA_COMPUTE_TOKEN: COMPUTE_TOKEN,
      VERSA_NODE_CONNECT_TIMEOUT: '0.5',
      VERSA_NODE_HEALTH_INTERVAL: '0.1',
    });
  }, 180_000);
  afterAll(async () => {
    node?.child.kill('SIGCONT');
    await Promise.all([worker?.close(), node?.kill()]);
  });

  const healthy = async () => (await (await worker.fetch('/healthz', { key: null })).json()).compute_nodes.healthy;
  const until = async (ok: () => Promise<boolean>) => {
    while (!(await ok())) await new Promise((r) => setTimeout(r, 100));
  };

  it('takes a frozen node out and puts it back once its /readyz answers', async () => {
    await until(async () => (await healthy()) === 1);
    node.child.kill('SIGSTOP');
    try {
      await until(async () => (await healthy()) === 0);
    } finally {
      node.child.kill('SIGCONT');
    }
    await until(async () => (await healthy()) === 1);
    expect(await healthy()).toBe(1);
  });
});
