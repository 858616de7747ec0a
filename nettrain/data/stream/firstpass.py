"""The first pass over a streamed config's data file(s) (`load_stream`): see `nettrain.data.stream`."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from nettrain.config.coherence import loss_task
from nettrain.data import chunks as C
from nettrain.data.cells import cell_types
from nettrain.data.columns import lacks_columns, row_label, select_columns, to_numbers, type_columns
from nettrain.data.inputs import missing_counts, missing_rows, prepare_inputs
from nettrain.data.split import FOLD0, TEST, TRAIN, VALIDATION, HashedSplit, fold_codes
from nettrain.data.stats import (FILL_POLICIES, MAX_VALUE_COUNTS, QUANTILE_MODES, TrainStats,
                                 imputation_values, stats_of)
from nettrain.data.stream.ahead import read_ahead
from nettrain.data.stream.dataset import StreamDataset
from nettrain.data.stream.files import FileHash, check_table_file, count_rows, first_chunk, looks_boolean
from nettrain.data.stream.path import data_files, estimate
from nettrain.data.stream.progress import Meter
from nettrain.data.stream.reader import PARSE_AHEAD, SHUFFLE_WINDOW, Part, RowReader, Stamp
from nettrain.data.stream.tally import MAX_LABELS, Tally
from nettrain.data.task import class_type, infer_task
from nettrain.data.types import FeatureSchema
from nettrain.words import list_names
from nettrain.errors import DataError


def load_stream(cfg, why: str = "data.stream") -> StreamDataset:
    """The first pass over the config's data file(s): see the docstring of `nettrain.data.stream`."""
    C.large_blocks_mapped()
    try:
        return _FirstPass(cfg, why).run()
    finally:
        C.release_memory()


