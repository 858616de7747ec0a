"""A run's own rows: its data re-created from the saved config (checked against run.json's
fingerprint), in memory or streamed, and the rows of one of its splits (a k-fold fold's, or a
k-fold parent's refit rows). Used by evaluate, baseline and inspect.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from nettrain.data.rows import Rows
from nettrain.errors import UsageError
from nettrain.lifecycle.target import Target
from nettrain.store import rundir
from nettrain.store.record import RunRecord, read_record


def run_record(run_dir: Path | None) -> RunRecord:
    """A run's run.json (an empty record when there is none or it cannot be read)."""
    return read_record(run_dir) or RunRecord()


def run_dataset_of(target: Target, record: RunRecord):
    """The data of the run `target`'s model belongs to (`run_dataset`)."""
    return run_dataset(target.config, record, target.model_path)


def run_dataset(config: dict[str, Any], record: RunRecord, where: Path, *, why: str = "to evaluate it; to evaluate "
                "on another file use --data FILE", instead: str = "; evaluate on a file with --data FILE"):
    """Re-create a run's data from its saved `config` (named `where` in messages); the data must not
    have changed (`record`'s fingerprint). `why`, `instead`: what the messages add (what it is for).

    A run trained on streamed data (run.json `data.stream: true`, or for an .h5 away from its run,
    a config that streams) is re-created the way it was trained: `data.stream.load_stream` (one pass
    over the file, in flat memory; its rows fall into splits by a hash of their row number), not
    the in-memory split, whose rows and fingerprint differ."""
    from nettrain.config import load_config
    from nettrain.data import load_dataset
    from nettrain.data.stream import choose, load_stream

    cfg = load_config(where, data=copy.deepcopy(config), check_names=False)
    try:
        path = choose(cfg, recorded=record.stream)
        dataset = load_stream(cfg, path.why) if path.stream else load_dataset(cfg)
    except UsageError as e:
        raise type(e)(f"{e.message} (re-creating the run's data {why})") from None
    expected = record.fingerprint
    if expected is not None and dataset.fingerprint != expected:
        raise UsageError(f"the data changed since training: {dataset.source} no longer gives the rows and "
                         f"splits the run was trained on (fingerprint {dataset.fingerprint[:12]}, run.json has "
                         f"{expected[:12]}){instead}"
                         + (" (nettrain now keeps the official train/test split of this source: a run trained "
                            "before that had other splits)" if dataset.official_split else ""))
    return dataset


def is_stream(dataset) -> bool:
    from nettrain.data.stream import StreamDataset

    return isinstance(dataset, StreamDataset)


def folds_of(dataset) -> int:
    """The number of folds the re-created data has (0: none)."""
    if is_stream(dataset):
        return dataset.n_folds if dataset.n_folds > 1 and dataset.fold_stats else 0
    return len(dataset.folds or [])


def run_parts(dataset, record: RunRecord) -> dict[str, Any]:
    """{split: rows} of the model a run record describes. A k-fold fold (`fold: i`) trained on its
    fold's rows and validated on the rest; a k-fold parent's (refit) model trained on all non-test rows.
    In memory the rows are Splits; of a stream, the split codes of its rows (`StreamDataset.codes`)."""
    return split_parts(dataset, fold=record.fold, refit=record.is_kfold_parent)


def split_parts(dataset, *, fold: int | None = None, refit: bool = False) -> dict[str, Any]:
    """{split: rows} of a dataset: its own splits; of a k-fold dataset, fold `fold`'s (its training and
    validation rows), or with `refit` those of a model of every non-test row (no validation rows)."""
    if is_stream(dataset):
        k = folds_of(dataset)
        parts = dict(dataset.codes)
        if k and fold is not None and 1 <= fold <= k:
            parts = dict(dataset.for_fold(fold).codes)
        elif k and refit:
            from nettrain.data.split import fold_codes

            train, valid = fold_codes(1, k)
            parts.update(train=frozenset(train | valid), validation=None)
        return parts
    parts = {"train": dataset.train, "validation": dataset.validation, "test": dataset.test}
    if dataset.folds is not None and dataset.pool is not None:
        if fold is not None and 1 <= fold <= len(dataset.folds):
            tr, va = dataset.folds[fold - 1]
            parts.update(train=dataset.pool.take(tr), validation=dataset.pool.take(va))
        elif refit:
            parts.update(train=dataset.pool, validation=None)
    return parts


def pick_rows(dataset, parts: dict[str, Any], split: str, what: str = "the run") -> Rows:
    """The rows of `split` (see `run_parts`) as Rows: held in memory, or read from the stream's file(s)
    again, chunk by chunk, in file order."""
    def size(part) -> int:
        if part is None:
            return 0
        return sum(dataset.code_rows.get(c, 0) for c in part) if is_stream(dataset) else len(part)

    part = parts.get(split)
    if size(part) == 0:
        have = [s for s in rundir.SPLITS if size(parts.get(s))]
        raise UsageError(f"{what} has no {split} rows; available splits: {', '.join(have)} "
                         f"(--split {have[0] if have else 'train'})")
    if is_stream(dataset):
        reader = dataset.reader
        return Rows(dataset.source, lambda: reader.rows(part), total=size(part))
    if hasattr(dataset, "split_rows"):  # an image folder's split: its files, decoded chunk by chunk
        return dataset.split_rows(part)
    return Rows.of(part, dataset.source)


def run_split_rows(target: Target, split: str, record: RunRecord | None = None, notify=None) -> Rows:
    """The rows of one split of the run's own data: of a streamed run, the prepared rows its training
    kept (`data.stream.keep`, no parse of the file) while the file is the one it read; else
    re-created from its saved config (`notify` is told why the kept rows could not be used)."""
    record = run_record(target.run_dir) if record is None else record
    kept = kept_split(target, split, record, notify)
    if kept is not None:
        return kept
    dataset = run_dataset_of(target, record)
    return pick_rows(dataset, run_parts(dataset, record), split)


def kept_split(target: Target, split: str, record: RunRecord, notify=None) -> Rows | None:
    """The kept rows of `split` of a streamed run (see `run_split_rows`), None when there are none."""
    if target.run_dir is None or not record.stream:
        return None
    from nettrain.data.stream.keep import kept_rows

    kept, why = kept_rows(target.run_dir / rundir.CACHE, split)
    if kept is None:
        if why is not None and notify is not None:
            notify(f"the {split} rows kept by training cannot be used: {why}; reading the data again")
        return None
    return Rows(kept.source, kept.splits, total=kept.rows)
