"""`nettrain sweep` end to end: real trial processes, a real SQLite file, a real PostgreSQL server
started from the system's binaries, pruning, Ctrl-C, and `fit best.yaml` reproducing the best trial."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, Proc, slow_fixture

pytestmark = pytest.mark.slow

CONFIG = """
name: iris-sweep
seed: 7
data: {source: "sklearn:iris", target: target}
model:
  layers:
    - {type: Dense, units: 8, activation: relu}
training: {epochs: 2, batch_size: 16}
callbacks: {checkpoint: false}
output: {plots: false}
sweep:
  trials: 6
  sampler: random
  pruner: none
  params:
    training.optimizer.learning_rate: {log_uniform: [1.0e-3, 1.0e-1]}
    model.layers.0.units: {int: [4, 16], step: 4}
"""


def nettrain(args, cwd, timeout=600):
    env = {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nettrain", *map(str, args)], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def status(folder, cwd):
    r = nettrain(["sweep-status", folder, "--json"], cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def work(tmp_path):
    (tmp_path / "sweep.yaml").write_text(CONFIG)
    return tmp_path


def test_six_trials_two_jobs_best_yaml_plots_table_and_fit_reproduces(work):
    r = nettrain(["sweep", "sweep.yaml", "--jobs", "2", "--set", "output.plots=true"], work)
    assert r.returncode == 0, r.stderr
    folder = work / "runs" / "iris-sweep" / "sweep"
    assert r.stderr.count("trial ") >= 6 and "best" in r.stderr  # one line per finished trial
    assert "val_loss" in r.stdout and "trial-0005" in r.stdout   # the table, best first
    result = status(folder, work)
    assert [t["state"] for t in result["trials"]] == ["complete"] * 6
    assert sorted(t["number"] for t in result["trials"]) == list(range(6))
    values = [t["value"] for t in result["trials"]]
    assert values == sorted(values)  # best first (val_loss: lowest)
    assert len({t["run_dir"] for t in result["trials"]}) == 6
    for t in result["trials"]:
        run = json.loads((Path(t["run_dir"]) / "run.json").read_text())
        assert run["status"] == "completed"
    logs = "".join(p.read_text() for p in (folder / "logs").glob("*.log"))
    assert "locked" not in logs
    for t in result["trials"]:  # each trial's log ends as fit's output does: the table, its run directory
        log = (folder / "logs" / f"trial-{t['number']:04d}.log").read_text()
        assert "Final metrics" in log and log.rstrip().endswith(f"run directory: {t['run_dir']}"), log[-500:]
    for plot in ("optimization_history.png", "param_importances.png", "slice.png", "contour.png"):
        assert (folder / "plots" / plot).stat().st_size > 5000, plot
    best = result["best"]
    assert best == result["trials"][0]
    # best.yaml is the best trial's resolved config: fit it again, same seed, the same model's value
    # (the value is the saved model's: here the last epoch's, no early stopping)
    assert best["value_epoch"] == 2
    fit = nettrain(["fit", folder / "best.yaml", "--run-dir", work / "again", "--json"], work)
    assert fit.returncode == 0, fit.stderr
    again = json.loads(fit.stdout)["validation"]["loss"]
    assert again == pytest.approx(best["value"], rel=1e-6, abs=1e-7)
    # the same command again continues the study: nothing left to do
    r = nettrain(["sweep", "sweep.yaml", "--json"], work)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["trials"]) == 6 and "trial 6" not in r.stderr
    # a gate on the best trial (exit 3 when missed)
    r = nettrain(["sweep", "sweep.yaml", "--fail-under", "val_loss=0.0000001"], work)
    assert r.returncode == 3, r.stderr
    assert "MISSED" in r.stderr
    r = nettrain(["sweep", "sweep.yaml", "--fail-under", f"val_loss={best['value'] + 1e-6}"], work)
    assert r.returncode == 0, r.stderr


def test_two_sweep_processes_at_once_on_a_new_sqlite_file(work):
    args = ["sweep", "sweep.yaml", "--trials", "4"]
    procs = [Proc(args, work), Proc(args, work)]  # both create the same new storage at the same moment
    results = [p.finish(timeout=600) for p in procs]
    for rc, out, err in results:
        assert rc == 0, err
    folder = work / "runs" / "iris-sweep" / "sweep"
    result = status(folder, work)
    assert sorted(t["number"] for t in result["trials"] if t["state"] == "complete") == [0, 1, 2, 3]
    assert all(t["state"] == "complete" for t in result["trials"])
    ran = sum(err.count(": val_loss ") for _, _, err in results)
    assert ran == 4  # no trial run twice, none lost
    assert not any("locked" in err for _, _, err in results)


def test_invalid_value_is_exit_2_before_any_trial(work):
    r = nettrain(["sweep", "sweep.yaml", "--set", "training.optimizer=sgd", "--set",
                  "sweep.metric=val_acuracy"], work)
    assert r.returncode == 2
    assert "sweep.metric" in r.stderr and "Traceback" not in r.stderr
    assert not (work / "runs" / "iris-sweep" / "sweep" / "trial-0000").exists()
    (work / "bad.yaml").write_text(CONFIG.replace("model.layers.0.units", "model.layers.0.unitz"))
    r = nettrain(["sweep", "bad.yaml"], work)
    assert r.returncode == 2 and "sweep.params.model.layers.0.unitz" in r.stderr
    r = nettrain(["sweep", "sweep.yaml", "--storage", "postgresql+psycopg://u:pw@127.0.0.1:1/x"], work)
    assert r.returncode == 2 and "cannot reach" in r.stderr and "pw@" not in r.stderr


def test_a_failing_trial_is_a_failed_trial_not_a_crash(work):
    # sgd at 1e30 diverges (NaN loss): that trial fails with its message, the other completes
    (work / "nan.yaml").write_text(CONFIG.replace(
        "training.optimizer.learning_rate: {log_uniform: [1.0e-3, 1.0e-1]}",
        "training.optimizer.learning_rate: {choice: [1.0e+30, 0.01]}").replace(
        "training: {epochs: 2, batch_size: 16}", "training: {epochs: 2, batch_size: 16, optimizer: sgd}").replace(
        "sampler: random", "sampler: grid").replace("{int: [4, 16], step: 4}", "{choice: [8]}"))
    r = nettrain(["sweep", "nan.yaml", "--trials", "2"], work)
    assert r.returncode == 0, r.stderr
    result = status(work / "runs" / "iris-sweep" / "sweep", work)
    states = sorted(t["state"] for t in result["trials"])
    assert states == ["complete", "failed"], result["trials"]
    failed = next(t for t in result["trials"] if t["state"] == "failed")
    assert "nan" in failed["error"].lower() and "failed:" in r.stderr
    assert result["best"]["params"]["training.optimizer.learning_rate"] == 0.01
    assert "1 of 2 trials run here failed (1 complete, 0 pruned)" in r.stderr  # said, yet exit 0


def test_a_sweep_whose_every_trial_failed_exits_1_with_the_first_message(work):
    (work / "nan.yaml").write_text(CONFIG.replace(
        "training.optimizer.learning_rate: {log_uniform: [1.0e-3, 1.0e-1]}",
        "training.optimizer.learning_rate: {choice: [1.0e+30, 1.0e+31]}").replace(
        "training: {epochs: 2, batch_size: 16}", "training: {epochs: 1, batch_size: 16, optimizer: sgd}").replace(
        "sampler: random", "sampler: grid").replace("{int: [4, 16], step: 4}", "{choice: [8]}"))
    r = nettrain(["sweep", "nan.yaml", "--trials", "2", "--json"], work)
    assert r.returncode == 1, r.stderr
    table = json.loads(r.stdout)  # the results still go to stdout
    assert [t["state"] for t in table["trials"]] == ["failed", "failed"]
    first = min(table["trials"], key=lambda t: t["number"])
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: all 2 trials of the sweep failed; the first, trial {first['number']}: ")
    assert first["error"].splitlines()[0] in last and "nan" in last.lower() and "Traceback" not in r.stderr


def test_pruning_stops_trials_in_a_bad_learning_rate_region(work):
    (work / "prune.yaml").write_text(CONFIG.replace(
        "{log_uniform: [1.0e-3, 1.0e-1]}", "{log_uniform: [1.0e-7, 1.0e-1]}").replace(
        "epochs: 2", "epochs: 6").replace("trials: 6", "trials: 9").replace("pruner: none", "pruner: median").replace(
        "{int: [4, 16], step: 4}", "{choice: [16]}"))
    r = nettrain(["sweep", "prune.yaml"], work)
    assert r.returncode == 0, r.stderr
    result = status(work / "runs" / "iris-sweep" / "sweep", work)
    pruned = [t for t in result["trials"] if t["state"] == "pruned"]
    assert pruned, result["trials"]
    for t in pruned:
        run = json.loads((Path(t["run_dir"]) / "run.json").read_text())
        assert run["status"] == "pruned" and t["epochs"] < 6
    done = [t for t in result["trials"] if t["state"] == "complete"]
    worst_pruned_lr = max(t["params"]["training.optimizer.learning_rate"] for t in pruned)
    assert result["best"]["params"]["training.optimizer.learning_rate"] > min(
        t["params"]["training.optimizer.learning_rate"] for t in pruned)
    assert done and worst_pruned_lr < 0.1
    assert "pruned after epoch" in r.stderr


def _wait_for_first_epoch(p: Proc, run: Path) -> None:
    """Until trial `run` has finished an epoch (its sweep process `p` killed and the test failed after 120 s)."""
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if json.loads((run / "run.json").read_text()).get("epochs_done", 0) >= 1:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    p.send(signal.SIGKILL)
    pytest.fail("trial 0 never started an epoch")


def test_ctrl_c_marks_the_running_trial_and_the_study_continues(work):
    (work / "long.yaml").write_text(CONFIG.replace("epochs: 2", "epochs: 400").replace("trials: 6", "trials: 2"))
    p = Proc(["sweep", "long.yaml"], work)
    run = work / "runs" / "iris-sweep" / "sweep" / "trial-0000"
    _wait_for_first_epoch(p, run)
    p.send(signal.SIGINT)
    rc, out, err = p.finish(timeout=180)
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    folder = work / "runs" / "iris-sweep" / "sweep"
    assert [t["state"] for t in status(folder, work)["trials"]] == ["interrupted"]
    # the same command continues: the interrupted trial does not count
    r = nettrain(["sweep", "long.yaml", "--set", "training.epochs=2"], work)
    assert r.returncode == 0, r.stderr
    states = sorted(t["state"] for t in status(folder, work)["trials"])
    assert states == ["complete", "complete", "interrupted"]


def _running(pid: int) -> bool:
    """Whether process `pid` is alive (a zombie nobody reaped yet is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_kill_9_of_the_sweep_process_ends_its_trial_and_both_records_say_interrupted(work):
    (work / "long.yaml").write_text(CONFIG.replace("epochs: 2", "epochs: 2000").replace("trials: 6", "trials: 2"))
    p = Proc(["sweep", "long.yaml"], work)
    folder = work / "runs" / "iris-sweep" / "sweep"
    run = folder / "trial-0000"
    _wait_for_first_epoch(p, run)
    trial_pid = int((run / ".lock").read_text().split()[0])  # the run's writer: the trial process
    assert trial_pid != p.pid and _running(trial_pid)
    p.send(signal.SIGKILL)
    p.finish(timeout=30)
    deadline = time.time() + 20
    while _running(trial_pid) and time.time() < deadline:
        time.sleep(0.1)
    if _running(trial_pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(trial_pid, signal.SIGKILL)
        pytest.fail("the trial process went on training after its sweep process was killed")
    log = (folder / "logs" / "trial-0000.log").read_text()
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted", log
    assert [t["state"] for t in status(folder, work)["trials"]] == ["interrupted"], log
    assert "interrupted" in log


def test_a_trial_without_prctl_watches_its_sweep_process_through_a_pipe(tmp_path):
    """The portable way (no PR_SET_PDEATHSIG): the end of the pipe the sweep process holds is seen in
    the trial, which sends itself SIGTERM. A real parent process, killed with SIGKILL."""
    child = ("import os, signal, sys, threading, time\n"
             "from nettrain.sweep.trial import _wait_for_parent\n"
             "signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[3], 'w').write('SIGTERM'), os._exit(0)))\n"
             "watch = (int(sys.argv[1]), int(sys.argv[2]))\n"
             "threading.Thread(target=_wait_for_parent, args=watch, daemon=True).start()\n"
             "time.sleep(60)\n")
    parent = ("import os, subprocess, sys, time\n"
              "r, w = os.pipe()\n"
              "c = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid()), str(r), sys.argv[2]],"
              " pass_fds=(r,), start_new_session=True)\n"
              "os.close(r)\n"
              "print(c.pid, flush=True)\n"
              "time.sleep(60)\n")
    marker = tmp_path / "ended"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-c", parent, child, str(marker)], stdout=subprocess.PIPE, text=True,
                         env=env)
    try:
        child_pid = int(p.stdout.readline())
        time.sleep(1.0)  # the child is importing and watching
        assert not marker.exists()
    finally:
        p.kill()
        p.wait()
    deadline = time.time() + 20
    # the child's handler creates the file, then writes it: wait for the word, not only for the file
    while not (marker.exists() and marker.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    if not marker.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)
    assert marker.read_text() == "SIGTERM"


# ----------------------------------------------------------------------------- PostgreSQL

def _pg_bin() -> Path | None:
    for found in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True):
        return found.parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
