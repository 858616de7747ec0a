"""Sweep overhead and parallelism: a 10-trial sweep at --jobs 1 and --jobs 2, and one trial's wall
against `nettrain fit` of the same config, measured side by side in one run.

    .venv/bin/python bench/sweep.py [--trials 10] [--epochs 20]

Each trial is its own process (TensorFlow imported each time), so the overhead per trial is
mostly that start-up; on a 2-core machine --jobs 2 overlaps one trial's start-up with another's
training rather than doubling the training speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
name: bench-sweep
seed: 1
data: {{source: {data}, target: species}}
model:
  layers:
    - {{type: Dense, units: 16, activation: relu}}
    - {{type: Dense, units: 12, activation: relu}}
training: {{epochs: {epochs}, batch_size: 16, metrics: [accuracy]}}
sweep:
  trials: {trials}
  sampler: random
  pruner: none
  params:
    training.optimizer.learning_rate: {{log_uniform: [1.0e-3, 1.0e-1]}}
    model.layers.0.units: {{choice: [8, 16, 32]}}
"""


def nettrain(args, cwd) -> float:
    env = {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "nettrain", *map(str, args)], cwd=cwd, env=env, text=True,
                       capture_output=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"nettrain {' '.join(map(str, args))} failed:\n{r.stderr[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nettrain-bench-sweep-") as tmp:
        work = Path(tmp)
        (work / "sweep.yaml").write_text(CONFIG.format(data=ROOT / "data" / "iris.csv", epochs=args.epochs,
                                                       trials=args.trials))
        fit = [nettrain(["fit", "sweep.yaml", "--quiet", "--run-dir", work / f"fit{i}"], work) for i in range(2)]
        walls = {}
        for jobs in (1, 2):
            walls[jobs] = nettrain(["sweep", "sweep.yaml", "--jobs", jobs, "--study", f"jobs{jobs}",
                                    "--set", "output.plots=false"], work)
            rows = json.loads((work / "runs" / "bench-sweep" / f"sweep-jobs{jobs}" / "trials.json").read_text())
            assert len(rows) == args.trials and all(r["state"] == "complete" for r in rows), rows
        fit_wall = min(fit)
        per_trial = walls[1] / args.trials
        print(f"nettrain fit, one run ({args.epochs} epochs, iris):   {fit_wall:6.1f} s")
        print(f"sweep {args.trials} trials, --jobs 1:                  {walls[1]:6.1f} s  "
              f"({per_trial:.1f} s per trial, {per_trial / fit_wall:.2f}x a fit)")
        print(f"sweep {args.trials} trials, --jobs 2:                  {walls[2]:6.1f} s  "
              f"({walls[1] / walls[2]:.2f}x faster than --jobs 1)")
        print(f"overhead per trial against fit: {per_trial - fit_wall:+.1f} s")


if __name__ == "__main__":
    main()
