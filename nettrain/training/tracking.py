"""`tracking.mlflow: URI`: a nettrain run logged to MLflow, where teams already look.

One MLflow run per nettrain run directory (the directory stays the record; MLflow gets a copy):

- when the run starts: the resolved config as params (dotted keys, as `--set` writes them), tags
  `nettrain.run_dir` (the run directory), `nettrain.kind` (`run`, `kfold`, `fold`), `nettrain.config`;
  its id goes into run.json `mlflow` so that `--resume` and an in-place `retrain` continue the same
  MLflow run (a new MLflow run for a run that had none first gets the epochs already done);
- every epoch (after it is on disk): the loss, each metric, the `val_` ones and `learning_rate`,
  at step = the epoch number (from 1);
- at the end: the final metrics as `<split>_<metric>` (`test_accuracy`), `config.yaml`,
  `metrics.json`, `model.h5` and the `plots/` files as artifacts, status FINISHED (FAILED when the
  loss became NaN; an interrupted run stays RUNNING until `--resume` finishes it).

A sweep (`nettrain sweep`) is one MLflow run (kind `sweep`, named `sweep-<study>`: the search space
as params, each trial's value at step = its number, the best value and params at the end) and each
trial's run is nested in it (`trial-NNNN`, tags `nettrain.trial`, `nettrain.study`, `nettrain.trial_state`,
its value as the metric `value`); the same sweep run again continues the same parent run.

A k-fold run is one MLflow run (kind `kfold`) with one nested run per fold (kind `fold`, its parent
the k-fold run's); the k-fold run gets `cv_mean_<split>_<metric>` and `cv_std_...`, the averaged
learning curves and, with `data.split.refit`, the refit model's epochs, metrics and model.h5.

`mlflow` is imported only here and only when `tracking.mlflow` is set (`nettrain --help`,
`validate` and `schema` never load it). Every MLflow call runs in a thread of its own and is given
`tracking.timeout` seconds (MLflow's own retries are turned off, its HTTP timeout set to the same):
before training the store is really used (the experiment read or made), and a missing extra, a
store that refuses, errs or does not answer in time is a ConfigError naming `tracking.mlflow`
(exit 2); once training runs, the first call that fails or takes too long is one warning and the
logging stops for the rest of the command: the run itself goes on.

A password in the URI never leaves memory: `Config.to_dict()` (config.yaml, checkpoint metadata,
the params logged) and run.json hold the URI masked (`user:***@`), messages are scrubbed, and
MLflow's own "View run" line (which would print the URI to stdout) is off.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from nettrain.config.schema import Config
from nettrain.errors import ConfigError
from nettrain.store import rundir
from nettrain.training.mlflow_store import (GAVE_UP, bounded, experiment_name, failure_reason, mlflow_client,  # noqa: F401
                                          preflight, ready_experiment, shown, timeout_of, uri_of)

RECORD_KEY = "mlflow"          # run.json: {"uri", "experiment_id", "run_id"}
KIND_TAG = "nettrain.kind"
RUN_DIR_TAG = "nettrain.run_dir"
_MAX_PARAM_VALUE = 6000         # MLflow's limit on a param value
_MAX_KEY = 250
_BATCH = 100                    # params per log_batch call (MLflow's limit)
UPLOAD_BYTES_PER_SECOND = 1e6   # an artifact upload gets tracking.timeout plus a second per MB


def params_of(config: dict[str, Any]) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys (list items by index), values as YAML/JSON
    writes them (`true`, `null`, `0.001`), keys cut to MLflow's characters and length."""
    out: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list) and value:
            for i, v in enumerate(value):
                walk(v, f"{key}.{i}")
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            if len(text) > _MAX_PARAM_VALUE:
                text = text[: _MAX_PARAM_VALUE - 3] + "..."
            out[_key(key)] = text

    walk(config, "")
    return out


