"""Train every example config in configs/ fully and check its held-out test figure against a goal.

    python bench/quality.py [CONFIG ...]      (make quality)

Each config is trained once, in this process, through `nettrain.api.fit` (quiet, JSON output),
with its own seed; run directories go to a temporary folder that is removed afterwards. The
table prints config, metric, value, goal and pass/fail; the exit code is 1 if any goal is missed
(or a config failed to train), 0 otherwise.

penguins has a relative goal: a scikit-learn HistGradientBoostingClassifier is trained on exactly
the rows nettrain puts in train + validation (same imputation: the split's inputs after
nettrain's missing-value policy; categorical columns ordinal-encoded and declared categorical),
scored on nettrain's test rows, and the network must reach that accuracy minus 0.02.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIGS = ROOT / "configs"
BASELINE_MARGIN = 0.02


@dataclass
class Goal:
    split: str            # which split's metrics ("test"; "mean.validation" for a k-fold run)
    metric: str           # Keras metric name in metrics.json ("loss", "accuracy", ...)
    op: str               # ">=" or "<="
    value: float | None   # None: computed by `baseline`
    label: str = ""       # shown instead of the metric name
    baseline: Callable[[Path], tuple[float, str]] | None = None  # config path -> (value, description)


def hgb_baseline(config_path: Path) -> tuple[float, str]:
    """Test accuracy of HistGradientBoostingClassifier on nettrain's own split of the config's data."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.preprocessing import OrdinalEncoder

    from nettrain.config import load_config
    from nettrain.data import NUMERIC_INPUT, load_dataset

    cfg = load_config(config_path)
    with warnings_off():
        ds = load_dataset(cfg)
    others = [c.name for c in ds.schema.other_columns if c.kind == "categorical"]
    texts = [c.name for c in ds.schema.other_columns if c.kind == "text"]
    if texts:
        raise ValueError(f"the HGB baseline does not handle text columns ({', '.join(texts)})")

    fit_parts = [s for s in (ds.train, ds.validation) if s is not None and len(s)]

    def block(split, cat_encoder=None):
        numeric = split.inputs.get(NUMERIC_INPUT)
        parts = [np.asarray(numeric, dtype=np.float64)] if numeric is not None else []
        if others:
            cats = np.concatenate([split.inputs[name].reshape(-1, 1) for name in others], axis=1).astype(str)
            parts.append(cat_encoder.transform(cats))
        return np.concatenate(parts, axis=1)

    encoder = None
    if others:
        cats = np.concatenate([np.concatenate([s.inputs[name].reshape(-1, 1) for name in others], axis=1)
                               for s in fit_parts]).astype(str)
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                 dtype=np.float64).fit(cats)
    n_numeric = ds.train.inputs[NUMERIC_INPUT].shape[1] if NUMERIC_INPUT in ds.train.inputs else 0
    categorical = [False] * n_numeric + [True] * len(others)
    x_fit = np.concatenate([block(s, encoder) for s in fit_parts])
    y_fit = np.concatenate([s.y for s in fit_parts])
    model = HistGradientBoostingClassifier(categorical_features=np.array(categorical) if others else None,
                                           random_state=cfg.seed)
    model.fit(x_fit, y_fit)
    acc = float((model.predict(block(ds.test, encoder)) == ds.test.y).mean())
    return acc, (f"HGB {acc:.4f} - {BASELINE_MARGIN} (HistGradientBoosting trained on nettrain's "
                 f"{len(y_fit)} train+validation rows, scored on its {len(ds.test)} test rows)")


GOALS: dict[str, Goal] = {
    "regression": Goal("test", "loss", "<=", 30.0, "test loss (MSE)"),
    "iris": Goal("test", "accuracy", ">=", 0.93),
    "breast_cancer": Goal("test", "accuracy", ">=", 0.95),
    "blobs": Goal("test", "accuracy", ">=", 0.95),
    "wine": Goal("test", "accuracy", ">=", 0.95),
    "digits": Goal("test", "accuracy", ">=", 0.95),
    "penguins": Goal("test", "accuracy", ">=", None, baseline=hgb_baseline),
    # The Keras tutorials, on the datasets Keras caches (skipped when the cache file is absent):
    "mnist": Goal("test", "accuracy", ">=", 0.97),
    "imdb": Goal("test", "accuracy", ">=", 0.85),
    "boston_kfold": Goal("mean.validation", "mae", "<=", 3.5, "mean fold validation MAE ($1000s)"),
}


