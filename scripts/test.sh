#!/usr/bin/env bash
# The whole test suite: set-up first (idempotent), then every test of the workspace.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# Two cores: one test thread per core; libtorch gets one intra-op thread per test.
# The thread count goes by environment, not `-- --test-threads`: the criterion
# benchmarks (run once each as smoke tests by --all-targets) reject that flag.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export RUST_TEST_THREADS=${TEST_THREADS:-2}
cargo test --workspace --all-targets
