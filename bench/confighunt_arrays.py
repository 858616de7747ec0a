"""The `arrays` family of `bench/confighunt.py`: configs drawn from what docs/config.md allows beside
tables (image folders, .npz arrays, bundled sets and generators, int sequences of text, extends,
`${env:...}`, plugins). Its data is written by `write_data`; `config` draws one config."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
ENV = {"HUNT_OPTIMIZER": "adam", "HUNT_SOURCE": "flat.npz"}   # what the `${env:...}` configs read


def write_data(folder: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_shapes", ROOT / "data" / "make_shapes.py")
    shapes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shapes)
    shapes.make(folder / "shapes", per_class=8, size=16, mode="RGB")
    shapes.make(folder / "gray", per_class=8, size=20, mode="L")
    rng = np.random.default_rng(1)
    n = 180
    seq = rng.normal(size=(n, 12, 3)).astype("float32")
    np.savez(folder / "seq.npz", x=seq, y=(seq[:, :, 0].mean(axis=1) > 0).astype("int64") + (seq[:, 0, 1] > 1))
    flat = rng.normal(size=(n, 10))
    np.savez(folder / "flat.npz", x=flat, y=flat @ rng.normal(size=10) + rng.normal(scale=0.1, size=n))
    words = np.array(["good", "bad", "fine", "awful", "great", "meh", "the", "a", "movie", "plot"])
    texts = [" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(n)]
    label = ["pos" if t.count("good") + t.count("great") > t.count("bad") + t.count("awful") else "neg"
             for t in texts]
    pd.DataFrame({"text": texts, "y": label}).to_csv(folder / "sents.csv", index=False)
    shutil.copy(ROOT / "configs" / "plugins" / "iris_objects.py", folder / "objects.py")
    (folder / "base.yaml").write_text(yaml.safe_dump({
        "seed": 3, "training": {"epochs": 2, "batch_size": 16, "optimizer": {"name": "adam", "learning_rate": 0.01}},
        "callbacks": {"early_stopping": {"patience": 1}}, "output": {"dir": "runs"}}))


def _dense(d) -> dict:
    return {"type": "Dense", "units": d.pick(4, 8, 16), "activation": d.pick("relu", "tanh", "gelu")}


def _images(d) -> tuple[dict, list]:
    gray = d.maybe(0.3)
    images: dict = {"size": d.pick([16, 16], [12, 20], [8, 8])}
    if d.maybe():
        images["color"] = d.pick("rgb", "grayscale")
    if d.maybe(0.3):
        images["bad"] = d.pick("error", "skip")
    layers = []
    if d.maybe(0.3):
        layers.append({"type": "RandomFlip", "mode": "horizontal"})
    for _ in range(d.r.randint(0, 2)):
        layers.append({"type": "Conv2D", "filters": d.pick(4, 8), "kernel_size": 3,
                       "padding": d.pick("same", "valid"), "activation": "relu"})
        if d.maybe():
            layers.append({"type": "MaxPooling2D"})
    layers.append(d.pick({"type": "Flatten"}, {"type": "GlobalAveragePooling2D"}))
    if d.maybe():
        layers.append(_dense(d))
    return {"source": "gray" if gray else "shapes", "images": images}, layers


def _sequences(d) -> tuple[dict, list]:
    layers = []
    kind = d.pick("conv", "lstm", "gru", "flat")
    if kind == "conv":
        layers += [{"type": "Conv1D", "filters": 6, "kernel_size": 3, "activation": "relu"},
                   d.pick({"type": "GlobalAveragePooling1D"}, {"type": "Flatten"})]
    elif kind == "flat":
        layers += [{"type": "Flatten"}, _dense(d)]
    else:
        layers += [{"type": kind.upper(), "units": 6, **({"return_sequences": True} if d.maybe(0.3) else {})}]
        if layers[-1].get("return_sequences"):
            layers.append({"type": "GlobalAveragePooling1D"})
    return {"source": "seq.npz"}, layers


def _words(d) -> tuple[dict, list]:
    column = {"type": "text", "output_mode": "int", "sequence_length": d.pick(6, 10)}
    if d.maybe():
        column["max_tokens"] = d.pick(8, 50)
    layers = [{"type": "Embedding", "input_dim": 60, "output_dim": 4}]
    layers += d.pick([{"type": "GlobalAveragePooling1D"}], [{"type": d.pick("LSTM", "GRU"), "units": 4}],
                     [{"type": "Conv1D", "filters": 4, "kernel_size": 2}, {"type": "GlobalAveragePooling1D"}])
    return {"source": "sents.csv", "target": "y", "columns": {"text": column}}, layers


def _bundled(d) -> tuple[dict, list]:
    if d.maybe(0.6):
        data = {"source": f"sklearn:{d.pick('iris', 'breast_cancer', 'wine', 'digits', 'diabetes')}"}
    else:
        data = {"source": d.pick({"generator": "make_regression", "n_samples": 150, "n_features": 3, "noise": 5.0},
                                 {"generator": "make_classification", "n_samples": 150, "n_features": 6,
                                  "n_informative": 3, "n_classes": 3},
                                 {"generator": "make_blobs", "n_samples": 150, "centers": 3, "n_features": 2})}
    return data, [_dense(d) for _ in range(d.r.randint(0, 2))]


def config(d, i: int) -> dict:
    shape = d.pick("images", "sequences", "flat", "words", "bundled", "plugins")
    if shape == "images":
        data, layers = _images(d)
    elif shape == "sequences":
        data, layers = _sequences(d)
    elif shape == "flat":
        data, layers = {"source": "${env:HUNT_SOURCE}" if d.maybe() else "flat.npz"}, [_dense(d)]
    elif shape == "words":
        data, layers = _words(d)
    else:
        data, layers = _bundled(d)
        if shape == "plugins":
            data = {"source": "sklearn:iris"}
            layers = [{"type": "GatedDense", "units": 8, "activation": "relu"}]
    split: dict = {}
    if d.maybe():
        split["test"] = d.pick(0.0, 0.2)
    if d.maybe():
        split["validation"] = d.pick(0.0, 0.2)
    if d.maybe(0.15):
        split["folds"] = 2
        if d.maybe():
            split["refit"] = d.pick(True, "ensemble")
    if split:
        data["split"] = split
    cfg: dict = {"name": f"a{i}", "data": data, "model": {"layers": layers}}
    if d.maybe(0.3):
        cfg["extends"] = "base.yaml"
        cfg["training"] = {"epochs": 2}
    else:
        cfg["seed"] = d.r.randint(0, 99)
        cfg["training"] = {"epochs": 2, "batch_size": d.pick(1, 8, 32, 500)}
        cfg["output"] = {"dir": "runs"}
        if d.maybe(0.3):
            cfg["training"]["optimizer"] = d.pick("${env:HUNT_OPTIMIZER}", "${env:HUNT_MISSING,rmsprop}", "sgd")
    if shape == "plugins":
        cfg["plugins"] = ["objects.py"]
        cfg["preprocessing"] = {"labels": "one_hot"}
        cfg["training"]["loss"] = {"name": "SmoothedCrossentropy", "smoothing": 0.05}
        cfg["training"]["metrics"] = ["accuracy", "confidence"]
    if d.maybe(0.4):
        cfg["callbacks"] = {"checkpoint": d.pick({"save_best_only": True}, {"filename": "m{epoch}.keras"}),
                            **({"lr_schedule": {"type": "cosine", "decay_steps": 10}} if d.maybe() else {}),
                            **({"gradient_stats": {"every": 1}} if d.maybe(0.3) else {})}
    if d.maybe(0.1):
        cfg["sweep"] = {"trials": 2, "params": {"training.optimizer.learning_rate": {"log_uniform": [1e-3, 1e-1]}}}
    if d.maybe(0.1):
        cfg["runtime"] = {"mixed_precision": "mixed_bfloat16"}
    return cfg


def predict_input(cfg: dict, folder: Path) -> Path | None:
    """What a user would hand `predict` for this config's model: the image folder's first class, or
    the file itself (None for a bundled set or a generator: no file to hand)."""
    source = cfg["data"]["source"]
    if not isinstance(source, str) or ":" in source:
        return None
    if source in ("shapes", "gray"):
        return folder / source / "circle"
    return folder / ("flat.npz" if source.startswith("$") else source)
