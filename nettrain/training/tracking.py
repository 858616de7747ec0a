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

A k-fold run is one MLflow run (kind `kfold`) with one nested run per fold (kind `fold`, its parent
the k-fold run's); the k-fold run gets `cv_mean_<split>_<metric>` and `cv_std_...`, the averaged
learning curves and, with `data.split.refit`, the refit model's epochs, metrics and model.h5.

`mlflow` is imported only here and only when `tracking.mlflow` is set (`nettrain --help`,
`validate` and `schema` never load it). A missing extra or an unreachable server is a ConfigError
naming `tracking.mlflow` (exit 2) before training starts; a store that fails once training runs is
a warning and the logging stops: the run itself goes on.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from nettrain.config.schema import Config
from nettrain.errors import ConfigError
from nettrain.store import rundir

INSTALL = "pip install 'nettrain[mlflow]'"
RECORD_KEY = "mlflow"          # run.json: {"uri", "experiment_id", "run_id"}
KIND_TAG = "nettrain.kind"
RUN_DIR_TAG = "nettrain.run_dir"
_MAX_PARAM_VALUE = 6000         # MLflow's limit on a param value
_MAX_KEY = 250
_BATCH = 100                    # params per log_batch call (MLflow's limit)


def uri_of(cfg: Config) -> str | None:
    return getattr(getattr(cfg, "tracking", None), "mlflow", None)


def shown(uri: str) -> str:
    """The URI for messages, a password in it masked."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", uri)


# ------------------------------------------------------------------------------ before training

def preflight(cfg: Config) -> None:
    """Before the data is read: the mlflow extra is installed and the store can be reached (a sqlite
    database's folder exists, an http server answers). Nothing is imported without tracking.mlflow."""
    uri = uri_of(cfg)
    if uri is None:
        return
    try:
        installed = importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        installed = False
    if not installed:
        raise cfg.error("tracking.mlflow", f"logging to MLflow needs the mlflow package, which is not installed: "
                                           f"{INSTALL} (or pip install mlflow-skinny), or remove tracking.mlflow")
    scheme = uri.split(":", 1)[0].lower()
    if scheme == "sqlite":
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir():
            raise cfg.error("tracking.mlflow", f"{shown(uri)}: the folder {folder} of the MLflow database does not "
                                               "exist; create it or name another database file")
    elif scheme in ("http", "https"):
        _probe(cfg, uri)


def _probe(cfg: Config, uri: str) -> None:
    """Any HTTP answer counts; a refused connection, an unknown host or a timeout is a ConfigError
    now rather than MLflow's minutes of retries later."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/api/2.0/mlflow/experiments/get-by-name",
                     params={"experiment_name": cfg.name or "nettrain"}, timeout=(5, 15))
    except requests.exceptions.RequestException as e:
        reason = _reason(e)
        raise cfg.error("tracking.mlflow", f"cannot reach the MLflow server at {shown(uri)} ({reason}); start it "
                                           "(e.g. mlflow server --port 5000) or fix the URI") from None


def _reason(e: BaseException) -> str:
    text = str(getattr(e, "message", None) or e)
    for pattern in ("Connection refused", "Name or service not known", "nodename nor servname",
                    "timed out", "No route to host", "Temporary failure in name resolution"):
        if pattern.lower() in text.lower():
            return pattern.lower()
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------------------------ the MLflow run

def _mlflow_client(cfg: Config, uri: str):
    preflight(cfg)  # the extra (a session started without the fit command's preflight: retrain, a sweep)
    if uri.startswith("file:"):
        import os

        # MLflow 3 keeps its file store "in maintenance mode" and refuses it unless asked: the user asked
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise cfg.error("tracking.mlflow", f"the mlflow package cannot be imported ({_reason(e)}); reinstall it: "
                                           f"{INSTALL}") from None
    return MlflowClient(tracking_uri=uri)


def _experiment(cfg: Config, client, uri: str) -> str:
    """The id of the experiment named after the config (`name`), made when missing: for a sqlite
    store its artifacts go to `mlartifacts/` next to the database file (MLflow's default would be
    `./mlruns` in whatever folder the command runs from)."""
    from mlflow.exceptions import MlflowException

    name = cfg.name or "nettrain"
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if uri.startswith("sqlite:"):
            location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # made by another process meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise cfg.error("tracking.mlflow", f"the MLflow experiment {name!r} at {shown(uri)} is deleted; restore it "
                                           "(mlflow experiments restore) or give the config another name")
    return exp.experiment_id


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
    """One nettrain run's MLflow run. A failure after it was opened is one warning, then silence."""

    def __init__(self, client, run_id: str, uri: str):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.broken = False

    def _safely(self, what: str, call: Callable[[], Any]) -> None:
        if self.broken:
            return
        try:
            call()
        except Exception as e:  # noqa: BLE001 - the store's trouble never stops the training
            self.broken = True
            warnings.warn(f"MLflow at {shown(self.uri)}: {what} failed ({_reason(e)}); nothing more is logged "
                          f"there for this run (the run directory holds everything)", stacklevel=2)

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
        """Files of the run directory (`plots` is the folder's PNG files), kept under the same names."""
        for name in names:
            path = out / name
            if path.is_dir():
                for png in sorted(path.glob("*.png")):
                    self._safely(f"uploading {name}/{png.name}",
                                 lambda p=png, n=name: self.client.log_artifact(self.run_id, str(p), n))
            elif path.is_file():
                self._safely(f"uploading {name}", lambda p=path: self.client.log_artifact(self.run_id, str(p)))

    def end(self, status: str = "FINISHED") -> None:
        self._safely(f"ending the run ({status})", lambda: self.client.set_terminated(self.run_id, status))


def _number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def open_run(cfg: Config, out: Path, record: rundir.RunRecord, *, kind: str, run_name: str | None = None,
             parent_run_id: str | None = None, tags: dict[str, str] | None = None,
             history: Iterable[dict[str, Any]] = ()) -> Tracker | None:
    """The MLflow run of the nettrain run `out`: the one its run.json names (continued: `--resume`,
    an in-place retrain, the refit of a k-fold run), else a new one (params and tags logged, the
    `history` rows as its first epochs, its id written into run.json). None without tracking.mlflow.
    A store that cannot be opened is a ConfigError (exit 2)."""
    uri = uri_of(cfg)
    if uri is None:
        return None
    client = _mlflow_client(cfg, uri)
    known = record.data.get(RECORD_KEY)
    try:
        if isinstance(known, dict) and known.get("uri") == uri and isinstance(known.get("run_id"), str):
            try:
                run = client.get_run(known["run_id"])
            except Exception:  # noqa: BLE001 - gone from the store: a new run below
                run = None
            if run is not None and run.info.lifecycle_stage == "active":
                if run.info.status != "RUNNING":
                    client.update_run(run.info.run_id, status="RUNNING")
                return Tracker(client, run.info.run_id, uri)
        experiment_id = _experiment(cfg, client, uri)
        all_tags = {RUN_DIR_TAG: str(Path(out).resolve()), KIND_TAG: kind, "nettrain.config": cfg.source.file or "",
                    "mlflow.source.name": "nettrain", **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment_id, run_name=run_name or Path(out).name, tags=all_tags)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a store we cannot use: the user's URI, exit 2
        raise cfg.error("tracking.mlflow", f"MLflow at {shown(uri)} cannot be used: {_reason(e)}") from None
    tracker = Tracker(client, run.info.run_id, uri)
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in params_of(cfg.to_dict()).items()]
    for i in range(0, len(params), _BATCH):
        tracker._safely("logging the config", lambda part=params[i:i + _BATCH]: client.log_batch(
            tracker.run_id, params=part))
    tracker.history(history)
    record.update(**{RECORD_KEY: {"uri": uri, "experiment_id": experiment_id, "run_id": tracker.run_id}})
    if kind != "fold":
        print(f"mlflow: run {tracker.run_id} in experiment {cfg.name or 'nettrain'!r} at {shown(uri)}",
              file=sys.stderr, flush=True)
    return tracker


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
    tracker.final(metrics)
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