def _key(name: str) -> str:
    return re.sub(r"[^\w./\- :]", "_", str(name))[:_MAX_KEY] or "_"


class Tracker:
    """One nettrain run's MLflow run. Each call gets tracking.timeout seconds; the first that fails or
    takes longer is one warning, then silence for the rest of the command (every run on that URI)."""

    def __init__(self, client, run_id: str | None, uri: str, timeout: float):
        self.client, self.run_id, self.uri, self.timeout = client, run_id, uri, timeout
        self.broken = uri in GAVE_UP

    def _safely(self, what: str, call: Callable[[], Any], extra: float = 0.0) -> None:
        if self.broken or self.uri in GAVE_UP:
            self.broken = True
            return
        try:
            bounded(call, self.timeout + extra)
        except Exception as e:  # noqa: BLE001 - the store's trouble never stops the training
            self.give_up(what, e)

    def give_up(self, what: str, e: BaseException) -> None:
        """Stop logging to this URI for the rest of the command, with one warning."""
        self.broken = True
        if self.uri in GAVE_UP:
            return
        GAVE_UP.add(self.uri)
        warnings.warn(f"MLflow at {shown(self.uri)}: {what} failed ({failure_reason(e, self.uri)}); nothing more is "
                      "logged there (training goes on; the run directory holds everything)", stacklevel=2)

    def metrics(self, values: dict[str, Any], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(_key(k), float(v), now, step or 0) for k, v in values.items() if _number(v)]
        for i in range(0, len(batch), 1000):
            self._safely("logging metrics", lambda part=batch[i:i + 1000]: self.client.log_batch(
                self.run_id, metrics=part))

    def history(self, rows: Iterable[dict[str, Any]]) -> None:
        """metrics.csv rows (a run's epochs done before this MLflow run existed)."""
        for row in rows:
            epoch = row.get("epoch")
            if epoch is not None:
                self.metrics({k: v for k, v in row.items() if k not in ("epoch", "seconds")}, step=int(epoch))

    def final(self, metrics: dict[str, Any], prefix: str = "") -> None:
        """{split: {metric: value}} as `<prefix><split>_<metric>`."""
        flat = {f"{prefix}{split}_{name}": value for split, values in metrics.items() if isinstance(values, dict)
                for name, value in values.items()}
        self.metrics(flat)

    def artifacts(self, out: Path, names: Iterable[str]) -> None:
        """Files of the run directory (`plots` is the folder's PNG files), kept under the same names; an
        upload gets a second more per MB."""
        for name in names:
            path = out / name
            if path.is_dir():
                for png in sorted(path.glob("*.png")):
                    self._safely(f"uploading {name}/{png.name}",
                                 lambda p=png, n=name: self.client.log_artifact(self.run_id, str(p), n),
                                 _upload_seconds(png))
            elif path.is_file():
                self._safely(f"uploading {name}", lambda p=path: self.client.log_artifact(self.run_id, str(p)),
                             _upload_seconds(path))

    def end(self, status: str = "FINISHED") -> None:
        self._safely(f"ending the run ({status})", lambda: self.client.set_terminated(self.run_id, status))


def _upload_seconds(path: Path) -> float:
    return path.stat().st_size / UPLOAD_BYTES_PER_SECOND


def _number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _opened(cfg: Config, uri: str):
    """(experiment id, client, a Tracker with no run yet) of the store at `uri`, ready for a run (its
    experiment made); the Tracker is `broken` when the store cannot be used now."""
    experiment_id = ready_experiment(cfg, uri)
    client = mlflow_client(cfg, uri)
    return experiment_id, client, Tracker(client, None, uri, timeout_of(cfg))


