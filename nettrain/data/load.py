"""`load_dataset(cfg)`: config -> raw table -> typed columns + task -> missing values -> splits.

The cells of separate data.validation / data.test files are typed by the training file's cell
types (`data.cells`), as predict and evaluate type a file, not by their own values. Fill values and
the statistics the model is built from (`Dataset.stats`) are learned from the training rows only;
every split goes through `prepare_inputs`, the same function predict uses.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from nettrain.data.cells import cell_types, text_columns, typed_table
from nettrain.data.columns import as_strings, lacks_columns, select_columns, to_numbers, type_columns
from nettrain.data.inputs import MISSING_POLICIES, missing_counts, missing_rows, prepare_inputs
from nettrain.data.sources import read_later, read_source
from nettrain.data.split import fingerprint, hold_out, make_folds, should_stratify, split_rows
from nettrain.data.stats import FILL_POLICIES, imputation_values, stats_of
from nettrain.data.task import class_type, infer_task
from nettrain.data.types import Dataset, FeatureSchema, Split
from nettrain.errors import DataError
from nettrain.words import list_names


def load_dataset(cfg) -> Dataset:
    """Everything the model and training stages need from `cfg.data` and `cfg.preprocessing`."""
    from nettrain.data.images import is_image_config, load_images

    if is_image_config(cfg):  # an image folder: files per class, decoded chunk by chunk when read
        return load_images(cfg)
    raw = read_source(cfg)
    notes: list[str] = []
    schema, frames, main, where = _typed_frames(cfg, raw, notes)
    rest, validation, test = _split_frames(cfg, schema, frames, main, notes)
    folds = make_folds(cfg, _labels(schema, rest), len(rest), schema.task, notes) \
        if cfg.data.split.folds > 1 else None
    # The statistics of the training rows (k-fold: of the first fold's), with their missing values
    # still missing; the fill values come from them, then the statistics of the filled rows.
    policy = cfg.preprocessing.missing
    fit_rows = rest.iloc[folds[0][0]] if folds is not None else rest
    unfilled = prepare_inputs(fit_rows, schema, require_target=True, source=where.get("train", where[main]),
                              keep_missing=True)
    stats = stats_of(schema, unfilled, value_counts=policy == "most_frequent")
    if policy in FILL_POLICIES:
        schema.imputation = imputation_values(schema, stats, policy, where[main],
                                              column=lambda name: to_numbers(fit_rows[name])[0])
        stats = stats.filled(schema, schema.imputation)

    def prepare(frame: pd.DataFrame | None, part: str) -> Split | None:
        if frame is None:
            return None
        return prepare_inputs(frame, schema, require_target=True, source=where.get(part, where[main]))

    pool = prepare(rest, "train") if folds is not None else None
    if folds is not None:  # the first fold stands for "the" split; k-fold takes the others from the pool
        train, valid = pool.take(folds[0][0]), pool.take(folds[0][1])
    else:  # rows without missing values are already as the model takes them
        train = unfilled if not stats.missing else prepare(rest, "train")
        valid = prepare(validation, "validation")
    del unfilled
    stats = stats.with_texts(train, schema)
    held_out = prepare(test, "test")
    if folds is None:
        _absent_classes(schema, train, {"validation": valid, "test": held_out}, notes)
    assignment = {name: split.row_index for name, split in
                  (("train", train), ("validation", valid), ("test", held_out)) if split is not None}
    for i, (_, va) in enumerate(folds or []):
        assignment[f"fold{i}"] = pool.row_index[va]
    return Dataset(schema=schema, train=train, validation=valid, test=held_out,
                   fingerprint=fingerprint(raw.frames, assignment), source=raw.description,
                   n_rows=sum(len(f) for f in frames.values()), folds=folds, pool=pool, notes=notes,
                   official_split=raw.official is not None, stats=stats)


def _absent_classes(schema, train: Split, others: dict[str, Split | None], notes: list[str]) -> None:
    """A class the validation or test rows hold and no training row does (a separate file's new label, a
    class of one row held out) is said, as a stream says it: the model cannot learn it."""
    names = schema.class_names
    if not names or train.y is None:
        return
    trained = np.bincount(train.y, minlength=len(names)) > 0
    for part, split in others.items():
        if split is None or split.y is None or not len(split.y):
            continue
        absent = [names[i] for i in np.flatnonzero(~trained & (np.bincount(split.y, minlength=len(names)) > 0))]
        if absent:
            note = (f"data.split: the train rows hold no row of class {list_names(absent, quote=True)}, which the "
                    f"{part} rows hold: the model cannot learn it")
            notes.append(note)
            warnings.warn(note, stacklevel=3)


def _typed_frames(cfg, raw, notes: list[str]):
    """The feature schema (columns, kinds, task, classes) and each part's rows after the missing-value
    policy: (schema, frames by part, the main part, where each part came from)."""
    main = "source" if "source" in raw.frames else "train"
    where = {part: raw.paths.get(part, raw.description) for part in [*raw.frames, *raw.later]}
    target, features, id_col = select_columns(cfg, raw.frames[main], where[main], raw.default_target)
    columns = type_columns(cfg, raw.frames[main], features, raw.kinds, where[main], notes)
    schema = FeatureSchema(task="regression", target=target, columns=columns, id_column=id_col,
                           cell_types=cell_types(raw.frames[main], [*features, id_col, target]))
    for part, frame in read_later(cfg, raw, text_columns(schema)).items():  # typed as the training file
        raw.frames[part] = typed_table(frame, schema)
    for part, frame in raw.frames.items():
        if part != main:
            _same_columns(cfg, part, frame, [target, *features] + ([id_col] if id_col else []), where[part])
    frames = {part: _apply_missing_policy(cfg, frame, schema, where[part], notes)
              for part, frame in raw.frames.items()}
    all_targets = pd.concat([f[target] for f in frames.values()], ignore_index=True) \
        if len(frames) > 1 else frames[main][target]
    schema.task, schema.class_names = infer_task(cfg, all_targets, target, raw.task_hint)
    if schema.task != "regression":
        schema.class_type = class_type(all_targets)
    if raw.official is not None:
        _official_split(cfg, raw, frames, notes)
    return schema, frames, main, where


def _labels(schema: FeatureSchema, frame: pd.DataFrame) -> np.ndarray | None:
    """Class labels of the rows (for stratified splits), None for regression."""
    return as_strings(frame[schema.target]) if schema.task != "regression" else None


def _split_frames(cfg, schema: FeatureSchema, frames: dict[str, pd.DataFrame], main: str, notes: list[str]):
    """(rows to train on, or to fold; validation rows or None; test rows or None)."""
    if main == "source":
        frame = frames["source"]
        train_pos, val_pos, test_pos = split_rows(cfg, len(frame), _labels(schema, frame), schema.task, notes)
        return (frame.iloc[train_pos], frame.iloc[val_pos] if len(val_pos) else None,
                frame.iloc[test_pos] if len(test_pos) else None)
    if cfg.data.split.folds > 1 and "validation" in frames:
        raise cfg.error("data.split.folds", "k-fold cross-validation makes its own validation folds from "
                        "data.train; remove data.validation or set folds: 1")
    rest, validation, test = frames["train"], frames.get("validation"), frames.get("test")
    if validation is None and cfg.data.split.folds == 1:
        positions = np.arange(len(rest), dtype=np.int64)
        tr, va = hold_out(cfg, positions, _labels(schema, rest), cfg.data.split.validation,
                          "data.split.validation", "validation", should_stratify(cfg, schema.task), notes)
        validation = rest.iloc[va] if len(va) else None
        rest = rest.iloc[tr]
    return rest, validation, test


def fold_dataset(dataset: Dataset, train_positions: np.ndarray, validation_positions: np.ndarray) -> Dataset:
    """One k-fold fold of `dataset`: its training and validation rows of the pool, and the statistics of
    its own training rows (the model of each fold is built from its own rows)."""
    train = dataset.pool.take(train_positions)
    return dataclasses.replace(dataset, train=train, validation=dataset.pool.take(validation_positions),
                               folds=None, pool=None, stats=stats_of(dataset.schema, train))


def _official_split(cfg, raw, frames: dict[str, pd.DataFrame], notes: list[str]) -> None:
    """A source with its own train/test split keeps it: its test rows are the test split, validation
    rows and k folds come from its training rows. data.split.test cannot apply: a value other than
    the default is refused rather than silently ignored."""
    s = cfg.data.split
    n_train, n_test = len(frames["train"]), len(frames["test"])
    default = type(s).model_fields["test"].default
    if s.test != default:
        raise cfg.error("data.split.test", f"{raw.official}: its {n_test} test rows are the test split, so "
                        f"data.split.test ({s.test:g}) does not apply; remove it (data.split.validation takes "
                        f"the validation rows from the {n_train} official training rows)")
    if s.folds > 1:
        use = f"{s.folds}-fold cross-validation folds the {n_train} official training rows"
    elif s.validation > 0:
        use = f"validation takes {s.validation:g} of the {n_train} official training rows"
    else:
        use = f"all {n_train} official training rows train (data.split.validation is 0)"
    notes.append(f"{raw.official}: its {n_test} test rows are the test split and {use}; "
                 "data.split.test does not apply")


def _same_columns(cfg, part: str, frame: pd.DataFrame, needed: list[str], where: str) -> None:
    have = [str(c) for c in frame.columns]
    lost = [c for c in needed if c not in frame.columns]
    if lost:
        raise cfg.error(f"data.{part}", lacks_columns(where, lost, have, "train"))


def _apply_missing_policy(cfg, frame: pd.DataFrame, schema: FeatureSchema, where: str,
                          notes: list[str]) -> pd.DataFrame:
    policy = cfg.preprocessing.missing
    target = schema.target
    if policy == "error":
        counts = missing_counts(frame, schema)
        if counts:
            listed = ", ".join(f"{'target ' if c == target else ''}'{c}' ({n})" for c, n in counts.items())
            allowed = ", ".join(p for p in MISSING_POLICIES if p != "error")
            raise DataError(f"{where}: missing values in {listed}; preprocessing.missing is 'error': set it "
                            f"to one of {allowed} (rows with a missing target are then dropped), or fix "
                            "the data")
        return frame
    if policy == "drop_rows":
        mask = missing_rows(frame, schema)
        what = "a missing value"
    else:
        mask = frame[target].isna().to_numpy()
        what = f"a missing target '{target}'"
    if mask.any():
        note = f"{where}: dropped {int(mask.sum())} of {len(frame)} rows with {what}"
        notes.append(note)
        warnings.warn(note, stacklevel=3)
        frame = frame[~mask]
    if len(frame) == 0:
        raise DataError(f"{where}: no rows left after dropping rows with {what} "
                        f"(preprocessing.missing: {policy})")
    return frame
