"""One plain function per command, usable from Python and tests without Typer.

Imports that pull in TensorFlow (model/, training/) happen inside the functions that need them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from nettrain.config import Config, load_config
from nettrain.errors import UsageError


def fit(config: str | Path, overrides: Iterable[str] = (), *, run_dir: str | Path | None = None,
        resume: str | Path | None = None, quiet: bool = False, json_output: bool = False, force: bool = False):
    """Train from a config file; returns a `FitResult` (run directory, metrics)."""
    cfg = load_config(config, overrides)
    from nettrain.training.fit import run_fit

    return run_fit(cfg, run_dir=Path(run_dir) if run_dir else None,
                   resume=Path(resume) if resume else None, quiet=quiet, json_output=json_output, force=force)


def retrain(checkpoint: str | Path, *, epochs: int | None = None, overrides: Iterable[str] = (),
            data: str | Path | None = None, run_dir: str | Path | None = None, quiet: bool = False,
            json_output: bool = False):
    """N more epochs from an .h5 checkpoint or a run directory; returns a `FitResult`."""
    from nettrain.lifecycle.retrain import retrain as _retrain

    return _retrain(checkpoint, epochs=epochs, overrides=overrides, data=data, run_dir=run_dir, quiet=quiet,
                    json_output=json_output)


def validate(config: str | Path, overrides: Iterable[str] = (), *, build: bool = False) -> str:
    """Check a config; with `build`, also load the data and build the model. Returns a report."""
    cfg = load_config(config, overrides)
    lines = [f"{config}: valid", describe(cfg)]
    if build:
        from nettrain.training.runtime import quiet_native_stderr  # imports TensorFlow without its start-up chatter

        from nettrain.data import load_dataset
        from nettrain.model import build_model, model_summary

        dataset = load_dataset(cfg)
        with quiet_native_stderr():
            model = build_model(cfg, dataset)
        s = dataset.schema
        lines.append(f"data: {dataset.n_rows} rows, task {s.task}, {len(s.columns)} feature columns"
                     + (f", {len(s.class_names)} classes" if s.class_names else ""))
        lines.append(model_summary(model))
    return "\n".join(lines)


def describe(cfg: Config) -> str:
    src = cfg.data.source if cfg.data.source is not None else f"train={cfg.data.train}"
    if not isinstance(src, str):
        src = src.generator
    t = cfg.training
    opt = t.optimizer if isinstance(t.optimizer, str) else t.optimizer["name"]
    loss = t.loss if isinstance(t.loss, str) else t.loss["name"]
    return (f"name {cfg.name}, seed {cfg.seed}, data {src}, {len(cfg.model.layers)} layers "
            f"(+ {cfg.model.output if isinstance(cfg.model.output, str) else cfg.model.output.type} head), "
            f"loss {loss}, optimizer {opt}, {t.epochs} epochs, batch {t.batch_size}")


def evaluate(target: str | Path, *, data: str | Path | None = None, split: str | None = None,
             fail_under: Iterable[str] = (), json_output: bool = False):
    """Measure a run directory or .h5 on its run's split or a data file; prints the tables (or one
    JSON object), writes eval-<name>.json into the run, raises GateFailed when a gate is missed.
    Returns an `EvalResult`."""
    from nettrain.lifecycle.evaluate import run_evaluate

    return run_evaluate(target, data=data, split=split, fail_under=fail_under, json_output=json_output)


def predict(target: str | Path, input: str | Path, *, output: str | Path | None = None, proba: bool = False):
    """Predictions for the rows of INPUT as a pandas DataFrame (written to `output`, .csv or .parquet, when given)."""
    from nettrain.lifecycle.predict import predict as _predict

    return _predict(target, input, output=output, proba=proba)


def schema() -> dict[str, Any]:
    """JSON Schema of the config file."""
    s = Config.model_json_schema()
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["title"] = "nettrain experiment config"
    return s


def init_config(data: str | Path, target: str) -> str:
    """A starting config for a data file: column types guessed, task inferred, sane defaults."""
    from nettrain.data import suggest_config

    return suggest_config(Path(data), target)


def list_runs(directory: str | Path) -> None:
    from nettrain.report.runs import print_runs

    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"no runs directory at {root}")
    print_runs(root)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
