// Where a decode step's time goes on an execution provider: one decode step of a model is captured on
// the CPU (graph, weights, feeds) after a prompt of each length given, then timed in sessions that
// differ in what comes back to the CPU, and profiled (onnxruntime's per-node profile, summarised).
// Then the engine's own runner on the provider, with the cache on the device ('device' graph: only
// ids in and logits out), times decode steps after each prompt length.
// usage: node step-time.mjs <build dir> <model> <out dir> [ep=webgpu] [prompt lengths=8,500]
import { mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { capturingRunner } from './capture.mjs';

const require = createRequire(`${process.cwd()}/`);
const ort = require('onnxruntime-node');
const [buildDir, modelPath, out, ep = 'webgpu', lengths = '8,500'] = process.argv.slice(2);
mkdirSync(out, { recursive: true });
const { runner, captured } = await capturingRunner(ort, resolve(buildDir), modelPath);
const steps = [];
for (const P of lengths.split(',').map(Number)) {
  await runner.run([{ row: 0, tokens: Array.from({ length: P }, (_, i) => 1 + ((i * 31) % 500)), position: 0 }]);
  await runner.run([{ row: 0, tokens: [7], position: P }]);
  // The feeds alias the cache, which the next prompt overwrites: copy them.
  const feeds = Object.fromEntries(
    Object.entries(captured.feeds).map(([n, t]) => [n, new ort.Tensor(t.type, t.data.slice(), t.dims)]),
  );
  steps.push({ P, feeds });
}
const outputNames = Object.keys(await (await session('cpu')).run(steps[0].feeds));

async function session(name, extra = {}) {
  return ort.InferenceSession.create(captured.model, {
    executionProviders: [name],
    graphOptimizationLevel: 'all',
    externalData: captured.externalData,
    logSeverityLevel: 3,
    ...extra,
  });
}

async function time(label, s, fetch, n = 20) {
  for (const { P, feeds } of steps) {
    const once = async () => {
      const r = await s.run(feeds, fetch);
      for (const t of Object.values(r)) if (t.location === 'gpu-buffer') t.dispose();
    };
    for (let i = 0; i < 3; i++) await once();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await once();
    console.log(`${label}, context ${P}: ${((performance.now() - t0) / n).toFixed(2)} ms a step`);
  }
}

await time('cpu, every output', await session('cpu'));
await time(`${ep}, every output to the CPU`, await session(ep));
await time(`${ep}, only the logits fetched`, await session(ep), ['logits']);
const onDevice = Object.fromEntries(outputNames.map((n) => [n, n === 'logits' ? 'cpu' : 'gpu-buffer']));
await time(`${ep}, new keys/values left on the device`, await session(ep, { preferredOutputLocation: onDevice }));

// The engine's runner on the provider, the cache on the device: decode steps after each prompt.
{
  const { openModel } = await import(`${resolve(buildDir)}/src/engine/loaders/load.js`);
  const { ModelRunner } = await import(`${resolve(buildDir)}/src/engine/runtime/runner.js`);
  const model = openModel(modelPath);
  const features = { vlm: false, lora: false };
  const device = await ModelRunner.create(model.config, model.weights, { ep, kv: 'device', features });
  model.close();
  for (const P of lengths.split(',').map(Number)) {
    await device.run([{ row: 0, tokens: Array.from({ length: P }, (_, i) => 1 + ((i * 31) % 500)), position: 0 }]);
    for (let i = 0; i < 3; i++) await device.run([{ row: 0, tokens: [7], position: P + i }]);
    const fed = device.hostBytesIn;
    const t0 = performance.now();
    for (let i = 3; i < 23; i++) await device.run([{ row: 0, tokens: [7], position: P + i }]);
    const ms = (performance.now() - t0) / 20;
    const bytes = (device.hostBytesIn - fed) / 20;
    console.log(`${ep}, the runner, cache on the device, context ${P}: ${ms.toFixed(2)} ms a step, ${bytes} B sent`);
    device.cache.clear();
  }
  await device.release();
}

// onnxruntime's profile of 5 steps at the longest context: time per op type (kernel time as the CPU sees it).
const profiled = await session(ep, { enableProfiling: true, profileFilePrefix: `${out}/profile` });
for (let i = 0; i < 5; i++) await profiled.run(steps.at(-1).feeds);
profiled.endProfiling();
const file = readdirSync(out).find((f) => f.startsWith('profile') && f.endsWith('.json'));
if (file) {
  renameSync(`${out}/${file}`, `${out}/profile.json`);
  const events = JSON.parse(readFileSync(`${out}/profile.json`, 'utf8'));
  const byOp = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const key = `${e.args.op_name} on ${e.args.provider}`;
    const v = byOp.get(key) ?? { us: 0, n: 0 };
    v.us += e.dur;
    v.n++;
    byOp.set(key, v);
  }
  const total = [...byOp.values()].reduce((a, v) => a + v.us, 0);
  console.log(`profile: ${(total / 5 / 1000).toFixed(2)} ms of kernel time a step; by op:`);
  for (const [k, v] of [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, 15))
    console.log(`  ${k}: ${(v.us / 5 / 1000).toFixed(2)} ms, ${v.n / 5} nodes`);
  const runs = events.filter((e) => e.name === 'model_run');
  console.log(`profile: model_run ${runs.map((e) => (e.dur / 1000).toFixed(1)).join(', ')} ms`);
}
