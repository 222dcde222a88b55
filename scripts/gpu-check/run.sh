#!/bin/bash
# On the GPU host (see prepare.sh): Vulkan sees the GPU?, a one-op WebGPU probe, the stories260K
# greedy golden on --ep cpu and --ep webgpu, and batch-1 decode of a random 110M Llama per provider.
# Everything is written to $OUT/results.txt.
exec > >(tee -a "$OUT/results.txt") 2>&1
cd "$(dirname "$0")/../.."
for f in .gpu/*.deb; do dpkg -x "$f" /; done; ldconfig
python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.gpu/node.xz'),open('/usr/local/bin/node','wb'))"
chmod +x /usr/local/bin/node
python3 -c "import tarfile;tarfile.open('.gpu/nm.tar.xz').extractall('.')"
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json XDG_RUNTIME_DIR=/tmp
uname -r; nvidia-smi -L; node --version
timeout 60 vulkaninfo --summary 2>&1 | grep -E 'deviceName|deviceType|apiVersion|driverInfo' ||
  VK_LOADER_DEBUG=error,warn,driver timeout 60 vulkaninfo --summary 2>&1 | tail -30
timeout 60 node .gpu/probe.mjs webgpu
G=test/fixtures/stories260k
for ep in cpu webgpu; do
  timeout 180 node bin/versa.js generate --model $G/model.bin --prompt-ids 1 --max-tokens 199 --ignore-eos --json \
    --ep $ep > "$OUT/gen-$ep.json" 2> "$OUT/gen-$ep.err"
  echo "golden on $ep: exit $?"; tail -3 "$OUT/gen-$ep.err"
  node -e '
    const golden = require("./'$G'/expected/greedy_n200.tokens.json").tokens.slice(1);
    let out; try { out = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).tokens } catch { out = [] }
    let k = 0; while (k < out.length && out[k] === golden[k]) k++;
    console.log(`golden prefix ${k} of ${out.length} tokens`)' "$OUT/gen-$ep.json"
done
timeout 120 node .gpu/make-llama.mjs /tmp/m110 m110 --dtype f32 --format llama2c | tail -1
now() { python3 -c 'import time; print(time.time())'; }
tps() { local s a b
  s=$(now); timeout 150 node bin/versa.js generate --model /tmp/m110/model.bin --tokenizer .gpu/tok32k.bin \
    --prompt-ids 1 --max-tokens 40 --ignore-eos --json "$@" > /dev/null 2>> "$OUT/speed.err" || { echo failed; return; }
  a=$(python3 -c "print($(now) - $s)"); s=$(now)
  timeout 200 node bin/versa.js generate --model /tmp/m110/model.bin --tokenizer .gpu/tok32k.bin \
    --prompt-ids 1 --max-tokens 552 --ignore-eos --json "$@" > /dev/null 2>> "$OUT/speed.err" || { echo failed; return; }
  b=$(python3 -c "print($(now) - $s)"); python3 -c "print(f'{512 / ($b - $a):.1f} tokens/s')"; }
for q in '' '--quantize int4'; do for ep in cpu webgpu; do echo "110M $ep $q: $(tps --ep $ep $q)"; done; done