@slow_fixture
def postgres():
    """A PostgreSQL server of the system's binaries on a free port of 127.0.0.1, trusted local logins;
    run as the `postgres` user when the tests run as root (the server refuses root)."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) here; .ci/run installs Debian's postgresql")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="nettrain-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to start the server as postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(base, 0o755)
        data.mkdir()
        os.chown(data, user.pw_uid, user.pw_gid)
    port = _free_port()
    try:
        subprocess.run([*as_user, str(pg / "initdb"), "-D", str(data), "--no-sync", "-A", "trust", "-U", "postgres",
                        "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, str(pg / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "server.log"), "-o",
                        f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_two_sweep_processes_share_a_postgresql_study(work, postgres):
    args = ["sweep", "sweep.yaml", "--trials", "4", "--storage", postgres, "--study", "shared"]
    procs = [Proc(args, work), Proc(args, work)]
    results = [p.finish(timeout=600) for p in procs]
    for rc, out, err in results:
        assert rc == 0, err
    r = nettrain(["sweep-status", "--storage", postgres, "--study", "shared", "--json"], work)
    assert r.returncode == 0, r.stderr
    trials = json.loads(r.stdout)["trials"]
    assert sorted(t["number"] for t in trials) == [0, 1, 2, 3]
    assert all(t["state"] == "complete" for t in trials)
    ran = [err.count(": val_loss ") for _, _, err in results]
    assert sum(ran) == 4
