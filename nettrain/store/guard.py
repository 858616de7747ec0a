"""SIGINT/SIGTERM and the files being written when they arrive.

The command line installs the handlers before anything slow (TensorFlow) is imported, so
SIGINT, SIGTERM and SIGHUP end the process with exit 130 through a `KeyboardInterrupt`, never a
kill by signal.

- Outside the blocks below a first signal raises `KeyboardInterrupt` at once.
- `deferred()`: a first signal is only recorded and raised when the block ends or at the next
  `poll()`. Around a write (a checkpoint, the final model, a metrics file) it lets the write
  finish; around training it keeps the interrupt to points where stopping is safe (Keras batch and
  epoch boundaries), never inside TensorFlow's internals or a finalizer, where Python would
  swallow it with an "Exception ignored" message.
- `critical()`: even a second signal waits (a few renames and small writes that must land
  together, so that run.json, metrics.csv and last.h5 agree).
- A second signal anywhere else ends the process at once: the temporary files of writes in flight
  are removed (the files they would have replaced are intact), the `on_abort` hooks mark the run
  interrupted, and the process exits 130 without running finalizers (no stray tracebacks). In a
  library caller's process (`handlers()`, e.g. a notebook) it is raised at once instead.

Nothing here imports more than the standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Callable, Iterator

EXIT_INTERRUPTED = 130
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HUP = getattr(signal, "SIGHUP", None)  # not on Windows


class _State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.received = 0              # signals since the last reset
        self.pending: int | None = None  # a first signal not yet raised
        self.defer = 0                 # depth of deferred() and critical() blocks
        self.critical = 0              # depth of critical() blocks
        self.exit_after_critical = False
        self.temps: set[str] = set()   # temporary files of writes in flight
        self.aborts: list[Callable[[], None]] = []
        self.exit_at_once = True       # a second signal ends the process (the CLI), or raises (a library)
        self.told_user = False         # the interrupt was reported to the user


_S = _State()


def _handler(signum, frame) -> None:
    _S.received += 1
    if _S.received >= 2:
        if _S.critical:
            _S.exit_after_critical = True
            return
        _second()
    _S.pending = signum  # kept until acknowledged: re-raised by poll() if a finalizer swallows it
    if not _S.defer:
        raise KeyboardInterrupt


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> bool:
    """Route SIGINT and SIGTERM through nettrain's handler (idempotent). False off the main thread.

    SIGHUP (a closed terminal or SSH session) is handled the same way unless it is ignored, as
    `nohup` arranges: then it stays ignored.
    """
    if not _in_main_thread():
        return False
    for sig in SIGNALS:
        signal.signal(sig, _handler)
    if _HUP is not None and signal.getsignal(_HUP) in (signal.SIG_DFL, _handler):
        signal.signal(_HUP, _handler)
    return True


def installed() -> bool:
    return all(signal.getsignal(sig) is _handler for sig in SIGNALS)


@contextlib.contextmanager
def handlers() -> Iterator[None]:
    """The handlers for the duration of the block (library use); the previous ones come back after."""
    if installed() or not _in_main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS + ((_HUP,) if _HUP is not None else ())}
    reset()
    _S.exit_at_once = False
    install()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def reset() -> None:
    """Forget earlier signals and hooks (a new command in the same process)."""
    _S.reset()


def poll() -> None:
    """Raise the recorded first signal as KeyboardInterrupt (a safe point to stop)."""
    if _S.pending is not None and not _S.critical:
        _S.pending = None
        raise KeyboardInterrupt


def interrupted() -> bool:
    return _S.received > 0


def tell() -> None:
    """The user has been told that the command was interrupted (say it once)."""
    _S.told_user = True


def told() -> bool:
    return _S.told_user


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A first signal is recorded and raised by the next `poll()` (or at the end of the block)."""
    _S.defer += 1
    try:
        yield
    finally:
        _S.defer -= 1
    if not _S.defer:
        poll()


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A short block that no signal cuts, not even a second one (which then exits right after)."""
    _S.defer += 1
    _S.critical += 1
    try:
        yield
    finally:
        _S.critical -= 1
        _S.defer -= 1
    if not _S.critical and _S.exit_after_critical:
        _S.exit_after_critical = False
        _second()
    if not _S.defer:
        poll()


def track(path: str | os.PathLike) -> None:
    """A temporary file now being written: removed if the process is stopped at once."""
    _S.temps.add(os.fspath(path))


def untrack(path: str | os.PathLike) -> None:
    _S.temps.discard(os.fspath(path))


@contextlib.contextmanager
def on_abort(hook: Callable[[], None]) -> Iterator[None]:
    """Run `hook` (quick, best effort) if a second signal stops the process inside the block."""
    _S.aborts.append(hook)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            _S.aborts.remove(hook)


def acknowledge() -> None:
    """The interrupt was caught and is being handled: do not raise it again."""
    _S.pending = None


def _second() -> None:
    if _S.exit_at_once:
        abort()
    _S.pending = None
    raise KeyboardInterrupt


def abort() -> None:
    """Stop now: remove in-flight temporary files, run the abort hooks, exit 130."""
    _S.pending = None
    _S.critical += 1  # nothing the hooks write polls for a signal any more
    for path in list(_S.temps):
        with contextlib.suppress(OSError):
            os.unlink(path)
    _S.temps.clear()
    for hook in reversed(list(_S.aborts)):
        try:
            hook()
        except BaseException:  # noqa: BLE001 - best effort on the way out
            pass
    for path in list(_S.temps):  # temp files the hooks left behind
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.write(2, b"interrupted again: stopped at once (files already written are intact)\n")
    os._exit(EXIT_INTERRUPTED)