class _FirstPass:
    def __init__(self, cfg, why: str):
        self.cfg, self.why = cfg, why
        self.policy = cfg.preprocessing.missing
        self.notes: list[str] = []

    # -- the plan: files, columns, kinds

    def run(self) -> StreamDataset:
        cfg = self.cfg
        files = data_files(cfg)
        main = "source" if "source" in files else "train"
        s = cfg.data.split
        if main == "train" and s.folds > 1 and "validation" in files:
            raise cfg.error("data.split.folds", "k-fold cross-validation makes its own validation folds from "
                            "data.train; remove data.validation or set folds: 1")
        paths = {part: Path(p) for part, p in files.items()}
        for part, p in paths.items():
            check_table_file(p)
        # the files' sha256 is taken on a thread of its own from here: while the first chunk is typed
        # (one thread's work), not only during the pass (where the parse keeps every core busy)
        self.fingerprint = FileHash(list(paths.values()))
        self.fingerprint.start()
        try:
            return self._plan(paths, main)
        except BaseException:
            self.fingerprint.stop.set()
            raise

    def _plan(self, paths: dict[str, Path], main: str) -> StreamDataset:
        cfg = self.cfg
        first, raw = first_chunk(paths[main], exact=list(cfg.data.columns))  # (declared: their values count)
        where = str(paths[main])
        target, features, id_column = select_columns(cfg, first, where, None)
        columns = type_columns(cfg, first, features, {}, where, self.notes)
        self.schema = FeatureSchema(task="regression", target=target, columns=columns, id_column=cfg.data.id)
        wanted = [*features, target]
        # the id column travels with its rows (as in memory: a split's `ids`), typed like read_csv
        text_cols = [c.name for c in columns if c.kind != "numeric"] + ([id_column] if id_column else [])
        self.schema.cell_types = cell_types(first, [*features, id_column, target])  # later chunks are read by them
        # The chunk reader parses the columns of numbers itself; a column of true/false words, or of
        # numbers written for people ($1,234.50, 12.5%, ? for unknown), is read as text and converted by
        # `prepare_inputs` (`columns.to_numbers`), as when the file is read whole. (A column typed as
        # numbers holds no true/false word: `looks_boolean` of it is False, not asked.)
        numeric = [c for c in self.schema.numeric_file_columns
                   if _numbers(first[c]) or not (looks_boolean(raw[c]) or _written_numbers(first[c]))]
        # A target of numbers is read as numbers (fast); a later value that is not one is an error
        # naming its line (labels that mix numbers and words must show a word in the first chunk).
        numeric_target = _numbers(first[target])
        read = wanted + ([id_column] if id_column else [])
        self.numeric_target = numeric_target
        self.parts = []
        for part, p in paths.items():
            names = C.header(p)
            lost = [c for c in read if c not in names]
            if lost:
                raise cfg.error(f"data.{part}", lacks_columns(str(p), lost, names, main))
            text = C.kind_of(p) != ".parquet"
            self.parts.append(Part(name=part, path=p, splitter=self._splitter(part, p), fixed=_FIXED.get(part),
                                   text=text, numeric=numeric + ([target] if numeric_target and text else []),
                                   columns=read, typed=[*text_cols] + ([] if numeric_target else [target]) if text
                                   else [], whole=[target] if numeric_target and text else [], stamp=Stamp.of(p),
                                   cell_types=self.schema.cell_types))
        self.reader = RowReader(self.parts, self.schema, self.policy)
        del first, raw  # the first chunk (its text copy the largest part) is not held through the pass
        C.release_memory()
        return self._pass()

    def _splitter(self, part: str, path: Path) -> HashedSplit | None:
        s, seed = self.cfg.data.split, self.cfg.seed
        if part == "source":
            h = HashedSplit(seed, test=s.test, validation=s.validation if s.folds == 1 else 0.0, folds=s.folds,
                            shuffle=s.shuffle)
        elif part == "train":
            holdout = s.validation if "validation" not in (data_files(self.cfg) or {}) and s.folds == 1 else 0.0
            h = HashedSplit(seed, validation=holdout, folds=s.folds, shuffle=s.shuffle)
            if h.validation == 0 and h.folds == 1:
                return None
        else:
            return None
        if not h.shuffle:
            h = dataclasses.replace(h, n=count_rows(path))
        return h

    # -- the pass

    def _pass(self) -> StreamDataset:
        cfg, schema = self.cfg, self.schema
        folds = cfg.data.split.folds
        stat_codes = {FOLD0 + i for i in range(folds)} if folds > 1 else {TRAIN}
        bare = dataclasses.replace(schema, target=None)   # inputs only: the classes are not known yet
        tally = self._tally(stat_codes)
        fingerprint = self.fingerprint  # (of the same files: `paths`, whose order the parts keep)
        cost = estimate({p.name: str(p.path) for p in self.parts})
        meter = Meter(f"first pass over {', '.join(p.path.name for p in self.parts)}",
                      cost.rows if cost is not None else None,
                      approx=cost is not None and not cost.exact)
        with meter:  # (an error stops the hash: `run`)
            for part in self.parts:  # pyarrow parses on threads, the chunks are made on another
                part.rows = 0
                for chunk in read_ahead(part.chunks(ahead=PARSE_AHEAD), depth=1):  # while one is tallied
                    rows = len(chunk.frame)
                    self._chunk(part, chunk, bare, tally)
                    meter.add(rows)
                    part.rows += rows
        digest = fingerprint.result()
        for part in self.parts:  # and which rows are in which split
            digest.update(f"part {part.name} {part.splitter.describe() if part.splitter else part.fixed}\n".encode())
        digest.update(f"rows {sorted(tally.code_rows.items())} dropped {tally.dropped}\n".encode())
        return self._finish(tally, digest.hexdigest())

    def _tally(self, stat_codes: set[int]) -> Tally:
        """A Tally told what the config settles of the task: when every file's target is read as
        numbers, regression (by data.task or the loss) needs no label counts, and task auto without a
        loss that says otherwise is regression at the first value that is not a whole number."""
        cfg = self.cfg
        numbers = self.numeric_target and all(p.text for p in self.parts)
        requested = cfg.data.task
        by_loss = loss_task(cfg.training.loss) if requested == "auto" else None
        return Tally(stat_codes, regression=numbers and (requested == "regression" or by_loss == "regression"),
                     settles=numbers and requested == "auto" and by_loss is None, target=self.schema.target)

    def _chunk(self, part: Part, chunk: C.Chunk, bare: FeatureSchema, tally: Tally) -> None:
        schema, frame = self.schema, chunk.frame
        tally.read += len(frame)
        if self.policy == "error":
            self._no_missing(part, frame)
        keep = self.reader.kept(part, frame)
        if keep is not None:
            tally.dropped += int((~keep).sum())
            frame = frame[keep]
        if len(frame) == 0:
            return
        codes = part.codes(frame.index.to_numpy())
        # every kept row is prepared (bad values, infinities: found now, not after training)
        split = prepare_inputs(frame, bare, require_target=False, source=part.where,
                               line_offset=part.line_offset, keep_missing=True)
        target = frame[schema.target]
        tally.target(target, codes, part)
        for code in np.unique(codes).tolist():
            positions = np.flatnonzero(codes == code)
            tally.code_rows[code] += len(positions)
            if code in tally.stat_codes:
                rows = split.take(positions)
                s = stats_of(bare, rows, value_counts=self.policy == "most_frequent", value_limit=MAX_VALUE_COUNTS,
                             sample=self.cfg.preprocessing.numeric in QUANTILE_MODES or self.policy == "median")
                tally.stats[code] = s if code not in tally.stats else tally.stats[code].merge(s)
        training = np.isin(codes, np.array(sorted(tally.stat_codes), dtype=np.int8))
        if training.any():
            tally.order(target[training])

    def _no_missing(self, part: Part, frame: pd.DataFrame) -> None:
        if not _may_miss(frame, self.schema):
            return
        counts = missing_counts(frame, self.schema)
        if not counts:
            return
        first = int(np.argmax(missing_rows(frame, self.schema)))
        target = self.schema.target
        listed = ", ".join(f"{'target ' if c == target else ''}'{c}'" for c in counts)
        raise DataError(f"{part.where}: missing values in {listed} (first: "
                        f"{row_label(frame.index[first], part.line_offset)}); preprocessing.missing is 'error': set it "
                        "to mean, most_frequent or drop_rows (rows with a missing target are then dropped), or fix "
                        "the data")

    # -- after the pass

    def _finish(self, tally: Tally, digest: str) -> StreamDataset:
        cfg, schema = self.cfg, self.schema
        main = self.parts[0]
        kept = tally.read - tally.dropped
        what = "a missing value" if self.policy == "drop_rows" else f"a missing target '{schema.target}'"
        if tally.dropped:
            note = f"{_where(self.parts)}: dropped {tally.dropped} of {tally.read} rows with {what}"
            self.notes.append(note)
            warnings.warn(note, stacklevel=4)
        if kept == 0:
            raise DataError(f"{_where(self.parts)}: no rows left after dropping rows with {what} "
                            f"(preprocessing.missing: {self.policy})")
        self._infer_task(tally)
        self._check_split_sizes(tally, kept)
        names = schema.class_names
        class_counts = {c: tally.class_counts(c, names) for c in tally.code_rows} if names else {}

        def fit_stats(codes: Iterable[int]) -> TrainStats:
            merged = None
            for c in sorted(codes):
                if c in tally.stats:
                    merged = tally.stats[c] if merged is None else merged.merge(tally.stats[c])
            if names:
                counts = sum((class_counts.get(c, np.zeros(len(names), dtype=np.int64)) for c in codes),
                             np.zeros(len(names), dtype=np.int64))
                return dataclasses.replace(merged, class_counts=counts.astype(np.int64))
            target = None
            for c in sorted(codes):
                t = tally.targets.get(c)
                if t is not None:
                    target = t if target is None else target.merge(t)
            return dataclasses.replace(merged, target=target)

        folds = cfg.data.split.folds
        if folds > 1:
            first_train = fold_codes(1, folds)[0]
            base = fit_stats(first_train)
        else:
            base = fit_stats({TRAIN})
        if self.policy in FILL_POLICIES:
            schema.imputation = imputation_values(schema, base, self.policy, main.where)
        dataset_codes = ({"train": frozenset(fold_codes(1, folds)[0]), "validation": frozenset(fold_codes(1, folds)[1]),
                          "test": frozenset({TEST})} if folds > 1 else
                         {"train": frozenset({TRAIN}), "validation": frozenset({VALIDATION}),
                          "test": frozenset({TEST})})
        dataset = StreamDataset(schema=schema, train=None, validation=None, test=None, fingerprint=digest,
                                source=", ".join(f"{p.name}={p.path}" for p in self.parts) if main.name != "source"
                                else str(main.path), n_rows=kept, notes=self.notes, reader=self.reader,
                                codes=dataset_codes, code_rows=dict(tally.code_rows), class_counts=class_counts,
                                n_folds=folds, why=self.why)

        def finished(stats: TrainStats, train_codes) -> TrainStats:
            if self.policy in FILL_POLICIES:
                stats = stats.filled(schema, schema.imputation)
            view = dataclasses.replace(dataset, codes={**dataset.codes, "train": frozenset(train_codes)})
            return dataclasses.replace(stats, texts={c.name: view.texts(c.name) for c in schema.columns
                                                     if c.kind == "text"})

        dataset.stats = finished(base, dataset.codes["train"])
        if folds > 1:
            dataset.fold_stats = [finished(fit_stats(fold_codes(i, folds)[0]), fold_codes(i, folds)[0])
                                  for i in range(1, folds + 1)]
            dataset.fold = 1
        self._order_note(tally)
        self._share_notes(dataset)
        return dataset

    def _infer_task(self, tally: Tally) -> None:
        cfg, schema = self.cfg, self.schema
        values = tally.target_values()  # each distinct value once: the rows come from the label counts
        rows = tally.read if tally.labels is None else sum(sum(c.values()) for c in tally.labels.values())
        schema.task, schema.class_names = infer_task(cfg, values, schema.target, None, rows=rows)
        if schema.task != "regression":
            if tally.labels is None:
                raise DataError(f"{_where(self.parts)}: target '{schema.target}' has more than {MAX_LABELS:,} "
                                "distinct values, too many classes to count while streaming")
            schema.class_type = class_type(values)
            tally.name_labels(values)
        elif tally.bad_target is not None:
            part, label, value = tally.bad_target
            raise DataError(f"{part}: target '{schema.target}' must be numeric (regression) but {label} holds "
                            f"{value!r}")

    def _check_split_sizes(self, tally: Tally, kept: int) -> None:
        cfg = self.cfg
        s = cfg.data.split
        rows = tally.code_rows
        if s.folds > 1:
            empty = [i + 1 for i in range(s.folds) if rows.get(FOLD0 + i, 0) == 0]
            if empty:
                raise cfg.error("data.split.folds", f"fold {empty[0]} of {s.folds} has no rows among the {kept} "
                                "rows read; use fewer folds or more data")
            return
        if rows.get(TRAIN, 0) == 0:
            raise cfg.error("data.split", f"no training rows among the {kept} rows read: the test and validation "
                            "fractions take them all; use smaller fractions or more data")
        for code, key, fraction in ((TEST, "data.split.test", s.test), (VALIDATION, "data.split.validation",
                                                                        s.validation)):
            if fraction > 0 and rows.get(code, 0) == 0 and any(code in p.possible() and p.splitter is not None
                                                               for p in self.parts):
                raise cfg.error(key, f"{fraction:g} of {kept} rows gave 0 rows, so the split would be empty; use a "
                                "larger fraction, more data, or 0 to turn it off")

    def _order_note(self, tally: Tally) -> None:
        """A file ordered by its target (long runs of one label, or a target that drifts through the
        file) trains badly when only windows of chunks are shuffled: say so, with the fix."""
        if tally.order_chunks <= SHUFFLE_WINDOW:
            return  # the whole file is one shuffle window
        schema = self.schema
        if schema.task == "regression":
            counts = np.array([n for n, _ in tally.chunk_means], dtype=np.float64)
            means = np.array([m for _, m in tally.chunk_means], dtype=np.float64)
            total = tally.targets.get(TRAIN) or next(iter(tally.targets.values()), None)
            if total is None or not np.isfinite(total.variance).all() or total.variance[0] <= 0:
                return
            spread = np.average((means - total.mean[0]) ** 2, weights=counts)  # between-chunk variance
            expected = float(total.variance[0]) / float(np.mean(counts))
            if spread <= 50 * expected:
                return
            how = f"its mean changes from chunk to chunk {math.sqrt(spread / expected):.0f}x more than chance allows"
        else:
            if tally.changes_seen < 2:
                return
            shares = np.array(list(tally.order_counts.values()), dtype=np.float64)
            shares /= shares.sum()
            expected = (1.0 - float((shares ** 2).sum())) * tally.changes_seen
            if expected <= 0 or tally.changes >= 0.25 * expected:
                return
            how = (f"one label follows another only {tally.changes} times in {tally.changes_seen} training rows "
                   f"(about {expected:.0f} in a shuffled file)")
        window = SHUFFLE_WINDOW * C.CHUNK_ROWS
        note = (f"{_where(self.parts)}: the rows look ordered by the target '{schema.target}' ({how}); a stream "
                f"shuffles rows only within windows of about {window:,} rows, so batches would see few target values "
                "at a time. Shuffle the file's rows once (e.g. `shuf`, or pandas `sample(frac=1)`), or use "
                "data.stream: false if it fits in memory")
        self.notes.append(note)
        warnings.warn(note, stacklevel=4)

    def _share_notes(self, dataset: StreamDataset) -> None:
        shares = dataset.class_shares()
        if not shares or "train" not in shares:
            return
        for split, by_class in shares.items():
            absent = [c for c, share in by_class.items() if share == 0]
            if absent:
                note = (f"data.split: the {split} rows of the stream hold no row of class "
                        f"{list_names(absent, quote=True)} (rows fall into splits by a hash of their row number; "
                        "classes are not stratified)")
                self.notes.append(note)
                warnings.warn(note, stacklevel=4)


