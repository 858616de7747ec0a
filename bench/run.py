"""Training speed of `nettrain fit` against hand-written Keras, measured side by side in one run.

    .venv/bin/python bench/run.py [--rows 200000] [--features 20] [--epochs 4] [--batch 256]

Workload: an MLP (Dense 64-64, relu) regressing a generated 200k x 20 table, batch 256.
Each contender trains the same model for the same epochs; the first epoch (tracing) is dropped
and the rest are timed per epoch. Printed: samples/s and the ratio to the plain Keras baseline.

Contenders:
- keras numpy          model.fit(numpy arrays, shuffle=True)           the baseline
- keras numpy spe=32   the same with compile(steps_per_execution=32)
- keras tf.data        a (seed, epoch)-shuffled index pipeline like nettrain's, in plain tf.data, spe=1
- nettrain fit         nettrain.api.fit as `nettrain fit` runs in a pipe or a CI log (one plain line per
                       epoch, metrics.csv and the checkpoints each epoch)
- nettrain fit (no output)  the same with json_output=True, stdout and stderr captured: nothing shown
- nettrain fit (rich)  the same on a terminal (a pseudo-terminal here): the Rich progress display

The Keras contenders are timed by a callback around each epoch. nettrain is measured only through
its public interface: `nettrain.api.fit` trains into a run directory, and the run's metrics.csv
holds each epoch's `seconds` (from the epoch's start to its end, training and validation; the
checkpoint files are written after that time is taken); samples/s divides run.json's training
rows by their mean.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pty
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


@contextlib.contextmanager
def native_chatter_hidden():
    """TensorFlow's native start-up lines (oneDNN, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL: catch
    what is written to file descriptor 2 meanwhile and pass on every other line."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not re.match(r"(WARNING: All log messages before absl|[IWE]\d{4} )", line):
                    sys.stderr.write(line)


with native_chatter_hidden():
    import keras  # noqa: E402
    import tensorflow as tf  # noqa: E402

    tf.config.list_physical_devices()  # the CUDA probe


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)


class EpochCounter(keras.callbacks.Callback):
    """Tells the tf.data pipeline which epoch (from 1) Keras is about to run."""

    def __init__(self):
        super().__init__()
        self.epoch = tf.Variable(1, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)


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


def seeded_dataset(x: np.ndarray, y: np.ndarray, batch: int, seed: int, counter: EpochCounter) -> tf.data.Dataset:
    """Each epoch: a permutation drawn from (seed, epoch), cut into index batches, gathered from tensors."""
    n, x_t, y_t = len(x), tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    full, rest = n // batch, n % batch

    def epoch_batches(_):
        seed_pair = tf.stack([tf.constant(seed, tf.int64), counter.epoch.read_value()])
        keys = tf.random.stateless_uniform([n], seed=seed_pair)
        order = tf.cast(tf.argsort(keys, stable=True), tf.int64)
        ds = tf.data.Dataset.from_tensor_slices(tf.reshape(order[: full * batch], [full, batch]))
        return ds.concatenate(tf.data.Dataset.from_tensors(order[full * batch:])) if rest else ds

    ds = tf.data.Dataset.from_tensors(0).flat_map(epoch_batches)
    ds = ds.apply(tf.data.experimental.assert_cardinality(full + (1 if rest else 0)))
    return ds.map(lambda idx: (tf.gather(x_t, idx), tf.gather(y_t, idx))).prefetch(tf.data.AUTOTUNE)


def keras_tfdata(x, y, epochs, batch) -> float:
    model = mlp(x.shape[1])
    counter, timer = EpochCounter(), EpochTimer()
    model.fit(seeded_dataset(x, y, batch, seed=0, counter=counter), epochs=epochs, verbose=0, shuffle=False,
              callbacks=[counter, timer])
    return rate(len(x), timer.times)


@contextlib.contextmanager
def terminal_stdout():
    """sys.stdout on a pseudo-terminal whose output is read and dropped, and an environment in which
    nettrain and Rich take it for a person's terminal (no CI, NO_COLOR or TERM=dumb)."""
    master, slave = pty.openpty()
    drain = threading.Thread(target=_drain, args=(master,), daemon=True)
    drain.start()
    saved_env = {k: os.environ.pop(k) for k in ("CI", "NO_COLOR") if k in os.environ}
    saved_term = os.environ.get("TERM")
    if saved_term in (None, "dumb"):
        os.environ["TERM"] = "xterm-256color"
    saved = sys.stdout
    sys.stdout = open(slave, "w", buffering=1, closefd=True)
    try:
        yield
    finally:
        sys.stdout.close()
        sys.stdout = saved
        os.environ.update(saved_env)
        if saved_term is None:
            os.environ.pop("TERM", None)
        else:
            os.environ["TERM"] = saved_term
        drain.join(timeout=5)
        os.close(master)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):  # EIO once the terminal's other end is closed
        while os.read(fd, 65536):
            pass


def nettrain_fit(config: Path, epochs: int, batch: int, output: str = "plain") -> float:
    """One `nettrain.api.fit` run; samples/s from its metrics.csv and run.json."""
    from nettrain import api

    run = Path(tempfile.mkdtemp(prefix="nettrain-bench-")) / "run"
    overrides = [f"training.epochs={epochs}", f"training.batch_size={batch}"]
    if output == "rich":
        streams = terminal_stdout()
    else:
        streams = contextlib.ExitStack()
        streams.enter_context(contextlib.redirect_stdout(io.StringIO()))
        if output == "none":
            streams.enter_context(contextlib.redirect_stderr(io.StringIO()))
    with streams:
        api.fit(config, overrides, run_dir=run, json_output=output == "none")
    seconds = pd.read_csv(run / "metrics.csv")["seconds"].tolist()
    return rate(json.loads((run / "run.json").read_text())["data"]["rows"]["train"], seconds)


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
    pd.DataFrame(x, columns=[f"f{i}" for i in range(args.features)]).assign(y=y).to_csv(tmp / "data.csv", index=False)
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
        ("nettrain fit (no output)", lambda: nettrain_fit(config, args.epochs, args.batch, output="none")),
        ("nettrain fit", lambda: nettrain_fit(config, args.epochs, args.batch)),
        ("nettrain fit (rich)", lambda: nettrain_fit(config, args.epochs, args.batch, output="rich")),
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
