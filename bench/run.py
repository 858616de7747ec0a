"""Training speed of `nettrain fit` against hand-written Keras, measured side by side in one run.

    .venv/bin/python bench/run.py [--rows 200000] [--features 20] [--epochs 8] [--batch 256] [--repeat 2]
                                  [--skip-wall]

Workload: an MLP (Dense 64-64, relu) regressing a generated 200k x 20 table, batch 256.

1. Training throughput. Each contender trains the same model for the same epochs; the first epoch
   (tracing) is dropped and the rest are timed per epoch; each contender runs --repeat times,
   alternating, and its mean samples/s is printed with the ratios to the naive and the tuned Keras.
   - keras numpy (naive)      model.fit(numpy arrays, shuffle=True), compile() defaults
   - keras numpy spe=32       the same with compile(steps_per_execution=32): the tuned baseline
   - nettrain fit             nettrain.api.fit as `nettrain fit` runs in a pipe or a CI log (one plain line
                              per epoch, metrics.csv and the checkpoints each epoch), data in memory
   - nettrain fit (no output) the same with json_output=True, stdout and stderr captured
   - nettrain fit (streamed)  the same config with data.stream: true: the CSV read again every epoch
   nettrain runs at its defaults (op determinism on, an `mae` metric besides the loss); the Keras
   contenders do not pay for either. nettrain is measured only through its public interface: the run's
   metrics.csv holds each epoch's `seconds`; samples/s divides run.json's training rows by their mean.

2. Whole-process wall (--skip-wall leaves it out): `nettrain fit config.yaml` against the script a
   Keras user writes for the same job (pandas.read_csv, two train_test_split calls, a Normalization
   layer adapted on the training rows, fit with validation data and a best-model checkpoint, evaluate
   on the test rows, save the model, a matplotlib loss plot), each a fresh process timed from start to
   exit, --repeat times alternating; the fastest wall of each and its peak RSS (getrusage of the child).
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
from launch import timed_process  # noqa: E402  (bench/launch.py, beside this script)


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


def nettrain_fit(config: Path, epochs: int, batch: int, output: str = "plain", stream: bool = False) -> float:
    """One `nettrain.api.fit` run; samples/s from its metrics.csv and run.json."""
    from nettrain import api

    run = Path(tempfile.mkdtemp(prefix="nettrain-bench-")) / "run"
    overrides = [f"training.epochs={epochs}", f"training.batch_size={batch}", f"data.stream={str(stream).lower()}"]
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


# ------------------------------------------------------------------------------ whole-process wall

NAIVE_SCRIPT = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, pandas as pd
from sklearn.model_selection import train_test_split
import keras
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

path, out, epochs, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
df = pd.read_csv(path)
x = df.drop(columns=["y"]).to_numpy("float32")
y = df["y"].to_numpy("float32")
x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.2, random_state=0)
norm = keras.layers.Normalization()
norm.adapt(x_train)
model = keras.Sequential([keras.Input((x.shape[1],)), norm, keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mean_squared_error", metrics=["mae"])
best = keras.callbacks.ModelCheckpoint(os.path.join(out, "best.keras"), save_best_only=True)
history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch,
                    callbacks=[best], verbose=2)
print(model.evaluate(x_test, y_test, verbose=0))
model.save(os.path.join(out, "model.keras"))
plt.plot(history.history["loss"], label="loss")
plt.plot(history.history["val_loss"], label="val_loss")
plt.legend()
plt.savefig(os.path.join(out, "loss.png"))
"""

WALL_CONFIG = """data: {source: data.csv, target: y}
model: {layers: [{type: Dense, units: 64, activation: relu}, {type: Dense, units: 64, activation: relu}]}
training: {loss: mean_squared_error, optimizer: adam}
"""


def whole_process(tmp: Path, epochs: int, batch: int, repeat: int) -> None:
    """Section 2 of the module docstring."""
    (tmp / "wall.yaml").write_text(WALL_CONFIG)
    (tmp / "naive.py").write_text(NAIVE_SCRIPT)
    nettrain = str(Path(sys.executable).parent / "nettrain")
    runs: dict[str, list[tuple[float, float]]] = {"plain Keras script": [], "nettrain fit": []}
    for i in range(repeat):
        out = tmp / f"naive-{i}"
        out.mkdir()
        runs["plain Keras script"].append(timed_process(
            [sys.executable, "naive.py", "data.csv", str(out), str(epochs), str(batch)], tmp))
        runs["nettrain fit"].append(timed_process(
            [nettrain, "fit", "wall.yaml", "--run-dir", str(tmp / f"wall-{i}"), "--set", f"training.epochs={epochs}",
             "--set", f"training.batch_size={batch}"], tmp))
    print(f"\nwhole process, start to exit ({epochs} epochs, fastest of {repeat}; CSV read, split, training with "
          "validation, test evaluation, model file, plots):", flush=True)
    best = {name: min(r) for name, r in runs.items()}
    for name, (wall, rss) in best.items():
        print(f"  {name:<26} {wall:8.1f} s   peak RSS {rss:7.0f} MB")
    ratio = best["nettrain fit"][0] / best["plain Keras script"][0]
    print(f"  nettrain / plain script    {ratio:8.2f}x   (goal: at most 0.80x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-wall", action="store_true", help="leave out the whole-process comparison")
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

    contenders = [
        ("keras numpy (naive)", lambda: keras_numpy(x, y, args.epochs, args.batch)),
        ("keras numpy spe=32", lambda: keras_numpy(x, y, args.epochs, args.batch, spe=32)),
        ("nettrain fit", lambda: nettrain_fit(config, args.epochs, args.batch)),
        ("nettrain fit (no output)", lambda: nettrain_fit(config, args.epochs, args.batch, output="none")),
        ("nettrain fit (streamed)", lambda: nettrain_fit(config, args.epochs, args.batch, output="none", stream=True)),
    ]
    print(f"workload: MLP 64-64, {args.rows} x {args.features} rows, batch {args.batch}, {args.epochs} epochs "
          f"(first epoch not timed), {args.repeat} alternated runs each", flush=True)
    rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(args.repeat):
        for name, fn in contenders:
            rates[name].append(fn())
    mean = {name: float(np.mean(r)) for name, r in rates.items()}
    naive, tuned = mean["keras numpy (naive)"], mean["keras numpy spe=32"]
    print(f"\n  {'':<26} {'samples/s':>12} {'vs naive':>9} {'vs tuned':>9}   runs")
    for name, r in mean.items():
        runs = " ".join(f"{v / tuned:.2f}" for v in rates[name])
        print(f"  {name:<26} {r:>12,.0f} {r / naive:8.2f}x {r / tuned:8.2f}x   {runs}")
    print("  goals: nettrain fit >= 1.20x tuned (in memory and streamed); streamed >= 0.90x in memory "
          f"(measured {mean['nettrain fit (streamed)'] / mean['nettrain fit (no output)']:.2f}x)")
    if not args.skip_wall:
        whole_process(tmp, args.epochs, args.batch, args.repeat)


if __name__ == "__main__":
    main()
