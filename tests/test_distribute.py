"""runtime.distribute: mirrored and multi_worker, proven on a machine without GPUs.

- The cluster's description (TF_CONFIG, --worker/--workers) and `runtime.devices`: user errors are one
  line and exit 2, before TensorFlow.
- mirrored over 2 logical CPU devices (`runtime.devices: [cpu:0, cpu:1]`, in a process of its own):
  trains, its checkpoints load in plain Keras, and its final loss is that of the one-device run with
  the same global batch and seed.
- multi_worker with 2 worker processes on 127.0.0.1: both finish with the same weights, the chief's
  run directory is complete and `evaluate` reads it, the result is the one-process run's; a worker
  killed mid-run stops the chief with one line in bounded time (no raw gRPC text), and `--resume` on the
  chief's run (with both processes started again) finishes it.
- A peer that never starts: the chief ends after runtime.worker_timeout with one line naming it (exit
  1), and SIGTERM/SIGINT end the wait (130); a port in use is one line naming host:port (exit 2).

The data are sized so that every global batch splits evenly over 2 replicas (160 training rows,
batch 16): then a distributed step is the one-device step, up to the order of float additions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import cluster as C
from nettrain.errors import UsageError
from tests.helpers import ROOT, regression_csv, slow_fixture

CONFIG = """\
data: {source: data.csv, target: y, split: {test: 0.2, validation: 0.2}}
model:
  layers: [{type: Dense, units: 8, activation: relu}]
training: {loss: mse, optimizer: {name: sgd, learning_rate: 0.05, momentum: 0.9}, epochs: 6, batch_size: 16}
callbacks:
  early_stopping: {monitor: val_loss, patience: 20, restore_best_weights: true}
  lr_schedule: {type: step_decay, drop: 0.5, every: 3}
