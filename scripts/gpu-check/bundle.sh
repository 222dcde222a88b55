#!/bin/bash
# `npm run gpu:bundle -- [--out DIR] [--no-debs]`: writes a self-contained GPU check bundle (default
# gpu-bundle/, at most 60 MiB) for a bare Linux x86-64 GPU host with no Node and no network:
#   run.sh        its entry (scripts/gpu-check/run.sh): `bash DIR/run.sh [--ep webgpu|cpu] [stages]`
#   node.xz       this machine's Node
#   app.tar.xz    the built CLI (dist/<hash>, no TypeScript), its production dependencies, the
#                 migrations, and the goldens it checks (stories260K, tiny GPT-2)
#   debs/         the Vulkan loader, vulkaninfo and the NVIDIA ICD's X/GL dependencies (Debian
#                 packages, downloaded here; --no-debs leaves them out: enough for --ep cpu)
#   tools/        the random-Llama maker, a 32k tokenizer, the probe/bisect/step-time scripts and the
#                 PyTorch baseline
# Run from the repository root after `npm install`, with ../shared beside it. The folder is written
# beside the target and renamed into place at the end: a failed run leaves the old bundle or none.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=gpu-bundle debs=1
while [ $# -gt 0 ]; do
  case $1 in
  --out) out=${2:?--out needs a folder}; shift 2 ;;
  --no-debs) debs=0; shift ;;
  *) echo "gpu:bundle: unknown argument '$1' (usage: --out DIR, --no-debs)" >&2; exit 2 ;;
  esac
done
LIMIT_MIB=60
SHARED=../shared
for f in "$SHARED/tools/make-llama.mjs" "$SHARED/peers/llama2c/tokenizer.bin"; do
  [ -f "$f" ] || { echo "gpu:bundle: $f is missing (../shared must be beside the repository)" >&2; exit 1; }
done
command -v xz > /dev/null || { echo "gpu:bundle: xz is not installed (apt-get install xz-utils)" >&2; exit 1; }
tmp="$out.tmp-$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp" && mkdir -p "$tmp/tools"
step() { echo "gpu:bundle [$1/5] $2" >&2; }

step 1 'building the CLI'
BUILD=$(node -e "import('./scripts/build.mjs').then((m) => m.ensureBuilt()).then((b) => console.log(require('node:path').relative('.', b.dir)))")

step 2 "compressing Node $(node --version)"
xz -6 -T0 -c "$(command -v node)" > "$tmp/node.xz"

step 3 'packing the CLI, its production dependencies and the goldens'
# Production dependencies only, without the ones the compute path never loads (the registry's SQLite,
# the Worker tooling) and onnxruntime's binaries for other platforms.
deps=$(npm ls --omit=dev --parseable --all 2>/dev/null | sed "s#^$PWD/##" | grep '^node_modules/' |
  grep -Ev 'better-sqlite3|^node_modules/tsx|esbuild|@cloudflare|@types' | sort -u)
goldens='test/fixtures/stories260k/model.bin test/fixtures/stories260k/tokenizer.bin
  test/fixtures/stories260k/expected/greedy_n200.tokens.json test/fixtures/tiny-gpt2/config.json
  test/fixtures/tiny-gpt2/model.safetensors test/fixtures/tiny-gpt2/tokenizer.json
  test/fixtures/tiny-gpt2/tokenizer_config.json test/fixtures/tiny-gpt2/expected/greedy_genai_gptfp32.json'
# shellcheck disable=SC2086 # word splitting of the lists is intended
tar --exclude='*/napi-v6/win32' --exclude='*/napi-v6/darwin' --exclude='*/napi-v6/linux/arm64' \
  --exclude='*.map' --exclude='*.d.ts' -cf - package.json migrations $deps "$BUILD" dist/ui $goldens |
  xz -6 -T0 > "$tmp/app.tar.xz"

step 4 "$([ $debs = 1 ] && echo 'downloading the Vulkan loader and its dependencies (Debian)' || echo 'no Debian packages (--no-debs)')"
if [ $debs = 1 ]; then
  mkdir -p "$tmp/debs"
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/versa-apt-amd64'
  mkdir -p /tmp/versa-apt-amd64/partial && apt-get $o update > /dev/null
  (cd "$tmp/debs" && apt-get $o download libvulkan1 vulkan-tools libwayland-client0 libffi8 libegl1 libglvnd0 \
    libopengl0 libgl1 libglx0 libgles2 libx11-6 libx11-data libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 > /dev/null)
  for f in "$tmp"/debs/*%3a*; do [ -e "$f" ] && mv "$f" "${f//%3a/_}"; done
fi

step 5 'adding the tools and run.sh'
cp "$SHARED/tools/make-llama.mjs" scripts/gpu-check/{probe.mjs,capture.mjs,bisect.mjs,step-time.mjs,golden.mjs,torch-baseline.py} \
  "$tmp/tools/"
cp "$SHARED/peers/llama2c/tokenizer.bin" "$tmp/tools/tok32k.bin"
cp scripts/gpu-check/run.sh "$tmp/run.sh"
echo "${BUILD#dist/}" > "$tmp/BUILD"

mib=$(du -sm "$tmp" | cut -f1)
if [ "$mib" -gt $LIMIT_MIB ]; then
  echo "gpu:bundle: the bundle takes $mib MiB, over its limit of $LIMIT_MIB MiB" >&2
  exit 1
fi
rm -rf "$out" && mv "$tmp" "$out"
echo "gpu:bundle: $out ($mib MiB): bash $out/run.sh [--ep webgpu|cpu] [stages]"
