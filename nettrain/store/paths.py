"""Where a command may write what a user named: one policy for an output path (a file or a folder).

`init --output FILE`, `predict --output FILE` and `lr-find --output DIR` ask `check_output_path`
before anything is read or trained. Its rules, in the order it checks them:

1. the path is of the right kind: a file is wanted where there is a folder, or a folder where
   there is a file, or the path is something else (a fifo, a device, a dangling link): refused;
2. it is not a file the command reads (`not_the`: the data file, the input), by any spelling,
   symlink or hard link;
3. an existing file is replaced only where the command allows it (`force`);
4. every existing part of its path is a folder (nothing is written "inside" a file);
5. it does not lie in a nettrain run directory (a folder holding run.json) at any depth: only
   training writes into a run (runs nest: fold-<i>/checkpoints/, tensorboard/train/);
6. the nearest existing folder may be written into.

An OS error while looking (a name too long, a folder without access, a symlink loop) is a
UsageError too. No TensorFlow, no h5py: `nettrain init` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from nettrain.errors import UsageError
from nettrain.store.rundir import RUN  # what makes a folder a nettrain run


def check_output_path(path: str | os.PathLike, *, writer: str, wanted: str, kind: str = "file",
                      not_the: Iterable[tuple[str | os.PathLike, str]] = (), force: bool | None = None,
                      flag: str = "--output", outside: str = "") -> Path:
    """`path` if `writer` (the command, in messages: "predict") may write there, else UsageError.

    kind: "file" or "folder", what the command writes at `path`. wanted: what to give instead when
    the path is of the other kind ("a file name ending in .yaml"). not_the: (file, words) pairs,
    files the command reads: `path` may not be one of them ("{flag} {path} is {words}").
    force: for a file that exists, None when the command always replaces it, False to refuse it
    (the message points to --force), True to replace it. outside: added to the run-directory
    message (" (default <output.dir>/<name>/lr-find-<time>)")."""
    if kind not in ("file", "folder"):
        raise ValueError(f"kind {kind!r}: expected 'file' or 'folder'")
    path = Path(path)
    named = f"{flag} {path}"
    try:
        if kind == "file":
            if path.is_dir():
                raise UsageError(f"{named} is a folder; give {wanted}")
        elif path.exists() and not path.is_dir():
            raise UsageError(f"{named} is a file; give {wanted}")
        for other, words in not_the:
            if same_file(path, Path(other)):
                raise UsageError(f"{named} is {words}")
        if kind == "file" and (path.exists() or path.is_symlink()):
            if not path.is_file():
                raise UsageError(f"{named} exists and is not a regular file; choose another name")
            if force is False:
                raise UsageError(f"{named} already exists; choose another name, or replace it with --force")
        folder = existing_folder(path if kind == "folder" else path.parent, named)
        run = run_dir_above(path if kind == "folder" else path.parent)
        if run is not None:
            raise UsageError(f"{named} is inside the run directory {run} (it holds {RUN}); {writer} never writes "
                             f"into a run: choose a {kind} outside it{outside}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"{named}: the folder {folder} is not writable")
    except (OSError, RuntimeError) as e:  # a name too long, a folder without access, a symlink loop
        raise UsageError(f"{named}: cannot use this path: {getattr(e, 'strerror', None) or e}") from None
    return path


def existing_folder(start: Path, named: str) -> Path:
    """The nearest existing one of `start` and its ancestors; UsageError when it is not a folder."""
    folder = Path(start)
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        what = "a file" if folder.is_file() else "a broken link" if folder.is_symlink() else "something else"
        raise UsageError(f"{named}: {folder} is {what}, not a folder, so nothing can be written inside it; "
                         "choose another output path")
    return folder


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name one file (by any spelling, symlink or hard link)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def run_dir_above(folder: Path) -> Path | None:
    """The nettrain run directory that `folder` is or lies in, at any depth (symlinks resolved), or None."""
    resolved = Path(folder).resolve()
    for candidate in (resolved, *resolved.parents):
        if (candidate / RUN).is_file():
            return candidate
    return None