output: {dir: runs, plots: false}
"""
TOLERANCE = 1e-3   # relative: the same steps, the float additions in another order
NATIVE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages|Additional GRPC error|:UNKNOWN:|/job:)")
EPOCH = re.compile(r"^epoch \d+/\d+ ")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("distribute")
    regression_csv(root / "data.csv", n=250)   # 160 training rows
    (root / "config.yaml").write_text(CONFIG)
    return root


@pytest.fixture(scope="module")
@slow_fixture
def one_device(project) -> dict:
    """The one-process run every distributed run is compared with (trained in this process)."""
    from nettrain import api

    result = api.fit(project / "config.yaml", run_dir=project / "one", quiet=True, json_output=True)
    return result.metrics


# ------------------------------------------------------------------------------ without TensorFlow

def test_tf_config_is_parsed_and_checked():
    c = C.parse('{"cluster": {"chief": ["h0:1"], "worker": ["h1:2", "h2:3"]}, "task": {"type": "worker", "index": 1}}')
    assert c.size == 3 and c.rank == 2 and not c.is_chief and c.name() == "worker 1 (h2:3)"
    assert c.name(0) == "chief (h0:1)"
    c = C.parse('{"cluster": {"worker": ["10.0.0.1:5000", "[::1]:5001"]}, "task": {"type": "worker", "index": 0}}')
    assert c.is_chief and c.rank_of_address("[::1]:5001") == 1
    bad = {
        "nope": "not JSON",
        "[]": "JSON object",
        '{"cluster": {}, "task": {"type": "worker"}}': "'cluster' must map roles",
        '{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps"}}': "allowed roles: chief, worker",
        '{"cluster": {"worker": ["a:1"]}}': "'task' must say",
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}': "allowed: worker",
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 2}}': "0..0",
        '{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}': "given twice",
        '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}': "not host:port",
        '{"cluster": {"worker": ["a:70000"]}, "task": {"type": "worker", "index": 0}}': "port 1-65535",
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}, "x": 1}': "unknown field",
    }
    for raw, words in bad.items():
        with pytest.raises(UsageError, match=re.escape(words)):
            C.parse(raw)
    with pytest.raises(UsageError, match="environment variable TF_CONFIG"):
        C.from_env({})


def test_workers_options_build_tf_config():
    raw = C.from_options(1, "10.0.0.1:12345, 10.0.0.2:12345")
    assert json.loads(raw) == {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                               "task": {"type": "worker", "index": 1}}
    for worker, workers, words in [(None, "a:1", "needs --worker"), (0, None, "needs --workers"),
                                   (2, "a:1,b:2", "0..1"), (-1, "a:1", "out of range"),
                                   (0, "a:1,,b:2", "comma-separated"), (0, "a:1,a:1", "listed twice"),
                                   (0, "a:1,b", "not host:port")]:
        with pytest.raises(UsageError, match=re.escape(words)):
            C.from_options(worker, workers)


@pytest.mark.parametrize("args, words", [
    (["--worker", "3", "--workers", "127.0.0.1:1,127.0.0.1:2"], "--worker 3: out of range"),
    (["--workers", "127.0.0.1:1"], "--workers needs --worker I"),
    (["--worker", "0", "--workers", "localhost"], "is not host:port"),
    (["--set", "runtime.distribute=multi_worker"], "environment variable TF_CONFIG"),
    (["--set", "runtime.distribute=mirrored", "--set", "runtime.devices=[cpu:0,gpu:1]"], "not both"),
    (["--set", "runtime.devices=[cpu:0,cpu:1]"], "distribute: mirrored only"),
    (["--set", "runtime.distribute=multi_worker", "--set", "data.split.folds=3"], "not distributed"),
])
def test_cluster_mistakes_are_one_line_and_exit_2(project, monkeypatch, args, words):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if "folds" in " ".join(args):
        monkeypatch.setenv("TF_CONFIG", C.from_options(0, "127.0.0.1:1,127.0.0.1:2"))
    result = CliRunner().invoke(app, ["fit", str(project / "config.yaml"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.output
    assert "TF_CONFIG" not in os.environ or "folds" in " ".join(args)  # --workers sets it only when valid


def test_validate_build_prints_strategy_replicas_and_per_replica_batch(project, monkeypatch):
    cfg = str(project / "config.yaml")
    out = CliRunner().invoke(app, ["validate", cfg, "--build", "--set", "runtime.distribute=mirrored",
                                   "--set", "runtime.devices=[cpu:0,cpu:1]"]).output
    assert "distribute: mirrored over 2 replica(s) (cpu:0, cpu:1), global batch 16 = 8 per replica" in out
    monkeypatch.setenv("TF_CONFIG", C.from_options(1, "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"))
    out = CliRunner().invoke(app, ["validate", cfg, "--build", "--set", "runtime.distribute=multi_worker"]).output
    assert "distribute: multi_worker over 3 replica(s): 3 worker(s) x 1 CPU replica(s)" in out
    assert "this process is worker 1 (127.0.0.1:2)" in out and "global batch 16 = 6 per replica" in out


# ------------------------------------------------------------------------------ processes

class Nettrain:
    """A `python -m nettrain ...` process with its output collected by threads."""

    def __init__(self, args, cwd: Path, env: dict | None = None):
        environ = {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), **(env or {})}
        environ.pop("TF_CONFIG", None)
        self.p = subprocess.Popen([sys.executable, "-m", "nettrain", *map(str, args)], cwd=cwd, env=environ,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=lambda s=stream, b=lines: b.extend(s), daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline and self.p.poll() is None:
            if any(text in line for line in self.out + self.err):
                return True
            time.sleep(0.05)
        return any(text in line for line in self.out + self.err)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        rc = self.p.wait(timeout=timeout)
        time.sleep(0.1)
        return rc, "".join(self.out), "".join(self.err)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()


def free_ports(n: int) -> list[int]:
    """n free loopback ports; the test is skipped where binding one is impossible."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    except OSError as e:
        pytest.skip(f"cannot bind a loopback port on this machine ({e}): multi_worker needs one per worker")
    finally:
        for s in sockets:
            s.close()


