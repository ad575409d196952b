#!/usr/bin/env bash
# Build, once per machine and llama-cpp-python release, what CI installs instead of pip's own
# llama-cpp-python build, and print two lines for the caller to use:
#   WHEEL=<path of a llama-cpp-python wheel built with RPC on (-DGGML_RPC=on)>
#   RPC_SERVER=<path of llama.cpp's rpc-server, built from the same sdist's vendored llama.cpp>
# RPC on lets the multi-machine test (tests/core/engine/test_rpc.py) run a real rpc-server on
# 127.0.0.1. On CPUs with AMX both are built without it: llama.cpp's AMX kernels crash on the
# Xeon VMs CI runs on (see the README, "Troubleshooting"). Both builds are kept under
# ~/.cache/reflectchat-ci, apart from pip's cache; a later run only checks the release on PyPI.
#
# Usage: .ci/build_llama.sh [REQUIREMENT]   (default: the floor pyproject.toml names)
set -euo pipefail

REQ="${1:-llama-cpp-python>=0.3.30}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/reflectchat-ci"
JOBS="$(nproc 2>/dev/null || echo 2)"
FLAGS=""
TAG="rpc"
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  FLAGS="-mno-amx-int8 -mno-amx-tile -mno-amx-bf16"
  TAG="rpc-noamx"
fi
log() { echo "ci: $*" >&2; }

mkdir -p "$CACHE/sdist"
python -m pip download --quiet --no-deps --no-binary llama-cpp-python -d "$CACHE/sdist" "$REQ" >&2 \
  || log "could not reach PyPI for $REQ; using the newest sdist already here"
SDIST="$(ls -1 "$CACHE"/sdist/llama_cpp_python-*.tar.gz 2>/dev/null | sort -V | tail -n 1)"
[ -n "$SDIST" ] || { log "no llama-cpp-python sdist"; exit 1; }
VERSION="$(basename "$SDIST" .tar.gz)"
VERSION="${VERSION#llama_cpp_python-}"

WHEELS="$CACHE/llama-cpp-python-$VERSION-$TAG"
if ! compgen -G "$WHEELS/llama_cpp_python-*.whl" >/dev/null; then
  log "building llama-cpp-python $VERSION with RPC${FLAGS:+, without AMX} (once; ~6 min on 2 cores)"
  ARGS="-DGGML_RPC=on"
  [ -n "$FLAGS" ] && ARGS="$ARGS -DCMAKE_C_FLAGS=\"$FLAGS\" -DCMAKE_CXX_FLAGS=\"$FLAGS\""
  CMAKE_ARGS="$ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
    python -m pip wheel --quiet --no-cache-dir --no-deps "$SDIST" -w "$WHEELS.tmp" >&2
  rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
fi

RPC_DIR="$CACHE/rpc-server-$VERSION-$TAG"
if [ ! -x "$RPC_DIR/rpc-server" ]; then
  log "building llama.cpp's rpc-server from llama-cpp-python $VERSION's sources (once; ~3 min)"
  WORK="$(mktemp -d)"
  tar xzf "$SDIST" -C "$WORK"
  SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
  cmake -S "$SRC" -B "$WORK/build" -DGGML_RPC=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    ${FLAGS:+-DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS"} >"$WORK/cmake.log" 2>&1 \
    || { tail -n 30 "$WORK/cmake.log" >&2; rm -rf "$WORK"; exit 1; }
  # The target was renamed ggml-rpc-server in later llama.cpp releases.
  TARGET=rpc-server
  grep -q "ggml-rpc-server" "$SRC/tools/rpc/CMakeLists.txt" 2>/dev/null && TARGET=ggml-rpc-server
  cmake --build "$WORK/build" --target "$TARGET" -j "$JOBS" >"$WORK/build.log" 2>&1 \
    || { tail -n 30 "$WORK/build.log" >&2; rm -rf "$WORK"; exit 1; }
  rm -rf "$RPC_DIR.tmp" && mkdir -p "$RPC_DIR.tmp"
  cp "$WORK/build/bin/$TARGET" "$RPC_DIR.tmp/rpc-server"
  rm -rf "$RPC_DIR" && mv "$RPC_DIR.tmp" "$RPC_DIR"
  rm -rf "$WORK"
fi

echo "WHEEL=$(ls -1 "$WHEELS"/llama_cpp_python-*.whl | sort -V | tail -n 1)"
echo "RPC_SERVER=$RPC_DIR/rpc-server"
