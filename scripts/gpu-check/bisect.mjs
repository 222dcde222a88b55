// Finds where a decoder graph goes wrong on an execution provider (a crash, or values that differ
// from the CPU's): the first decode step of a model is captured on the CPU (graph, weights, feeds),
// then prefixes of the graph (its first k nodes, in build order, which is topological) run in child
// processes, so a segmentation fault only ends a child. Prints a report; writes nothing else.
// usage: node bisect.mjs <build dir> <model> <work dir> [ep=webgpu]
//        node bisect.mjs child <work dir> <k|all> <ep> <optimization> <last|all|inputs> [forced cpu node]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { capturingRunner } from './capture.mjs';

const require = createRequire(`${process.cwd()}/`);
const ort = require('onnxruntime-node');
const { onnx } = require('onnx-proto');

if (process.argv[2] === 'child') await child(...process.argv.slice(3));
else await main(...process.argv.slice(2));

async function main(buildDir, modelPath, work, ep = 'webgpu') {
  mkdirSync(`${work}/ext`, { recursive: true });
  await capture(resolve(buildDir), modelPath, work);
  const nodes = onnx.ModelProto.decode(readFileSync(`${work}/model.onnx`)).graph.node;
  const N = nodes.length;
  const t0 = Date.now();
  const runs = new Map();
  const run = (k, ep, opt = 'all', outputs = 'last', force = '') => {
    const key = [k, ep, opt, outputs, force].join(' ');
    if (runs.has(key)) return runs.get(key);
    const args = [process.argv[1], 'child', work, String(k), ep, opt, outputs, force];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 28 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    const result = { ok: r.status === 0 && !!line, status: r.status, signal: r.signal, out: line && JSON.parse(line) };
    result.err = r.stderr.split('\n').filter(Boolean).slice(-4).join(' | ');
    runs.set(key, result);
    return result;
  };
  const say = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);
  const verdict = (r) => (r.ok ? 'ran' : `FAILED (exit ${r.status}, signal ${r.signal}): ${r.err}`);
  say(`${N} nodes; the CPU runs the whole graph: ${verdict(run('all', 'cpu'))}`);
  for (const opt of ['all', 'disabled']) {
    const r = run('all', ep, opt);
    const diff = r.ok ? compare(work, run('all', 'cpu', opt).out, r.out).find((d) => d.name === 'logits') : undefined;
    say(`${ep}, optimization ${opt}, whole graph: ${verdict(r)}${diff ? `; logits ${diff.text}` : ''}`);
  }
  // The smallest prefix that fails (prefixes of a graph that ran are assumed to run); its last node
  // is then forced onto the CPU and the search goes on, up to 6 nodes, until the whole graph runs.
  const forced = [];
  let k = N;
  while (!run('all', ep, 'all', 'last', forced.join()).ok && forced.length < 6) {
    let lo = 0;
    let hi = N;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (run(mid, ep, 'all', 'last', forced.join()).ok) lo = mid;
      else hi = mid;
    }
    k = hi;
    if (forced.includes(`n${k - 1}`)) {
      say(`the graph still fails with ${forced} on the CPU, the last node of the smallest failing prefix among them`);
      break;
    }
    say(`first failing prefix: ${k} nodes; its last node: ${describe(nodes[k - 1], k - 1)}`);
    const shapes = run(k, 'cpu', 'all', 'inputs');
    if (shapes.ok) for (const o of shapes.out.outputs) say(`  input ${o.name}: ${o.type} [${o.dims}]`);
    say(`  the prefix on ${ep} with optimization disabled: ${verdict(run(k, ep, 'disabled', 'last', forced.join()))}`);
    forced.push(`n${k - 1}`);
    const r = run('all', ep, 'all', 'last', forced.join());
    const diff = r.ok ? compare(work, run('all', 'cpu').out, r.out).find((d) => d.name === 'logits') : undefined;
    say(`  whole graph with ${forced} on the CPU: ${verdict(r)}${diff ? `; logits ${diff.text}` : ''}`);
  }
  // Every value, compared with the CPU's: the first that differs.
  const whole = run('all', ep, 'all', 'last', forced.join()).ok;
  const at = whole ? 'all' : k - 1;
  const cpu = run(at, 'cpu', 'disabled', 'all');
  const dev = run(at, ep, 'disabled', 'all', forced.join());
  if (!cpu.ok || !dev.ok) say(`every value of ${at} nodes: cpu ${verdict(cpu)}; ${ep} ${verdict(dev)}`);
  else {
    const diffs = compare(work, cpu.out, dev.out);
    const bad = diffs.find((d) => d.rel > 1e-3);
    say(
      `values of ${at} nodes compared (optimization disabled, ${forced.length ? forced : 'nothing'} on the CPU): ` +
        `${diffs.length}; ` +
        (bad
          ? `first that differs: ${bad.name} ${bad.text}, made by ${describe(nodes[bad.node], bad.node)}`
          : 'all within 1e-3'),
    );
  }
}

