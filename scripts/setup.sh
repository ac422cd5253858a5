#!/usr/bin/env bash
# Set up medicraft-hf in ./.venv on a fresh machine.
#   bash scripts/setup.sh          library, CLI, training, Space (CPU torch)
#   bash scripts/setup.sh --test   plus test tools and Debian's headless Chromium
# GPU users: set TORCH_SPEC to the CUDA build you want, e.g.
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}   # a CPU build: seconds, no multi-GB CUDA download

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch pulled in by diffusers would fetch a CUDA build.
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC
if [ "${1:-}" = "--test" ]; then
  .venv/bin/python -m pip install -q -e ".[space,tracking,test]"
  if ! command -v chromium >/dev/null 2>&1; then
    echo "setup: installing Debian chromium for the browser tests"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
else
  .venv/bin/python -m pip install -q -e ".[space,tracking]"
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
