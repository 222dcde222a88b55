import type { AdapterManifest } from '../adapters/format.ts';
import type { EngineInfo, EngineOptions } from '../engine.ts';
import type { StepStats } from '../generation/scheduler.ts';
import type { GenerateRequest, GenerateResult, TokenEvent } from '../generation/request.ts';

/** Messages between EngineClient (any thread) and the engine's worker thread. */
export type ToWorker =
  | { type: 'load'; options: EngineOptions }
  | {
      type: 'add-adapter';
      call: number;
      id: string;
      dir?: string;
      config?: Record<string, unknown>;
      files?: Array<[string, Uint8Array]>;
    }
  | { type: 'remove-adapter'; call: number; id: string }
  | { type: 'tokenize'; call: number; text: string; adapter?: string | null }
  | { type: 'detokenize'; call: number; tokens: number[]; adapter?: string | null }
  | { type: 'generate'; requests: Array<{ id: string; request: GenerateRequest }> }
  | { type: 'cancel'; id: string }
  | { type: 'close' };

export interface WireError {
  name: string;
  message: string;
  param?: string;
}

export type FromWorker =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'load-failed'; error: WireError }
  | {
      type: 'reply';
      call: number;
      manifest?: AdapterManifest;
      removed?: boolean;
      tokens?: number[];
      text?: string;
      error?: WireError;
    }
  | {
      type: 'batch';
      tokens: Array<[string, TokenEvent[]]>;
      done: Array<[string, GenerateResult]>;
      errors: Array<[string, WireError]>;
      /** The scheduler steps' figures, each with the queue's length and the rows running after it. */
      steps: Array<{ stats: StepStats; queued: number; active: number }>;
    };

export function toWire(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, param: (err as { param?: string }).param };
}