def keras_cache_missing(config_path: Path) -> str | None:
    """The cache file a `keras:NAME` config needs when it is not on this machine, else None."""
    import yaml

    from nettrain.data.keras_sets import keras_cache_dirs

    source = (yaml.safe_load(config_path.read_text()).get("data") or {}).get("source")
    if not (isinstance(source, str) and source.startswith("keras:")):
        return None
    file = f"{source.split(':', 1)[1]}.npz"
    dirs = keras_cache_dirs()
    return None if any((d / file).is_file() for d in dirs) else str(dirs[0] / file)


@contextlib.contextmanager
def warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run_one(path: Path, runs: Path, log: io.StringIO) -> dict:
    from nettrain import api

    stem = path.stem
    goal = GOALS.get(stem)
    row = {"config": stem, "metric": "-", "value": "-", "goal": "(no goal)", "result": "-", "note": ""}
    if goal is not None:
        row["metric"] = goal.label or f"{goal.split} {goal.metric}"
        row["goal"] = f"{goal.op} baseline - {BASELINE_MARGIN}" if goal.baseline else f"{goal.op} {goal.value:g}"
    missing = keras_cache_missing(path)
    if missing:
        row.update(result="skip", note=f"needs {missing} (the Keras dataset cache; nettrain does not download)")
        return row
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log), warnings_off():
            result = api.fit(path, run_dir=runs / stem, quiet=True, json_output=True)
    except BaseException as e:  # noqa: BLE001  (a config that cannot train is a missed goal)
        if isinstance(e, KeyboardInterrupt):
            raise
        row.update(result="FAIL", note=f"{type(e).__name__}: {e}".splitlines()[0][:200])
        log.write(traceback.format_exc())
        row["seconds"] = time.perf_counter() - start
        return row
    row["seconds"] = time.perf_counter() - start
    row["epochs"] = result.epochs_done
    if goal is None:
        test = result.metrics.get("test", {})
        if test:
            name = "accuracy" if "accuracy" in test else "loss"
            row.update(metric=f"test {name}", value=f"{test[name]:.4f}")
        return row
    target, note = goal.value, ""
    if goal.baseline is not None:
        try:
            base, note = goal.baseline(path)
        except Exception as e:  # noqa: BLE001
            row.update(result="FAIL", note=f"baseline failed: {type(e).__name__}: {e}")
            log.write(traceback.format_exc())
            return row
        target = base - BASELINE_MARGIN
    split_metrics = result.metrics
    for part in goal.split.split("."):
        split_metrics = split_metrics.get(part, {})
    value = split_metrics.get(goal.metric)
    if goal.baseline is not None:
        row["goal"] = f"{goal.op} {target:.4f}"
    row["note"] = note
    if value is None or not math.isfinite(value):
        row.update(value=str(value), result="FAIL",
                   note=f"no finite {goal.split} {goal.metric} in metrics {sorted(result.metrics)}")
        return row
    ok = value >= target if goal.op == ">=" else value <= target
    row.update(value=f"{value:.4f}", result="pass" if ok else "FAIL")
    return row


def print_table(rows: list[dict]) -> None:
    heads = ["config", "metric", "value", "goal", "result", "epochs", "seconds"]
    cells = [[str(r.get("config")), str(r.get("metric")), str(r.get("value")), str(r.get("goal")),
              str(r.get("result")), str(r.get("epochs", "-")), f"{r.get('seconds', 0):.1f}"] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    right = {2, 5, 6}

    def line(values):
        return "  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))

    print(line(heads))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))
    notes = [(r["config"], r["note"]) for r in rows if r.get("note")]
    if notes:
        print()
        for name, note in notes:
            print(f"{name}: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="configs to check (default: configs/*.yaml)")
    parser.add_argument("--keep", type=Path, default=None, help="write run directories here instead of a temp dir")
    parser.add_argument("--verbose", action="store_true", help="show each run's training log")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.configs] or sorted(CONFIGS.glob("*.yaml"))
    if not paths:
        print(f"no configs in {CONFIGS}", file=sys.stderr)
        return 1

    total = time.perf_counter()
    rows = []
    with contextlib.ExitStack() as stack:
        runs = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nettrain-quality-")))
        runs.mkdir(parents=True, exist_ok=True)
        for path in paths:
            print(f"training {path.name} ...", file=sys.stderr, flush=True)
            log = io.StringIO()
            row = run_one(path, runs, log)
            rows.append(row)
            if args.verbose or row["result"] == "FAIL":
                sys.stderr.write(log.getvalue())
    print()
    print_table(rows)
    elapsed = time.perf_counter() - total
    failed = [r["config"] for r in rows if r["result"] == "FAIL"]
    print()
    print(f"{len(rows) - len(failed)}/{len(rows)} configs met their goal in {elapsed:.0f} s"
          + (f"; missed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
