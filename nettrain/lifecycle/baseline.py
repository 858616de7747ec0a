"""`nettrain baseline CONFIG|RUN` and `fit --baseline`: does the network earn its keep against
gradient boosting and a linear model on the same rows?

The rows are the data stage's, split as nettrain splits them (a run's: re-created from its saved
config and checked against its fingerprint, as `evaluate` re-creates them); both baselines are fitted
on the training rows and scored on every split (`report.baseline`). With a run, the network's numbers
come from its metrics.json and the result is also written into the run as `baseline.json` (under the
run's lock, atomically, as `evaluate` writes eval-*.json). No TensorFlow here.

Streamed data (`data.stream`) is read into memory for the baselines when every split holds at most
MAX_ROWS rows, and refused (one line, exit 2) beyond: scikit-learn fits rows held in memory. A k-fold
config with `data.split.refit` (a refit or an ensemble: a model of every non-test row) and such a run
fit the baselines on those rows, as the model was, and score them there and on the test split, beside
the run's metrics.json `refit`; a k-fold config or run without a refit is refused (give one fold's
run directory).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nettrain.errors import UsageError
from nettrain.lifecycle.evaluate import write_into_run
from nettrain.lifecycle.runrows import is_stream, pick_rows, run_dataset, run_parts, split_parts
from nettrain.report.baseline import BOOSTING, LINEAR, NETWORK, Scored, fit_baselines
from nettrain.store import atomic, rundir
from nettrain.store.record import RunRecord, read_record

# The most rows of any split the baselines read from a streamed dataset into memory.
MAX_ROWS = 1_000_000

FIT_ON = "train"


@dataclass
class BaselineResult:
    """The baselines (and, for a run, the network) scored on every split of the same rows."""

    task: str
    seed: int
    rows: dict[str, int]                           # rows per split, in split order
    metrics: list[str]                             # the metric names, in the order shown
    models: list[Scored]                           # the network first (a run), then the baselines
    notes: list[str] = field(default_factory=list)
    config: Path | None = None                     # the config the rows came from
    run_dir: Path | None = None                    # the run (its rows, its network, where baseline.json goes)
    name: str | None = None
    fit_on: str = FIT_ON
    file: Path | None = None                       # baseline.json, once written

    @property
    def files(self) -> list[Path]:
        return [self.file] if self.file is not None else []

    def model(self, key: str) -> Scored | None:
        return next((m for m in self.models if m.name == key), None)

    def to_dict(self) -> dict[str, Any]:
        """`baseline --json`, and baseline.json: every model's metrics per split (docs/json-output.schema.json)."""
        return {"run_dir": str(self.run_dir) if self.run_dir else None,
                "config": str(self.config) if self.config else None, "name": self.name, "task": self.task,
                "seed": self.seed, "fit_on": self.fit_on, "rows": dict(self.rows), "metrics": list(self.metrics),
                "models": {m.name: atomic.finite(m.to_dict()) for m in self.models}, "notes": list(self.notes),
                "files": [str(f) for f in self.files]}


def baseline(target: str | Path, overrides: Iterable[str] = ()) -> BaselineResult:
    """The baselines of a config file (`overrides`: its --set) or of a run directory (written into it)."""
    path = Path(target)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as e:
        raise UsageError(f"cannot access {path}: {e.strerror or e}") from None
    if is_dir:
        return of_run(path, overrides)
    if not is_file:
        raise UsageError(f"no such config file or run directory: {path}")
    return of_config(path, overrides)


def check_config(cfg) -> None:
    """What the baselines refuse in a config, said before anything slow (fit --baseline: before training)."""
    if cfg.data.split.folds > 1 and not cfg.data.split.refit:
        raise cfg.error("data.split.folds", f"the baselines fit one training split, and {cfg.data.split.folds}-fold "
                        "cross-validation has one per fold; use folds: 1 (--set data.split.folds=1), "
                        "data.split.refit (true or ensemble: one model of every non-test row, as the baselines), "
                        "or give `nettrain baseline` one fold's run directory (RUN/fold-1)")


def of_config(path: Path, overrides: Iterable[str] = ()) -> BaselineResult:
    from nettrain.config import load_config
    from nettrain.config.coherence import AUTO_METRICS
    from nettrain.data import load_dataset
    from nettrain.data.stream import choose, load_stream

    cfg = load_config(path, overrides)
    check_config(cfg)
    data_path = choose(cfg)
    dataset = load_stream(cfg, data_path.why) if data_path.stream else load_dataset(cfg)
    parts = split_parts(dataset, refit=True)  # k folds and a refit: every non-test row (check_config)
    metrics = cfg.training.metrics
    names = AUTO_METRICS[dataset.schema.task] if metrics == "auto" else \
        [m if isinstance(m, str) else str(m.get("name", "")) for m in metrics]
    result = _fit(dataset, parts, seed=cfg.seed, network=names, notes=[])
    result.config, result.name = path, cfg.name
    return result


