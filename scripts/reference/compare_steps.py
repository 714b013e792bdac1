"""Interleaved comparison of dualspace's GAN training steps with PyTorch
eager on this machine.

    .venv/bin/python scripts/reference/compare_steps.py [--rounds 7] [--threads N] [case ...]

Cases: latent64, latent256, harness, pixel (default: latent64 latent256). Each round
runs, one after the other, our `gan_step_time` example and the same case of
`pytorch_steps.py`, each in a fresh process that times five chunks of steps
and reports the median. Running them in alternation, round after round,
means that a slow spell of a shared machine hits both sides alike; the table
gives the median over rounds of each side and of the per-round ratio.
Build first: `cargo build --release -p dualspace-cli --examples`.
"""
import argparse
import pathlib
import statistics
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parents[2]
ours = root / "target" / "release" / "examples" / "gan_step_time"
ref = root / "scripts" / "reference" / "pytorch_steps.py"

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("cases", nargs="*", default=["latent64", "latent256"], help="latent64, latent256, harness, pixel")
ap.add_argument("--rounds", type=int, default=7)
ap.add_argument("--threads", type=int, default=0, help="libtorch threads on both sides (0: library default)")
ap.add_argument("--tuned", action="store_true", help="compare with pytorch_steps.py --tuned as well")
a = ap.parse_args()
bad = [c for c in a.cases if c not in ("latent64", "latent256", "harness", "pixel")]
if bad:
    sys.exit(f"unknown case {bad[0]!r}; use latent64, latent256, harness or pixel")
if not ours.exists():
    sys.exit(f"{ours}: missing; build it with: cargo build --release -p dualspace-cli --examples")


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed: {out.stderr.strip()}")
    return float(out.stdout.split()[-1])


for case in a.cases:
    # gan_step_time takes [steps] [threads]; "0" steps means its default.
    ours_cmd = [ours, case] + (["0", str(a.threads)] if a.threads else [])
    ref_cmd = [sys.executable, ref, "--only", case] + (["--threads", str(a.threads)] if a.threads else [])
    sides = {"PyTorch": ref_cmd}
    if a.tuned:
        sides["PyTorch tuned"] = ref_cmd + ["--tuned"]
    rows = []
    for r in range(a.rounds):
        row = {"ours": run(ours_cmd)}
        row.update((k, run(cmd)) for k, cmd in sides.items())
        rows.append(row)
        print(f"{case} round {r + 1}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in row.items()), flush=True)
    mo = statistics.median(row["ours"] for row in rows)
    for k in sides:
        mp = statistics.median(row[k] for row in rows)
        ratios = [row["ours"] / row[k] for row in rows]
        mr = statistics.median(ratios)
        print(f"{case}: ours {mo:.2f} ms, {k} {mp:.2f} ms (medians of {a.rounds} rounds); "
              f"ours/{k} {mr:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}), {100 * (1 - mr):.0f}% under")
