import OpenAI from 'openai';
import { createApiKey } from '../../registry/auth.ts';
import { RegistryClient } from '../../registry/client.ts';
import { importLocalModel, publishFolder } from '../../registry/local.ts';
import { startComputeNode, type ComputeNode } from '../../src/compute/node.ts';
import type { GenerationConfig } from '../../src/edge/generation/config.ts';
import { fixture } from './fixtures.ts';
import { COMPUTE_TOKEN, freePort } from './compute.ts';
import { startRegistry, type Backend, type TestRegistry } from './registry.ts';

/**
 * The product on one machine, in process: a compute node serving stories260k (fetching adapter
 * files over HTTP from its configured registry, with its own key and token), and the edge app (registry + OpenAI
 * routes) on a real port, with the base imported and the fixture adapters published.
 */
export interface TestProduct {
  registry: TestRegistry;
  compute: ComputeNode;
  openai(key?: string): OpenAI;
  client: RegistryClient;
  close(): Promise<void>;
}

export async function startProduct(
  opts: {
    backend?: Backend;
    generation?: Partial<GenerationConfig>;
    nodes?: (computeUrl: string) => string[] | Promise<string[]>;
  } = {},
): Promise<TestProduct> {
  // The node's own read-only key and its token; it reads adapter files from this registry only.
  const computeKey = `vsk_compute-${crypto.randomUUID()}`;
  const computeUrl = `http://127.0.0.1:${await freePort()}`;
  const nodes = opts.nodes ? await opts.nodes(computeUrl) : [computeUrl];
  const registry = await startRegistry(opts.backend ?? 'sqlite', {
    deps: { generation: { nodes: { stories260k: nodes }, computeToken: COMPUTE_TOKEN, ...opts.generation } },
  });
  await createApiKey(registry.registry, { tenant: 'acme', name: 'compute', scopes: ['read'], key: computeKey });
  const compute = await startComputeNode({
    token: COMPUTE_TOKEN,
    model: fixture('stories260k/model.bin'),
    threads: 2,
    port: Number(new URL(computeUrl).port),
    registry: registry.url,
    registryKey: computeKey,
  });
  await importLocalModel(registry.registry, {
    path: fixture('stories260k/model.bin'),
    name: 'stories260k',
    tenantId: 'acme',
  });
  const client = new RegistryClient({ url: registry.url, key: registry.adminKey });
  await publishFolder(client, fixture('stories260k/adapters/vlm-max'), 'vlm-max', {
    base: 'stories260k@1',
    alias: 'production',
  });
  await publishFolder(client, fixture('stories260k/adapters/lora-max'), 'lora-max', {
    base: 'stories260k@1',
    alias: 'production',
  });
  return {
    registry,
    compute,
    client,
    openai: (key = registry.adminKey) => new OpenAI({ baseURL: `${registry.url}/v1`, apiKey: key, maxRetries: 0 }),
    close: async () => {
      await registry.close();
      await compute.shutdown(1000);
    },
  };
}
