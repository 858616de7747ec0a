"""store/rundir.py: one writer per run, which folders may take a run, the run record, metrics.csv."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nettrain.errors import Interrupted, JobFailed, UsageError
from nettrain.store import rundir

ROOT = Path(__file__).resolve().parent.parent


def make_run(path: Path) -> Path:
    (path / "checkpoints").mkdir(parents=True)
    (path / "plots").mkdir()
    (path / "fold-1").mkdir()
    for name in ("run.json", "config.yaml", "metrics.csv", "model.h5", "eval-test.json", "fold-1/run.json",
                 "checkpoints/last.h5", "checkpoints/epoch001.h5", "plots/learning_curves.png"):
        (path / name).write_text("{}")
    return path


# ------------------------------------------------------------------------- locks

def test_second_writer_is_refused_with_the_holder_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from nettrain.store import rundir
        lock = rundir.RunLock({str(tmp_path)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match=rf"being written by another nettrain process \(pid {holder.pid}\)"):
            rundir.RunLock(tmp_path).acquire()
        assert rundir.try_lock(tmp_path) is None
        assert rundir.is_being_written(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert not rundir.is_being_written(tmp_path)
    with rundir.RunLock(tmp_path) as path:  # the lock died with its holder
        assert path == tmp_path
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


# --------------------------------------------------------------- run folders

def test_new_or_empty_folder_takes_a_run(tmp_path):
    assert rundir.check_run_dir(tmp_path / "new") is False
    (tmp_path / "empty").mkdir()
    assert rundir.check_run_dir(tmp_path / "empty") is False
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / ".lock").write_text("123")  # a process killed before run.json
    assert rundir.check_run_dir(tmp_path / "started") is False


@pytest.mark.parametrize("where, message", [
    (lambda tmp: Path("/"), "refusing the filesystem root"),
    (lambda tmp: Path.home(), "refusing the home folder"),
    (lambda tmp: tmp / "file.txt", "exists and is not a folder"),
    (lambda tmp: tmp / "user", "holds files that are not a nettrain run (notes.txt)"),
])
def test_folders_that_never_take_a_run(tmp_path, where, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            rundir.check_run_dir(where(tmp_path), force=force)


def test_an_existing_run_needs_force_and_force_replaces_only_it(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(UsageError, match="already holds a run .*--force"):
        rundir.check_run_dir(run)
    assert rundir.foreign_entries(run) == []
    with rundir.new_run_dir(tmp_path, "x", run, force=True) as out:
        assert out == run
        assert sorted(p.name for p in run.iterdir()) == [".lock"]

    run = make_run(tmp_path / "run2")
    (run / "notes.txt").write_text("mine")
    (run / "checkpoints" / "readme.md").write_text("mine")
    os.symlink(tmp_path, run / "plots" / "link.png")
    assert rundir.foreign_entries(run) == ["checkpoints/readme.md", "notes.txt", "plots/link.png"]
    with pytest.raises(UsageError, match="--force replaces only a nettrain run.*checkpoints/readme.md"):
        rundir.new_run_dir(tmp_path, "x", run, force=True)
    assert (run / "notes.txt").exists() and (run / "model.h5").exists()


def test_timestamped_run_folders_never_collide(tmp_path):
    a = rundir.new_run_dir(tmp_path, "exp")
    b = rundir.new_run_dir(tmp_path, "exp")
    try:
        assert a.path != b.path and a.path.parent == b.path.parent == tmp_path / "exp"
    finally:
        a.release()
        b.release()


# ------------------------------------------------------------------ run.json

@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "expected a JSON object"),
    ("{not json", "cannot read"),
    (json.dumps({"status": 3}), "'status' holds 3, expected a string"),
    (json.dumps({"epochs_done": "many"}), "'epochs_done' holds 'many'"),
    (json.dumps({"epochs_done": -1}), "'epochs_done' holds -1"),
    (json.dumps({"epochs_done": True}), "'epochs_done' holds True"),
    (json.dumps({"data": [1]}), "'data' holds \\[1\\], expected a mapping"),
    (json.dumps({"data": {"fingerprint": 5}}), "'data.fingerprint' holds 5"),
    (json.dumps({"resumed": "yesterday"}), "'resumed' holds 'yesterday', expected a list"),
])
def test_a_damaged_run_record_is_named(tmp_path, content, message):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(UsageError, match=message):
        rundir.RunRecord.load(tmp_path)


@pytest.mark.parametrize("error, status", [(KeyboardInterrupt(), "interrupted"), (Interrupted("x"), "interrupted"),
                                           (JobFailed("diverged"), "failed"), (ValueError("bug"), "failed")])
def test_an_active_run_never_ends_running(tmp_path, error, status):
    record = rundir.RunRecord(tmp_path)
    record.update(status="running")
    with pytest.raises(type(error)):
        with record.active():
            raise error
    data = rundir.RunRecord.load(tmp_path).data
    assert data["status"] == status and data["ended"]
    if status == "failed":
        assert data["error"]


@pytest.mark.parametrize("content, message", [("- a\n", "'config' is a list"), ("a: [\n", "not valid YAML"),
                                              ("", "'config' is empty")])
def test_a_damaged_run_config_is_named(tmp_path, content, message):
    (tmp_path / "config.yaml").write_text(content)
    with pytest.raises(UsageError, match=message):
        rundir.read_run_config(tmp_path)


# ---------------------------------------------------------------- metrics.csv

def test_metrics_csv_rows_survive_truncation_and_garbage(tmp_path):
    csv = rundir.MetricsCSV(tmp_path / "metrics.csv")
    for e in (1, 2, 3):
        csv.append({"epoch": e, "loss": 1.0 / e, "seconds": 0.1})
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("garbage,row\n4,0.1,0.1\n")  # a hand edit and a row of an epoch that did not finish
    csv = rundir.MetricsCSV(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in csv.read()] == [1, 2, 3, 4]
    csv.truncate_after(2)
    assert [r["epoch"] for r in rundir.MetricsCSV(tmp_path / "metrics.csv").read()] == [1, 2]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "epoch,loss,seconds"


def test_a_run_left_running_by_a_killed_process_is_listed_as_killed(tmp_path):
    from nettrain.report.runs import collect_runs

    for name in ("dead", "done"):
        (tmp_path / name).mkdir()
    (tmp_path / "dead" / "run.json").write_text(json.dumps({"status": "running", "name": "dead"}))
    (tmp_path / "done" / "run.json").write_text(json.dumps({"status": "completed", "name": "done"}))
    statuses = {r["name"]: r["status"] for r in collect_runs(tmp_path)}
    assert statuses == {"dead": "killed", "done": "completed"}
    assert not (tmp_path / "dead" / ".lock").exists()  # listing writes nothing