def open_run(cfg: Config, out: Path, record: rundir.RunRecord, *, kind: str, run_name: str | None = None,
             parent_run_id: str | None = None, tags: dict[str, str] | None = None,
             history: Iterable[dict[str, Any]] = ()) -> Tracker | None:
    """The MLflow run of the nettrain run `out`: the one its run.json names (continued: `--resume`,
    an in-place retrain, the refit of a k-fold run), else a new one (params and tags logged, the
    `history` rows as its first epochs, its id written into run.json). None without tracking.mlflow.
    A store that cannot be used on its first use in this process is a ConfigError (exit 2); one
    that fails later gives a Tracker that logs nothing (one warning)."""
    uri = uri_of(cfg)
    if uri is None:
        return None
    experiment_id, client, tracker = _opened(cfg, uri)
    if tracker.broken:
        return tracker
    if parent_run_id is None and kind in ("run", "kfold") and _NESTED:  # a sweep trial's run
        parent_run_id, run_name = _NESTED[-1]["parent"], run_name or _NESTED[-1]["name"]
        tags = {**_NESTED[-1]["tags"], **(tags or {})}
    all_tags = {RUN_DIR_TAG: str(Path(out).resolve()), KIND_TAG: kind, "nettrain.config": cfg.source.file or "",
                "mlflow.source.name": "nettrain", **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    try:
        run_id = bounded(lambda: _continued(client, record.data.get(RECORD_KEY), uri), tracker.timeout)
        if run_id is not None:
            tracker.run_id = run_id
            return tracker
        run = bounded(lambda: client.create_run(experiment_id, run_name=run_name or Path(out).name, tags=all_tags),
                      tracker.timeout)
    except Exception as e:  # noqa: BLE001 - training goes on without MLflow
        tracker.give_up("opening the run", e)
        return tracker
    tracker.run_id = run.info.run_id
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in params_of(cfg.to_dict()).items()]  # to_dict masks the URI's password
    for i in range(0, len(params), _BATCH):
        tracker._safely("logging the config", lambda part=params[i:i + _BATCH]: client.log_batch(
            tracker.run_id, params=part))
    tracker.history(history)
    record.update(**{RECORD_KEY: {"uri": shown(uri), "experiment_id": experiment_id, "run_id": tracker.run_id}})
    if kind != "fold":
        print(f"mlflow: run {tracker.run_id} in experiment {experiment_name(cfg)!r} at {shown(uri)}", file=sys.stderr,
              flush=True)
    return tracker


def _continued(client, known: Any, uri: str) -> str | None:
    """The id of the MLflow run that run.json names (its URI stored masked), running again; None when
    there is none or it is gone from the store."""
    if not (isinstance(known, dict) and known.get("uri") in (uri, shown(uri)) and isinstance(known.get("run_id"), str)):
        return None
    try:
        run = client.get_run(known["run_id"])
    except Exception:  # noqa: BLE001 - gone from the store: a new run
        return None
    if run.info.lifecycle_stage != "active":
        return None
    if run.info.status != "RUNNING":
        client.update_run(run.info.run_id, status="RUNNING")
    return run.info.run_id


