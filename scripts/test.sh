#!/usr/bin/env bash
# The whole test suite: set-up first (idempotent), then every test of the workspace.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# Two cores: one test thread per core; libtorch gets one intra-op thread per test.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cargo test --workspace --all-targets -- --test-threads="${TEST_THREADS:-2}"
