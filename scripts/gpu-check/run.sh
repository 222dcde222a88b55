#!/bin/bash
# On the GPU host (see prepare.sh), the checks named as arguments, in order (default: the first four):
#   vulkan   Vulkan sees the GPU?, and a one-op WebGPU probe
#   golden   the stories260K greedy golden on --ep cpu and --ep webgpu
#   bisect   where the decoder's first step fails on WebGPU (bisect.mjs), the provider's verbose log
#   gdb      a backtrace of `versa generate --ep webgpu` (cuda-gdb, the host's only debugger)
#   quick    after a change: the stories260K golden and 110M batch-1 decode, on webgpu only
#   gpt2     the tiny GPT-2 golden (onnxruntime-genai's) on --ep webgpu
#   speed    decode of a random 110M Llama: batch 1 per provider and precision, 16 rows on webgpu
#   steps    where a decode step's time goes on webgpu (step-time.mjs), stories260K and the 110M
#   tinyllama  the same for a random TinyLlama-1.1B-shaped model on webgpu (float16, int4)
#   torch    PyTorch + transformers eager float16 on the same shapes (torch-baseline.py)
# Everything is written to $OUT/results.txt (and a few files beside it).
exec > >(tee -a "$OUT/results.txt") 2>&1
cd "$(dirname "$0")/../.."
stages=${*:-vulkan golden gpt2 speed}
for f in .gpu/*.deb; do dpkg -x "$f" /; done; ldconfig
python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.gpu/node.xz'),open('/usr/local/bin/node','wb'))"
chmod +x /usr/local/bin/node
python3 -c "import tarfile;tarfile.open('.gpu/nm.tar.xz').extractall('.')"
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json XDG_RUNTIME_DIR=/tmp
BUILD=$(ls -d dist/*/ | grep -v dist/ui | head -1)
G=test/fixtures/stories260k
echo "== $(uname -r); $(nvidia-smi -L); node $(node --version); build $BUILD; stages: $stages"
now() { python3 -c 'import time; print(time.time())'; }
# Decode tokens/s of one row: the wall-time difference of two generations (a and b new tokens).
tps() { local m=$1 a=$2 b=$3 s ta tb; shift 3
  s=$(now); timeout 300 node bin/versa.js generate --model $m --tokenizer .gpu/tok32k.bin --prompt-ids 1 \
    --max-tokens $a --ignore-eos --json "$@" > /dev/null 2>> "$OUT/speed.err" || { echo failed; return; }
  ta=$(python3 -c "print($(now) - $s)"); s=$(now)
  timeout 300 node bin/versa.js generate --model $m --tokenizer .gpu/tok32k.bin --prompt-ids 1 \
    --max-tokens $b --ignore-eos --json "$@" > /dev/null 2>> "$OUT/speed.err" || { echo failed; return; }
  tb=$(python3 -c "print($(now) - $s)"); python3 -c "print(f'{$b - $a} tokens in {$tb - $ta:.2f} s: {($b - $a) / ($tb - $ta):.1f} tokens/s')"; }
