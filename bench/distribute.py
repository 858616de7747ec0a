"""runtime.distribute on this machine: training samples/s of one process, `mirrored` over 2 logical
CPU devices and `multi_worker` with 2 processes on 127.0.0.1, and the all-reduce time per step.

    .venv/bin/python bench/distribute.py [--rows 200000] [--epochs 4] [--batch 256]

On a machine without GPUs and with 2 cores, 2 replicas or 2 worker processes share the same 2 cores
that one process already uses: this measures the overhead of distribution (the per-replica split,
the gradient all-reduce, for multi_worker the gRPC ring between processes), not a speed-up. On
GPUs, or on several machines, each replica brings its own compute.

samples/s: training rows / the epoch's seconds in metrics.csv (epochs 2.. ; no validation split, so
an epoch is its training steps, the checkpoint and the metrics row), best of the epochs timed.
All-reduce per step: the gradients of the same model (one tensor per trainable variable) summed
over the 2 replicas 200 times inside one graph call, as the optimizer does at each step, in a
cluster of 2 processes (`multi_worker`) and over 2 logical devices of one process (`mirrored`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
name: bench-distribute
seed: 1
data: {{source: data.csv, target: y, split: {{test: 0.0, validation: 0.0}}}}
model:
  layers:
    - {{type: Dense, units: 64, activation: relu}}
    - {{type: Dense, units: 64, activation: relu}}
training: {{loss: mse, optimizer: adam, metrics: [mae], epochs: {epochs}, batch_size: {batch}}}
output: {{plots: false}}
"""
FEATURES = 20
STEPS = 200  # all-reduces timed per call


def env() -> dict:
    return {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


def ports(n: int) -> list[str]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    out = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return out


def nettrain(work: Path, commands: list[list[str]]) -> float:
    """Run the commands at once (the processes of one cluster); the wall seconds until all end."""
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "nettrain", *map(str, c)], cwd=work, env=env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
    for p, c in zip(procs, commands):
        out, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"nettrain {' '.join(map(str, c))} failed:\n{err[-2000:]}")
    return time.perf_counter() - start


def samples_per_second(run: Path, rows: int) -> float:
    with open(run / "metrics.csv", newline="") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)][1:]
    return rows / min(seconds)


def allreduce_worker(args) -> None:
    """One process of the all-reduce timing (`--allreduce-worker I`)."""
    if args.allreduce_worker >= 0:
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": args.addresses.split(",")},
                                              "task": {"type": "worker", "index": args.allreduce_worker}})
    import tensorflow as tf

    if args.allreduce_worker < 0:  # mirrored: 2 logical CPU devices of this process
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    shapes = [(FEATURES, 64), (64,), (64, 64), (64,), (64, 1), (1,)]  # the bench model's trainable variables

    def replica():
        grads = [tf.ones(s) for s in shapes]
        return tf.reduce_sum(tf.distribute.get_replica_context().all_reduce("SUM", grads)[-1])

    @tf.function
    def run():  # as the training loop: the step loop in the graph, strategy.run in each step
        for _ in tf.range(STEPS):
            strategy.run(replica)

    run()  # traced, the ring set up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    if args.allreduce_worker <= 0:
        print(json.dumps({"ms_per_allreduce": 1000 * best / STEPS,
                          "floats": sum(int(tf.reduce_prod(s)) for s in shapes)}), flush=True)


def allreduce_ms(mode: str) -> tuple[float, int]:
    if mode == "mirrored":
        commands = [[sys.executable, __file__, "--allreduce-worker", "-1"]]
    else:
        addresses = ",".join(ports(2))
        commands = [[sys.executable, __file__, "--allreduce-worker", str(i), "--addresses", addresses] for i in (0, 1)]
    procs = [subprocess.Popen(c, env=env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for c in commands]
    outs = [p.communicate() for p in procs]
    if any(p.returncode for p in procs):
        sys.exit(f"all-reduce timing ({mode}) failed:\n{outs[0][1][-2000:]}")
    data = json.loads(outs[0][0].strip().splitlines()[-1])
    return data["ms_per_allreduce"], data["floats"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--allreduce-worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--addresses", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.allreduce_worker is not None:
        return allreduce_worker(args)
    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="nettrain-bench-distribute-") as tmp:
        work = Path(tmp)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(args.rows, FEATURES)).astype("float32")
        y = x @ rng.normal(size=FEATURES) + rng.normal(scale=0.1, size=args.rows)
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(FEATURES)])
        frame["y"] = y
        frame.to_csv(work / "data.csv", index=False)
        (work / "config.yaml").write_text(CONFIG.format(epochs=args.epochs, batch=args.batch))
        fit = ["fit", "config.yaml", "--quiet"]
        results = {}
        results["one process"] = nettrain(work, [[*fit, "--run-dir", "one"]])
        results["mirrored, 2 logical CPU devices"] = nettrain(work, [[*fit, "--run-dir", "mirrored", "--set",
                                                                    "runtime.distribute=mirrored", "--set",
                                                                    "runtime.devices=[cpu:0,cpu:1]"]])
        addresses = ",".join(ports(2))
        results["multi_worker, 2 processes"] = nettrain(work, [
            [*fit, *(["--run-dir", "multi"] if i == 0 else []), "--worker", str(i), "--workers", addresses]
            for i in (0, 1)])
        runs = {"one process": "one", "mirrored, 2 logical CPU devices": "mirrored",
                "multi_worker, 2 processes": "multi"}
        base = samples_per_second(work / "one", args.rows)
        steps = -(-args.rows // args.batch)
        print(f"{args.rows:,} rows x {FEATURES}, Dense 64-64, batch {args.batch} ({steps} steps per epoch), "
              f"{args.epochs} epochs; {os.cpu_count()} CPU cores")
        print("| contender | samples/s | vs one process | ms per step | whole command |")
        print("|---|---:|---:|---:|---:|")
        for name, folder in runs.items():
            sps = samples_per_second(work / folder, args.rows)
            print(f"| {name} | {sps:,.0f} | {sps / base:.2f}x | {1000 * args.batch / sps:.2f} | "
                  f"{results[name]:.1f} s |")
        for mode in ("mirrored", "multi_worker"):
            ms, floats = allreduce_ms(mode)
            print(f"all-reduce of the gradients ({floats:,} floats), {mode}: {ms:.3f} ms per step")


if __name__ == "__main__":
    main()
