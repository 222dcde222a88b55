/**
 * The contract between every graph the builders make and the runtime that feeds it. B rows of up
 * to S new tokens each (right-padded); N = B*S tokens, flattened token-major inside the graph.
 * P is the KV-cache capacity. Where the cache lives is the graph's KvPlacement: 'host', a JS-owned
 * cache fed as inputs (the run's B rows) and never copied out, the graph outputting only the new
 * positions (NEW_KV); or 'device', onnxruntime tensors of every cache row (GPU memory on WebGPU)
 * that the graph returns updated (present_*), so that a step moves only ids in and logits out.
 *
 * Adapters are banks of U slots stacked per tensor; rows are grouped by slot with `*_gather`
 * [U, R] (token indices, padded) and put back with `*_scatter` [N] (index into U*R, or U*R for
 * "no adapter", which picks a zero row). So rows of different adapters, or none, share one run.
 */
export const IN = {
  inputIds: 'input_ids', // int64 [B, S]: base-vocabulary ids (task tokens replaced by 0)
  taskIndex: 'task_index', // int64 [B, S]: 0, or 1 + slot*K + k for task token k of the row's VLM slot
  positionIds: 'position_ids', // int64 [B, S]
  pastLength: 'past_length', // int64 [B]: the positions each row has in the cache (the attention bias is made from it)
  lastIndex: 'last_index', // int64 [L]: flat indices of the tokens whose logits are output (each row's last)
  taskEmbeddings: 'task_embeddings', // float [1 + U*K, d]; row 0 is zeros
  taskHead: 'task_head', // float [U, d, K]: the task rows of the tied head, transposed
  vlmGather: 'vlm_gather', // int64 [U, R]
  vlmScatter: 'vlm_scatter', // int64 [N]
  headGather: 'head_gather', // int64 [U, R'] over the L scored tokens, for task-token logits
  headScatter: 'head_scatter', // int64 [L]
  loraGather: 'lora_gather', // int64 [U', R]
  loraScatter: 'lora_scatter', // int64 [N]
} as const;

export type KvPlacement = 'host' | 'device';

export const pastKey = (l: number) => `past_key.${l}`; // float [B, Hkv, P, hd]; 'device': [CacheRows, Hkv, P, hd]
export const pastValue = (l: number) => `past_value.${l}`; // float, as past_key
/** 'device': the inputs that say where a run's rows are in the cache, and where their new positions go. */
export const CACHE_IN = {
  rows: 'cache_rows', // int64 [B]: the cache row of each run row
  index: 'cache_index', // int64 [B, Hkv, S, 3]: (cache row, head, position) of each new key and value
} as const;
/** 'device': the cache with the run's new keys and values written: the next run's past_key / past_value. */
export const presentKey = (l: number) => `present_key.${l}`;
export const presentValue = (l: number) => `present_value.${l}`;
/** Every present output, layer by layer: keys, then values. */
export const presentOutputs = (layers: number) =>
  Array.from({ length: layers }, (_, l) => [presentKey(l), presentValue(l)]).flat();
/**
 * 'host': output float [2 * layers * B, Hkv, S, hd]: every layer's new keys (head-major, rotated), then its
 * new values, stacked layer by layer. One output, not two a layer: a GPU provider reads each output
 * back in a round trip of its own (0.4 ms each on an H200 under WebGPU).
 */
export const NEW_KV = 'new_kv';
export const LOGITS = 'logits'; // output float [L, V + K]

/**
 * VLM bank tensors of one layer: down [U,d,m] and down_b [U,1,m] (with the adapter's LayerNorm
 * scale and shift folded in), up [U,m,d], up_b [U,1,d].
 */
export const vlmInputs = (l: number) => ({
  down: `vlm.${l}.down`,
  downB: `vlm.${l}.down_b`,
  up: `vlm.${l}.up`,
  upB: `vlm.${l}.up_b`,
});

/** LoRA bank tensors of one projection: a [U', in, r], b [U', r, out] (b carries alpha/r). */
export const loraInputs = (l: number, module: string) => ({ a: `lora.${l}.${module}.a`, b: `lora.${l}.${module}.b` });

/** Additive attention bias for positions a token must not see. */
export const MASKED = -1e30;
