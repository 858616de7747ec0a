"""tracking.mlflow: runs logged to a real local MLflow store (sqlite and file, read back with MlflowClient).

No mocks: every store here is a real MLflow store in a temporary folder. The extra's absence is
simulated the way Python sees an uninstalled package (`sys.modules["mlflow"] = None`).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.errors import ConfigError
from tests.helpers import ROOT, mixed_csv, regression_csv, slow_fixture

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def write(folder: Path, text: str, name: str = "c.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def client(uri):
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def only_run(c, experiment):
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = c.search_runs([exp.experiment_id])
    return exp, runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


PASSWORD = "Sekr3t-pw-42"


class FakeMlflow:
    """An MLflow tracking server on 127.0.0.1 (the few REST endpoints MlflowClient calls, artifacts in a
    local folder) that records every request. `mode`: "ok", "503" (every answer) or "hang" (no answer
    until closed); `fail_after=N` switches to `failing` after N metric batches were answered."""

    def __init__(self, artifacts: Path, mode: str = "ok", fail_after: int | None = None, failing: str = "503"):
        self.artifacts, self.mode, self.fail_after, self.failing = artifacts.as_uri(), mode, fail_after, failing
        self.requests: list[tuple[str, str, bytes]] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                fake.requests.append((self.command, self.path, body))
                status, answer = fake.answer(self.path, body)
                if status == "hang":
                    fake.release.wait(60)
                    status, answer = 503, None
                data = json.dumps(answer).encode() if answer is not None else b"Service Unavailable"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json" if answer is not None else "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting
                    pass

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: bytes):
        if self.mode != "ok":
            return (503, None) if self.mode == "503" else ("hang", None)  # a proxy's answer: not JSON
        url = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        data = json.loads(body or b"{}")
        route = url.path.removeprefix("/api/2.0/mlflow/")
        if route == "runs/log-batch" and data.get("metrics") and self.fail_after is not None:
            self.fail_after -= 1
            if self.fail_after < 0:
                self.mode = self.failing
                return self.answer(path, body)
        handler = getattr(self, "_" + route.replace("/", "_").replace("-", "_"), None)
        return handler(query, data) if handler else (404, {"error_code": "ENDPOINT_NOT_FOUND"})

    def _experiments_get_by_name(self, query, data):
        found = [e for e in self.experiments.values() if e["name"] == query.get("experiment_name")]
        return (200, {"experiment": found[0]}) if found else (404, {"error_code": "RESOURCE_DOES_NOT_EXIST"})

    def _experiments_create(self, query, data):
        eid = str(len(self.experiments) + 1)
        self.experiments[eid] = {"experiment_id": eid, "name": data["name"], "lifecycle_stage": "active",
                                 "artifact_location": f"{self.artifacts}/{eid}"}
        return 200, {"experiment_id": eid}

    def _runs_create(self, query, data):
        rid, eid = uuid.uuid4().hex, data["experiment_id"]
        self.runs[rid] = {"info": {"run_id": rid, "run_uuid": rid, "experiment_id": eid, "status": "RUNNING",
                                   "run_name": data.get("run_name", ""), "lifecycle_stage": "active",
                                   "start_time": int(time.time() * 1000),
                                   "artifact_uri": f"{self.experiments[eid]['artifact_location']}/{rid}"},
                          "data": {"tags": data.get("tags", []), "params": [], "metrics": []}}
        return 200, {"run": self.runs[rid]}

    def _runs_get(self, query, data):
        run = self.runs.get(query.get("run_id"))
        return (200, {"run": run}) if run else (404, {"error_code": "RESOURCE_DOES_NOT_EXIST"})

    def _runs_log_batch(self, query, data):
        run = self.runs[data["run_id"]]
        run["data"]["params"] += data.get("params", [])
        run["data"]["metrics"] += data.get("metrics", [])
        return 200, {}

    def _runs_update(self, query, data):
        info = self.runs[data.get("run_id") or data["run_uuid"]]["info"]
        info["status"] = data.get("status", info["status"])
        return 200, {"run_info": info}


@pytest.fixture
def fake_mlflow(tmp_path):
    servers: list[FakeMlflow] = []

    def start(**kwargs) -> FakeMlflow:
        servers.append(FakeMlflow(tmp_path / "artifacts", **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def silent_port():
    """A port of 127.0.0.1 that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody may write: a read-only tmpfs for root (chmod does not stop root), else mode 555."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)],
                      capture_output=True).returncode:
        pytest.skip("root may write into any folder, and no read-only tmpfs can be mounted here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def nettrain(*args, cwd: Path, timeout: float = 240) -> tuple[subprocess.CompletedProcess, float]:
    """The real command line in a process of its own: (the finished process, its seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nettrain", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    return proc, time.monotonic() - start


# ------------------------------------------------------------------------------ the config key

def test_the_uri_is_checked_and_a_relative_store_path_is_taken_from_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub", "data: {source: d.csv, target: y}\ntracking: {mlflow: 'sqlite:///ml/runs.db'}\n")
    cfg = load_config(path, check_names=False)
    assert cfg.tracking.mlflow == f"sqlite:///{tmp_path / 'sub' / 'ml' / 'runs.db'}"
    by_set = load_config(path, ["tracking.mlflow=file:mlruns"], check_names=False)
    assert by_set.tracking.mlflow == (Path.cwd() / "mlruns").as_uri()  # --set: from the current directory
    for kept in ("http://localhost:5000", "https://mlflow.example.org/", "databricks", "sqlite:////abs/x.db",
                 "postgresql+psycopg://u@db/mlflow"):
        assert load_config(path, [f"tracking.mlflow={kept}"], check_names=False).tracking.mlflow == kept
    for bad, words in (("mlruns", "expected an MLflow tracking URI"), ("ftp://x", "expected an MLflow tracking URI"),
                       ("http:nohost", "needs a host"), ("sqlite://rel.db", "names a database file"),
                       ("file://server/share", "names a local folder")):
        with pytest.raises(ConfigError) as e:
            load_config(path, [f"tracking.mlflow={bad}"], check_names=False)
        assert e.value.path == "tracking.mlflow" and words in str(e.value), str(e.value)
    assert load_config(path, check_names=False).to_dict()["tracking"] == {"mlflow": cfg.tracking.mlflow, "timeout": 5.0}


def test_validate_refuses_a_bad_uri_with_exit_code_2(tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,2\n3,4\n")
    path = write(tmp_path, "data: {source: d.csv, target: y}\ntracking: {mlflow: 'mlflow.example.org'}\n")
    result = cli("validate", path)
    assert result.exit_code == 2 and "tracking.mlflow" in result.output and "Traceback" not in result.output


def test_params_are_the_config_as_dotted_keys():
    from nettrain.training.tracking import params_of

    params = params_of({"seed": 1, "data": {"source": "a.csv", "columns": {"sepal (cm)": {"type": "numeric"}},
                                            "drop": []},
                        "model": {"layers": [{"type": "Dense", "units": 8}], "output": "auto"},
                        "callbacks": {"early_stopping": None, "checkpoint": {"enabled": True}},
                        "long": "x" * 7000})
    assert params["seed"] == "1" and params["model.layers.0.units"] == "8" and params["model.layers.0.type"] == "Dense"
    assert params["callbacks.early_stopping"] == "null" and params["callbacks.checkpoint.enabled"] == "true"
    assert params["data.drop"] == "[]" and params["data.columns.sepal _cm_.type"] == "numeric"
    assert len(params["long"]) == 6000


# ------------------------------------------------------------------------------ before training

def test_a_missing_extra_stops_fit_before_anything_with_the_install_command(tmp_path, monkeypatch):
    regression_csv(tmp_path / "reg.csv", n=20)
    path = write(tmp_path, f"""
        data: {{source: reg.csv, target: y}}
        tracking: {{mlflow: 'sqlite:///ml.db'}}
        output: {{dir: {tmp_path / 'runs'}}}
    """)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an uninstalled package looks like to importlib
    result = cli("fit", path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "pip install 'nettrain[mlflow]'" in result.output and "tracking.mlflow" in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ml.db").exists()


def test_an_unusable_store_stops_fit_before_training(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=20)
    runs = tmp_path / "runs"
    cases = ((f"sqlite:///{tmp_path / 'nowhere' / 'ml.db'}", "does not exist"),
             (f"http://127.0.0.1:{free_port()}", "cannot reach the MLflow server"))
    for uri, words in cases:
        path = write(tmp_path, f"""
            data: {{source: reg.csv, target: y}}
            tracking: {{mlflow: '{uri}'}}
            output: {{dir: {runs}}}
        """)
        result = cli("fit", path)
        assert result.exit_code == 2, result.output
        assert words in result.output and "tracking.mlflow" in result.output and "Traceback" not in result.output
        assert not runs.exists()


def test_tracking_timeout_is_a_number_of_seconds_within_bounds(tmp_path):
    path = write(tmp_path, "data: {source: d.csv, target: y}\ntracking: {mlflow: 'http://localhost:5000'}\n")
    assert load_config(path, check_names=False).tracking.timeout == 5.0
    assert load_config(path, ["tracking.timeout=0.5"], check_names=False).tracking.timeout == 0.5
    for bad in ("0", "-1", "601", "soon"):
        with pytest.raises(ConfigError) as e:
            load_config(path, [f"tracking.timeout={bad}"], check_names=False)
        assert e.value.path == "tracking.timeout" and bad in str(e.value), str(e.value)


def test_a_password_in_a_uri_is_masked_in_what_is_stored_and_shown(tmp_path):
    from nettrain.words import masked_uri

    for uri, shown in ((f"http://alice:{PASSWORD}@h:5000/x", "http://alice:***@h:5000/x"),
                       (f"https://alice:p@{PASSWORD}@h/", "https://alice:***@h/"),
                       (f"postgresql+psycopg://u:{PASSWORD}@db:5432/m?sslmode=require",
                        "postgresql+psycopg://u:***@db:5432/m?sslmode=require"),
                       (f"postgresql://db/m?user=u&password={PASSWORD}&x=1", "postgresql://db/m?user=u&password=***&x=1"),
                       (f"failed: API request to http://u:{PASSWORD}@h/api/2.0 (503)", "failed: API request to "
                        "http://u:***@h/api/2.0 (503)"),
                       ("http://alice@h:5000", "http://alice@h:5000"), ("sqlite:////a/b.db", "sqlite:////a/b.db")):
        assert masked_uri(uri) == shown
    path = write(tmp_path, f"data: {{source: d.csv, target: y}}\ntracking: {{mlflow: 'http://alice:{PASSWORD}@h:5000'}}\n")
    cfg = load_config(path, check_names=False)
    assert cfg.tracking.mlflow == f"http://alice:{PASSWORD}@h:5000"  # the real URI, in memory only
    assert cfg.to_dict()["tracking"]["mlflow"] == "http://alice:***@h:5000"  # config.yaml, .h5 metadata, params
    assert PASSWORD not in json.dumps(cfg.to_dict())
    with pytest.raises(ConfigError) as e:
        load_config(path, [f"tracking.mlflow=ftp://alice:{PASSWORD}@h"], check_names=False)
    assert "ftp://alice:***@h" in str(e.value) and PASSWORD not in str(e.value)


def store_case(store: str, tmp_path: Path, fake_mlflow, silent_port: int, request) -> tuple[str, str]:
    """(tracking.mlflow, the words its error names) for a store that cannot be used."""
    if store == "503":
        return fake_mlflow(mode="503").url.replace("http://", f"http://alice:{PASSWORD}@"), "503"
    if store == "silent":
        return f"http://alice:{PASSWORD}@127.0.0.1:{silent_port}", "no answer within 1 s (tracking.timeout)"
    if store == "closed":
        return f"http://127.0.0.1:{free_port()}", "connection refused"
    if store == "postgresql":
        return f"postgresql://alice:{PASSWORD}@127.0.0.1:{free_port()}/mlflow", "connection refused"
    if store in ("sqlite-read-only", "file-read-only"):
        folder = request.getfixturevalue("read_only_folder")
        uri = f"sqlite:///{folder}/mlflow.db" if store.startswith("sqlite") else (folder / "mlruns").as_uri()
        return uri, f"{folder} is read-only"
    (tmp_path / "notes.txt").write_text("mine\n")
    if store == "file-under-a-file":
        return (tmp_path / "notes.txt" / "mlruns").as_uri(), "notes.txt is a file, not a folder"
    return f"sqlite:///{tmp_path / 'notes.txt'}", "file is not a database"


@pytest.mark.slow
@pytest.mark.parametrize("store", ["503", "silent", "closed", "postgresql", "sqlite-read-only", "file-read-only",
                                   "file-under-a-file", "sqlite-not-a-database"])
def test_a_store_that_cannot_be_used_is_exit_2_before_training_within_the_timeout(store, tmp_path, fake_mlflow,
                                                                                  silent_port, request):
    """Today MLflow's retries hang `fit` for minutes (503, PostgreSQL, read-only sqlite) or fail as an
    internal error (file:): one error naming tracking.mlflow, exit 2, nothing written, no password."""
    regression_csv(tmp_path / "reg.csv", n=20)
    uri, words = store_case(store, tmp_path, fake_mlflow, silent_port, request)
    before = sorted(p.name for p in tmp_path.iterdir())
    path = write(tmp_path, f"""
        data: {{source: reg.csv, target: y}}
        tracking: {{mlflow: '{uri}', timeout: 1}}
        output: {{dir: {tmp_path / 'runs'}}}
    """)
    proc, seconds = nettrain("fit", path, cwd=tmp_path, timeout=150)
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = proc.stderr[proc.stderr.index("error: "):]
    assert "tracking.mlflow" in error and words in error and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert PASSWORD not in proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["c.yaml"])  # no run folder, no store
    assert seconds < 60, seconds


def fit_config(folder: Path, uri: str, epochs: int = 2, extra: str = "") -> Path:
    regression_csv(folder / "reg.csv", n=40)
    return write(folder, f"""
        name: masked
        data: {{source: reg.csv, target: y}}
        model: {{layers: [{{type: Dense, units: 2}}]}}
        training: {{epochs: {epochs}, batch_size: 16}}
        tracking: {{mlflow: '{uri}', timeout: 2}}
        output: {{plots: false}}
        {extra}
    """)


@pytest.mark.slow
@pytest.mark.parametrize("failing", ["503", "hang"])
def test_a_store_that_fails_during_training_is_one_warning_and_the_run_completes(failing, tmp_path, fake_mlflow):
    """The server answers the start and epoch 1, then 503s (or stops answering): training goes on."""
    server = fake_mlflow(fail_after=1, failing=failing)
    path = fit_config(tmp_path, server.url, epochs=3)
    proc, seconds = nettrain("fit", path, "--run-dir", tmp_path / "run", "--quiet", cwd=tmp_path, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = [line for line in proc.stderr.splitlines() if "MLflow at" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: ") and "logging metrics failed" in warned[0], warned
    assert "training goes on" in warned[0]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 3
    metric_batches = [r for r in server.requests if r[1].endswith("runs/log-batch") and b'"metrics"' in r[2]]
    assert len(metric_batches) == 2  # epoch 1, then the one that failed: nothing more was tried
    assert seconds < 120, seconds


@pytest.mark.slow
def test_a_password_in_the_uri_reaches_no_file_no_param_and_no_output(tmp_path, fake_mlflow):
    server = fake_mlflow()
    uri = server.url.replace("http://", f"http://alice:{PASSWORD}@")
    path = fit_config(tmp_path, uri)
    run = tmp_path / "run"
    result = cli("fit", path, "--run-dir", run)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and "View run" not in result.stdout
    files = [p for p in (*run.rglob("*"), *(tmp_path / "artifacts").rglob("*")) if p.is_file()]
    assert {"best.h5", "epoch001.h5", "epoch002.h5", "last.h5", "model.h5", "config.yaml", "run.json"} <= \
        {p.name for p in files}
    assert [p for p in files if PASSWORD.encode() in p.read_bytes()] == []  # .h5 attributes included
    for _, where, body in server.requests:
        assert PASSWORD not in where and PASSWORD.encode() not in body
    (mlflow_run,) = server.runs.values()
    params = {p["key"]: p["value"] for p in mlflow_run["data"]["params"]}
    assert params["tracking.mlflow"] == server.url.replace("http://", "http://alice:***@")
    assert mlflow_run["info"]["status"] == "FINISHED"
    record = json.loads((run / "run.json").read_text())
    assert record["mlflow"]["uri"] == params["tracking.mlflow"]
    # retrain reads the config from model.h5, whose URI has no password: given again, the same MLflow run goes on
    result = cli("retrain", run / "model.h5", "--epochs", "1", "--quiet")
    assert result.exit_code == 2 and "tracking.mlflow" in result.output and "is not stored" in result.output
    assert PASSWORD not in result.output
    result = cli("retrain", run / "model.h5", "--epochs", "1", "--quiet", "--set", f"tracking.mlflow={uri}")
    assert result.exit_code == 0, result.output
    assert list(server.runs) == [record["mlflow"]["run_id"]] and mlflow_run["info"]["status"] == "FINISHED"
    assert [p for p in run.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()] == []


def test_a_sweep_storage_password_is_masked_in_the_config_it_writes(tmp_path):
    """sweep.storage has the same rule as tracking.mlflow: the trials' config.yaml and best.yaml mask it."""
    from nettrain.sweep.study import shown

    url = f"postgresql+psycopg://bob:{PASSWORD}@db:5432/studies"
    path = write(tmp_path, f"""
        data: {{source: d.csv, target: y}}
        sweep: {{storage: '{url}', params: {{training.batch_size: {{choice: [8, 16]}}}}}}
    """)
    cfg = load_config(path, check_names=False)
    assert cfg.sweep.storage == url  # the sweep and its trials use the real one
    assert cfg.to_dict()["sweep"]["storage"] == "postgresql+psycopg://bob:***@db:5432/studies" == shown(url)
    assert PASSWORD not in json.dumps(cfg.to_dict())


def sweep_config(folder: Path, uri: str) -> Path:
    regression_csv(folder / "reg.csv", n=40)
    return write(folder, f"""
        name: swept
        data: {{source: reg.csv, target: y}}
        model: {{layers: [{{type: Dense, units: 2}}]}}
        training: {{epochs: 1, batch_size: 16}}
        tracking: {{mlflow: '{uri}', timeout: 2}}
        output: {{plots: false}}
        sweep: {{trials: 1, pruner: none, params: {{training.batch_size: {{choice: [8, 16]}}}}}}
    """)


@pytest.mark.slow
def test_a_sweep_with_a_password_in_its_tracking_uri_writes_it_nowhere(tmp_path, fake_mlflow):
    """The trial process gets the real URI (on its standard input): it logs to the server, and no file of
    the sweep folder (the trial's spec record, its run, best.yaml, logs) holds the password."""
    server = fake_mlflow()
    uri = server.url.replace("http://", f"http://alice:{PASSWORD}@")
    proc, _ = nettrain("sweep", sweep_config(tmp_path, server.url), "--set", f"tracking.mlflow={uri}",
                       cwd=tmp_path, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert PASSWORD not in proc.stdout + proc.stderr
    folder = tmp_path / "runs" / "swept" / "sweep"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {"trial-0000.json", "config.yaml", "best.yaml", "model.h5"} <= {p.name for p in files}
    assert [p for p in files if PASSWORD.encode() in p.read_bytes()] == []
    spec = json.loads((folder / "logs" / "trial-0000.json").read_text())
    assert f"tracking.mlflow={server.url.replace('http://', 'http://alice:***@')}" in spec["overrides"]
    (mlflow_run,) = server.runs.values()  # the trial logged there with the real URI
    assert mlflow_run["info"]["status"] == "FINISHED"


@pytest.mark.slow
def test_a_sweep_whose_tracking_store_cannot_be_used_is_exit_2_before_any_trial(tmp_path):
    proc, seconds = nettrain("sweep", sweep_config(tmp_path, f"http://127.0.0.1:{free_port()}"), cwd=tmp_path,
                             timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "tracking.mlflow" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("runs/swept/sweep/trial-*"))


def test_a_file_store_needs_no_server(tmp_path):
    """A file: store (MLflow 3 keeps it in "maintenance mode" and refuses it unless asked: the user asks)."""
    from nettrain.store import rundir
    from nettrain.training import tracking

    uri = (tmp_path / "mlruns").as_uri()
    cfg = load_config(write(tmp_path, f"name: filestore\ndata: {{source: d.csv, target: y}}\n"
                                      f"tracking: {{mlflow: '{uri}'}}\n"), check_names=False)
    out = tmp_path / "run"
    out.mkdir()
    record = rundir.RunRecord(out)
    tracker = tracking.open_run(cfg, out, record, kind="run", history=[{"epoch": 1, "loss": 0.9, "seconds": 1.0}])
    tracker.metrics({"loss": 0.5, "val_loss": 0.6}, step=2)
    (out / "metrics.json").write_text("{}")
    tracker.artifacts(out, ["metrics.json", "plots", "model.h5"])  # absent files are skipped
    tracker.end()
    assert json.loads((out / "run.json").read_text())["mlflow"]["run_id"] == tracker.run_id
    c = client(uri)
    run = c.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["nettrain.run_dir"] == str(out.resolve())
    assert [(m.step, m.value) for m in c.get_metric_history(tracker.run_id, "loss")] == [(1, 0.9), (2, 0.5)]
    assert [a.path for a in c.list_artifacts(tracker.run_id)] == ["metrics.json"]
    assert run.data.params["data.target"] == "y"
    # the same run directory again (a resume): the same MLflow run, running again
    again = tracking.open_run(cfg, out, rundir.RunRecord.load(out), kind="run")
    assert again.run_id == tracker.run_id and c.get_run(again.run_id).info.status == "RUNNING"


# ------------------------------------------------------------------------------ mlflow only when asked

@pytest.mark.slow
@pytest.mark.parametrize("command", ["--help", "validate", "schema"])
def test_light_commands_never_import_mlflow_or_tensorflow(command, tmp_path):
    (tmp_path / "d.csv").write_text("a,y\n1,2\n3,4\n5,6\n")
    path = write(tmp_path, "data: {source: d.csv, target: y}\ntracking: {mlflow: 'sqlite:///ml.db'}\n")
    args = ["validate", str(path)] if command == "validate" else [command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nettrain", *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "nettrain.cli" in names
    assert not {n for n in names if n.split(".")[0] in ("mlflow", "tensorflow", "keras")}
    assert not (tmp_path / "ml.db").exists()


@pytest.mark.slow
def test_fit_without_tracking_never_imports_mlflow(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=40)
    path = write(tmp_path, """
        data: {source: reg.csv, target: y}
        model: {layers: [{type: Dense, units: 2}]}
        training: {epochs: 1}
        output: {plots: false}
    """)
    code = (f"import sys\nfrom nettrain import api\napi.fit({str(path)!r}, run_dir={str(tmp_path / 'run')!r}, "
            "quiet=True)\nassert 'mlflow' not in sys.modules, 'mlflow imported'\nprint('no mlflow')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode == 0 and "no mlflow" in proc.stdout, proc.stderr[-3000:]


# ------------------------------------------------------------------------------ a real sqlite store

@pytest.fixture(scope="module")
@slow_fixture
def tracked(tmp_path_factory):
    """A 3-epoch classification run logged to a sqlite store, fit from another folder (nothing of
    MLflow's may land there): (run directory, store URI, fit --json output)."""
    d = tmp_path_factory.mktemp("tracked")
    mixed_csv(d / "mixed.csv", n=90)
    (d / "store").mkdir()
    write(d, """
        name: tracked
        data: {source: mixed.csv, target: label, id: id}
        model: {layers: [{type: Dense, units: 4, activation: relu}]}
        training: {epochs: 3, batch_size: 16}
        tracking: {mlflow: 'sqlite:///store/mlflow.db'}
        output: {dir: runs}
    """, "tracked.yaml")
    elsewhere = d / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        result = cli("fit", d / "tracked.yaml", "--run-dir", d / "run", "--json", "--quiet")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert not list(elsewhere.iterdir()), list(elsewhere.iterdir())  # no ./mlruns or anything else
    return d / "run", f"sqlite:///{d / 'store' / 'mlflow.db'}", result.stdout


@pytest.mark.slow
def test_a_run_logged_to_a_sqlite_store_has_every_epoch_and_its_files(tracked):
    run, uri, stdout = tracked
    assert json.loads(stdout)["run_dir"] == str(run)  # stdout stays the one JSON object
    record = json.loads((run / "run.json").read_text())
    c = client(uri)
    exp, runs = only_run(c, "tracked")
    assert [r.info.run_id for r in runs] == [record["mlflow"]["run_id"]]
    assert record["mlflow"]["uri"] == uri and exp.artifact_location.endswith("/store/mlartifacts")
    r = runs[0]
    assert r.info.status == "FINISHED" and r.info.run_name == "run"
    assert r.data.tags["nettrain.run_dir"] == str(run.resolve()) and r.data.tags["nettrain.kind"] == "run"
    assert r.data.params["training.epochs"] == "3" and r.data.params["model.layers.0.units"] == "4"
    assert r.data.params["tracking.mlflow"] == uri
    history = pd.read_csv(run / "metrics.csv")
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        logged = [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, name)]
        assert [s for s, _ in logged] == [1, 2, 3], name
        assert [v for _, v in logged] == pytest.approx(list(history[name]), rel=1e-6), name
    final = json.loads((run / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        assert r.data.metrics[f"final_{split}_accuracy"] == pytest.approx(final[split]["accuracy"])
        assert f"{split}_accuracy" not in r.data.metrics
    top = {a.path for a in c.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "metrics.json", "model.h5", "plots"} <= top
    assert {a.path for a in c.list_artifacts(r.info.run_id, "plots")} == \
        {"plots/learning_curves.png", "plots/confusion_matrix.png"}
    local = Path(c.download_artifacts(r.info.run_id, "model.h5", str(run.parent / "download")))
    assert local.read_bytes() == (run / "model.h5").read_bytes()


@pytest.mark.slow
def test_resume_continues_the_same_mlflow_run(tracked, tmp_path):
    run, uri, _ = tracked
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock"))
    # the copy is another run directory, so it first gets an MLflow run of its own: cut it after epoch 2
    checkpoints = copy / "checkpoints"
    shutil.copyfile(checkpoints / "epoch002.h5", checkpoints / "last.h5")
    (checkpoints / "epoch003.h5").unlink()
    history = pd.read_csv(copy / "metrics.csv")
    history[history["epoch"] <= 2].to_csv(copy / "metrics.csv", index=False)
    (copy / "model.h5").unlink()
    record = json.loads((copy / "run.json").read_text())
    record.update(status="interrupted", epochs_done=2, final_metrics=None)
    record.pop("mlflow")
    (copy / "run.json").write_text(json.dumps(record))
    result = cli("fit", run.parent / "tracked.yaml", "--resume", copy, "--quiet")
    assert result.exit_code == 0, result.output
    first = json.loads((copy / "run.json").read_text())["mlflow"]["run_id"]
    c = client(uri)
    assert [m.step for m in c.get_metric_history(first, "loss")] == [1, 2, 3]  # epochs 1-2 from metrics.csv
    assert c.get_run(first).data.tags["nettrain.run_dir"] == str(copy.resolve())
    # cut again and resume: the run.json names that MLflow run, which goes on
    shutil.copyfile(checkpoints / "epoch002.h5", checkpoints / "last.h5")
    history[history["epoch"] <= 2].to_csv(copy / "metrics.csv", index=False)
    record = json.loads((copy / "run.json").read_text())
    record.update(status="interrupted", epochs_done=2, final_metrics=None)
    (copy / "run.json").write_text(json.dumps(record))
    (copy / "model.h5").unlink()
    result = cli("fit", run.parent / "tracked.yaml", "--resume", copy, "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "run.json").read_text())["mlflow"]["run_id"] == first
    assert c.get_run(first).info.status == "FINISHED"
    assert [m.step for m in c.get_metric_history(first, "loss")] == [1, 2, 3, 3]


@pytest.mark.slow
def test_a_kfold_run_is_one_mlflow_run_with_its_folds_nested(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=60)
    path = write(tmp_path, """
        name: cv
        data: {source: reg.csv, target: y, split: {folds: 2, test: 0.2, refit: true}}
        model: {layers: [{type: Dense, units: 2}]}
        training: {epochs: 2, batch_size: 16}
        tracking: {mlflow: 'sqlite:///ml.db'}
    """)
    result = cli("fit", path, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    c = client(f"sqlite:///{tmp_path / 'ml.db'}")
    _, runs = only_run(c, "cv")
    parent = next(r for r in runs if r.data.tags["nettrain.kind"] == "kfold")
    folds = sorted((r for r in runs if r.data.tags["nettrain.kind"] == "fold"), key=lambda r: r.info.run_name)
    assert len(runs) == 3 and [r.info.run_name for r in folds] == ["fold-1", "fold-2"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in folds)
    assert [r.data.tags["nettrain.run_dir"] for r in folds] == [str((run / f"fold-{i}").resolve()) for i in (1, 2)]
    assert all(r.info.status == "FINISHED" for r in runs)
    metrics = json.loads((run / "metrics.json").read_text())
    assert parent.data.metrics["cv_mean_validation_loss"] == pytest.approx(metrics["mean"]["validation"]["loss"])
    assert parent.data.metrics["cv_std_validation_loss"] == pytest.approx(metrics["std"]["validation"]["loss"])
    assert parent.data.metrics["final_test_loss"] == pytest.approx(metrics["refit"]["test"]["loss"])  # the refit model
    # a fold's per-epoch val_loss (last step: the last epoch's weights) and its model's final_validation_loss
    for fold, row in zip(folds, metrics["folds"]):
        assert fold.data.metrics["final_validation_loss"] == pytest.approx(row["validation"]["loss"])
        assert "validation_loss" not in fold.data.metrics and "val_loss" in fold.data.metrics
    refit_epochs = json.loads((run / "run.json").read_text())["refit"]["epochs"]
    assert [m.step for m in c.get_metric_history(parent.info.run_id, "loss")] == list(range(1, refit_epochs + 1))
    assert [m.step for m in c.get_metric_history(folds[0].info.run_id, "val_loss")] == [1, 2]
    artifacts = {a.path for a in c.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/learning_curves_mean.png" in artifacts and "plots/learning_curves.png" in artifacts
    assert "model.h5" in {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert "model.h5" in {a.path for a in c.list_artifacts(folds[1].info.run_id)}


@pytest.mark.slow
def test_a_diverged_run_ends_its_mlflow_run_failed(tmp_path):
    regression_csv(tmp_path / "reg.csv", n=60)
    path = write(tmp_path, """
        name: diverged
        data: {source: reg.csv, target: y}
        preprocessing: {target: none}
        training: {epochs: 5, optimizer: {name: sgd, learning_rate: 1.0e+12}}
        tracking: {mlflow: 'sqlite:///ml.db'}
        output: {plots: false}
    """)
    result = cli("fit", path, "--run-dir", tmp_path / "run", "--quiet")
    assert result.exit_code == 1 and "NaN" in result.output, result.output
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed"
    assert client(f"sqlite:///{tmp_path / 'ml.db'}").get_run(record["mlflow"]["run_id"]).info.status == "FAILED"
