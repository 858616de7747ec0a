"""Progress of the long passes over data (`Meter`): the first pass of a stream, evaluate, predict.

Always on stderr, never stdout. On a terminal (stderr a tty, no `CI`, `NO_COLOR` or `TERM=dumb`) a
Rich bar with rows (or bytes) done of the total, rows/s and an ETA, cleared when the pass ends; in a
log (not a terminal) a plain line at most every `PLAIN_EVERY` seconds. Nothing is shown for a pass
shorter than `SILENT_FOR` seconds, so quick commands stay as they were. A pass stopped by an error
or Ctrl-C says where it stopped (a plain line, also on a terminal).

What to show is decided once per process: `NETTRAIN_PROGRESS` (`auto`, the default; `rich`,
`plain` or `off`) and `NETTRAIN_PROGRESS_EVERY` (seconds between plain lines, default 10; the first
after min(2, that)). `quiet()` turns it off for a block (fit --quiet, --json), in every thread of the
process (a stream's passes run on reading threads).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Iterator

PLAIN_EVERY = 10.0         # seconds between plain lines in a log
SILENT_FOR = 2.0           # seconds a pass runs before anything is shown
MODE_ENV, EVERY_ENV = "NETTRAIN_PROGRESS", "NETTRAIN_PROGRESS_EVERY"

_quiet = [0]                # blocks inside `quiet()` now, in any thread
_quiet_lock = threading.Lock()


@contextlib.contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """No progress inside (`on`), whatever NETTRAIN_PROGRESS says: of this thread and of the threads
    reading ahead for it (a streamed epoch's pass, and the cache it builds, run on one)."""
    with _quiet_lock:
        _quiet[0] += bool(on)
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet[0] -= bool(on)


def mode() -> str:
    """'rich', 'plain' or 'off': what a Meter started now shows."""
    if _quiet[0]:
        return "off"
    chosen = os.environ.get(MODE_ENV, "auto").strip().lower()
    if chosen in ("rich", "plain", "off"):
        return chosen
    if os.environ.get("NO_COLOR") or os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return "plain"
    stream = sys.stderr
    return "rich" if hasattr(stream, "isatty") and stream.isatty() else "plain"


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get(EVERY_ENV, PLAIN_EVERY)))
    except ValueError:
        return PLAIN_EVERY


def amount(n: float, unit: str) -> str:
    if unit == "bytes":
        for name, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
            if n >= size:
                return f"{n / size:.1f} {name}"
        return f"{int(n)} bytes"
    return f"{int(n):,} {unit}"


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class Meter:
    """The progress of one pass: `add(n)` rows (or bytes) done, of `total` (None: unknown; `approx`:
    an estimate, so the ETA is one too and the count may pass it). A context manager: leaving it
    ends the display; leaving by an exception says where the pass stopped. `lines`: plain lines on a
    terminal too (a pass under another live display, training's bars: Rich prints them above it)."""

    def __init__(self, what: str, total: int | None = None, *, unit: str = "rows", approx: bool = False,
                 lines: bool = False):
        self.what, self.total, self.unit, self.approx = what, total, unit, approx
        self.done = 0
        self.mode = mode()
        if lines and self.mode == "rich":
            self.mode = "plain"
        self.every = _every()
        self.start = time.monotonic()
        self.shown = False           # a line or the bar was shown
        self._last = self.start
        self._bar = None
        self._task = None

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, kind, error, tb) -> None:
        if kind is None:
            self.finish()
        elif issubclass(kind, GeneratorExit):  # the consumer had what it wanted
            self._close_bar()
        else:
            self.stop(kind)

    def add(self, n: int) -> None:
        self.done += int(n)
        self._tick()

    def line(self) -> str:
        """`what: done of total (share), rate, ETA` in words."""
        elapsed = max(1e-9, time.monotonic() - self.start)
        rate = self.done / elapsed
        text = f"{self.what}: {amount(self.done, self.unit)}"
        if self.total:
            share = min(1.0, self.done / self.total)
            text += f" of {'about ' if self.approx else ''}{amount(self.total, self.unit)} ({share:.0%})"
        text += f", {amount(rate, self.unit)}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {'~' if self.approx else ''}{duration((self.total - self.done) / rate)}"
        return text

    def _tick(self) -> None:
        if self.mode == "off":
            return
        now = time.monotonic()
        if now - self.start < min(SILENT_FOR, self.every):
            return
        if self.mode == "rich":
            self._rich()
            return
        if self.shown and now - self._last < self.every:
            return
        self._last, self.shown = now, True
        _write(self.line())

    def _rich(self) -> None:
        if self._bar is None:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TextColumn
            except ImportError:  # pragma: no cover - rich comes with typer
                self.mode = "plain"
                return
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                 console=Console(stderr=True), transient=True, refresh_per_second=4,
                                 redirect_stdout=False, redirect_stderr=False)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total or None, info="")
            self.shown = True
        info = self.line()[len(self.what) + 2:]
        total = max(self.total or 0, self.done) or None
        self._bar.update(self._task, completed=self.done, total=total, info=info)

    def _close_bar(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            with contextlib.suppress(Exception):
                bar.stop()

    def finish(self) -> None:
        """The pass is done: a last line when any was shown (a log), the bar cleared (a terminal)."""
        self._close_bar()
        if self.shown and self.mode == "plain":
            elapsed = time.monotonic() - self.start
            _write(f"{self.what}: done, {amount(self.done, self.unit)} in {duration(elapsed)} "
                   f"({amount(self.done / max(elapsed, 1e-9), self.unit)}/s)")
        self.shown = False

    def stop(self, kind: type | None = None) -> None:
        """The pass stopped before its end (an error, Ctrl-C): say where, when anything was shown."""
        self._close_bar()
        if self.shown or (self.mode != "off" and time.monotonic() - self.start >= SILENT_FOR):
            why = "interrupted" if kind is not None and issubclass(kind, KeyboardInterrupt) else "stopped"
            _write(f"{self.what}: {why} after {amount(self.done, self.unit)}"
                   + (f" of {'about ' if self.approx else ''}{amount(self.total, self.unit)}" if self.total else "")
                   + f" ({duration(time.monotonic() - self.start)})")
        self.shown = False


def metered(items, meter: Meter, size=len) -> Iterator:
    """`items`, each counted by `meter` (`size(item)` rows) once the consumer is done with it; the
    meter is finished when they end, stopped when the consumer stops early or fails."""
    with meter:
        for item in items:
            n = size(item)
            hand = [item]
            del item
            yield hand.pop()
            meter.add(n)


def _write(line: str) -> None:
    with contextlib.suppress(Exception):
        print(line, file=sys.stderr, flush=True)
