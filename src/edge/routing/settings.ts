import type { GenerationConfig } from '../generation/config.ts';

/**
 * The edge's settings towards its compute nodes, and how long it reuses registry answers, as
 * environment variables (or Worker vars), in seconds.
 */
const SECONDS = {
  VERSA_NODE_CONNECT_TIMEOUT: 'connectTimeoutMs',
  VERSA_NODE_FIRST_BYTE_TIMEOUT: 'firstByteTimeoutMs',
  VERSA_NODE_IDLE_TIMEOUT: 'idleTimeoutMs',
  VERSA_NODE_HEALTH_INTERVAL: 'healthCheckMs',
  VERSA_REGISTRY_CACHE_TTL: 'registryCacheMs',
} as const satisfies Record<string, keyof GenerationConfig>;

/** The settings where 0 means off. */
const ZERO_IS_OFF: readonly SettingName[] = ['VERSA_NODE_HEALTH_INTERVAL', 'VERSA_REGISTRY_CACHE_TTL'];

type SettingName = keyof typeof SECONDS;

/** The node timeouts, health-check interval and registry cache bound in `env`; throws one line naming a bad one. */
export function nodeSettingsFrom(env: { [name in SettingName]?: string }): Partial<GenerationConfig> {
  const settings: Partial<GenerationConfig> = {};
  for (const name of Object.keys(SECONDS) as SettingName[]) {
    const text = env[name]?.trim();
    if (!text) continue;
    const seconds = Number(text);
    const zeroAllowed = ZERO_IS_OFF.includes(name);
    if (!Number.isFinite(seconds) || seconds < 0 || (seconds === 0 && !zeroAllowed))
      throw new Error(`${name} must be a number of seconds${zeroAllowed ? ' (0: off)' : ' above 0'}, not "${text}"`);
    settings[SECONDS[name]] = Math.round(seconds * 1000);
  }
  return settings;
}
