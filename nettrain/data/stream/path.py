"""Which path a config's data takes (`choose`): streamed from its file(s), or read whole into memory.

`data.stream: auto` streams when the data files together are larger than a quarter of the
available memory (`STREAM_SHARE`); only CSV, TSV (also gzip/bz2-compressed) and Parquet files
stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nettrain.data import chunks as C

STREAM_SHARE = 4           # data.stream auto: stream files larger than 1/STREAM_SHARE of the available memory
SPLIT_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class DataPath:
    """Whether a config's data is streamed, and why (what `validate --build` prints)."""

    stream: bool
    why: str

    def describe(self) -> str:
        return f"data: {'streamed' if self.stream else 'in memory'} ({self.why})"


def data_files(cfg) -> dict[str, str] | None:
    """{part: path} of a config's data files ("source", or "train"/"validation"/"test"); None for a
    bundled set or a generator."""
    data = cfg.data
    if data.source is None:
        return {part: getattr(data, part) for part in SPLIT_NAMES if getattr(data, part) is not None}
    src = data.source
    if not isinstance(src, str) or src.startswith(("sklearn:", "keras:")):
        return None
    return {"source": src}


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def choose(cfg, recorded: bool | None = None) -> DataPath:
    """The path `cfg`'s data takes. `recorded`: the path a run was started on (--resume keeps it
    under `data.stream: auto`, whatever the available memory is now)."""
    setting = cfg.data.stream
    files = data_files(cfg)
    if files is None or not all(C.streamable(p) for p in files.values()):
        what = _source_text(cfg, files)
        if setting is True:
            raise cfg.error("data.stream", f"true needs CSV, TSV or Parquet files, and {what} can only be read in "
                            "memory; set data.stream: auto or false")
        return DataPath(False, f"{what}: only CSV, TSV and Parquet files are streamed")
    if setting is False:
        return DataPath(False, "data.stream: false")
    if setting is True:
        return DataPath(True, "data.stream: true")
    if recorded is not None:
        return DataPath(bool(recorded), "data.stream: auto, as when the run started")
    size = sum(_size(p) for p in files.values())
    avail = available_memory()
    names = " + ".join(Path(p).name for p in files.values())
    if avail is None:
        return DataPath(False, f"data.stream: auto; the available memory is unknown, so {names} is read whole")
    limit = avail // STREAM_SHARE
    if size > limit:
        return DataPath(True, f"data.stream: auto; {names} is {_bytes(size)}, more than a quarter of the "
                        f"{_bytes(avail)} of available memory")
    return DataPath(False, f"data.stream: auto; {names} is {_bytes(size)}, less than a quarter of the "
                    f"{_bytes(avail)} of available memory")


def _source_text(cfg, files: dict[str, str] | None) -> str:
    if files is None:
        src = cfg.data.source
        return src if isinstance(src, str) else f"the generator {src.generator}"
    odd = [p for p in files.values() if not C.streamable(p)]
    return odd[0] if odd else ", ".join(files.values())


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
