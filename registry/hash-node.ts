import { createHash } from 'node:crypto';
import type { HasherFactory } from './hash.ts';

/** node:crypto's incremental SHA-256 (Node only; the Worker uses crypto.DigestStream). */
export const nodeHasher: HasherFactory = () => {
  const hash = createHash('sha256');
  return {
    update: (chunk) => void hash.update(chunk),
    digest: async () => hash.digest('hex'),
  };
};