_FIXED = {"validation": VALIDATION, "test": TEST, "train": TRAIN}


def _written_numbers(series: pd.Series) -> bool:
    """A column of text whose present cells are all numbers to `columns.to_numbers` (which pyarrow's
    parse of numbers refuses: written for people, or with "?" for an unknown value)."""
    present = series.dropna()
    if not len(present) or to_numbers(present)[1].any():
        return False
    return bool(pd.to_numeric(present.astype(object), errors="coerce").isna().any())  # (not all plain numbers)


def _numbers(series: pd.Series) -> bool:
    """A column typed as numbers (not booleans, not categories)."""
    dtype = series.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _may_miss(frame: pd.DataFrame, schema: FeatureSchema) -> bool:
    """False when `missing_counts(frame, schema)` is certainly empty, found in one cheap look per
    column: no derived column (a value that is no date counts as missing), each float column without
    NaN, each integer or boolean column whole, each other column without a missing cell. A numeric
    column held as text (its words also count) always asks `missing_counts`."""
    if any(info.origin is not None for info in schema.columns):
        return True
    kinds = {info.name: info.kind for info in schema.columns}
    for name in [*kinds, schema.target]:
        if name not in frame.columns:
            continue
        series = frame[name]
        kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else None
        if kind == "f":
            if len(series) and np.isnan(np.min(series.to_numpy())):  # (min is NaN when one is: no mask made)
                return True
        elif kind in ("i", "u", "b"):
            continue
        elif kinds.get(name) == "numeric" or series.isna().any():
            return True
    return False


def _where(parts: list[Part]) -> str:
    return ", ".join(p.where for p in parts)
