"""Issue 21, one take and one join: `Split.take` and `Split.concat` are the only ways rows of a Split
are picked or joined (k-fold parts of the pool, a chunk cut short, a shuffle window in serving order,
chunks re-cut into whole batches by `data.rows.aligned`)."""

import numpy as np
import pytest

from nettrain.data.rows import aligned
from nettrain.data.types import Split


def rows(n: int, start: int = 0) -> Split:
    """n rows numbered from `start`: every field holds the row's number (as a number or in text)."""
    numbers = np.arange(start, start + n)
    return Split(inputs={"numeric": np.stack([numbers, 10 * numbers], axis=1).astype(np.float32),
                         "color": np.array([[f"c{i}"] for i in numbers], dtype=object).reshape(n, 1)},
                 y=numbers.astype(np.int64), ids=np.array([f"r{i}" for i in numbers], dtype=object),
                 row_index=numbers.astype(np.int64))


def numbers(split: Split) -> list[int]:
    """The row numbers every field of `split` holds (each field must agree)."""
    got = split.row_index.tolist()
    assert split.y.tolist() == got
    assert split.ids.tolist() == [f"r{i}" for i in got]
    assert split.inputs["color"][:, 0].tolist() == [f"c{i}" for i in got]
    assert split.inputs["numeric"].tolist() == [[float(i), 10.0 * i] for i in got]
    return got


@pytest.mark.parametrize("positions", [np.array([4, 0, 2]), np.array([True, False, True, False, False, True]),
                                       slice(1, 4), slice(3, None)], ids=["positions", "mask", "slice", "tail"])
def test_take_picks_the_same_rows_of_every_field(positions):
    split = rows(6)
    assert numbers(split.take(positions)) == np.arange(6)[positions].tolist()
    assert numbers(split) == list(range(6))  # the split itself is left as it was


def test_take_keeps_a_missing_field_missing():
    split = rows(5)
    bare = Split(inputs=split.inputs, y=None).take([3, 1])
    assert bare.y is None and bare.ids is None and bare.row_index is None
    assert bare.inputs["color"][:, 0].tolist() == ["c3", "c1"]


def test_concat_joins_rows_in_order():
    parts = [rows(2), rows(3, start=2), rows(1, start=5)]
    assert numbers(Split.concat(parts)) == list(range(6))
    assert numbers(Split.concat(iter(parts))) == list(range(6))  # any iterable of Splits
    one = rows(3)
    assert Split.concat([one]) is one  # one split is given back as it is


def test_concat_drops_a_field_that_some_split_lacks():
    a, b = rows(2), rows(3, start=2)
    joined = Split.concat([a, Split(inputs=b.inputs, y=b.y, ids=None, row_index=b.row_index)])
    assert joined.ids is None
    assert joined.y.tolist() == joined.row_index.tolist() == [0, 1, 2, 3, 4]


def test_take_and_concat_undo_each_other():
    split = rows(9)
    cuts = [slice(0, 4), slice(4, 5), slice(5, 9)]
    assert numbers(Split.concat([split.take(cut) for cut in cuts])) == list(range(9))
    order = np.random.default_rng(0).permutation(9)
    assert numbers(split.take(order).take(np.argsort(order))) == list(range(9))


@pytest.mark.parametrize("sizes", [[5, 1, 11, 6], [4, 4, 4], [3], [1] * 9 + [2]])
def test_aligned_cuts_every_piece_but_the_last_to_a_multiple(sizes):
    total = sum(sizes)
    split = rows(total)
    ends = np.cumsum([0, *sizes])
    pieces = [split.take(slice(int(a), int(b))) for a, b in zip(ends, ends[1:])]
    out = list(aligned(pieces, 4))
    assert all(len(part) % 4 == 0 and len(part) > 0 for part in out[:-1])
    assert 0 < len(out[-1])
    assert numbers(Split.concat(out)) == list(range(total))  # every row once, in order


def test_split_take_and_concat_are_the_only_take_and_join():
    """No second copy of "rows at these positions" or "these splits as one" anywhere in the package."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "nettrain"
    pattern = re.compile(r"^\s*(def (take_rows|join_splits|_take|_join)\b|(take_rows|join_splits) = )", re.M)
    copies = [f"{p.relative_to(root)}: {m.group(0).strip()}" for p in sorted(root.rglob("*.py"))
              for m in pattern.finditer(p.read_text())]
    assert copies == [], copies
