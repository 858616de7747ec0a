"""Data larger than memory (`data.stream`): a CSV/TSV/Parquet file read in chunks, never whole.

Which path a config takes: `choose(cfg)`. `auto` streams when reading the data whole would take
more than half of the available memory (`STREAM_SHARE`; the cost is `estimate`d from a sample of
each file and its size); only CSV, TSV (also gzip/bz2-compressed) and Parquet files stream.

`load_stream(cfg)` makes one first pass over the file(s), chunk by chunk (`Part.chunks`), and keeps
only what training needs: the column kinds (decided from the first chunk by the same
`select_columns` / `type_columns` the in-memory path uses; a later value that is not a number in a
numeric column is an error naming its line), the row count of every split, the distinct labels and
the task, the statistics of the training rows (`data.stats`: one `stats_of` per chunk, merged), the
fill values of the missing-value policy, the class shares per split, whether the file is ordered by
its target, and a fingerprint (sha256 of the file bytes and the split). Every later pass reads the
file again (`RowReader.rows`): each row's split is a function of its row number and the seed
(`split.HashedSplit`), so evaluate and --resume find the same rows. Every pass, one that reads the
cache of prepared rows too, first checks that each file's size, mtime and inode (`Stamp`) are those
of the first pass: a file changed during a run is a DataError naming it.

Shuffling: rows are permuted within windows of `SHUFFLE_WINDOW` consecutive chunks, by a numpy
permutation seeded from (seed, epoch, window number), so an epoch's order depends on nothing else
(a resumed run sees the same batches). Rows further apart than a window are never mixed: a file
ordered by its target must be shuffled once beforehand (the first pass says so). A CSV's chunks
hold exactly `chunks.CHUNK_ROWS` rows (`chunks.exact_chunks`), so windows do not depend on the
reader's block size. Training takes a window as `RowReader.windows` gives it: its chunks joined
once, in file order, with the order to serve them in (no permuted copy).

Memory (measured on a 20M x 20 CSV, `bench/RESULTS.md`): a pass holds one chunk being parsed (10 MB
of pyarrow's reader, the chunk's float64 columns, the prepared float32 rows) and, while training,
two windows (the one trained on, the next one read ahead); no stage keeps a reference to what it
handed on (a generator drops its item before the consumer works on it).

No TensorFlow here: the feed (`training.feed.StreamFeed`) turns `RowReader.rows` into tf.data.

The modules, by concern: `path` (which path a config takes), `reader` (a file's typed chunks and
the rows of chosen splits), `windows` (shuffle windows, splits joined as they come), `cache`
(prepared rows kept between passes), `ahead` (items produced ahead by a thread), `files` (what is
read of a file besides its rows: checks, first chunk, row count, sha256), `tally` (what the first
pass counts), `firstpass` (`load_stream`), `dataset` (`StreamDataset`), `progress` (what a user waiting on a pass sees)
and `keep` (a run's prepared evaluation rows kept after training, for `evaluate RUN`). The names below are the
package's; tests that replace one (`available_memory`) replace it in the module that uses it.
"""

from nettrain.data.lazy import lazy_names

# The package's names, imported from their modules on first use (PEP 562): `validate` imports
# `path` alone (the stream decision), without pandas and pyarrow coming along.
_HOME = {
    "DataPath": "path", "Estimate": "path", "HOLDOUT_ROWS": "dataset", "MAX_LABELS": "tally",
    "MEMORY_ENV": "path", "Meter": "progress", "Part": "reader", "RowReader": "reader",
    "SHUFFLE_WINDOW": "reader", "SPLIT_NAMES": "path", "STREAM_SHARE": "path", "SplitCache": "cache",
    "Stamp": "reader", "StreamDataset": "dataset", "Window": "windows", "available_memory": "path",
    "check_table_file": "files", "choose": "path", "data_files": "path", "estimate": "path",
    "joined": "windows", "load_stream": "firstpass", "metered": "progress", "quiet": "progress",
    "read_ahead": "ahead", "window_order": "windows",
}

__all__ = ["DataPath", "Estimate", "HOLDOUT_ROWS", "MEMORY_ENV", "MAX_LABELS", "Part", "RowReader", "SHUFFLE_WINDOW", "SPLIT_NAMES",
           "STREAM_SHARE", "SplitCache", "Stamp", "StreamDataset", "Window", "available_memory",
           "check_table_file", "choose", "data_files", "estimate", "joined", "load_stream", "metered", "quiet", "read_ahead",
           "window_order"]


__getattr__ = lazy_names(__name__, _HOME, globals())
