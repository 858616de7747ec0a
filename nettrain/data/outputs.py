"""Checks for a file a command is about to write (`predict --output`, `init --output`): the folder
it lands in, whether it is another file under a second name, whether it lies in a run directory.
No TensorFlow, no h5py, so `nettrain init` stays light."""

from __future__ import annotations

import os
from pathlib import Path

from nettrain.errors import UsageError
from nettrain.store.rundir import RUN as RUN_FILE  # what makes a folder a nettrain run


def existing_folder(path: Path) -> Path:
    """The nearest existing ancestor of `path`; UsageError when it is a file (not a folder)."""
    folder = path.parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        what = "a file" if folder.is_file() else "a broken link" if folder.is_symlink() else "something else"
        raise UsageError(f"--output {path}: {folder} is {what}, not a folder, so nothing can be written "
                         "inside it; choose another output path")
    return folder


def same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def run_dir_around(folder: Path) -> Path | None:
    """The run directory that `folder` is, or lies directly inside (checkpoints/, plots/, ...)."""
    folder = folder.resolve()
    for candidate in (folder, folder.parent):
        if (candidate / RUN_FILE).is_file():
            return candidate
    return None
