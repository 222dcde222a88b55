#!/bin/bash
# The GPU check bundle's entry (scripts/gpu-check/bundle.sh writes the bundle around it). On a bare
# Linux x86-64 host, no Node and no network needed:
#   bash run.sh [--ep webgpu|cpu] [--results DIR] [stage ...]
# It unpacks Node and the CLI beside itself (work/, once), prints the host (uname -r, nvidia-smi -L,
# vulkaninfo --summary), then runs the stages in order. Default stages: `vulkan golden gpt2 speed`
# with --ep webgpu (the default), `golden gpt2` with --ep cpu (the bundle's own test, no GPU):
#   vulkan     Vulkan sees the GPU?, and a one-op WebGPU probe
#   golden     the stories260K greedy golden on the CPU and on --ep
#   gpt2       the tiny GPT-2 golden (onnxruntime-genai's, two rows together) on --ep
#   quick      after a change: the stories260K golden and 110M float32 batch-1 decode, on --ep only
#   speed      decode of a random 110M Llama: batch 1 per provider and precision, 16 rows on --ep
#   steps      where a decode step's time goes on --ep (step-time.mjs), stories260K and the 110M
#   tinyllama  a random TinyLlama-1.1B-shaped model on --ep (float16, int4)
#   bench      `versa bench engine --ep` (GPT-2 small shape: adapters, mixed rows; --precision-only on the 110M
#              and the TinyLlama shape: batch 1 and 16, host bytes a decode step sends) and `bench compute --ep`
#   torch      PyTorch + transformers eager float16 on the same shapes (torch-baseline.py)
#   bisect     where the decoder's first step fails on --ep (bisect.mjs), the provider's verbose log
#   gdb        a backtrace of `versa generate --ep ...` (cuda-gdb, the host's only debugger)
# Results: DIR (default $OUT when set, else results/ beside this script): results.txt (everything
# printed), results.jsonl (one JSON object per check) and the raw outputs.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EP=webgpu RESULTS=${OUT:-$HERE/results}
stages=()
while [ $# -gt 0 ]; do
  case $1 in
  --ep) EP=${2:?--ep needs cpu or webgpu}; shift 2 ;;
  --results) RESULTS=${2:?--results needs a folder}; shift 2 ;;
  -*) echo "run.sh: unknown option '$1' (--ep webgpu|cpu, --results DIR)" >&2; exit 2 ;;
  *) stages+=("$1"); shift ;;
  esac
