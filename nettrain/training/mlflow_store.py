"""The MLflow store of `tracking.mlflow` (see `training.tracking`, which logs the runs): checked and
really used before training (`preflight`: the extra installed, the URI's place writable, the
experiment read or made), each MLflow call run in a thread of its own within `tracking.timeout`
seconds (`bounded`), and the messages that name the store with its password masked (`shown`,
`scrub`). `mlflow` is imported only inside these functions, when `tracking.mlflow` is set."""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from nettrain.config.schema import Config
from nettrain.errors import ConfigError
from nettrain.words import masked_uri, one_line

INSTALL = "pip install 'nettrain[mlflow]'"
SETUP_SECONDS = 60.0            # at least this long to make a new database's tables (MLflow's migrations)
SQL_SCHEMES = ("postgresql", "mysql", "mssql")
MASK = ":***@"
_READY: dict[tuple[str, str], str] = {}  # (uri, experiment name) -> experiment id, checked in this process
GAVE_UP: set[str] = set()               # URIs whose tracking failed during this command (reported once)


def uri_of(cfg: Config) -> str | None:
    return getattr(getattr(cfg, "tracking", None), "mlflow", None)


def timeout_of(cfg: Config) -> float:
    return float(getattr(getattr(cfg, "tracking", None), "timeout", 5.0))


shown = masked_uri  # a URI for messages and files: its password masked (one rule: words.masked_uri)


def scrub(text: str, uri: str) -> str:
    """`text` (an error message, which may quote the URI) without the URI's password."""
    text = masked_uri(text)
    try:
        password = urlsplit(uri).password
    except ValueError:
        password = None
    for secret in {password, unquote(password)} if password else ():
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


class TimedOut(Exception):
    """An MLflow call that did not return within its time."""


def bounded(call: Callable[[], Any], seconds: float) -> Any:
    """`call()` in a daemon thread, waited for `seconds` at most: its result or its exception, else
    TimedOut (the thread is left to end on its own: MLflow's HTTP timeout is set to the same)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="nettrain-mlflow", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimedOut(f"no answer within {seconds:g} s (tracking.timeout)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ------------------------------------------------------------------------------ before training

def preflight(cfg: Config) -> None:
    """At the start of a command, before the data is read: the mlflow extra is installed and the store
    is really used (the experiment read, or made), each call within tracking.timeout; else a
    ConfigError naming tracking.mlflow (exit 2). Nothing is imported without tracking.mlflow."""
    uri = uri_of(cfg)
    if uri is None:
        return
    GAVE_UP.discard(uri)
    _READY.pop((uri, experiment_name(cfg)), None)
    ready_experiment(cfg, uri)


def experiment_name(cfg: Config) -> str:
    return cfg.name or "nettrain"


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].lower().split("+")[0]


def ready_experiment(cfg: Config, uri: str) -> str:
    """The id of the config's experiment at `uri`; the store is checked on its first use in this process."""
    key = (uri, experiment_name(cfg))
    if key not in _READY:
        _check_installed(cfg)
        _check_masked(cfg, uri)
        _check_place(cfg, uri)
        client = mlflow_client(cfg, uri)
        _READY[key] = _use(cfg, uri, "reading the experiment", lambda: _experiment(cfg, client, uri),
                           timeout_of(cfg))
    return _READY[key]


def _use(cfg: Config, uri: str, what: str, call: Callable[[], Any], seconds: float) -> Any:
    """`call()` within `seconds`; any failure is a ConfigError naming tracking.mlflow."""
    try:
        return bounded(call, seconds)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a store we cannot use: the user's URI, exit 2
        raise cfg.error("tracking.mlflow", f"MLflow at {shown(uri)} cannot be used: {what} failed "
                                           f"({failure_reason(e, uri)}); fix the store or the URI, or remove "
                                           "tracking.mlflow") from None


def _check_installed(cfg: Config) -> None:
    try:
        installed = importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        installed = False
    if not installed:
        raise cfg.error("tracking.mlflow", f"logging to MLflow needs the mlflow package, which is not installed: "
                                           f"{INSTALL} (or pip install mlflow-skinny), or remove tracking.mlflow")


def _check_masked(cfg: Config, uri: str) -> None:
    """A URI read back from a run (retrain: the checkpoint's config) has its password masked."""
    if MASK in uri:
        raise cfg.error("tracking.mlflow", f"{uri}: the password of this MLflow URI is not stored with a run; "
                                           "give the URI again (--set tracking.mlflow=<URI with its password>), "
                                           "or leave it out of the URI and set MLFLOW_TRACKING_USERNAME and "
                                           "MLFLOW_TRACKING_PASSWORD")


def _check_place(cfg: Config, uri: str) -> None:
    """Quick checks with a clear reason: a local store's folder exists and can be written, a server
    answers, a database accepts a connection."""
    scheme = _scheme(uri)
    if scheme == "sqlite":
        db = Path(uri[len("sqlite:///"):])
        _check_writable(cfg, uri, db.parent, folder=True)  # sqlite writes its journal next to the file
        if db.exists():
            _check_writable(cfg, uri, db, folder=False)
            _use(cfg, uri, "reading the database", lambda: _sqlite_version(db), timeout_of(cfg))
    elif scheme == "file":
        folder = Path(unquote(urlsplit(uri).path))
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # MLflow makes the missing folders
        _check_writable(cfg, uri, folder, folder=True)
    elif scheme in ("http", "https"):
        _probe(cfg, uri)
    elif scheme in SQL_SCHEMES:
        _connect(cfg, uri)