def cluster(project: Path, run: Path, *extra, resume: bool = False, tmp: Path) -> tuple[list[Nettrain], list[str]]:
    """Worker 0 (the chief, writing `run`) and worker 1, started with the same command line; their addresses."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    target = ["--resume", run] if resume else ["--run-dir", run]
    procs = [Nettrain(["fit", project / "config.yaml", *target, "--json", "--worker", i, "--workers",
                       ",".join(addresses), *extra], cwd=project, env={"TMPDIR": str(tmp)}) for i in (0, 1)]
    return procs, addresses


def final_weights_digest(model_file: Path) -> str:
    from nettrain.store import h5
    from nettrain.training.distributed import weights_digest

    return weights_digest(h5.load_model(model_file, restore_optimizer=False).get_weights())


def close(a: float, b: float, tolerance: float = TOLERANCE) -> bool:
    return abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-6)


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device(project, one_device):
    run = project / "mirrored"
    p = Nettrain(["fit", "config.yaml", "--run-dir", run, "--json", "--set", "runtime.distribute=mirrored",
                  "--set", "runtime.devices=[cpu:0,cpu:1]"], cwd=project)
    rc, out, err = p.finish(timeout=120)
    assert rc == 0, err[-3000:]
    metrics = json.loads(out)
    for split in ("train", "validation", "test"):
        assert close(metrics[split]["loss"], one_device[split]["loss"]), (split, metrics, one_device)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 6 and rows_of(run) == 160
    assert "mirrored over 2 replica(s) (cpu:0, cpu:1), global batch 16 = 8 per replica" in record["device"]
    import keras

    for name in ("model.h5", "checkpoints/best.h5", "checkpoints/last.h5", "checkpoints/epoch006.h5"):
        model = keras.models.load_model(run / name)   # plain Keras, no strategy
        assert model.count_params() == 3 * 8 + 8 + 8 + 1
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 7 and "learning_rate" in rows[0]


@pytest.mark.slow
def test_mirrored_streamed_data_matches_one_device(project):
    """data.stream: the feed's batches through a distributed dataset (data sharding), not gathered rows.
    The stream's seeded per-row split leaves 157 training rows: the last batch of each epoch (13 rows)
    splits 7 + 6, each half's mean counting 1/2 (as under Keras's own fit with a strategy), so the
    result is close to the one-device run, not equal: within 5% here (the losses are ~0.007)."""
    from nettrain import api

    stream = ["data.stream=true", "training.class_weight=none"]
    one = api.fit(project / "config.yaml", stream, run_dir=project / "one-stream", quiet=True, json_output=True)
    p = Nettrain(["fit", "config.yaml", "--run-dir", project / "mirrored-stream", "--json",
                  *[a for kv in stream for a in ("--set", kv)], "--set", "runtime.distribute=mirrored",
                  "--set", "runtime.devices=[cpu:0,cpu:1]"], cwd=project)
    rc, out, err = p.finish(timeout=120)
    assert rc == 0, err[-3000:]
    metrics = json.loads(out)
    assert json.loads((project / "mirrored-stream" / "run.json").read_text())["data"]["stream"] is True
    assert rows_of(project / "mirrored-stream") == 157
    for split in ("train", "validation", "test"):
        assert close(metrics[split]["loss"], one.metrics[split]["loss"], 0.05), (split, metrics, one.metrics)


def rows_of(run: Path) -> int:
    return json.loads((run / "run.json").read_text())["data"]["rows"]["train"]


@pytest.mark.slow
def test_multi_worker_two_processes_train_one_run(project, one_device, tmp_path):
    run = project / "multi"
    procs, addresses = cluster(project, run, tmp=tmp_path)
    (rc0, out0, err0), (rc1, out1, err1) = [p.finish(timeout=150) for p in procs]
    assert rc0 == 0, err0[-3000:]
    assert rc1 == 0, err1[-3000:]
    chief, worker = json.loads(out0), json.loads(out1)
    # the same weights on both workers, the chief's in its run directory
    assert worker["weights"] == final_weights_digest(run / "model.h5")
    assert worker["run_dir"] is None and worker["chief"].startswith("worker 0 (127.0.0.1:")
    for split in ("train", "validation", "test"):
        assert chief[split] == worker[split]   # the global metrics, read by every worker
        assert close(chief[split]["loss"], one_device[split]["loss"]), (split, chief, one_device)
    # the chief's run directory is complete; the worker left nothing behind
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 6
    assert record["cluster"] == {"strategy": "multi_worker", "workers": addresses, "replicas": 2, "batch_size": 16,
                                 "per_replica_batch": 8}
    assert f"worker 0 ({addresses[0]}), the chief: final weights {worker['weights'][:16]}" in err0
    # streams: stdout holds the JSON only; the worker names no path of its temporary folder
    for out, err in ((out0, err0), (out1, err1)):
        assert "epoch 1/6" not in out and "epoch 6/6" in err
        assert not [line for line in err.splitlines() if NATIVE.match(line)], err
    assert "nettrain-worker-" not in err1 and str(tmp_path) not in err1 and "run directory:" not in err1, err1
    assert f"worker 1 ({addresses[1]}): training in step with the chief, worker 0 ({addresses[0]})" in err1
    assert f"the chief, worker 0 ({addresses[0]}), wrote the run" in err1
    for name in ("config.yaml", "features.json", "metrics.csv", "metrics.json", "model.h5", "summary.txt",
                 "checkpoints/best.h5", "checkpoints/last.h5"):
        assert (run / name).is_file(), name
    assert len((run / "metrics.csv").read_text().splitlines()) == 7
    assert not list(tmp_path.glob("nettrain-worker-*")), "the worker's temporary folder is left"
    # evaluate works on the chief's run, in one process, with plain Keras
    result = CliRunner().invoke(app, ["evaluate", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert close(json.loads(result.output)["metrics"]["loss"], chief["test"]["loss"])


@pytest.mark.slow
def test_multi_worker_peer_dies_then_resume_finishes(project, tmp_path):
    run = project / "killed"
    epochs = ["--set", "training.epochs=14"]
    (chief, worker), _ = cluster(project, run, *epochs, tmp=tmp_path)
    try:
        assert chief.wait_for("epoch 2/14", timeout=60), "".join(chief.err)[-3000:]
        worker.kill()
        killed = time.time()
        rc, out, err = chief.finish(timeout=60)
        waited = time.time() - killed
    finally:
        chief.kill()
        worker.kill()
    assert rc == 1, err[-3000:]
    assert waited < 30, f"the chief took {waited:.0f} s to notice"
    line = [x for x in err.splitlines() if x.startswith("error: ")][-1]
    assert "worker 1 (127.0.0.1:" in line and "stopped" in line and f"--resume {run}" in line, line
    # only nettrain's lines: the epochs, then the error line (no gRPC or TensorFlow text before it)
    assert all(EPOCH.match(x) for x in err.splitlines()[:-1]) and err.splitlines()[-1] == line, err[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and 2 <= record["epochs_done"] < 14
    # both processes again, the chief with --resume: the run finishes where it stopped
    procs, _ = cluster(project, run, *epochs, resume=True, tmp=tmp_path)
    (rc0, out0, err0), (rc1, out1, err1) = [p.finish(timeout=150) for p in procs]
    assert rc0 == 0, err0[-3000:]
    assert rc1 == 0, err1[-3000:]
    assert "resuming" in err0
    assert not [x for x in (err0 + err1).splitlines() if NATIVE.match(x)], err0 + err1
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 14
    assert [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]] == list(range(1, 15))
    assert json.loads(out1)["weights"] == final_weights_digest(run / "model.h5")
    assert not list(tmp_path.glob("nettrain-worker-*")), "a killed worker's folder is removed by the next one"


def test_a_lost_peer_is_a_peer_lost_and_only_it_gets_the_resume_hint(tmp_path):
    """`peers` raises the type `PeerLost`; the worker path adds the resume hint by the type, not by
    matching the text of the message (a JobFailed with the same words is left as it is)."""
    import tensorflow as tf

    from nettrain.errors import JobFailed, PeerLost
    from nettrain.lifecycle.worker import _failing_with_resume_hint
    from nettrain.training import distributed as D

    strategy = tf.distribute.MultiWorkerMirroredStrategy.__new__(tf.distribute.MultiWorkerMirroredStrategy)
    with pytest.raises(PeerLost) as lost:
        with D.peers(strategy):
            raise tf.errors.UnavailableError(None, None, "Socket closed: connection reset by peer")
    assert lost.value.exit_code == 1 and isinstance(lost.value, JobFailed)
    assert lost.value.message.startswith("training stopped: a peer stopped or cannot be reached")
    assert lost.value.message.endswith("a multi_worker run cannot go on without every worker")

    def fail(error):
        raise error

    with pytest.raises(PeerLost, match=f"The run so far is in {tmp_path}: .* --resume {tmp_path}$"):
        _failing_with_resume_hint(tmp_path, lambda: fail(lost.value))
    same_words = JobFailed("the chief said: a multi_worker run cannot go on without every worker")
    with pytest.raises(JobFailed) as kept:
        _failing_with_resume_hint(tmp_path, lambda: fail(same_words))
    assert kept.value is same_words


# ------------------------------------------------------------------------------ a peer that never starts

def lone_chief(project: Path, run: Path, timeout: float) -> tuple[Nettrain, list[str]]:
    """Worker 0 of a 2-worker cluster whose worker 1 is never started."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    return Nettrain(["fit", project / "config.yaml", "--run-dir", run, "--json", "--worker", 0, "--workers",
                     ",".join(addresses), "--set", f"runtime.worker_timeout={timeout}"], cwd=project), addresses


