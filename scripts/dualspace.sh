#!/usr/bin/env bash
# Runs the dualspace CLI from a fresh checkout: set-up (idempotent), build, run.
#   scripts/dualspace.sh <subcommand> [options]     e.g. scripts/dualspace.sh reproduce --quick
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" >&2
cargo build -q --release --manifest-path "$root/Cargo.toml" -p dualspace-cli
exec "$root/target/release/dualspace" "$@"
