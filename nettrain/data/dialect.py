"""How a CSV/TSV file writes its rows (`dialect`: the field delimiter and the decimal mark), the one
rule every reader of such a file follows (the chunk reader, the in-memory reader, the size estimate
of `data.stream: auto`). The standard library only: `validate` asks it before pandas is imported."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nettrain.data.kinds import table_kind
from nettrain.errors import DataError


@dataclass(frozen=True)
class Dialect:
    """How a CSV/TSV file writes its rows: the field delimiter and the decimal mark of its numbers."""

    delimiter: str = ","
    decimal: str = "."

    @property
    def decimal_comma(self) -> bool:
        return self.decimal == ","


SNIFF_BYTES = 1 << 16   # the head of a file that `dialect` reads
SEP_LINE = re.compile(r"^\s*sep=.?\s*$", re.I)   # Excel's `sep=;` line above the header
DECIMAL_COMMA = re.compile(r"^\s*[+-]?(\d+|\d{1,3}(\.\d{3})+),\d+\s*$")


def dialect(path: str | os.PathLike) -> Dialect:
    """The one rule for how a CSV/TSV file is read. A `.tsv` is tab-separated, with decimal points.
    A `.csv` is comma-separated with decimal points, unless its header line holds tabs and neither
    commas nor semicolons outside quotes (then it is tab-separated, as a `.tsv`), or semicolons and no
    comma outside quotes: then semicolons separate its fields (what spreadsheets write where the
    decimal mark is a comma, and some published tables, UCI's wine quality among them), and its
    numbers are written with decimal commas (`7,4`, also `1.234,5`) when a field of its first lines
    is one, else with decimal points. A first line `sep=;` (a note for Excel) is refused, named: it
    stands where the header belongs."""
    p = Path(path)
    kind = table_kind(p)
    if kind == ".tsv":
        return Dialect("\t")
    if kind != ".csv":  # (no other kind of file is read by delimiter)
        return Dialect()
    import csv

    try:
        head = head_text(p)
    except Exception:  # noqa: BLE001 - unreadable: the reader says why
        return Dialect()
    lines = head.splitlines()
    if not lines:
        return Dialect()
    if SEP_LINE.match(lines[0]):
        raise DataError(f"{p}: line 1 is {lines[0].strip()!r}, a note for spreadsheets on the delimiter, where "
                        "the header belongs; delete that line (nettrain finds commas, semicolons and tabs itself)")
    header = _outside_quotes(lines[0])
    if "\t" in header and "," not in header and ";" not in header:
        return Dialect("\t")   # a tab-separated file named .csv (spreadsheets' "Text (Tab delimited)")
    if ";" not in lines[0] or "," in header:
        return Dialect()
    body = lines[1:-1] if len(head) >= SNIFF_BYTES else lines[1:]   # (the last line of a cut head may be cut)
    fields = (f for row in csv.reader(body, delimiter=";") for f in row)
    return Dialect(";", "," if any(DECIMAL_COMMA.match(f) for f in fields) else ".")


def said(path: str | os.PathLike) -> str:
    """How init and validate say a file is read when it is not the usual way ('' for a plain CSV)."""
    form = dialect(path)
    if form.delimiter == "\t" and table_kind(Path(path)) == ".csv":
        return "read as separated by tabs"
    if form.delimiter != ";":
        return ""
    return f"read as separated by semicolons, with decimal {'commas' if form.decimal_comma else 'points'}"


def head_text(p: Path) -> str:
    """The first SNIFF_BYTES of a file as text (gzip/bz2 opened as pyarrow opens them)."""
    import bz2
    import gzip

    name = p.name.lower()
    opener = gzip.open if name.endswith(".gz") else bz2.open if name.endswith(".bz2") else open
    with opener(p, "rb") as f:
        return f.read(SNIFF_BYTES).decode("utf-8-sig", errors="replace")


def _outside_quotes(line: str) -> str:
    """The characters of a CSV line that are not inside double quotes."""
    return "".join(part for i, part in enumerate(line.split('"')) if i % 2 == 0)
