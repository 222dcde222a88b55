import { mkdtempSync } from 'node:fs';
import { GPT2_SMALL, randomWeights, writeVlmAdapter } from './src/engine/synthetic.ts';
import { ModelRunner } from './src/engine/runtime/runner.ts';
import { DecoderGraph } from './src/engine/graph/decoder.ts';
import { loadAdapterFolder } from './src/engine/adapters/load.ts';
const c = GPT2_SMALL;
const w = randomWeights(c);
const variants: Record<string, ModelRunner> = {};
variants.full = await ModelRunner.create(c, w, { threads: 2 });
const origLinear = DecoderGraph.prototype.linear;
DecoderGraph.prototype.linear = function (l, m, x, wt, b) { let y = this.g.matmul(x, wt); if (b) y = this.g.add(y, b); return y; };
variants.nolora = await ModelRunner.create(c, w, { threads: 2 });
const origVlm = DecoderGraph.prototype.vlm;
DecoderGraph.prototype.vlm = function (l, h) { return h; };
variants.none = await ModelRunner.create(c, w, { threads: 2 });
const dir = mkdtempSync('/tmp/exp/ad-'); writeVlmAdapter(dir, c, 300, 5);
const ad = loadAdapterFolder(dir, c, 'a');
variants.full.bank.acquire(ad); variants.nolora.bank.acquire(ad);
const configs: Array<[string, ModelRunner, string | undefined]> = [['full', variants.full, undefined], ['full+ad', variants.full, 'a'], ['nolora', variants.nolora, undefined], ['nolora+ad', variants.nolora, 'a'], ['none', variants.none, undefined]];
const times: Record<string, number[]> = {};
for (const [name, r, a] of configs) { times[name] = []; await r.run([{ row: configs.findIndex(x => x[0] === name) % 2, tokens: Array(16).fill(5), position: 0, adapter: a }]); }
let pos = 16;
for (let round = 0; round < 3; round++) {
  for (const [name, r, a] of configs) {
    const row = configs.findIndex(x => x[0] === name) % 2;
    for (let s = 0; s < 25; s++) {
      const t = performance.now();
      await r.run([{ row, tokens: [7], position: pos + s, adapter: a }]);
      if (s >= 5) times[name].push(performance.now() - t);
    }
  }
  pos += 25;
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length * 0.1)];
for (const [name] of configs) console.log(name.padEnd(10), med(times[name]).toFixed(2), 'ms');