def _sqlite_version(db: Path) -> None:
    """A file that is not an SQLite database fails here at once (MLflow would retry for minutes)."""
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(db.as_uri() + "?mode=ro", uri=True)) as con:
        con.execute("pragma schema_version").fetchone()


def _check_writable(cfg: Config, uri: str, path: Path, *, folder: bool) -> None:
    """`path` (a folder, or the database file) exists and this process may write it (a read-only
    mount says no even to root)."""
    if not path.exists():
        raise cfg.error("tracking.mlflow", f"{shown(uri)}: the folder {path} of the MLflow database does not "
                                           "exist; create it or name another database file")
    if folder and not path.is_dir():
        raise cfg.error("tracking.mlflow", f"{shown(uri)}: {path} is a file, not a folder; name another place "
                                           "for the MLflow store")
    if not os.access(path, os.W_OK):
        raise cfg.error("tracking.mlflow", f"{shown(uri)}: {path} is read-only; the MLflow store cannot be "
                                           "written there: name a writable place")


def _probe(cfg: Config, uri: str) -> None:
    """Any HTTP answer counts here (what it says is judged by the first real call); a refused
    connection, an unknown host or no answer within tracking.timeout is a ConfigError now."""
    import requests

    seconds = timeout_of(cfg)
    try:
        requests.get(uri.rstrip("/") + "/api/2.0/mlflow/experiments/get-by-name",
                     params={"experiment_name": experiment_name(cfg)}, timeout=(seconds, seconds))
    except requests.exceptions.RequestException as e:
        reason = failure_reason(TimedOut(f"no answer within {seconds:g} s (tracking.timeout)")
                         if isinstance(e, requests.exceptions.Timeout) else e, uri)
        raise cfg.error("tracking.mlflow", f"cannot reach the MLflow server at {shown(uri)} ({reason}); "
                                           "start it (e.g. mlflow server --port 5000) or fix the URI") from None


def _connect(cfg: Config, uri: str) -> None:
    """One connection to a PostgreSQL/MySQL/MSSQL store, within tracking.timeout (MLflow itself
    would retry for minutes)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    seconds = timeout_of(cfg)
    args = {"connect_timeout": max(1, math.ceil(seconds))} if _scheme(uri) in ("postgresql", "mysql") else {}

    def attempt() -> None:
        engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args=args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()

    _use(cfg, uri, "connecting to the database", attempt, seconds)


def failure_reason(e: BaseException, uri: str = "") -> str:
    text = str(getattr(e, "message", None) or e) or type(e).__name__
    for pattern in ("Connection refused", "Name or service not known", "nodename nor servname",
                    "timed out", "No route to host", "Temporary failure in name resolution"):
        if pattern.lower() in text.lower() and not isinstance(e, TimedOut):
            return pattern.lower()
    text = re.sub(r"\(Background on this error at: [^)]*\)", "", text)
    return one_line(scrub(text, uri), 200)


# ------------------------------------------------------------------------------ the MLflow run

_CLIENTS: dict[str, Any] = {}


def _mlflow_env(uri: str, seconds: float) -> None:
    """MLflow's knobs: no retries with back-off (minutes against a 503), its HTTP timeout our own, no
    "View run <URL>" on stdout (results only there, and the URL would carry the password)."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, math.ceil(seconds)))
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    if uri.startswith("file:"):
        # MLflow 3 keeps its file store "in maintenance mode" and refuses it unless asked: the user asked
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def mlflow_client(cfg: Config, uri: str):
    """The client of `uri` (one per process). Making it opens a database store, whose tables a new
    database gets then: that call may take up to SETUP_SECONDS."""
    _mlflow_env(uri, timeout_of(cfg))
    if uri in _CLIENTS:
        return _CLIENTS[uri]
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise cfg.error("tracking.mlflow", f"the mlflow package cannot be imported ({failure_reason(e)}); reinstall it: "
                                           f"{INSTALL}") from None
    import logging

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.ERROR)  # "will be retried" lines: we stop first
    database = _scheme(uri) in ("sqlite", *SQL_SCHEMES)
    seconds = max(timeout_of(cfg), SETUP_SECONDS) if database else timeout_of(cfg)
    client = _use(cfg, uri, "opening the store", lambda: MlflowClient(tracking_uri=uri), seconds)
    _CLIENTS[uri] = client
    return client


def _experiment(cfg: Config, client, uri: str) -> str:
    """The id of the experiment named after the config (`name`), made when missing: for a sqlite
    store its artifacts go to `mlartifacts/` next to the database file (MLflow's default would be
    `./mlruns` in whatever folder the command runs from)."""
    from mlflow.exceptions import MlflowException

    name = experiment_name(cfg)
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