/** Runs the model's first decode step on the CPU through the built runner, keeping its graph, weights and feeds. */
async function capture(buildDir, modelPath, work) {
  const { runner, captured } = await capturingRunner(ort, buildDir, modelPath);
  await runner.run([{ row: 0, tokens: [1], position: 0 }]);
  writeFileSync(`${work}/model.onnx`, captured.model);
  const ext = captured.externalData.map((e, i) => (writeFileSync(`${work}/ext/${i}`, e.data), e.path));
  writeFileSync(`${work}/ext.json`, JSON.stringify(ext));
  const index = Object.entries(captured.feeds).map(([name, t], i) => {
    writeFileSync(`${work}/feed.${i}`, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    return { name, type: t.type, dims: t.dims };
  });
  writeFileSync(`${work}/feeds.json`, JSON.stringify(index));
}

async function child(work, k, ep, opt, outputs, force) {
  if (process.env.ORT_VERBOSE) ort.env.logLevel = 'verbose';
  const model = onnx.ModelProto.decode(readFileSync(`${work}/model.onnx`));
  const g = model.graph;
  g.node.forEach((n, i) => (n.name = `n${i}`));
  if (k !== 'all') {
    g.node = g.node.slice(0, Number(k));
    const made = new Set(g.node.flatMap((n) => n.output));
    const last = g.node.at(-1);
    const names =
      outputs === 'all' ? [...made] : outputs === 'inputs' ? last.input.filter((x) => made.has(x)) : last.output;
    g.output = names.filter(Boolean).map((name) => ({ name }));
  } else if (outputs === 'all') {
    const declared = new Set(g.output.map((o) => o.name));
    g.output.push(
      ...g.node
        .flatMap((n) => n.output)
        .filter((x) => x && !declared.has(x))
        .map((name) => ({ name })),
    );
  }
  const externalData = JSON.parse(readFileSync(`${work}/ext.json`, 'utf8')).map((path, i) => ({
    path,
    data: readFileSync(`${work}/ext/${i}`),
  }));
  // ep "fake" tests this script without a GPU: the CPU, failing like a crash from node FAKE_FAIL_AT on.
  const at = Number(process.env.FAKE_FAIL_AT);
  const forced = force ? force.split(',') : [];
  if (ep === 'fake' && (k === 'all' || Number(k) > at) && !forced.includes(`n${at}`))
    process.kill(process.pid, 'SIGSEGV');
  const provider =
    ep === 'fake'
      ? 'cpu'
      : ep === 'webgpu'
        ? {
            name: 'webgpu',
            validationMode: process.env.VALIDATION ?? 'basic',
            ...(forced.length ? { forceCpuNodeNames: forced } : {}),
          }
        : ep;
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), {
    executionProviders: [provider],
    graphOptimizationLevel: opt,
    externalData,
    logSeverityLevel: process.env.ORT_VERBOSE ? 0 : 3,
  });
  const feeds = {};
  JSON.parse(readFileSync(`${work}/feeds.json`, 'utf8')).forEach(({ name, type, dims }, i) => {
    if (!session.inputNames.includes(name)) return;
    const bytes = new Uint8Array(readFileSync(`${work}/feed.${i}`)).buffer; // a copy: aligned
    feeds[name] = new ort.Tensor(type, type === 'int64' ? new BigInt64Array(bytes) : new Float32Array(bytes), dims);
  });
  const out = await session.run(feeds);
  const tag = `${k}.${ep}.${opt}.${outputs}.${force || '-'}`;
  mkdirSync(`${work}/res/${tag}`, { recursive: true });
  const list = Object.entries(out).map(([name, t], i) => {
    const data = t.data;
    if (t.type === 'float32')
      writeFileSync(`${work}/res/${tag}/${i}`, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return { name, type: t.type, dims: t.dims, file: t.type === 'float32' ? `${tag}/${i}` : undefined };
  });
  console.log(JSON.stringify({ outputs: list }));
}

/** Per float output of both runs: the largest difference, relative to the largest value. */
function compare(work, a, b) {
  const byName = new Map(b.outputs.map((o) => [o.name, o]));
  const nodeOf = new Map();
  onnx.ModelProto.decode(readFileSync(`${work}/model.onnx`)).graph.node.forEach((n, i) =>
    n.output.forEach((o) => nodeOf.set(o, i)),
  );
  const read = (f) => {
    return new Float32Array(new Uint8Array(readFileSync(`${work}/res/${f}`)).buffer);
  };
  return a.outputs
    .filter((o) => o.file && byName.get(o.name)?.file)
    .map((o) => {
      const x = read(o.file);
      const y = read(byName.get(o.name).file);
      let max = 0;
      let diff = x.length === y.length ? 0 : Infinity;
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        max = Math.max(max, Math.abs(x[i]));
        const d = Math.abs(x[i] - y[i]);
        diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
      }
      const rel = diff / Math.max(max, 1e-6);
      return {
        name: o.name,
        node: nodeOf.get(o.name) ?? -1,
        rel,
        text: `differ by ${diff.toExponential(2)} (largest |value| ${max.toExponential(2)}, [${o.dims}])`,
      };
    })
    .sort((p, q) => p.node - q.node);
}

function describe(node, i) {
  const value = (a) =>
    a.ints?.length ? `[${a.ints}]` : a.type === onnx.AttributeProto.AttributeType.FLOAT ? a.f : a.i;
  const attrs = (node.attribute ?? []).map((a) => `${a.name}=${value(a)}`);
  const op = `${node.domain ? `${node.domain}.` : ''}${node.opType}`;
  return `#${i} ${op}(${node.input.join(', ')}) -> ${node.output.join(', ')} ${attrs.join(' ')}`;
}
