"""Run a command as a fresh process and measure it: wall time from start to exit, peak RSS.

A small launcher process starts the command and reports the child's peak RSS (os.wait4): a child
forked straight from a large benchmark process would count that process's pages until it execs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
code = os.waitstatus_to_exitcode(status)
sys.stderr.buffer.write(err[-4000:] if code else b"")
print(usage.ru_maxrss)
sys.exit(code)
"""


def timed_process(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds from start to exit, peak RSS in MB) of one child process; its output is dropped,
    and a failure ends the benchmark with the end of its stderr."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *argv], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, int(proc.stdout.split()[-1]) / 1024