def of_run(run_dir: Path, overrides: Iterable[str] = (), *, write: bool = True) -> BaselineResult:
    """The baselines of a run on its own rows, beside its network's metrics (metrics.json); written into
    the run as baseline.json with `write`."""
    if list(overrides):
        raise UsageError("--set changes a CONFIG; a run's baselines use the rows it was trained on (give a "
                         "config file to change them)")
    record = read_record(run_dir)
    if record is None:
        raise UsageError(f"{run_dir} is not a run directory (no readable {rundir.RUN}); give a config file or a "
                         "run directory")
    if record.is_kfold_parent and record.refit is None:
        raise UsageError(f"{run_dir} is a k-fold run of {record.folds} folds, each with its own training rows, and "
                         f"no refit model; give one fold's run directory, e.g. {run_dir / 'fold-1'}")
    config = rundir.read_run_config(run_dir)
    dataset = run_dataset(config, record, run_dir / rundir.CONFIG, why="for the baselines",
                          instead="; the baselines need the rows the run was trained on")
    network = _network_metrics(run_dir, record)
    if record.is_kfold_parent:  # its model.h5 is the refit (or the folds' ensemble): metrics.json `refit`
        network = _splits_of(_read_metrics(run_dir, record).get("refit"))
    seed = config.get("seed")
    result = _fit(dataset, run_parts(dataset, record), seed=seed if isinstance(seed, int) else 42,
                  network=_metric_order(network), notes=[], network_metrics=network)
    result.run_dir, result.config = run_dir, run_dir / rundir.CONFIG
    result.name = record.name
    if write:
        result.file = write_into_run(run_dir / rundir.BASELINE, result.to_dict, stamp="written")
    return result


def after_fit(result):
    """`fit --baseline`: the baselines of the run `result` trained, set on it as `result.baseline` (None
    for a worker of a cluster, whose run is the chief's). A baseline that cannot be made (streamed
    data beyond MAX_ROWS rows) is a warning: the run trained stands."""
    result.baseline = None
    run_dir = getattr(result, "run_dir", None)
    if run_dir is None or read_record(run_dir) is None:
        return result
    try:
        result.baseline = of_run(Path(run_dir))
    except UsageError as e:
        warnings.warn(f"baselines not made: {e.message}")
    return result


def _fit(dataset, parts: dict[str, Any], *, seed: int, network: list[str], notes: list[str],
         network_metrics: dict[str, dict[str, float]] | None = None) -> BaselineResult:
    splits = _in_memory(dataset, parts)
    if FIT_ON not in splits:
        raise UsageError(f"{dataset.source}: no training rows to fit the baselines on")
    models, names, more = fit_baselines(dataset.schema, splits, seed=seed, network=network, fit_on=FIT_ON)
    shown = [name for name, _ in names]
    if network_metrics is not None:
        own = {split: {m: values[m] for m in shown if m in values}
               for split, values in network_metrics.items() if split in splits}
        models.insert(0, Scored(NETWORK, "nettrain network (metrics.json)", metrics=own))
        if any(meaning == "auc" and any(name in v for v in own.values()) for name, meaning in names):
            more.append("the network's numbers are its metrics.json's: Keras's auc is approximated with 200 "
                        "thresholds, the baselines' is exact (nettrain evaluate gives the network's auc_exact)")
    order = {NETWORK: 0, BOOSTING: 1, LINEAR: 2}
    models.sort(key=lambda m: order.get(m.name, 9))
    return BaselineResult(task=dataset.schema.task, seed=seed, rows={s: len(rows) for s, rows in splits.items()},
                          metrics=shown, models=models, notes=notes + more)


def _in_memory(dataset, parts: dict[str, Any]) -> dict[str, Any]:
    """{split: Split} of the splits that have rows, in split order; a stream's read into memory (up to
    MAX_ROWS rows a split)."""
    from nettrain.data.types import Split

    out = {}
    for split in rundir.SPLITS:
        part = parts.get(split)
        if part is None:
            continue
        if not is_stream(dataset):
            if len(part):
                out[split] = part
            continue
        rows = sum(dataset.code_rows.get(c, 0) for c in part)
        if rows > MAX_ROWS:
            raise UsageError(f"{dataset.source}: the data is streamed ({dataset.why}) and its {split} split holds "
                             f"{rows:,} rows; the baselines hold each split in memory, up to {MAX_ROWS:,} rows")
        if rows:
            out[split] = Split.concat(list(pick_rows(dataset, parts, split)))
    return out


def _read_metrics(run_dir: Path, record: RunRecord) -> dict[str, Any]:
    """The run's metrics.json, else run.json's final_metrics ({} when neither is readable)."""
    try:
        found = json.loads((run_dir / rundir.METRICS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        found = record.final_metrics
    return found if isinstance(found, dict) else {}


def _network_metrics(run_dir: Path, record: RunRecord) -> dict[str, dict[str, float]]:
    """{split: {metric: value}} of the run's network: metrics.json, else run.json's final_metrics."""
    return _splits_of(_read_metrics(run_dir, record))


def _splits_of(found: Any) -> dict[str, dict[str, float]]:
    """{split: {metric: number}} of a metrics mapping ({} when it is none)."""
    if not isinstance(found, dict):
        return {}
    return {split: {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for split, values in found.items() if split in rundir.SPLITS and isinstance(values, dict)}


def _metric_order(network: dict[str, dict[str, float]]) -> list[str]:
    names: list[str] = []
    for values in network.values():
        names += [m for m in values if m not in names]
    return names