done
case $EP in cpu | webgpu) ;; *) echo "run.sh: --ep must be cpu or webgpu, not '$EP'" >&2; exit 2 ;; esac
[ ${#stages[@]} -gt 0 ] || { [ $EP = cpu ] && stages=(golden gpt2) || stages=(vulkan golden gpt2 speed); }
mkdir -p "$RESULTS" && RESULTS=$(cd "$RESULTS" && pwd)
exec > >(tee -a "$RESULTS/results.txt") 2>&1

# Unpacks once: tar and xz, or Python's lzma where the host has no xz.
WORK=$HERE/work APP=$HERE/work/app
if [ ! -f "$WORK/.unpacked" ]; then
  rm -rf "$WORK" && mkdir -p "$WORK/node/bin" "$APP"
  if command -v xz > /dev/null; then
    xz -dc "$HERE/node.xz" > "$WORK/node/bin/node" && tar -xJf "$HERE/app.tar.xz" -C "$APP"
  else
    python3 -c "import lzma,shutil,sys;shutil.copyfileobj(lzma.open(sys.argv[1]),open(sys.argv[2],'wb'))" \
      "$HERE/node.xz" "$WORK/node/bin/node" &&
      python3 -c "import tarfile,sys;tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$HERE/app.tar.xz" "$APP"
  fi || { echo "run.sh: unpacking the bundle failed"; exit 1; }
  chmod +x "$WORK/node/bin/node" && touch "$WORK/.unpacked"
fi
export PATH="$WORK/node/bin:$PATH" VERSA_HOME=${VERSA_HOME:-$WORK/home} XDG_CACHE_HOME=${XDG_CACHE_HOME:-$WORK/cache}

# The Vulkan loader and the ICD's libraries: into / as root (what the H200 runs used), else a sysroot on
# the library path (Dawn opens libvulkan.so.1 with dlopen, which reads LD_LIBRARY_PATH).
if [ $EP != cpu ] && [ -d "$HERE/debs" ]; then
  if [ "$(id -u)" = 0 ]; then
    for f in "$HERE"/debs/*.deb; do dpkg -x "$f" /; done; ldconfig
  else
    for f in "$HERE"/debs/*.deb; do dpkg -x "$f" "$WORK/sysroot"; done
    export LD_LIBRARY_PATH="$WORK/sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PATH="$WORK/sysroot/usr/bin:$PATH"
  fi
  ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f $ICD ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$ICD}
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
fi

cd "$APP"
BUILD=dist/$(cat "$HERE/BUILD")
T=$HERE/tools G=test/fixtures/stories260k
# `versa` on the PATH (a command, not a function: `timeout` runs it).
printf '#!/bin/sh\nexec node "%s/%s/src/cli/main.js" "$@"\n' "$APP" "$BUILD" > "$WORK/node/bin/versa"
chmod +x "$WORK/node/bin/versa"
record() { echo "$1" >> "$RESULTS/results.jsonl"; }
echo "== kernel $(uname -r); $(nvidia-smi -L 2>/dev/null || echo 'nvidia-smi: none')"
echo "== node $(command -v node) $(node --version); build $BUILD; --ep $EP; stages: ${stages[*]}"
record "{\"check\":\"host\",\"kernel\":\"$(uname -r)\",\"node\":\"$(command -v node)\",\"ep\":\"$EP\"}"
# Milliseconds a generation takes: `versa generate` with these arguments (its output discarded).
gen_ms() {
  local start=${EPOCHREALTIME/./}
  timeout 300 versa generate --tokenizer $T/tok32k.bin --json "$@" > /dev/null 2>> "$RESULTS/speed.err" || return 1
  echo $(((${EPOCHREALTIME/./} - start) / 1000))
}
# Decode tokens/s of one row: the wall-time difference of two generations (a and b new tokens), after
# one that fills the converted-weights cache.
tps() {
  local m=$1 a=$2 b=$3 label=$4 ta tb; shift 4
  gen_ms --model $m --prompt-ids 1 --max-tokens 1 "$@" > /dev/null
  ta=$(gen_ms --model $m --prompt-ids 1 --max-tokens $a --ignore-eos "$@") &&
    tb=$(gen_ms --model $m --prompt-ids 1 --max-tokens $b --ignore-eos "$@") || { echo "$label: failed"; return; }
  report "$label" 1 $((b - a)) $((tb - ta))
}
# The same for 16 rows decoded together (--batch): aggregate tokens/s.
tps16() {
  local m=$1 a=$2 b=$3 label=$4 ta tb n; shift 4
  for n in $a $b; do for i in $(seq 16); do
    echo "{\"prompt_ids\":[1,$((i * 7))],\"max_tokens\":$n,\"ignore_eos\":true}"; done > /tmp/b$n.jsonl; done
  gen_ms --model $m --prompt-ids 1 --max-tokens 1 "$@" > /dev/null
  ta=$(gen_ms --model $m --batch /tmp/b$a.jsonl "$@") && tb=$(gen_ms --model $m --batch /tmp/b$b.jsonl "$@") ||
    { echo "$label: failed"; return; }
  report "$label" 16 $((16 * (b - a))) $((tb - ta))
}
# Prints and records a decode figure: label, rows, tokens, milliseconds.
report() {
  local tokps
  tokps=$(node -e "console.log(($3 / ($4 / 1000)).toFixed(1))")
  echo "$1: $3 tokens in $4 ms, $tokps tokens/s"
  record "{\"check\":\"decode\",\"what\":\"$1\",\"rows\":$2,\"tokens\":$3,\"ms\":$4,\"tokensPerSecond\":$tokps}"
}
golden() { # the stories260K golden on one provider, in float32 (auto is float16 on WebGPU)
  timeout 180 versa generate --model $G/model.bin --prompt-ids 1 --max-tokens 199 --ignore-eos --json \
    --ep $1 --dtype float32 > "$RESULTS/gen-$1.json" 2> "$RESULTS/gen-$1.err" || tail -3 "$RESULTS/gen-$1.err"
  node $T/golden.mjs stories260k "$RESULTS/gen-$1.json" $1 "$RESULTS" "$APP"
}
m110() { [ -f /tmp/m110/model.bin ] || timeout 120 node $T/make-llama.mjs /tmp/m110 m110 --dtype f32 --format llama2c | tail -1; }
command -v nvidia-smi > /dev/null &&
  { nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader -lms 1000 > "$RESULTS/gpu-memory.csv" & }
for stage in "${stages[@]}"; do
  echo "== $stage"
  case $stage in
  vulkan)
    timeout 60 vulkaninfo --summary 2>&1 | grep -E 'deviceName|deviceType|apiVersion|driverInfo' ||
      VK_LOADER_DEBUG=error,warn,driver timeout 60 vulkaninfo --summary 2>&1 | tail -30
    timeout 60 node $T/probe.mjs $EP ;;
  golden)
    golden cpu
    [ $EP = cpu ] || golden $EP ;;
  quick)
    golden $EP
    m110 && tps /tmp/m110/model.bin 40 552 "110M $EP float32" --ep $EP --dtype float32 ;;
  gpt2)
    printf '%s\n' '{"prompt_ids":[0,0,0,52],"max_tokens":6,"ignore_eos":true}' \
      '{"prompt_ids":[0,0,195,731],"max_tokens":6,"ignore_eos":true}' > "$RESULTS/gpt2.jsonl"
    timeout 120 versa generate --model test/fixtures/tiny-gpt2 --batch "$RESULTS/gpt2.jsonl" --json --ep $EP --dtype float32 \
      > "$RESULTS/gpt2-$EP.jsonl" 2> "$RESULTS/gpt2-$EP.err" || tail -2 "$RESULTS/gpt2-$EP.err"
    node $T/golden.mjs tiny-gpt2 "$RESULTS/gpt2-$EP.jsonl" $EP "$RESULTS" "$APP" ;;
  speed)
    m110
    for q in '--dtype float32' '--dtype float16' '--quantize int4'; do for ep in cpu $EP; do
      [ "$ep$q" = 'cpu--dtype float16' ] && continue
      # shellcheck disable=SC2086 # $q is options
      tps /tmp/m110/model.bin 40 552 "110M $ep ${q#--dtype }" --ep $ep $q
    done; done
    [ $EP = cpu ] || for q in '--dtype float32' '--dtype float16'; do
      # shellcheck disable=SC2086
      tps16 /tmp/m110/model.bin 24 152 "110M $EP ${q#--dtype }, 16 rows" --ep $EP $q
    done ;;
  steps)
    m110
    timeout 150 node $T/step-time.mjs "$BUILD" $G/model.bin /tmp/steps-260k $EP 8,200
    timeout 200 node $T/step-time.mjs "$BUILD" /tmp/m110/model.bin /tmp/steps-110m $EP 8,500
    gzip -c /tmp/steps-110m/profile.json > "$RESULTS/profile-110m.json.gz" ;;
  tinyllama)
    timeout 150 node $T/make-llama.mjs /tmp/tl tinyllama | tail -1
    tps /tmp/tl 24 152 "TinyLlama-1.1B shape, $EP, dtype auto" --ep $EP
    tps16 /tmp/tl 16 80 "TinyLlama-1.1B shape, $EP, dtype auto, 16 rows" --ep $EP ;;
  bench)
    m110
    [ -f /tmp/tl/config.json ] || timeout 150 node $T/make-llama.mjs /tmp/tl tinyllama | tail -1
    bench() { # name, then the bench's arguments: its JSON into results.jsonl
      timeout 600 versa bench "${@:2}" --ep $EP --json > "$RESULTS/bench-$1.json" 2>> "$RESULTS/bench.err" &&
        record "{\"check\":\"bench\",\"what\":\"$1\",\"result\":$(cat "$RESULTS/bench-$1.json")}" &&
        echo "bench $1: $(cat "$RESULTS/bench-$1.json")" || { echo "bench $1: failed"; tail -3 "$RESULTS/bench.err"; }
    }
    bench engine-110m engine --precision-only --model /tmp/m110/model.bin
    bench engine-tinyllama engine --precision-only --model /tmp/tl
    bench engine-gpt2 engine
    bench compute compute ;;
  torch)
    PYTHONUNBUFFERED=1 timeout 300 python3 $T/torch-baseline.py | tee "$RESULTS/torch.jsonl" ;;
  bisect)
    timeout 400 node $T/bisect.mjs "$BUILD" $G/model.bin /tmp/bisect $EP
    ORT_VERBOSE=1 timeout 60 node $T/bisect.mjs child /tmp/bisect all $EP all last 2>&1 | gzip > "$RESULTS/ort-verbose.log.gz"
    echo "verbose log: exit ${PIPESTATUS[0]}, $(zcat "$RESULTS/ort-verbose.log.gz" | wc -l) lines"
    VALIDATION=full timeout 60 node $T/bisect.mjs child /tmp/bisect all $EP all last 2>&1 | tail -5 ;;
  gdb)
    GDB=$(command -v cuda-gdb || ls /usr/local/cuda*/bin/cuda-gdb 2>/dev/null | head -1)
    timeout 150 "$GDB" -q -batch -ex 'handle SIGUSR1 SIGUSR2 SIGPIPE SIG34 SIG35 nostop noprint pass' \
      -ex run -ex bt -ex 'info registers rip' \
      --args node "$APP/$BUILD/src/cli/main.js" generate --model $G/model.bin --prompt-ids 1 --max-tokens 4 --ep $EP \
      > "$RESULTS/gdb.txt" 2>&1
    echo "cuda-gdb: exit $?"; grep -E '^#[0-9]+|SIGSEGV|signal' "$RESULTS/gdb.txt" | head -40 ;;
  *) echo "run.sh: unknown stage '$stage'" ;;
  esac
done
kill %1 2> /dev/null
exit 0
