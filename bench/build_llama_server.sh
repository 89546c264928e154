#!/usr/bin/env bash
# Build llama.cpp's C++ server (llama-server, continuous batching over --parallel slots) from the
# llama.cpp source vendored in the pinned llama-cpp-python sdist, so it matches the in-process backend.
# Output: bench/out/llama-server/llama-server. About 10-15 minutes on 2 cores; rerunning is a no-op.
set -euo pipefail
VERSION=0.3.36
OUT="$(cd "$(dirname "$0")" && pwd)/out/llama-server"
[ -x "$OUT/llama-server" ] && { echo "$OUT/llama-server"; exit 0; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m pip download "llama-cpp-python==$VERSION" --no-binary :all: --no-deps -d "$WORK" >/dev/null
tar xzf "$WORK"/llama_cpp_python-$VERSION.tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
# GGML_NATIVE=OFF: the AVX2 baseline, as the Makefile builds llama-cpp-python (a native build crashes on AMX here).
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >/dev/null
mkdir -p "$OUT"
cp "$WORK"/build/bin/llama-server "$OUT"/
echo "$OUT/llama-server"
