"""Configs as users write them from the spec, drawn at random, through every command: looking for
failures, not scores (the configs' counterpart of `bench/smoke.py`'s tables).

    python bench/confighunt.py [--configs N] [--seed S] [--keep DIR] [--family tables|arrays|both]

One generated table (300 rows: numbers with gaps, a skewed column, integer codes, a categorical
column with gaps, dates, short text, yes/no words, a row id, and four targets: binary, 3 classes,
12 classes, regression), written as CSV, TSV, Parquet and JSON lines, cut into train/validation/test
files, and its first 40 rows as tiny.csv.
Each config draws, within what docs/config.md allows: the task and target; the source (one file of
four formats, or separate train/validation/test files); the split (test, validation, shuffle,
stratify, folds with refit true/ensemble and members); streaming; column overrides (text with each
output_mode, int sequences, dates, codes as categorical with an embedding); feature lists and the
id; every preprocessing value; 0-3 layers (Dense, Dropout, BatchNormalization, LayerNormalization,
GaussianNoise, Activation, regularizers) and initializers; the output head; batch size 1-1000; the
optimizer; loss and metrics that fit the task; class weights; early stopping, checkpoint templates,
every lr_schedule type, TensorBoard, gradient statistics; a sweep section; determinism and mixed
precision.

`--family arrays` draws from the rest of the docs instead: an image folder (RGB or grayscale, resized,
bad images skipped or refused) with convolutions and pooling; .npz arrays of sequences (Conv1D, LSTM,
GRU, pooling, Reshape/Flatten) and of flat rows; the bundled sklearn sets and the three generators;
a text column as int sequences with Embedding and a recurrent or convolutional stack; configs that
extend a base config, read `${env:...}` values, or use a plugin's layer, loss and metric. `both`
alternates the two.

Then, in this process (2 epochs): `fit`, `evaluate RUN`, `predict`, `retrain` (1 epoch),
`export` (savedmodel, keras or onnx), `inspect`, `evaluate --split train`, `baseline`, `lr-find`,
`plot`, `compare`, and for a config with a `sweep` section (2 trials over the learning rate, the
batch size and the first layer's units) `sweep` and `sweep-status`; then four drawn among the
commands again with the options the docs give them (validate --build/--print-config --origins, inspect
and baseline of the config, evaluate --fail-under (exit 3 is an answer), runs --sort/--last/--filter/
--json, plot -m of two runs, inspect --batch --json, baseline --json, export --force, lr-find --min
--max, fit --resume of the finished run, clean, predict --proba to parquet, evaluate --data --strict).
Each step ends ok, refused (exit 2 with a
message: printed, to be read: a refusal of a config the docs allow is a bug too) or FAILED (any
other exit; the traceback printed). After a refused fit the config stops; after another refused
step the next step runs. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

ROWS = 300
FORMATS = ("csv", "tsv", "parquet", "jsonl")
TARGETS = {"binary": "bin", "multiclass": "multi", "regression": "reg"}
TINY = 40  # rows of tiny.csv: splits and folds with few rows each


def write_table(folder: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = ROWS
    df = pd.DataFrame({
        "rowid": [f"r{i:04d}" for i in range(n)],
        "num": rng.normal(size=n), "skew": rng.lognormal(size=n), "code": rng.integers(1, 6, n),
        "color": rng.choice(np.array(["red", "green", "blue", None], dtype=object), n),
        "when": pd.date_range("2020-01-01", periods=n, freq="D").astype(str),
        "note": rng.choice(["good thing", "bad stuff here", "meh", "very good indeed"], n),
        "flag": rng.choice(["yes", "no"], n),
    })
    df.loc[rng.choice(n, 20), "num"] = np.nan
    logit = df["num"].fillna(0) + (df["color"] == "red") - 0.2 * df["code"]
    df["bin"] = np.where(logit > 0, "pos", "neg")
    df["multi"] = pd.cut(logit, [-9, -0.7, 0.3, 9], labels=["lo", "mid", "hi"]).astype(str)
    df["reg"] = 3 * df["num"].fillna(0) + df["skew"] + rng.normal(size=n)
    df["many"] = [f"k{int(v)}" for v in pd.qcut(logit + rng.normal(scale=0.3, size=n), 12, labels=False)]
    df.to_csv(folder / "d.csv", index=False)
    df.to_csv(folder / "d.tsv", sep="\t", index=False)
    df.to_parquet(folder / "d.parquet", index=False)
    df.to_json(folder / "d.jsonl", orient="records", lines=True)
    df.iloc[:180].to_csv(folder / "train.csv", index=False)
    df.iloc[180:240].to_csv(folder / "validation.csv", index=False)
    df.iloc[240:].to_csv(folder / "test.csv", index=False)
    df.iloc[:TINY].to_csv(folder / "tiny.csv", index=False)
    return df


class Draw:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def pick(self, *xs):
        return self.r.choice(xs)

    def maybe(self, p: float = 0.5) -> bool:
        return self.r.random() < p


def config(d: Draw, i: int) -> dict:
    task = d.pick(*TARGETS)
    target = "many" if task == "multiclass" and d.maybe(0.3) else TARGETS[task]
    drop = [t for t in (*TARGETS.values(), "many") if t != target] + (["when"] if d.maybe(0.7) else [])
    source = "tiny.csv" if d.maybe(0.1) else f"d.{d.pick(*FORMATS)}"
    data: dict = {"source": source, "target": target, "drop": drop}
    if d.maybe(0.3):
        data["task"] = task
    split: dict = {}
    if d.maybe():
        split["test"] = d.pick(0.0, 0.1, 0.2, 0.3)
    if d.maybe():
        split["validation"] = d.pick(0.0, 0.1, 0.25)
    if d.maybe(0.2):
        split["shuffle"] = False
        if task != "regression":
            split["stratify"] = False
    elif d.maybe(0.2) and task != "regression":
        split["stratify"] = d.pick(True, False)
    if d.maybe(0.25):
        split["folds"] = d.pick(2, 3)
        if d.maybe():
            split["refit"] = d.pick(True, "ensemble")
        if d.maybe(0.3):
            split["members"] = 2
    if split:
        data["split"] = split
    if d.maybe(0.2) and not data["source"].endswith(".jsonl"):
        data["stream"] = True
    if d.maybe(0.2):
        for part in d.pick(("train", "test"), ("train", "validation", "test"), ("train", "validation")):
            data[part] = f"{part}.csv"
        del data["source"]
        data.pop("split", None)
    if d.maybe(0.2):
        data["features"] = d.r.sample(["num", "skew", "code", "color", "note", "flag"], d.r.randint(1, 5))
    if d.maybe(0.2):
        data["id"] = "rowid"
    columns: dict = {}
    if d.maybe(0.3):
        mode = {"output_mode": d.pick("count", "tf_idf", "multi_hot")} if d.maybe() else {}
        columns["note"] = {"type": "text", **mode}
    elif d.maybe(0.1):
        columns["note"] = {"type": "text", "output_mode": "int", "sequence_length": 6}
    if d.maybe(0.3) and "when" not in drop:
        columns["when"] = {"type": "date"}
    if d.maybe(0.2):
        columns["code"] = {"type": "categorical", **({"embedding_dim": 3} if d.maybe() else {})}
    if columns:
        data["columns"] = columns
    pre: dict = {"missing": d.pick("mean", "median", "most_frequent", "drop_rows")}
    if d.maybe():
        pre["numeric"] = d.pick("standard", "minmax", "none", "quantile", "piecewise", "auto")
    if d.maybe():
        pre["categorical"] = d.pick("one_hot", "embedding")
    if task == "regression" and d.maybe():
        pre["target"] = d.pick("standard", "none")
    labels = "auto"
    if task != "regression" and d.maybe(0.3):
        labels = pre["labels"] = d.pick("sparse", "one_hot")
    layers = [d.pick({"type": "Dense", "units": d.pick(4, 16), "activation": d.pick("relu", "tanh", "gelu", "selu")},
                     {"type": "Dropout", "rate": 0.2}, {"type": "BatchNormalization"}, {"type": "LayerNormalization"},
                     {"type": "GaussianNoise", "stddev": 0.1}, {"type": "Activation", "activation": "relu"},
                     {"type": "Dense", "units": 8, "kernel_regularizer": {"type": "L2", "l2": 0.01}})
              for _ in range(d.r.randint(0, 3))]
    model: dict = {"layers": layers} if layers or d.maybe() else {}
    if d.maybe(0.2):
        model["kernel_initializer"] = d.pick("he_normal", "zeros", {"type": "RandomNormal", "stddev": 0.1})
    if d.maybe(0.15) and task == "binary" and labels == "auto":
        model["output"] = {"type": "Dense", "units": 1, "activation": "sigmoid"}
    training: dict = {"epochs": 2}
    if d.maybe(0.9):
        training["batch_size"] = d.pick(1, 7, 32, 1000)
    if d.maybe():
        training["optimizer"] = d.pick("adam", "sgd", "rmsprop", "adamw", "nadam", "adagrad",
                                       {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": True},
                                       {"name": "adam", "learning_rate": 0.003, "clipnorm": 1.0})
    if d.maybe(0.4):
        if task == "regression":
            training["loss"] = d.pick("mse", "mae", {"name": "huber", "delta": 1.0}, "log_cosh")
        elif task == "binary" and labels == "auto":
            training["loss"] = d.pick("binary_crossentropy", {"name": "binary_focal_crossentropy", "gamma": 2.0})
        elif labels != "sparse":
            training["loss"] = "categorical_crossentropy" if labels == "one_hot" or task == "binary" else \
                "sparse_categorical_crossentropy"
    if d.maybe(0.4):
        if task == "regression":
            training["metrics"] = d.pick(["mae"], ["mse"], ["mape"], ["mae", "mse"])
        elif task == "binary" and labels != "sparse":
            training["metrics"] = d.pick(["accuracy"], ["auc"], ["precision", "recall"],
                                         [{"name": "auc", "curve": "PR"}])
        else:
            training["metrics"] = ["accuracy"]
    if task != "regression" and d.maybe(0.3):
        training["class_weight"] = "balanced"
    callbacks: dict = {}
    if d.maybe():
        callbacks["early_stopping"] = d.pick({"patience": 1}, {"patience": 0, "mode": "min"},
                                             {"monitor": "val_loss", "patience": 1, "min_delta": 0.01,
                                              "restore_best_weights": True})
    if d.maybe(0.3):
        callbacks["checkpoint"] = d.pick({"filename": "e{epoch:02d}-{val_loss:.3f}.h5", "keep": 1},
                                         {"save_best_only": True}, {"filename": "m{epoch}.keras"})
    if d.maybe(0.4):
        callbacks["lr_schedule"] = d.pick({"type": "step_decay", "drop": 0.5, "every": 1},
                                          {"type": "exponential", "decay_rate": 0.9, "decay_steps": 10},
                                          {"type": "cosine", "decay_steps": 20, "alpha": 0.1},
                                          {"type": "reduce_on_plateau", "monitor": "val_loss", "factor": 0.5,
                                           "patience": 1, "min_lr": 1e-5},
                                          {"type": "warmup_cosine", "warmup_epochs": 1})
    if d.maybe(0.1):
        callbacks["tensorboard"] = {"histogram_freq": 1}
    if d.maybe(0.15):
        callbacks["gradient_stats"] = {"every": 1}
    cfg = {"name": f"c{i}", "seed": d.r.randint(0, 99), "data": data, "preprocessing": pre, "model": model,
           "training": training, "callbacks": callbacks, "output": {"dir": "runs"}}
    if d.maybe(0.25):
        params: dict = {"training.optimizer.learning_rate": {"log_uniform": [1e-3, 1e-1]},
                        "training.batch_size": {"choice": [16, 64]}}
        if layers and layers[0]["type"] == "Dense":
            params["model.layers.0.units"] = {"int": [4, 16], "step": 4}
        sampler = d.pick("tpe", "random", "grid", "cmaes")
        if sampler == "grid":  # (a grid needs every param to be a choice)
            params = {"training.batch_size": {"choice": [16, 64]},
                      "training.optimizer.learning_rate": {"choice": [0.001, 0.01]}}
        cfg["sweep"] = {"trials": 2, "sampler": sampler, "params": params}
        if d.maybe():
            cfg["sweep"]["pruner"] = d.pick("none", "median", "hyperband", {"median": {"warmup_epochs": 1}})
        if d.maybe(0.3):
            cfg["sweep"]["metric"] = "loss" if task == "regression" else d.pick("loss", "accuracy")
            cfg["sweep"]["direction"] = d.pick("auto", "minimize" if cfg["sweep"]["metric"] == "loss" else "maximize")
    if d.maybe(0.15):
        cfg["runtime"] = {"deterministic": d.pick(True, False)}
    elif d.maybe(0.1):
        cfg["runtime"] = {"mixed_precision": "mixed_bfloat16"}
    return cfg


def steps(d: Draw, cfg: dict, path: Path, folder: Path, i: int, source: Path | None
          ) -> list[tuple[str, list[str]]]:
    run = folder / f"run{i}"
    split = cfg["data"].get("split", {})
    model_run = run / "fold-1" if split.get("folds", 1) > 1 and not split.get("refit") else run
    return [("fit", ["fit", path, "--run-dir", run, "--quiet"]),
            ("evaluate", ["evaluate", run, "--json"])] + \
        ([("predict", ["predict", model_run, source, "-o", folder / f"p{i}.csv"])] if source else []) + \
        [("retrain", ["retrain", model_run, "--epochs", "1", "--run-dir", folder / f"run{i}-more"]),
            ("export", ["export", model_run, "--format", d.pick("savedmodel", "keras", "onnx"),
                        "-o", folder / f"x{i}"]),
            ("inspect", ["inspect", model_run]),
            ("evaluate --split train", ["evaluate", model_run, "--split", "train", "--json"]),
            ("baseline", ["baseline", run]),
            ("lr-find", ["lr-find", path, "--steps", "20", "-o", folder / f"lr{i}"]),
            ("plot", ["plot", run, "-o", folder / f"plot{i}.png"]),
            ("compare", ["compare", model_run, folder / f"run{i}-more"])] + \
        ([("sweep", ["sweep", path, "--jobs", "1", "--json"]),
          ("sweep-status", ["sweep-status", folder / "runs" / cfg["name"] / "sweep", "--json"])]
         if "sweep" in cfg else []) + flags(d, cfg, path, folder, i, source, run, model_run)


def flags(d: Draw, cfg: dict, path: Path, folder: Path, i: int, source: Path | None, run: Path,
          model_run: Path) -> list[tuple[str, list[str]]]:
    """The commands again with options the docs give them, a few drawn per config."""
    metric = d.pick("loss", "accuracy", "mae", "auc", "val_loss")
    options = [
        ("validate --build --print-config --origins", ["validate", path, d.pick("--build", "--print-config")]
         + (["--origins"] if d.maybe() else [])),
        ("evaluate --fail-under", ["evaluate", run, "--fail-under", f"{metric}={d.pick(0.0, 0.5, 1e9)}"]),
        ("runs", ["runs", folder / "runs", *d.pick([], ["--sort", metric], ["--last", "2"], ["--json"],
                                                    ["--filter", "status=completed"])]),
        ("plot -m", ["plot", run, model_run, "-m", metric, "-o", folder / f"plotm{i}.png"]),
        ("inspect --batch --json", ["inspect", model_run, "--batch", str(d.pick(1, 7, 64)), "--json"]),
        ("baseline --json", ["baseline", d.pick(run, path), "--json"]),
        ("inspect CONFIG", ["inspect", path, "--json"]),
        ("export --force", ["export", model_run, "--format", d.pick("savedmodel", "litert"), "-o", folder / f"x{i}",
                            "--force", "--json"]),
        ("lr-find --min --max", ["lr-find", path, "--min", "1e-4", "--max", "0.5", "--steps", "12", "--json",
                                 "-o", folder / f"lrm{i}"]),
        ("fit --resume", ["fit", path, "--resume", run, "--quiet"]),
        ("clean", ["clean", run]),
    ]
    if source is not None:
        options += [("predict --proba parquet", ["predict", model_run, source, "--proba",
                                                 "-o", folder / f"p{i}.parquet"]),
                    ("evaluate --data --strict", ["evaluate", model_run, "--data", source, "--json"]
                     + (["--strict"] if d.maybe() else []))]
    return d.r.sample(options, min(len(options), 4))


# exit 3 of a command with --fail-under is its answer (the metric missed the value), not a failure
ANSWERS = {"evaluate --fail-under": {3}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=40, help="how many configs (default 40)")
    parser.add_argument("--seed", type=int, default=1, help="the draw's seed (default 1)")
    parser.add_argument("--keep", type=Path, help="keep the configs and runs in this folder")
    parser.add_argument("--family", choices=("tables", "arrays", "both"), default="tables",
                        help="configs over the generated table, over arrays/images/sets, or alternating")
    args = parser.parse_args(argv)
    import confighunt_arrays as arrays

    os.environ.update(arrays.ENV)

    from typer.testing import CliRunner

    from nettrain.cli import app

    runner = CliRunner()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="confighunt-"))
    folder.mkdir(parents=True, exist_ok=True)
    write_table(folder)
    arrays.write_data(folder)
    draw = Draw(args.seed)
    counts = {"ok": 0, "refused": 0, "FAILED": 0}
    for i in range(args.configs):
        table = args.family == "tables" or (args.family == "both" and i % 2 == 0)
        cfg = config(draw, i) if table else arrays.config(draw, i)
        path = folder / f"c{i}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        failed = False
        source = folder / cfg["data"].get("source", "d.csv") if table else arrays.predict_input(cfg, folder)
        for name, command in steps(draw, cfg, path, folder, i, source):
            result = runner.invoke(app, [str(a) for a in command])
            if result.exit_code == 0 or result.exit_code in ANSWERS.get(name, ()):
                continue
            said = (result.output or "").strip().splitlines()
            if result.exit_code == 2 and (result.exception is None or isinstance(result.exception, SystemExit)):
                counts["refused"] += 1
                print(f"c{i} {name}: refused: {said[-1] if said else ''}", flush=True)
                if name == "fit":
                    break
                continue
            counts["FAILED"] += 1
            failed = True
            tb = "" if result.exception is None or isinstance(result.exception, SystemExit) else \
                "".join(traceback.format_exception(result.exception))[-2000:]
            print(f"c{i} {name}: FAILED (exit {result.exit_code}): {' | '.join(said[-3:])}\n{tb}", flush=True)
            break
        if not failed:
            counts["ok"] += 1
            print(f"c{i}: ok", flush=True)
    print(f"{args.configs} configs: {counts['ok']} through every step they reached, {counts['refused']} refusals, "
          f"{counts['FAILED']} failures")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
