"""Training speed of `nettrain fit` against hand-written Keras, measured side by side in one run.

    .venv/bin/python bench/run.py [--rows 200000] [--features 20] [--epochs 4] [--batch 256]

Workload: an MLP (Dense 64-64, relu) regressing a generated 200k x 20 table, batch 256.
Each contender trains the same model for the same epochs; the first epoch (tracing) is dropped
and the rest are timed per epoch. Printed: samples/s and the ratio to the plain Keras baseline.

Contenders:
- keras numpy          model.fit(numpy arrays, shuffle=True)           the baseline
- keras numpy spe=32   the same with compile(steps_per_execution=32)
- keras tf.data        the (seed, epoch)-shuffled index pipeline nettrain uses, spe=1
- nettrain fit         the whole command (progress lines, metrics.csv, last.h5 each epoch)
- nettrain fit (rich)  the same with the Rich progress display forced on (progress overhead)
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from nettrain.training import runtime  # noqa: E402,F401  (quiet TF start-up)

import keras  # noqa: E402


class NoProgress(keras.callbacks.Callback):
    """The progress display's place, showing nothing."""

    def close(self) -> None:
        pass


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def mlp(n_features: int, spe: int = 1) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((n_features,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mean_squared_error", steps_per_execution=spe)
    return model


def rate(rows: int, times: list[float]) -> float:
    timed = times[1:] if len(times) > 1 else times
    return rows / (sum(timed) / len(timed))


def keras_numpy(x, y, epochs, batch, spe=1) -> float:
    timer = EpochTimer()
    mlp(x.shape[1], spe).fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    return rate(len(x), timer.times)


def keras_tfdata(x, y, epochs, batch) -> float:
    from nettrain.training import feed

    model = mlp(x.shape[1])
    cursor = feed.EpochCursor()
    ds = feed.training_dataset({"input_layer": feed.tf.convert_to_tensor(x)}, y, batch_size=batch, seed=0,
                               cursor=cursor)
    ds = ds.map(lambda xb, yb: (xb["input_layer"], yb))
    timer = EpochTimer()
    model.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[cursor, timer])
    return rate(len(x), timer.times)


def nettrain_fit(csv: Path, rows, epochs, batch, rich: bool = False, silent: bool = False) -> float:
    from nettrain.api import fit
    from nettrain.training import fit as fit_module
    from nettrain.training import progress

    overrides = [f"training.epochs={epochs}", f"training.batch_size={batch}"]
    out = tempfile.mkdtemp(prefix="nettrain-bench-")
    saved, original, original_fit = sys.stdout, progress.interactive, keras.Model.fit
    timer = EpochTimer()

    def fit_with_timer(self, *a, callbacks=None, **kw):
        # last in the list: the epoch's time includes every nettrain callback (checkpoint, csv, progress)
        return original_fit(self, *a, callbacks=list(callbacks or []) + [timer], **kw)

    original_progress = fit_module._progress
    if rich:
        progress.interactive = lambda stream, quiet: True
    if silent:  # the same run with no progress output at all: the verbose=0 reference
        fit_module._progress = lambda session: NoProgress()
    sys.stdout = io.StringIO()
    keras.Model.fit = fit_with_timer
    try:
        fit(csv, overrides, run_dir=Path(out) / "run")
    finally:
        sys.stdout, progress.interactive, keras.Model.fit = saved, original, original_fit
        fit_module._progress = original_progress
    return rate(_train_rows(Path(out) / "run"), timer.times)


def _train_rows(run: Path) -> int:
    import json

    return json.loads((run / "run.json").read_text())["data"]["rows"]["train"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, args.features)).astype("float32")
    y = (x @ rng.normal(size=args.features) + rng.normal(scale=0.1, size=args.rows)).astype("float32")
    tmp = Path(tempfile.mkdtemp(prefix="nettrain-bench-"))
    csv = tmp / "data.csv"
    import pandas as pd

    pd.DataFrame(x, columns=[f"f{i}" for i in range(args.features)]).assign(y=y).to_csv(csv, index=False)
    config = tmp / "bench.yaml"
    config.write_text(
        "data: {source: data.csv, target: y, task: regression, split: {test: 0, validation: 0}}\n"
        "preprocessing: {numeric: none}\n"
        "model: {layers: [{type: Dense, units: 64, activation: relu}, {type: Dense, units: 64, activation: relu}]}\n"
        "training: {loss: mean_squared_error, optimizer: adam}\n"
        "callbacks: {checkpoint: {monitor: loss}}\n")

    results = []
    print(f"workload: MLP 64-64, {args.rows} x {args.features} rows, batch {args.batch}, {args.epochs} epochs "
          "(first epoch not timed)", flush=True)
    for name, fn in [
        ("keras numpy (baseline)", lambda: keras_numpy(x, y, args.epochs, args.batch)),
        ("keras numpy spe=32", lambda: keras_numpy(x, y, args.epochs, args.batch, spe=32)),
        ("keras tf.data (seeded)", lambda: keras_tfdata(x, y, args.epochs, args.batch)),
        ("nettrain fit (no output)", lambda: nettrain_fit(config, args.rows, args.epochs, args.batch, silent=True)),
        ("nettrain fit", lambda: nettrain_fit(config, args.rows, args.epochs, args.batch)),
        ("nettrain fit (rich)", lambda: nettrain_fit(config, args.rows, args.epochs, args.batch, rich=True)),
    ]:
        r = fn()
        results.append((name, r))
        print(f"  {name:<26} {r:>12,.0f} samples/s", flush=True)
    base = results[0][1]
    print("\nratio to the plain Keras baseline (higher is faster):")
    for name, r in results:
        print(f"  {name:<26} {r / base:6.2f}x")
    silent = dict(results)["nettrain fit (no output)"]
    print("\nprogress output overhead (ratio to the same nettrain run with no output; 1.00 = none):")
    for name in ("nettrain fit", "nettrain fit (rich)"):
        print(f"  {name:<26} {dict(results)[name] / silent:6.2f}x")


if __name__ == "__main__":
    main()
