"""Which path a config's data takes (`choose`): streamed from its file(s), or read whole into memory.

`data.stream: auto` streams when reading the data in memory would take more than half of the
available memory (`STREAM_SHARE`): `estimate` reckons that cost as rows x columns x bytes per
parsed value, from a sample of each file (its first `SAMPLE_BYTES`) and its size (a Parquet file:
its metadata). `available_memory` is MemAvailable, lowered to a cgroup's limit when one is set, or
the budget of the environment variable `NETTRAIN_MEMORY` (bytes, or e.g. `512MB`, `2GB`). Only CSV,
TSV (also gzip/bz2-compressed) and Parquet files stream.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nettrain.config.loader import BUNDLED_PREFIXES
from nettrain.data import kinds as K
from nettrain.data.dialect import dialect

STREAM_SHARE = 2           # data.stream auto: stream when memory use would pass 1/STREAM_SHARE of what is available
SPLIT_NAMES = ("train", "validation", "test")
MEMORY_ENV = "NETTRAIN_MEMORY"   # a memory budget that replaces the available memory (tests, shared machines)
SAMPLE_BYTES = 1 << 20     # bytes of a CSV/TSV read to estimate its rows and values
NUMBER_BYTES = 40          # memory per numeric value read whole (fit in memory, measured: 42 bytes at 1M x 21)
TEXT_BYTES = 80            # and per text value, besides its characters (a Python str and its pointers)


@dataclass(frozen=True)
class Estimate:
    """What reading a config's data in memory would take (`estimate`): rows x columns x bytes per value."""

    rows: int
    columns: int
    value_bytes: float
    exact: bool = False      # rows counted (Parquet metadata), not estimated from a sample

    @property
    def memory(self) -> int:
        return int(self.rows * self.columns * self.value_bytes)

    def describe(self) -> str:
        rows = f"{self.rows:,}" if self.exact else f"about {self.rows:,}"
        return f"{rows} rows x {self.columns} columns x {self.value_bytes:.0f} bytes = {_bytes(self.memory)}"

    def to_dict(self) -> dict:
        return {"rows": self.rows, "columns": self.columns, "value_bytes": round(self.value_bytes, 1),
                "bytes": self.memory, "rows_exact": self.exact}


@dataclass(frozen=True)
class DataPath:
    """Whether a config's data is streamed, and why (what `validate --build` prints)."""

    stream: bool
    why: str
    estimate: Estimate | None = None     # data.stream: auto on files: what reading them whole would take
    available: int | None = None         # the memory it was weighed against

    def describe(self) -> str:
        return f"data: {'streamed' if self.stream else 'in memory'} ({self.why})"

    def to_dict(self) -> dict:
        """What run.json's `data.stream_decision` records."""
        out: dict = {"stream": self.stream, "why": self.why}
        if self.estimate is not None:
            out["estimate"] = self.estimate.to_dict()
        if self.available is not None:
            out["available_bytes"] = self.available
        return out


def data_files(cfg) -> dict[str, str] | None:
    """{part: path} of a config's data files ("source", or "train"/"validation"/"test"); None for a
    bundled set or a generator."""
    data = cfg.data
    if data.source is None:
        return {part: getattr(data, part) for part in SPLIT_NAMES if getattr(data, part) is not None}
    src = data.source
    if not isinstance(src, str) or src.startswith(BUNDLED_PREFIXES):
        return None
    return {"source": src}


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, None if unknown: the budget in `NETTRAIN_MEMORY`
    when set, else MemAvailable (/proc/meminfo), lowered to what a cgroup's memory limit leaves."""
    budget = os.environ.get(MEMORY_ENV, "").strip()
    if budget:
        size = parse_bytes(budget)
        if size is not None:
            return size
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    left = _cgroup_left()
    if left is not None:
        avail = left if avail is None else min(avail, left)
    return avail


def _cgroup_left() -> int | None:
    """What the cgroup's memory limit leaves (v2 memory.max - memory.current, v1 the same), None: no limit."""
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            text = Path(limit).read_text().strip()
            if text == "max":
                return None
            cap, used = int(text), int(Path(usage).read_text().strip())
        except (OSError, ValueError):
            continue
        if cap >= 1 << 60:  # v1's "no limit"
            return None
        return max(0, cap - used)
    return None


