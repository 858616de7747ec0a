"""Sweep overhead against a hand-written Optuna + Keras script (bench/sweep_optuna.py), side by side in
one run: the same data and split, model, search space, trials, jobs, pruner, epochs and early stopping.

    .venv/bin/python bench/sweep.py [--trials 20] [--epochs 20] [--jobs 2] [--data data/iris.csv]

Prints the walls, their ratio (goal: nettrain sweep <= 1.0x the script) and the median per-trial
overhead of `nettrain sweep` over the training itself (a trial's wall in the study minus its epochs'
seconds in metrics.csv; goal <= 0.5 s). Each --jobs slot is one warm worker process (TensorFlow
imported once), so the overhead per trial is the run directory, the study's bookkeeping and the final
evaluation, not a Python start-up.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
name: bench-sweep
seed: 1
data: {{source: {data}, target: species, split: {{test: 0, validation: 0.2}}}}
model:
  layers:
    - {{type: Dense, units: 16, activation: relu}}
    - {{type: Dense, units: 12, activation: relu}}
training: {{epochs: {epochs}, batch_size: 16, metrics: [accuracy]}}
callbacks:
  checkpoint: false
  early_stopping: {{monitor: val_loss, patience: 5, restore_best_weights: true}}
output: {{plots: false}}
sweep:
  trials: {trials}
  sampler: tpe
  pruner: median
  params:
    training.optimizer.learning_rate: {{log_uniform: [1.0e-3, 1.0e-1]}}
    model.layers.0.units: {{choice: [8, 16, 32]}}
"""

ENV = {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def timed(cmd, cwd) -> tuple[float, str]:
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=ENV, text=True, capture_output=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{r.stderr[-3000:]}")
    return wall, r.stdout


def overheads(folder: Path) -> list[float]:
    """Per finished trial: its wall in the study minus the seconds of its epochs (metrics.csv)."""
    out = []
    for row in json.loads((folder / "trials.json").read_text()):
        if row["state"] not in ("complete", "pruned") or row["seconds"] is None:
            continue
        with open(Path(row["run_dir"]) / "metrics.csv") as f:
            training = sum(float(r["seconds"]) for r in csv.DictReader(f) if r.get("seconds"))
        out.append(row["seconds"] - training)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT / "data" / "iris.csv"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nettrain-bench-sweep-") as tmp:
        work = Path(tmp)
        (work / "sweep.yaml").write_text(CONFIG.format(data=Path(args.data).resolve(), epochs=args.epochs,
                                                       trials=args.trials))
        hand_wall, out = timed([sys.executable, str(ROOT / "bench" / "sweep_optuna.py"), args.data, "--trials",
                                str(args.trials), "--epochs", str(args.epochs), "--jobs", str(args.jobs),
                                "--storage", f"sqlite:///{work / 'hand.db'}"], work)
        hand = json.loads(out.strip().splitlines()[-1])
        sweep_wall, _ = timed([sys.executable, "-m", "nettrain", "sweep", "sweep.yaml", "--jobs", str(args.jobs)],
                              work)
        folder = work / "runs" / "bench-sweep" / "sweep"
        rows = json.loads((folder / "trials.json").read_text())
        states = {}
        for r in rows:
            states[r["state"]] = states.get(r["state"], 0) + 1
        over = overheads(folder)
        best = min((r["value"] for r in rows if r["state"] == "complete"), default=float("nan"))
        print(f"hand-written Optuna + Keras ({args.trials} trials, {args.epochs} epochs, n_jobs {args.jobs}): "
              f"{hand_wall:6.1f} s  {hand['states']}  best val_loss {hand['best']:.4f}")
        print(f"nettrain sweep ({args.trials} trials, {args.epochs} epochs, --jobs {args.jobs}):            "
              f"{sweep_wall:6.1f} s  {states}  best val_loss {best:.4f}")
        print(f"ratio nettrain / hand-written: {sweep_wall / hand_wall:.2f}x (goal <= 1.0x)")
        print(f"per-trial overhead over the training itself: median {statistics.median(over):.2f} s, "
              f"max {max(over):.2f} s over {len(over)} trials (goal median <= 0.5 s)")


if __name__ == "__main__":
    main()