# The same for 16 rows decoded together (--batch): aggregate tokens/s.
tps16() { local m=$1 a=$2 b=$3 s ta tb n; shift 3
  for n in $a $b; do for i in $(seq 16); do
    echo "{\"prompt_ids\":[1,$((i * 7))],\"max_tokens\":$n,\"ignore_eos\":true}"; done > /tmp/b$n.jsonl; done
  s=$(now); timeout 300 node bin/versa.js generate --model $m --tokenizer .gpu/tok32k.bin --batch /tmp/b$a.jsonl --json "$@" \
    > /dev/null 2>> "$OUT/speed.err" || { echo failed; return; }
  ta=$(python3 -c "print($(now) - $s)"); s=$(now)
  timeout 300 node bin/versa.js generate --model $m --tokenizer .gpu/tok32k.bin --batch /tmp/b$b.jsonl --json "$@" \
    > /dev/null 2>> "$OUT/speed.err" || { echo failed; return; }
  tb=$(python3 -c "print($(now) - $s)"); python3 -c "print(f'{16 * ($b - $a) / ($tb - $ta):.1f} tokens/s in all')"; }
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -lms 1000 > "$OUT/gpu-memory.csv" &
for stage in $stages; do
  echo "== $stage"
  case $stage in
  vulkan)
    timeout 60 vulkaninfo --summary 2>&1 | grep -E 'deviceName|deviceType|apiVersion|driverInfo' ||
      VK_LOADER_DEBUG=error,warn,driver timeout 60 vulkaninfo --summary 2>&1 | tail -30
    timeout 60 node .gpu/probe.mjs webgpu ;;
  golden)
    for ep in cpu webgpu; do
      timeout 180 node bin/versa.js generate --model $G/model.bin --prompt-ids 1 --max-tokens 199 --ignore-eos --json \
        --ep $ep > "$OUT/gen-$ep.json" 2> "$OUT/gen-$ep.err"
      echo "golden on $ep: exit $?"; tail -3 "$OUT/gen-$ep.err"
      node -e '
        const golden = require("./'$G'/expected/greedy_n200.tokens.json").tokens;
        let out; try { out = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).tokens } catch { out = [] }
        let k = 0; while (k < out.length && out[k] === golden[k]) k++;
        console.log(`golden prefix ${k} of ${out.length} tokens`)' "$OUT/gen-$ep.json"
    done ;;
  bisect)
    timeout 400 node .gpu/bisect.mjs "$BUILD" $G/model.bin /tmp/bisect webgpu
    ORT_VERBOSE=1 timeout 60 node .gpu/bisect.mjs child /tmp/bisect all webgpu all last 2>&1 | gzip > "$OUT/ort-verbose.log.gz"
    echo "verbose log: exit ${PIPESTATUS[0]}, $(zcat "$OUT/ort-verbose.log.gz" | wc -l) lines"
    VALIDATION=full timeout 60 node .gpu/bisect.mjs child /tmp/bisect all webgpu all last 2>&1 | tail -5 ;;
  gdb)
    GDB=$(command -v cuda-gdb || ls /usr/local/cuda*/bin/cuda-gdb 2>/dev/null | head -1)
    timeout 150 "$GDB" -q -batch -ex 'handle SIGUSR1 SIGUSR2 SIGPIPE SIG34 SIG35 nostop noprint pass' \
      -ex run -ex bt -ex 'info registers rip' \
      --args node bin/versa.js generate --model $G/model.bin --prompt-ids 1 --max-tokens 4 --ep webgpu \
      > "$OUT/gdb.txt" 2>&1
    echo "cuda-gdb: exit $?"; grep -E '^#[0-9]+|SIGSEGV|signal' "$OUT/gdb.txt" | head -40 ;;
  quick)
    # The short re-check after a change: the golden and 110M float32 batch-1 decode, on webgpu only.
    timeout 60 node bin/versa.js generate --model $G/model.bin --prompt-ids 1 --max-tokens 199 --ignore-eos --json \
      --ep webgpu > "$OUT/gen-webgpu.json" 2> "$OUT/gen-webgpu.err"
    node -e '
      const golden = require("./'$G'/expected/greedy_n200.tokens.json").tokens;
      let out; try { out = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).tokens } catch { out = [] }
      let k = 0; while (k < out.length && out[k] === golden[k]) k++;
      console.log(`golden on webgpu: prefix ${k} of ${out.length} tokens exact`)' "$OUT/gen-webgpu.json"
    timeout 120 node .gpu/make-llama.mjs /tmp/m110 m110 --dtype f32 --format llama2c | tail -1
    echo "110M webgpu: $(tps /tmp/m110/model.bin 40 552 --ep webgpu)" ;;
  gpt2)
    # onnxruntime-genai's GreedySearchGptFp32 golden: two rows decoded together.
    printf '%s\n' '{"prompt_ids":[0,0,0,52],"max_tokens":6,"ignore_eos":true}' \
      '{"prompt_ids":[0,0,195,731],"max_tokens":6,"ignore_eos":true}' > /tmp/gpt2.jsonl
    timeout 120 node bin/versa.js generate --model test/fixtures/tiny-gpt2 --batch /tmp/gpt2.jsonl --json --ep webgpu \
      > "$OUT/gpt2-webgpu.jsonl" 2> "$OUT/gpt2-webgpu.err"
    echo "tiny GPT-2 on webgpu: exit $?"; tail -2 "$OUT/gpt2-webgpu.err"
    node -e '
      const fs = require("fs"), g = require("./test/fixtures/tiny-gpt2/expected/greedy_genai_gptfp32.json");
      const rows = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l).tokens);
      g.expected_output.forEach((e, i) => console.log(`row ${i}: ${JSON.stringify(rows[i])} expected ${JSON.stringify(e.slice(4))}`));
    ' "$OUT/gpt2-webgpu.jsonl" ;;
  speed)
    timeout 120 node .gpu/make-llama.mjs /tmp/m110 m110 --dtype f32 --format llama2c | tail -1
    for q in '' '--dtype float16' '--quantize int4'; do for ep in cpu webgpu; do
      [ "$ep$q" = 'cpu--dtype float16' ] && continue
      echo "110M $ep $q: $(tps /tmp/m110/model.bin 40 552 --ep $ep $q)"; done; done
    for q in '' '--dtype float16'; do
      echo "110M webgpu $q, 16 rows: $(tps16 /tmp/m110/model.bin 24 152 --ep webgpu $q)"; done ;;
  steps)
    [ -f /tmp/m110/model.bin ] || timeout 120 node .gpu/make-llama.mjs /tmp/m110 m110 --dtype f32 --format llama2c | tail -1
    timeout 150 node .gpu/step-time.mjs "$BUILD" $G/model.bin /tmp/steps-260k webgpu 8,200
    timeout 200 node .gpu/step-time.mjs "$BUILD" /tmp/m110/model.bin /tmp/steps-110m webgpu 8,500
    gzip -c /tmp/steps-110m/profile.json > "$OUT/profile-110m.json.gz" ;;
  tinyllama)
    timeout 150 node .gpu/make-llama.mjs /tmp/tl tinyllama | tail -1
    # The first load converts BF16 to float16 and writes the converted-weights cache: not timed.
    timeout 200 node bin/versa.js generate --model /tmp/tl --tokenizer .gpu/tok32k.bin --prompt-ids 1 --max-tokens 1 \
      --ep webgpu > /dev/null 2>> "$OUT/speed.err"
    echo "TinyLlama-1.1B shape, webgpu, float16 (dtype auto): $(tps /tmp/tl 24 152 --ep webgpu)"
    echo "TinyLlama-1.1B shape, webgpu, float16, 16 rows: $(tps16 /tmp/tl 16 80 --ep webgpu)" ;;
  torch)
    PYTHONUNBUFFERED=1 timeout 300 python3 .gpu/torch-baseline.py | tee "$OUT/torch.jsonl" ;;
  esac
done