@pytest.mark.slow
def test_chief_whose_peer_never_starts_ends_after_worker_timeout(project):
    run = project / "lonely"
    chief, addresses = lone_chief(project, run, 5)
    try:
        assert chief.wait_for("waiting for worker 1", timeout=90), "".join(chief.err)[-3000:]
        waiting = time.time()
        rc, out, err = chief.finish(timeout=60)
        waited = time.time() - waiting
    finally:
        chief.kill()
    assert rc == 1, err[-3000:]
    assert waited < 5 + 10, f"ended {waited:.0f} s after it began to wait (runtime.worker_timeout 5 s)"
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"worker 0 ({addresses[0]}): waiting for worker 1"), err
    assert lines[1].startswith(f"error: worker 1 ({addresses[1]}) never joined the cluster"), err
    assert "runtime.worker_timeout (5 s)" in lines[1], err
    assert out == "" and not run.exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_wait_for_peers(project, sig):
    run = project / f"waiting-{sig.name}"
    chief, _ = lone_chief(project, run, 120)
    try:
        assert chief.wait_for("waiting for worker 1", timeout=90), "".join(chief.err)[-3000:]
        chief.p.send_signal(sig)
        sent = time.time()
        rc, out, err = chief.finish(timeout=30)
        took = time.time() - sent
    finally:
        chief.kill()
    assert rc == 130, err[-3000:]
    assert took < 10 and err.splitlines()[-1] == "interrupted", (took, err)
    assert not run.exists()


