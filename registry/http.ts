import type { HttpEnv } from '../src/http/middleware.ts';
import type { BlobStore } from './blobs/store.ts';
import type { RegistryDb } from './db/index.ts';

const MiB = 1024 * 1024;

/** Upload and body limits. Every one answers 413 with a JSON error when exceeded. */
export interface Limits {
  /** The weights (.safetensors) file of an adapter. */
  maxWeightsBytes: number;
  /** Every other file of an adapter (adapter_config.json, README.md, ...). */
  maxSmallFileBytes: number;
  /** The JSON header of a safetensors file. */
  maxHeaderBytes: number;
  /** A text field of the publish form (the model card is the largest). */
  maxFieldBytes: number;
  /** Files in one version. */
  maxFiles: number;
  /** A JSON request body. */
  maxJsonBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxWeightsBytes: 1024 * MiB,
  maxSmallFileBytes: 1 * MiB,
  maxHeaderBytes: 1 * MiB,
  maxFieldBytes: 512 * 1024,
  maxFiles: 16,
  maxJsonBytes: 1 * MiB,
};

/** What the registry routes need, injected by the entry (Worker or Node) or a test. */
export interface RegistryDeps {
  registry: RegistryDb;
  blobs: BlobStore;
  /** The clock; tests may pin it. */
  now: () => Date;
  limits: Limits;
  /**
   * Whether a compute node serves a base version now (by name and files' sha256): the edge's view,
   * shown as `servable` in GET /v1/models. Absent (the registry alone): not shown.
   */
  servable?: () => Promise<(base: { name: string; sha256: string }) => boolean>;
}

/** The Hono environment of the registry's routes (and of the experiment routes, which use the same deps). */
export type RegistryEnv = HttpEnv<RegistryDeps>;