def parse_bytes(text: str) -> int | None:
    """Bytes from `123`, `512MB`, `2GB`, `1.5G` (binary units), None when it is not a size."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not m:
        return None
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def estimate(files: dict[str, str]) -> Estimate | None:
    """What reading `files` whole would take in memory; None when a file cannot be sampled."""
    rows, cols, total = 0, 0, 0.0
    exact = True
    for p in files.values():
        one = _estimate_file(Path(p))
        if one is None:
            return None
        rows += one.rows
        cols = max(cols, one.columns)
        total += one.rows * one.columns * one.value_bytes
        exact &= one.exact
    if rows == 0 or cols == 0:
        return Estimate(rows, cols, float(NUMBER_BYTES), exact)
    return Estimate(rows, cols, total / (rows * cols), exact)


def _estimate_file(p: Path) -> Estimate | None:
    if not p.is_file():  # a pipe or a device would block the sample's read: the reader refuses it
        return None
    if K.table_kind(p) == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(p).metadata
            schema = meta.schema.to_arrow_schema()
        except Exception:  # noqa: BLE001 - not parquet: the reader says so later
            return None
        sizes = [NUMBER_BYTES if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                                  or pa.types.is_boolean(f.type)) else NUMBER_BYTES + TEXT_BYTES
                 for f in schema]
        return Estimate(int(meta.num_rows), len(sizes), sum(sizes) / max(1, len(sizes)), exact=True)
    return _estimate_text(p)


def _estimate_text(p: Path) -> Estimate | None:
    """Rows from the size of the file over the bytes per row of its first SAMPLE_BYTES (a compressed
    file: over the compressed bytes those took), the bytes per value from the sample's cells."""
    import bz2
    import csv
    import gzip
    import io

    name = p.name.lower()
    try:
        size = os.stat(p).st_size
        with open(p, "rb") as raw:
            if name.endswith(".gz"):
                f = gzip.GzipFile(fileobj=raw)
            elif name.endswith(".bz2"):
                f = bz2.BZ2File(raw)
            else:
                f = raw
            sample = f.read(SAMPLE_BYTES)
            whole = not f.read(1)
            used = raw.tell() if f is not raw else len(sample) + (0 if whole else 1)
    except (OSError, EOFError, ValueError):
        return None
    sep = dialect(p).delimiter
    end = len(sample) if whole else sample.rfind(b"\n") + 1   # the sample's last whole line
    first = sample.find(b"\n", 0, end)
    if first < 0:  # a header only (or one line cut by the sample's end)
        return Estimate(0, sample.count(sep.encode()) + 1 if sample else 0, float(NUMBER_BYTES), exact=whole)
    rows = sample.count(b"\n", first + 1, end) + (1 if whole and end > first + 1 and not sample.endswith(b"\n")
                                                   else 0)
    if rows == 0:
        return Estimate(0, sample[:first].count(sep.encode()) + 1, float(NUMBER_BYTES), exact=whole)
    # the bytes per value from the first lines' cells (a few hundred: a small sample's memory)
    head_end = first
    for _ in range(200):
        nxt = sample.find(b"\n", head_end + 1, end)
        if nxt < 0:
            break
        head_end = nxt
    table = list(csv.reader(io.StringIO(sample[:head_end].decode("utf-8", errors="replace")), delimiter=sep))
    header, body = table[0], [row for row in table[1:] if row]
    values = cells = 0.0
    for row in body:
        for cell in row:
            cells += 1
            values += NUMBER_BYTES if _number_like(cell) else NUMBER_BYTES + TEXT_BYTES + len(cell)
    per_value = values / cells if cells else float(NUMBER_BYTES)
    if whole:
        return Estimate(rows, len(header), per_value, exact=True)
    body_bytes = end - (first + 1)
    estimated = int(round((size * (body_bytes / max(1, used)) if used else 0) * rows / max(1, body_bytes)))
    return Estimate(max(estimated, rows), len(header), per_value)


def _number_like(cell: str) -> bool:
    cell = cell.strip()
    if not cell:
        return True  # a gap in a numeric column: NaN
    try:
        float(cell)
    except ValueError:
        return cell.lower() in ("true", "false", "na", "nan", "null", "none")
    return True


def choose(cfg, recorded: bool | None = None) -> DataPath:
    """The path `cfg`'s data takes. `recorded`: the path a run was started on (--resume keeps it
    under `data.stream: auto`, whatever the available memory is now)."""
    setting = cfg.data.stream
    from nettrain.data.kinds import is_image_config

    if is_image_config(cfg):  # decoded file by file by its own reader (data.images)
        return DataPath(False, f"{cfg.data.source}: an image folder, its files decoded a chunk at a time")
    files = data_files(cfg)
    if files is None or not all(K.streamable(p) for p in files.values()):
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
    names = " + ".join(Path(p).name for p in files.values())
    missing = [Path(p).name for p in files.values() if not os.path.exists(p)]
    if missing:  # validate of a config whose data comes later; fit refuses it, naming the key
        return DataPath(False, f"data.stream: auto; no file {' + '.join(missing)} (yet), so the decision "
                               "is made when it is there")
    odd = [Path(p).name for p in files.values() if not os.path.isfile(p)]
    if odd:  # a pipe or a device: its sample is not read (that would block); the readers refuse it
        return DataPath(False, f"data.stream: auto; {' + '.join(odd)} is not a regular file, which fit refuses")
    avail = available_memory()
    cost = estimate(files)
    if cost is None:  # a file that cannot be read: the reader says what is wrong
        return DataPath(False, f"data.stream: auto; {names} cannot be sampled, so it is read whole")
    if avail is None:
        return DataPath(False, f"data.stream: auto; the available memory is unknown, so {names} is read whole",
                        cost, None)
    limit = avail // STREAM_SHARE
    over = cost.memory > limit
    why = (f"data.stream: auto; {names} read whole would take {cost.describe()}, "
           f"{'more' if over else 'less'} than half of the {_bytes(avail)} of available memory")
    return DataPath(over, why, cost, avail)


def _source_text(cfg, files: dict[str, str] | None) -> str:
    if files is None:
        src = cfg.data.source
        return src if isinstance(src, str) else f"the generator {src.generator}"
    odd = [p for p in files.values() if not K.streamable(p)]
    return odd[0] if odd else ", ".join(files.values())


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
