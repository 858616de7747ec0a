"""Where an epoch's time goes: the bench MLP trained by variants that each remove one cost.

    .venv/bin/python bench/profile.py [--rows 200000] [--epochs 4] [--repeat 2]

Workload as bench/run.py: Dense 64-64 relu regressing 200k x 20 rows, batch 256, adam, mse (plus an
`mae` metric where nettrain's default has one). Each variant runs in a fresh process (op determinism
is process-wide), --repeat times alternated; samples/s over the epochs after the first. Printed as
the ratio to Keras `fit` with steps_per_execution=32 on numpy arrays (the tuned baseline):

- keras fit spe=32 (tuned)            the baseline: Keras's data adapter, its iterator, one step per batch
- keras fit spe=32 + nettrain feed    the same on nettrain's (seed, epoch) tf.data index pipeline
- nettrain loop                       engine.ArrayLoop: batches gathered inside one graph call per 32 steps,
                                      op determinism on, an mae metric (nettrain's default)
- nettrain loop, no determinism       the same with op determinism off
- nettrain loop, no metric            the same without the mae metric
- one batch, no gather                ArrayLoop's graph over the same first batch (no input gather)
- forward+backward only               the model's loss and gradients, no optimizer update, no metrics
- matmuls only                        the three Dense layers' matmuls forward, no activation or backward
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

VARIANTS = ["keras fit spe=32 (tuned)", "keras fit spe=32 + nettrain feed", "nettrain loop",
            "nettrain loop, no determinism", "nettrain loop, no metric", "one batch, no gather",
            "forward+backward only", "matmuls only"]

CHILD = r'''
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, sys.argv[4])
import numpy as np, tensorflow as tf, keras
variant, rows, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if variant not in ("keras fit spe=32 (tuned)", "nettrain loop, no determinism"):
    tf.config.experimental.enable_op_determinism()
from nettrain.training import engine, feed as FD
F, B = 20, 256
rng = np.random.default_rng(0)
x = rng.normal(size=(rows, F)).astype("float32")
y = (x @ rng.normal(size=(F, 1))).astype("float32")
keras.utils.set_random_seed(0)
inp = keras.Input((F,), name="numeric")
h = keras.layers.Dense(64, activation="relu")(inp)
h = keras.layers.Dense(64, activation="relu")(h)
model = keras.Model({"numeric": inp}, keras.layers.Dense(1)(h))
metrics = [] if variant in ("keras fit spe=32 (tuned)", "nettrain loop, no metric") else ["mae"]
model.compile("adam", "mean_squared_error", metrics=metrics, steps_per_execution=32)
steps = -(-rows // B)

class Timer(keras.callbacks.Callback):
    times = []
    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        Timer.times.append(time.perf_counter() - self.t)

xt, yt = {"numeric": tf.constant(x)}, tf.constant(y)
if variant == "keras fit spe=32 (tuned)":
    model.fit({"numeric": x}, y, batch_size=B, epochs=epochs, verbose=0, callbacks=[Timer()])
elif variant == "keras fit spe=32 + nettrain feed":
    cursor = FD.EpochCursor(1)
    model.fit(FD.training_dataset(xt, y, batch_size=B, seed=0, cursor=cursor), epochs=epochs, verbose=0,
              shuffle=False, callbacks=[cursor, Timer()])
elif variant.startswith("nettrain loop"):
    engine.ArrayLoop(model, xt, yt, batch_size=B, seed=0, steps_per_call=32).fit(
        initial_epoch=0, epochs=epochs, callbacks=[Timer()])
else:
    xb, yb = {"numeric": tf.constant(x[:B])}, tf.constant(y[:B])
    w = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    if variant == "one batch, no gather":
        def one():
            return model.train_step((xb, yb))
    elif variant == "forward+backward only":
        def one():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
            return tape.gradient(loss, model.trainable_variables)[0][0, 0]
    else:
        def one():
            a = xb["numeric"]
            for k in w:
                a = tf.matmul(a, k)
            return a[0, 0]

    @tf.function
    def run(count):
        out = one()
        for _ in tf.range(count - 1):
            out = one()
        return out

    for _ in range(epochs):
        t = time.perf_counter()
        for first in range(0, steps, 32):
            run(tf.constant(min(32, steps - first)))
        Timer.times.append(time.perf_counter() - t)
timed = Timer.times[1:] or Timer.times
print(json.dumps(rows / (sum(timed) / len(timed))))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    root = str(Path(__file__).resolve().parent.parent)
    child = Path(tempfile.mkdtemp(prefix="nettrain-profile-")) / "child.py"  # AutoGraph reads the source
    child.write_text(CHILD)
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeat):
        for v in VARIANTS:
            out = subprocess.run([sys.executable, str(child), v, str(args.rows), str(args.epochs), root],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if out.returncode != 0:
                raise SystemExit(f"{v} failed:\n{out.stderr[-3000:]}")
            rates[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
    child.unlink()
    child.parent.rmdir()
    base = float(np.mean(rates[VARIANTS[0]]))
    print(f"bench MLP, {args.rows} x 20, batch 256, {args.epochs} epochs (first not timed), {args.repeat} runs each")
    print(f"  {'variant':<36} {'samples/s':>12} {'vs tuned':>9}")
    for v in VARIANTS:
        r = float(np.mean(rates[v]))
        print(f"  {v:<36} {r:>12,.0f} {r / base:8.2f}x")


if __name__ == "__main__":
    main()
