import { describe, expect, it } from 'vitest';
import { DEFAULT_GENERATION } from '../../src/edge/generation/config.ts';
import { Pools } from '../../src/edge/routing/pools.ts';
import { DEFAULT_NODE_TIMEOUTS } from '../../src/edge/routing/nodes.ts';
import { nodeSettingsFrom } from '../../src/edge/routing/settings.ts';

/** The edge's waits on compute nodes have one name each, from the setting to the pool that applies them. */
describe('node timeouts', () => {
  it('VERSA_NODE_<NAME>_TIMEOUT, in seconds, is <name>TimeoutMs in the config and in the pool', () => {
    const settings = nodeSettingsFrom({
      VERSA_NODE_CONNECT_TIMEOUT: '1.5',
      VERSA_NODE_FIRST_BYTE_TIMEOUT: '2',
      VERSA_NODE_IDLE_TIMEOUT: '30',
    });
    const timeouts = { connectTimeoutMs: 1500, firstByteTimeoutMs: 2000, idleTimeoutMs: 30_000 };
    expect(settings).toEqual(timeouts);
    const pools = new Pools({ ...DEFAULT_GENERATION, ...settings, nodes: { '*': ['http://127.0.0.1:9'] } });
    expect(pools.pool.timeouts).toEqual(timeouts);
    expect(Object.keys(DEFAULT_NODE_TIMEOUTS).sort()).toEqual(Object.keys(timeouts).sort());
    expect(new Pools({ ...DEFAULT_GENERATION }).pool.timeouts).toEqual(DEFAULT_NODE_TIMEOUTS);
  });

  it('a bad value is refused in one line that names the setting', () => {
    expect(() => nodeSettingsFrom({ VERSA_NODE_IDLE_TIMEOUT: '0' })).toThrow(
      'VERSA_NODE_IDLE_TIMEOUT must be a number of seconds above 0, not "0"',
    );
  });
});
