"""One exception type per exit code.

Library code raises these; only the CLI turns them into exit codes and messages.
"""

from __future__ import annotations

from nettrain.words import first_line

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_INTERRUPTED = 130


class NettrainError(Exception):
    """Base class: carries the exit code the CLI should use."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(NettrainError):
    """A user mistake: config, data, path or argument. Exit 2."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A mistake in a config file: names the file, the key path and (when known) the line."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None,
                 line: int | None = None):
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        key = f"{path}: " if path else ""
        super().__init__(f"{where}{key}{message}")
        self.file, self.path, self.line, self.detail = file, path, line, message


class DataError(UsageError):
    """Data that cannot be used as configured (missing column, bad values, empty split)."""


class JobFailed(NettrainError):
    """The job ran and failed (diverged, NaN loss, internal error). Exit 1."""

    exit_code = EXIT_FAILED


class PeerLost(JobFailed):
    """Another process of a multi_worker cluster stopped, hung or cannot be reached. Exit 1.

    Raised by `training.distributed.peers`; the worker path catches the type to add how to resume."""


class GateFailed(NettrainError):
    """A --fail-under gate was not met. Exit 3."""

    exit_code = EXIT_GATE


class Interrupted(NettrainError):
    """Ctrl-C or SIGTERM after saving what was done. Exit 130."""

    exit_code = EXIT_INTERRUPTED


class WriteFailed(JobFailed):
    """A file could not be written (disk full, read-only folder, permissions). Exit 1.

    The file it would have replaced is intact: every write goes to a temporary file first."""

    def __init__(self, path, cause: BaseException | str):
        reason = cause if isinstance(cause, str) else describe_os_error(cause)
        super().__init__(f"cannot write {path}: {reason}")
        self.path, self.reason = path, reason


def describe_os_error(err: BaseException) -> str:
    """`No space left on device` for an OSError (also one wrapped in h5py's longer message)."""
    import errno as _errno
    import os as _os

    code = getattr(err, "errno", None)
    if isinstance(code, int) and code in _errno.errorcode:
        return _os.strerror(code)
    text = str(err)
    for code in (_errno.ENOSPC, _errno.EROFS, _errno.EACCES, _errno.EDQUOT, _errno.EIO, _errno.EFBIG):
        if _os.strerror(code) in text or f"errno = {code}," in text:
            return _os.strerror(code)
    return first_line(err)