def test_a_port_in_use_is_one_line_naming_it_and_exit_2(project, monkeypatch):
    busy, other = free_ports(2)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", busy))
        s.listen()
        p = Nettrain(["fit", "config.yaml", "--run-dir", project / "busy", "--worker", 0, "--workers",
                      f"127.0.0.1:{busy},127.0.0.1:{other}"], cwd=project)
        rc, out, err = p.finish(timeout=120)
    assert rc == 2, err[-3000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: worker 0 (127.0.0.1:{busy}): cannot listen on port "
                                                    f"{busy}"), err
    assert "free that port, or give this worker another one in --workers" in lines[0]
    assert "tensorflow" not in err.lower() and not (project / "busy").exists()


def test_retrain_names_what_asked_for_multi_worker(project, one_device):
    """The run was trained on one device: the refusal names the --set, not a multi_worker training."""
    result = CliRunner().invoke(app, ["retrain", str(project / "one"), "--epochs", "1", "--set",
                                      "runtime.distribute=multi_worker"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "was trained with" not in lines[0], result.output
    assert lines[0].startswith("error: --set runtime.distribute=multi_worker: retrain runs in one process")


@pytest.mark.slow
def test_a_peer_that_answers_but_never_joins_ends_the_chief(project):
    """Worker 1's port answers (a plain socket: a process that died after it was seen), so the chief passes
    its wait and TensorFlow's uninterruptible bring-up starts: it still ends, after worker_timeout + 30 s."""
    from nettrain.training.distributed import GRACE

    chief_port, peer_port = free_ports(2)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as peer:
        peer.bind(("127.0.0.1", peer_port))
        peer.listen(64)
        run = project / "half-joined"
        chief = Nettrain(["fit", project / "config.yaml", "--run-dir", run, "--json", "--worker", 0, "--workers",
                          f"127.0.0.1:{chief_port},127.0.0.1:{peer_port}", "--set", "runtime.worker_timeout=3"],
                         cwd=project)
        started = time.time()
        try:
            rc, out, err = chief.finish(timeout=3 + GRACE + 90)
        finally:
            chief.kill()
    assert rc == 1, err[-3000:]
    assert time.time() - started < 3 + GRACE + 60
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: joining the cluster took more than 33 s"), err
    assert out == "" and not run.exists()
