"""store/guard.py and store/atomic.py: signals wait for writes, second signals, temporary files."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nettrain.errors import WriteFailed
from nettrain.store import atomic, guard

ROOT = Path(__file__).resolve().parent.parent


def kill_self(sig=signal.SIGINT):
    os.kill(os.getpid(), sig)


@pytest.fixture
def handlers():
    with guard.handlers():
        yield


def test_first_signal_outside_a_block_raises_at_once(handlers):
    with pytest.raises(KeyboardInterrupt):
        kill_self(signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            pass


def test_deferred_block_finishes_then_raises(handlers):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with guard.deferred():
            kill_self()
            done.append("the write went on")
    assert done == ["the write went on"]


def test_poll_raises_the_recorded_signal_once(handlers):
    with pytest.raises(KeyboardInterrupt):
        with guard.deferred():
            kill_self()
            guard.poll()
    guard.poll()  # delivered: not raised again


def test_second_signal_is_raised_at_once_in_a_library_process(handlers):
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with guard.deferred():
            kill_self()
            kill_self()
            for _ in range(1000):
                pass
            reached.append("after the second signal")
    assert reached == []


def test_critical_block_holds_even_a_second_signal(handlers):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with guard.deferred():
            kill_self()
            with guard.critical():
                kill_self()
                done.append("renamed")
            done.append("not reached")
    assert done == ["renamed"]


def test_handlers_come_back_after_the_block():
    previous = signal.getsignal(signal.SIGTERM)
    with guard.handlers():
        assert guard.installed()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_second_signal_in_the_cli_stops_at_once_cleanly(tmp_path):
    """The command line's mode: temporary files removed, abort hooks run, exit 130, no traceback."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from nettrain.store import guard, atomic
        guard.install()
        marker = {str(tmp_path / "marker")!r}
        with guard.on_abort(lambda: open(marker, "w").write("interrupted")):
            with atomic.atomic_path({str(tmp_path / "file.bin")!r}) as tmp:
                open(tmp, "wb").write(b"partial")
                print("writing", flush=True)
                time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130
    assert "Traceback" not in err and "Exception ignored" not in err
    assert (tmp_path / "marker").read_text() == "interrupted"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["marker"]  # no temp file, no half file


def test_atomic_write_failure_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    atomic.write_text(target, "old")
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(WriteFailed, match=r"cannot write .*run\.json: No space left on device"):
        atomic.write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_staged_files_land_together_or_not_at_all(tmp_path):
    (tmp_path / "a.h5").write_text("old a")
    with pytest.raises(WriteFailed, match=r"cannot write .*b\.h5"):
        with atomic.Staged() as staged:
            staged.path(tmp_path / "a.h5").write_text("new a")
            staged.path(tmp_path / "b.h5")
            raise OSError(28, "No space left on device")
    assert (tmp_path / "a.h5").read_text() == "old a"
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]

    staged = atomic.Staged()
    staged.path(tmp_path / "a.h5").write_text("new a")
    staged.copy(tmp_path / "a.h5", tmp_path / "c.h5")
    staged.commit()
    assert (tmp_path / "a.h5").read_text() == "new a" and (tmp_path / "c.h5").read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "c.h5"]


def test_leftovers_of_a_killed_process_are_found_and_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    leftovers = [tmp_path / ".run.json.tmp-ab12cd.json", tmp_path / "checkpoints" / ".last.h5.tmp-x1y2.h5",
                 tmp_path / ".metrics.abc123.tmp.csv"]  # the last: the naming of earlier versions
    kept = [tmp_path / "run.json", tmp_path / "checkpoints" / "last.h5", tmp_path / "notes.tmp.txt"]
    for p in leftovers + kept:
        p.write_text("x")
    assert sorted(atomic.remove_leftovers(tmp_path)) == sorted(leftovers)
    assert all(p.exists() for p in kept)


def test_written_files_get_ordinary_permissions(tmp_path):
    path = atomic.write_text(tmp_path / "run.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == atomic.FILE_MODE  # not mkstemp's 0600
