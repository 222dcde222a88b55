// Compares a `versa generate --json` output with a golden and records the result: prints one line and
// appends one JSON object to <results>/results.jsonl (run.sh's checks).
// usage: node golden.mjs stories260k|tiny-gpt2 <generate output> <ep> <results dir> <app dir>
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [kind, outputFile, ep, results, app] = process.argv.slice(2);
const json = (file) => JSON.parse(readFileSync(file, 'utf8'));
const lines = (file) => {
  try {
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).tokens ?? []);
  } catch {
    return []; // the generation failed: nothing to compare, every row wrong
  }
};
/** How many leading tokens agree. */
const prefix = (got, want) => {
  let k = 0;
  while (k < got.length && k < want.length && got[k] === want[k]) k++;
  return k;
};

let record;
if (kind === 'stories260k') {
  // llama2.c's greedy continuation of token 1: the first 199 tokens.
  const golden = json(join(app, 'test/fixtures/stories260k/expected/greedy_n200.tokens.json')).tokens.slice(0, 199);
  const got = lines(outputFile)[0] ?? [];
  const exact = prefix(got, golden);
  record = { check: 'golden-stories260k', ep, exact, of: golden.length, pass: exact === golden.length };
} else if (kind === 'tiny-gpt2') {
  // onnxruntime-genai's GreedySearchGptFp32: two padded rows decoded together, 6 new tokens each.
  const golden = json(join(app, 'test/fixtures/tiny-gpt2/expected/greedy_genai_gptfp32.json'));
  const got = lines(outputFile);
  const rows = golden.expected_output.map((e, i) => ({ got: got[i] ?? [], want: e.slice(4) }));
  const pass = rows.every((r) => JSON.stringify(r.got) === JSON.stringify(r.want));
  record = { check: 'golden-tiny-gpt2', ep, rows, pass };
} else {
  throw new Error(`unknown golden '${kind}' (stories260k, tiny-gpt2)`);
}
appendFileSync(join(results, 'results.jsonl'), JSON.stringify(record) + '\n');
const detail = 'exact' in record ? `${record.exact} of ${record.of} tokens exact` : JSON.stringify(record.rows);
console.log(`${record.check} on ${ep}: ${record.pass ? 'pass' : 'FAIL'} (${detail})`);
