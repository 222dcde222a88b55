/**
 * SHA-256 (WebCrypto: the same on Workers and Node) of a key, as a number in (0, 1): the one hash
 * behind sticky experiment arms (src/experiments/assign.ts) and rendezvous routing to compute
 * nodes (src/edge/routing/nodes.ts), so both are stable across processes and runtimes.
 */
export async function unitInterval(key: string): Promise<number> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key)));
  let n = 0;
  for (let i = 0; i < 6; i++) n = n * 256 + digest[i]; // 48 bits
  return (n + 0.5) / 2 ** 48;
}
