#!/usr/bin/env bash
# One-time set-up of a dualspace checkout; idempotent and quick when already done.
#  1. a project-local Python venv (.venv, git-ignored) holding torch==2.11.0 (libtorch for tch 0.24)
#  2. Debian's dataset-fashion-mnist (apt as root; otherwise prints the command)
#  3. .cargo/config.toml (git-ignored) so that plain `cargo build/test/run` find libtorch
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
TORCH_VERSION=2.11.0
PY=${PYTHON:-python3}

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust from https://rustup.rs (or your distribution) and run again" >&2
  exit 1
fi

if ! command -v "${CXX:-c++}" >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
  echo "setup: no C++ compiler found (torch-sys and dualspace's fused-op shim need one); install it with: sudo apt-get install g++" >&2
  exit 1
fi

# 1. venv with torch
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
have=$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have" != "$TORCH_VERSION" ]; then
  echo "setup: installing torch==$TORCH_VERSION into .venv (a few GB, takes minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q "torch==$TORCH_VERSION"
fi
torch_dir=$(.venv/bin/python -c 'import torch, pathlib; print(pathlib.Path(torch.__file__).parent)' 2>/dev/null)
abi=$(.venv/bin/python -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null)

# 2. Fashion-MNIST from Debian
fm=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$fm" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    # Optional data: a failed install is reported, not fatal (tests on it skip).
    if ! { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null; }; then
      echo "setup: could not install dataset-fashion-mnist (apt failed); tests that need it will skip" >&2
    fi
  else
    echo "setup: Fashion-MNIST is missing; install it with: sudo apt-get install dataset-fashion-mnist" >&2
  fi
fi

# 3. cargo environment
mkdir -p .cargo
cfg=$(cat <<CFG
# Written by scripts/setup.sh; do not edit (it is regenerated).
[env]
LIBTORCH = "$torch_dir"
LIBTORCH_CXX11_ABI = "$abi"
CFG
)
if [ ! -f .cargo/config.toml ] || [ "$(cat .cargo/config.toml)" != "$cfg" ]; then
  printf '%s\n' "$cfg" > .cargo/config.toml
  echo "setup: wrote .cargo/config.toml (LIBTORCH=$torch_dir)"
fi
echo "setup: ready (torch $TORCH_VERSION in .venv; cargo build/test/run work from $root)"