def recorded_run_id(run_dir: Path) -> str | None:
    """The MLflow run id a run directory's run.json names, or None."""
    try:
        data = json.loads((Path(run_dir) / rundir.RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    known = data.get(RECORD_KEY) if isinstance(data, dict) else None
    run_id = known.get("run_id") if isinstance(known, dict) else None
    return run_id if isinstance(run_id, str) else None


# ------------------------------------------------------------------------------ a training session

def session_callback(s, nan_guard=None):
    """The Keras callback that logs each epoch of the session `s` (a `training.fit.Session`) to its
    MLflow run, or None without tracking.mlflow. A k-fold fold (run.json `fold` and `parent`) is a
    run nested in its k-fold run's."""
    cfg, record = s.prep.cfg, s.record
    if uri_of(cfg) is None:
        return None
    fold, parent = record.data.get("fold"), record.data.get("parent")
    is_fold = isinstance(fold, int) and isinstance(parent, str)
    if record.data.get("folds") and not is_fold:
        kind = "kfold"
    else:
        kind = "fold" if is_fold else "run"
    tracker = open_run(cfg, s.out, record, kind=kind, run_name=f"fold-{fold}" if is_fold else None,
                       parent_run_id=recorded_run_id(Path(parent)) if is_fold else None,
                       tags={"nettrain.fold": str(fold)} if is_fold else None, history=s.history)
    return _callback_class()(tracker, nan_guard)


_CLASS: list[type] = []


def _callback_class() -> type:
    """`EpochLogger`, a Keras callback (made on first use: keras is not imported by this module)."""
    if _CLASS:
        return _CLASS[0]
    import keras

    from nettrain.training.callbacks import current_lr

    class EpochLogger(keras.callbacks.Callback):
        """Each epoch's logs (and the learning rate it used) to MLflow at step = the epoch (from 1)."""

        def __init__(self, tracker: Tracker, nan_guard=None):
            super().__init__()
            self.tracker, self.nan_guard = tracker, nan_guard
            self._lr: float | None = None

        def on_epoch_begin(self, epoch, logs=None):
            self._lr = current_lr(self.model)

        def on_epoch_end(self, epoch, logs=None):
            values = {k: v for k, v in (logs or {}).items() if _number(v)}
            if self._lr is not None and "learning_rate" not in values:
                values["learning_rate"] = self._lr
            self.tracker.metrics(values, step=epoch + 1)

        def on_train_end(self, logs=None):
            if self.nan_guard is not None and getattr(self.nan_guard, "where", None) is not None:
                self.tracker.end("FAILED")

    _CLASS.append(EpochLogger)
    return EpochLogger


def tracker_in(callbacks: Iterable[Any]) -> Tracker | None:
    for c in callbacks:
        tracker = getattr(c, "tracker", None)
        if isinstance(tracker, Tracker):
            return tracker
    return None


FINAL_FILES = (rundir.CONFIG, rundir.METRICS_JSON, rundir.MODEL, rundir.KERAS_EXPORT, rundir.PLOTS)


def finish_session(callbacks: Iterable[Any], out: Path, metrics: dict[str, Any]) -> None:
    """The end of a session that completed: its final metrics, files and status FINISHED."""
    tracker = tracker_in(callbacks)
    if tracker is None:
        return
    tracker.final(metrics, prefix="final_")  # model.h5's metrics (the restored best epoch's weights, if restored)
    tracker.artifacts(out, FINAL_FILES)
    tracker.end("FINISHED")


def finish_kfold(cfg: Config, out: Path, record: rundir.RunRecord, metrics: dict[str, Any]) -> None:
    """The end of a k-fold run: `cv_mean_*`/`cv_std_*`, metrics.json, the averaged curves, FINISHED."""
    if uri_of(cfg) is None:
        return
    tracker = open_run(cfg, out, record, kind="kfold")
    tracker.final(metrics.get("mean") or {}, prefix="cv_mean_")
    tracker.final(metrics.get("std") or {}, prefix="cv_std_")
    tracker.artifacts(out, (rundir.CONFIG, rundir.METRICS_JSON, rundir.PLOTS))
    tracker.end("FINISHED")


# ------------------------------------------------------------------------------ a sweep

_NESTED: list[dict[str, Any]] = []  # the sweep runs that new runs nest in (nested_in), innermost last
SWEEP_KIND = "sweep"
VALUE = "value"                       # a trial's value: on its run (once) and on the sweep's (step = trial)


@contextlib.contextmanager
def nested_in(parent_run_id: str | None, *, run_name: str | None = None, tags: dict[str, str] | None = None):
    """Within the block a new MLflow run (a sweep trial's run, or its k-fold run) is nested in the run
    `parent_run_id`, named `run_name`, with `tags`; nothing changes when it is None."""
    if not parent_run_id:
        yield
        return
    entry = {"parent": parent_run_id, "name": run_name, "tags": dict(tags or {})}
    _NESTED.append(entry)
    try:
        yield
    finally:
        _NESTED.remove(entry)


def open_sweep(cfg: Config, folder: Path, study: str) -> str | None:
    """The sweep's own MLflow run (kind `sweep`, tag `nettrain.run_dir` = the sweep folder): the one a
    study run before here left (continued, RUNNING again), else a new one with the search space as
    params. None without tracking.mlflow or when the store fails now (one warning; the sweep goes on)."""
    uri = uri_of(cfg)
    if uri is None:
        return None
    experiment_id, client, tracker = _opened(cfg, uri)
    if tracker.broken:
        return None
    where = str(Path(folder).resolve())

    def find_or_make() -> str:
        runs = client.search_runs([experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{SWEEP_KIND}'",
                                  max_results=1000)
        for run in runs:
            if run.data.tags.get(RUN_DIR_TAG) == where and run.data.tags.get("nettrain.study") == study:
                if run.info.status != "RUNNING":
                    client.update_run(run.info.run_id, status="RUNNING")
                return run.info.run_id
        run = client.create_run(experiment_id, run_name=f"sweep-{study}",
                                tags={RUN_DIR_TAG: where, KIND_TAG: SWEEP_KIND, "nettrain.study": study,
                                      "nettrain.config": cfg.source.file or "", "mlflow.source.name": "nettrain"})
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in params_of({"sweep": cfg.to_dict().get("sweep") or {}}).items()]
        for i in range(0, len(params), _BATCH):
            client.log_batch(run.info.run_id, params=params[i:i + _BATCH])
        return run.info.run_id

    try:
        return bounded(find_or_make, tracker.timeout * 2)
    except Exception as e:  # noqa: BLE001 - the sweep goes on without MLflow
        tracker.give_up("opening the sweep's run", e)
        return None


def trial_done(cfg: Config, run_dir: Path, parent_run_id: str, number: int, state: str, value: float | None,
               params: dict[str, Any]) -> None:
    """A trial's end on MLflow: its run (the one its run.json names) gets the swept params (as the config
    already holds them), tag `nettrain.trial_state` and its value as the metric `value`; the sweep's run
    gets the value at step = the trial's number."""
    uri = uri_of(cfg)
    if uri is None:
        return
    client = mlflow_client(cfg, uri)
    run_id = recorded_run_id(run_dir)
    trial = Tracker(client, run_id, uri, timeout_of(cfg))
    if run_id is not None:
        from mlflow.entities import Param, RunTag

        logged = params_of(dict(params))
        trial._safely("logging the trial", lambda: client.log_batch(
            run_id, params=[Param(_key(k), v) for k, v in logged.items()],
            tags=[RunTag("nettrain.trial_state", state)]))
        if value is not None:
            trial.metrics({VALUE: value})
    if value is not None:
        Tracker(client, parent_run_id, uri, timeout_of(cfg)).metrics({VALUE: value}, step=number)


def finish_sweep(cfg: Config, parent_run_id: str | None, best: dict[str, Any] | None, status: str = "FINISHED") -> None:
    """The end of a sweep on its MLflow run: the best trial's value (`best_value`), number and params
    (tags `best.<key>`: a later sweep of the same study may find another), then `status`."""
    uri = uri_of(cfg)
    if uri is None or not parent_run_id:
        return
    client = mlflow_client(cfg, uri)
    tracker = Tracker(client, parent_run_id, uri, timeout_of(cfg))
    if best is not None and best.get("value") is not None:
        from mlflow.entities import RunTag

        tracker.metrics({"best_value": best["value"]})
        tags = [RunTag("nettrain.best_trial", str(best.get("number")))]
        tags += [RunTag(_key(f"best.{k}"), json.dumps(v, default=str)) for k, v in (best.get("params") or {}).items()]
        tracker._safely("logging the best trial", lambda: client.log_batch(parent_run_id, tags=tags))
    tracker.end(status)
