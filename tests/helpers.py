"""Small data makers, file digests and a subprocess wrapper shared by the end-to-end tests."""

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
INJECT = Path(__file__).with_name("inject.py")


def mixed_csv(path: Path, n: int = 240, seed: int = 0, missing: bool = False) -> Path:
    """Numeric + categorical features, a 3-class string target that depends on both."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n) * 3 + 10
    color = rng.choice(["red", "green", "blue"], size=n)
    score = x1 + (x2 - 10) / 3 + np.where(color == "red", 1.5, 0.0)
    label = np.where(score > 1, "high", np.where(score < -1, "low", "mid"))
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "x1": x1, "x2": x2, "color": color, "label": label})
    if missing:
        df.loc[::17, "x2"] = np.nan
    df.to_csv(path, index=False)
    return path


def regression_csv(path: Path, n: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 3 + rng.normal(scale=0.1, size=n)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}).to_csv(path, index=False)
    return path


def slow_fixture(function):
    """Mark a fixture that trains a model or starts nettrain in a subprocess (put it under
    `@pytest.fixture`): every test that uses it, directly or through other fixtures, is marked slow."""
    function.marks_slow = True
    return function


def mark_slow_by_fixture(items) -> None:
    """The `slow` rule (conftest's collection hook): add the marker to each item that uses a fixture
    marked by `slow_fixture`; the marks set by hand stay."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)  # absent on items that are not test functions
        defs = info.name2fixturedefs.values() if info else ()
        if any(getattr(d.func, "marks_slow", False) for chain in defs for d in chain):
            item.add_marker("slow")


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` by relative path (a run's `.lock` aside)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file() and p.name != ".lock"}


def copy_run(run: Path, dest: Path) -> Path:
    """A writable copy of a shared run: its whole folder (data, config, run) copied to `dest`; returns
    the copied run directory. The copy's config.yaml still names the original data file (read-only)."""
    shutil.copytree(run.parent, dest, ignore=shutil.ignore_patterns(".lock", "*.lock", "trained.json"))
    return dest / run.name


def as_unprivileged(*owned: Path) -> list[str]:
    """The argv prefix that runs a command without root's right to write anywhere: none for a user
    other than root. Root runs it as `nobody` (setpriv, no groups) keeping only the right to read and
    search any folder (CAP_DAC_READ_SEARCH) so that it can run the code and the venv under root's
    private folders. That right does not count in access(2), by which the command line checks its
    arguments: pass those in a folder of `owned` (given to nobody with all they hold), not in pytest's
    folders, which only root may enter."""
    if os.geteuid() != 0:
        return []
    import pwd

    user = pwd.getpwnam("nobody")
    for top in owned:
        for path in [Path(top), *Path(top).rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]


class Proc:
    """A `nettrain` process (optionally under tests/inject.py FAULT) whose stdout and stderr are
    collected by threads, so a full pipe never blocks it."""

    def __init__(self, args, cwd, fault=None, nohup=False):
        cmd = [sys.executable, "-m", "nettrain", *map(str, args)] if fault is None else \
            [sys.executable, str(INJECT), fault, "--", *map(str, args)]
        if nohup:
            cmd = ["nohup", *cmd]
        env = {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
        self.p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, lines):
        for line in stream:
            lines.append(line)

    @property
    def pid(self):
        return self.p.pid

    def send(self, sig):
        self.p.send_signal(sig)

    def wait_for(self, text, timeout=120):
        """True once `text` appears in stdout or stderr (False if the process ended or time ran out)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(text in line for line in self.out + self.err):
                return True
            if self.p.poll() is not None:
                time.sleep(0.2)
                return any(text in line for line in self.out + self.err)
            time.sleep(0.02)
        return False

    def finish(self, timeout=300):
        rc = self.p.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=10)
        return rc, "".join(self.out), "".join(self.err)
