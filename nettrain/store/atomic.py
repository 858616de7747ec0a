"""Write files so that a crash never leaves a half-written one: temp file, then rename.

The temporary file sits next to its target as `.<name>.tmp-<random><suffix>`; it is removed when
the write fails or is interrupted (and by `remove_leftovers` after a process was killed). A
first SIGINT/SIGTERM waits for a write to finish (`guard.deferred`). An OSError while writing
(disk full, read-only folder) becomes `WriteFailed` naming the file, and the file it would have
replaced is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from nettrain.errors import WriteFailed
from nettrain.store import guard

TEMP_MARK = ".tmp-"
# this naming, and `.<stem>.<random>.tmp<suffix>` of earlier versions
_LEFTOVER = re.compile(r"^\..+\.tmp(-[^/]*)?(\.[A-Za-z0-9]+)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files; the files it becomes get the permissions a plain open() would give
FILE_MODE = 0o666 & ~_umask()


def _new_temp(path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", suffix=path.suffix, dir=path.parent)
    except OSError as e:
        raise WriteFailed(path, e) from None
    os.close(fd)
    guard.track(tmp)
    try:
        os.chmod(tmp, FILE_MODE)
    except OSError:
        pass
    return Path(tmp)


def _drop(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()
    guard.untrack(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same suffix); rename it over `path` on success."""
    path = Path(path)
    with guard.deferred():
        tmp = _new_temp(path)
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as e:
            raise WriteFailed(path, e) from None
        finally:
            _drop(tmp)


class Staged:
    """Several files written under temporary names first, then renamed over their targets together.

    `commit()` is quick (renames only), so a caller can make it land with other small writes in a
    `guard.critical()` block; `discard()` (or leaving a `with` block by an exception) removes the
    temporary files and leaves every target as it was.
    """

    def __init__(self) -> None:
        self._pairs: list[tuple[Path, Path]] = []

    def path(self, target: str | os.PathLike) -> Path:
        """A temporary file that `commit()` will rename to `target`."""
        tmp = _new_temp(Path(target))
        self._pairs.append((tmp, Path(target)))
        return tmp

    def copy(self, source: Path, target: str | os.PathLike) -> None:
        tmp = self.path(target)
        try:
            shutil.copyfile(source, tmp)
        except OSError as e:
            raise WriteFailed(target, e) from None

    def commit(self) -> None:
        target = None
        try:
            for tmp, target in self._pairs:
                os.replace(tmp, target)
        except OSError as e:
            raise WriteFailed(target, e) from None
        finally:
            self.discard()

    def discard(self) -> None:
        for tmp, _ in self._pairs:
            if tmp.exists():
                _drop(tmp)
            guard.untrack(tmp)
        self._pairs.clear()

    def __enter__(self) -> "Staged":
        return self

    def __exit__(self, kind, err, tb) -> None:
        if kind is None:
            return
        target = self._pairs[-1][1] if self._pairs else None
        self.discard()
        if isinstance(err, OSError) and target is not None:  # writing the newest file failed
            raise WriteFailed(target, err) from None


def remove_leftovers(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed process left in `directory` (recursively, no links followed)."""
    removed = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in files:
            if _LEFTOVER.match(name):
                p = Path(root) / name
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


def is_leftover(name: str) -> bool:
    return bool(_LEFTOVER.match(name))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Small records (run.json, metrics.csv) also reach the disk before the rename; model files are
    left to the page cache, which a killed process does not lose (fsync costs ~15% of a fast epoch)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(finite(obj), indent=2, sort_keys=False, default=json_default) + "\n")


def finite(obj: Any) -> Any:
    """JSON has no NaN/inf: they become null (a diverged metric stays readable by every parser)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def json_default(value: Any) -> Any:
    """numpy scalars and arrays, paths -> plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
