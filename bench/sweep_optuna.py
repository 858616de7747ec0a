"""The hand-written baseline of bench/sweep.py: the same search as its `nettrain sweep` config, written
the way a user would with Optuna and Keras directly (no nettrain): the same data and split, model,
search space, sampler (TPE), pruner (median, the same warm-up), epochs, early stopping and --jobs
(Optuna's n_jobs threads), on an SQLite study.

    .venv/bin/python bench/sweep_optuna.py DATA.csv --trials 20 --epochs 20 --jobs 2 --storage sqlite:///x.db

Prints one JSON line: wall seconds, trials by state, the best value.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import optuna
import pandas as pd

import keras


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--storage", required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    start = time.perf_counter()
    df = pd.read_csv(args.data)
    y = pd.Categorical(df.pop("species")).codes.astype("int32")
    x = df.to_numpy("float32")
    order = np.random.default_rng(args.seed).permutation(len(x))
    n_val = int(round(0.2 * len(x)))
    val, train = order[:n_val], order[n_val:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-7
    x = (x - mean) / std

    class Pruning(keras.callbacks.Callback):
        def __init__(self, trial):
            super().__init__()
            self.trial = trial

        def on_epoch_end(self, epoch, logs=None):
            self.trial.report(float(logs["val_loss"]), epoch + 1)
            if self.trial.should_prune():
                self.model.stop_training = True
                self.pruned = True

    def objective(trial):
        lr = trial.suggest_float("training.optimizer.learning_rate", 1e-3, 1e-1, log=True)
        units = trial.suggest_categorical("model.layers.0.units", [8, 16, 32])
        keras.utils.set_random_seed(args.seed)
        model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(units, activation="relu"),
                                  keras.layers.Dense(12, activation="relu"), keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
        pruning = Pruning(trial)
        stop = keras.callbacks.EarlyStopping("val_loss", patience=5, restore_best_weights=True)
        model.fit(x[train], y[train], validation_data=(x[val], y[val]), epochs=args.epochs, batch_size=16,
                  callbacks=[pruning, stop], verbose=0)
        if getattr(pruning, "pruned", False):
            raise optuna.TrialPruned()
        value = model.evaluate(x[val], y[val], verbose=0, return_dict=True)["loss"]
        model.save(f"trial-{trial.number}.keras")  # a user keeps each trial's model too (in the working folder)
        return value if math.isfinite(value) else float("nan")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", storage=args.storage, study_name="hand",
                                sampler=optuna.samplers.TPESampler(seed=args.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3,
                                                                   n_warmup_steps=math.ceil(args.epochs / 4) + 1))
    study.optimize(objective, n_trials=args.trials, n_jobs=args.jobs)
    states = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    print(json.dumps({"wall": time.perf_counter() - start, "states": states, "best": study.best_value}))


if __name__ == "__main__":
    main()
