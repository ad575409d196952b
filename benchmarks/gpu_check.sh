#!/usr/bin/env bash
# The GPU check, in one command, on a machine without network access.
#
#   benchmarks/gpu_check.sh WHEELS [OUT]
#
# WHEELS is a folder holding the llama-cpp-python sdist and every wheel the check installs
# (filled on a connected machine: see the README, "GPU offload"). The script
#   1. builds llama-cpp-python from that sdist with -DGGML_CUDA=on for this machine's GPU
#      (CMAKE_CUDA_ARCHITECTURES=native), in the background,
#   2. meanwhile makes a venv, installs reflectchat's other dependencies and writes a
#      70B-shaped Q4_K_M GGUF (sparse, zero weights) with ../shared/tools/synth_gguf.py,
#   3. installs the built wheel and reflectchat, and runs benchmarks/gpu_check.py: bare
#      llama-cpp-python decode with all layers offloaded, `reflectchat bench` and `ask --json`
#      decode, `doctor`'s view of the GPU and the fit check's offload decision — one JSON line
#      and a README-ready table, also in OUT/gpu_check.json.
#
# Settings (environment): GPU_CHECK_CUDA=on|off (off: the CPU half, as CI-less machines test it),
# GPU_CHECK_SHAPE=70b|8b|1b, GPU_CHECK_LAYERS=all|N, GPU_CHECK_TOKENS=128, GPU_CHECK_JOBS=nproc.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
WHEELS="$(cd "${1:?usage: gpu_check.sh WHEELS [OUT]}" && pwd)"
OUT="$(mkdir -p "${2:-$REPO/gpu-check-out}" && cd "${2:-$REPO/gpu-check-out}" && pwd)"
CUDA="${GPU_CHECK_CUDA:-on}"
SHAPE="${GPU_CHECK_SHAPE:-70b}"
LAYERS="${GPU_CHECK_LAYERS:-all}"
TOKENS="${GPU_CHECK_TOKENS:-128}"
JOBS="${GPU_CHECK_JOBS:-$(nproc)}"
SYNTH="${GPU_CHECK_SYNTH:-$REPO/../shared/tools/synth_gguf.py}"
PY="${PYTHON:-python3}"
START=$(date +%s)

say() { printf 'gpu_check: [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die() { say "$*"; [ -n "${BUILD:-}" ] && kill "$BUILD" 2>/dev/null; exit 1; }

SDIST="$(ls -1 "$WHEELS"/llama_cpp_python-*.tar.gz 2>/dev/null | sort -V | tail -n 1 || true)"
[ -n "$SDIST" ] || die "no llama_cpp_python-*.tar.gz in $WHEELS (see the README, GPU offload)"
[ -f "$SYNTH" ] || die "synth_gguf.py not found at $SYNTH (set GPU_CHECK_SYNTH)"
if [ "$CUDA" = on ]; then
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found: no NVIDIA driver here"
  if ! command -v nvcc >/dev/null; then
    for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do [ -x "$d/nvcc" ] && PATH="$d:$PATH"; done
  fi
  command -v nvcc >/dev/null || die "nvcc not found: install the CUDA toolkit or put it on PATH"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
  CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=native"
else
  CMAKE_ARGS="-DGGML_CUDA=off"
fi
# llama.cpp's AMX kernels crash on some cloud Xeons (see the README, Troubleshooting).
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  NOAMX="-mno-amx-int8 -mno-amx-tile -mno-amx-bf16"
  CMAKE_ARGS="$CMAKE_ARGS -DCMAKE_C_FLAGS=\"$NOAMX\" -DCMAKE_CXX_FLAGS=\"$NOAMX\""
fi

PIP=(--no-index --find-links "$WHEELS" --disable-pip-version-check --quiet)
mkdir -p "$OUT/wheel"
say "building $(basename "$SDIST") ($CMAKE_ARGS, $JOBS jobs) in the background; log: $OUT/build.log"
"$PY" -m venv --clear "$OUT/venv"
VPY="$OUT/venv/bin/python"
"$VPY" -m pip install "${PIP[@]}" --upgrade pip >/dev/null 2>&1 || true
(
  CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
    "$VPY" -m pip wheel "${PIP[@]}" --no-deps "$SDIST" -w "$OUT/wheel" >"$OUT/build.log" 2>&1
) &
BUILD=$!

# While it builds: everything else reflectchat needs, and the model.
DEPS="$("$VPY" - "$REPO/pyproject.toml" <<'EOF'
import re, shlex, sys
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print(" ".join(shlex.quote(d) for d in deps if not re.match(r"llama[-_]cpp[-_]python", d)))
EOF
)"
say "installing reflectchat's other dependencies and gguf for the synthetic model"
eval "\"$VPY\" -m pip install \"\${PIP[@]}\" $DEPS gguf numpy" || die "installing from $WHEELS failed"
MODEL="$OUT/Synth-Llama-3.1-${SHAPE^^}-Q4_K_M.gguf"
say "writing a $SHAPE-shaped Q4_K_M GGUF (sparse: almost no disk) at $MODEL"
"$VPY" "$SYNTH" "$MODEL" --shape "$SHAPE" >"$OUT/synth.log" 2>&1 || die "synth_gguf.py failed: $OUT/synth.log"

say "waiting for the llama-cpp-python build"
wait "$BUILD" || die "the llama-cpp-python build failed; the end of $OUT/build.log:$(tail -n 20 "$OUT/build.log")"
WHEEL="$(ls -1 "$OUT"/wheel/llama_cpp_python-*.whl | tail -n 1)"
say "built $(basename "$WHEEL"); installing it and reflectchat"
"$VPY" -m pip install "${PIP[@]}" --force-reinstall --no-deps "$WHEEL"
"$VPY" -m pip install "${PIP[@]}" --find-links "$OUT/wheel" --no-build-isolation "$REPO" \
  || "$VPY" -m pip install "${PIP[@]}" --find-links "$OUT/wheel" "$REPO" \
  || die "installing reflectchat failed"

say "measuring (layers: $LAYERS, $TOKENS tokens)"
cd "$OUT"
"$VPY" "$HERE/gpu_check.py" "$MODEL" "$OUT" --gpu-layers "$LAYERS" --tokens "$TOKENS"
STATUS=$?
say "done (exit $STATUS); figures in $OUT/gpu_check.json"
exit $STATUS
