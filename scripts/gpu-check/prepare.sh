#!/bin/bash
# Prepares .gpu/ (git-ignored via .git/info/exclude) for the device machine, which has no Node and
# no network: Node and the built CLI with its production dependencies (xz), the Vulkan loader and
# the NVIDIA ICD's X/GL dependencies (Debian packages), a 32k tokenizer and the random-Llama tool.
# Then: device run `bash scripts/gpu-check/run.sh` with carry [".gpu"] (about 45 MB travels).
# Run from the repository root after `npm install`, with ../shared beside it.
set -euo pipefail
mkdir -p .gpu .git/info && { grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude; }
BUILD=$(node -e "import('./scripts/build.mjs').then((m) => m.ensureBuilt()).then((b) => console.log(require('node:path').relative('.', b.dir)))")
xz -6 -T0 -c "$(command -v node)" > .gpu/node.xz
npm ls --omit=dev --parseable --all 2>/dev/null | sed "s#^$PWD/##" | grep '^node_modules/' |
  grep -Ev 'better-sqlite3|^node_modules/tsx|esbuild|@cloudflare|@types' | sort -u > .gpu/deps.txt
tar --exclude='*/napi-v6/win32' --exclude='*/napi-v6/darwin' --exclude='*/napi-v6/linux/arm64' \
  --exclude='*.map' --exclude='*.d.ts' -cf - $(cat .gpu/deps.txt) "$BUILD" dist/ui | xz -6 -T0 > .gpu/nm.tar.xz
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
mkdir -p /tmp/amd64/partial && apt-get $o update >/dev/null
(cd .gpu && apt-get $o download libvulkan1 vulkan-tools libwayland-client0 libffi8 libegl1 libglvnd0 libopengl0 \
  libgl1 libglx0 libgles2 libx11-6 libx11-data libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 >/dev/null)
for f in .gpu/*%3a*; do [ -e "$f" ] && mv "$f" "${f//%3a/_}"; done
cp ../shared/peers/llama2c/tokenizer.bin .gpu/tok32k.bin
cp ../shared/tools/make-llama.mjs scripts/gpu-check/{probe.mjs,capture.mjs,bisect.mjs,step-time.mjs,torch-baseline.py} .gpu/
du -sh .gpu
