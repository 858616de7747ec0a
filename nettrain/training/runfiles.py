"""What a run directory holds before its first epoch, and its model card after the last: run.json's
first fields (`run_fields`, `data_record` with rows and class counts per split), config.yaml and
labels.json, features.json, signature.json (the input contract), summary.txt, the plugins' copies
(`start_run_dir`), and MODEL.md (`write_card`). Used by every session (`training.fit`), k-fold parents
(`training.kfold`), retrain, resume and the multi-worker chief."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nettrain.data.types import Dataset
from nettrain.model.build import model_summary
from nettrain.store import atomic, guard, plugins, rundir

if TYPE_CHECKING:
    import keras

    from nettrain.training.fit import Prepared


def class_counts(dataset: Dataset) -> dict[str, dict[str, int]] | None:
    """{split: {class name: rows}} of a classification dataset, in memory or streamed (run.json
    `data.class_counts`, what the model card's class balance and limits read); None for a regression."""
    from nettrain.data.stream import StreamDataset

    names = dataset.schema.class_names
    if not names:
        return None
    out = {}
    for split in rundir.SPLITS:
        if isinstance(dataset, StreamDataset):
            counts = dataset.split_class_counts(split)
        else:
            rows = getattr(dataset, split)
            if rows is None or rows.y is None or not len(rows):
                continue
            counts = np.bincount(np.asarray(rows.y, dtype=np.int64).reshape(-1), minlength=len(names))
        if counts.sum():
            out[split] = {name: int(n) for name, n in zip(names, counts)}
    return out


def split_rows(dataset: Dataset) -> dict[str, int]:
    """Rows per split (`rundir.SPLITS`), of a dataset in memory or streamed."""
    from nettrain.data.stream import StreamDataset

    if isinstance(dataset, StreamDataset):
        return {s: dataset.rows(s) for s in rundir.SPLITS}
    return {s: (len(getattr(dataset, s)) if getattr(dataset, s) is not None else 0) for s in rundir.SPLITS}


def run_fields(prep: "Prepared", **extra: Any) -> dict[str, Any]:
    """The run.json fields every run starts with (a run, a k-fold fold, a k-fold parent), then `extra`."""
    cfg, dataset = prep.cfg, prep.dataset
    return {"name": cfg.name, "status": "running", "started": rundir.now(), "ended": None, "seed": cfg.seed,
            "device": prep.device, "versions": rundir.versions(), "config_file": cfg.source.file,
            "task": dataset.schema.task, "epochs": cfg.training.epochs, "final_metrics": None,
            "data": {**data_record(dataset), **({"stream_decision": prep.data_path.to_dict()}
                                                 if hasattr(prep.data_path, "to_dict") else {})}, **extra}


def data_record(dataset: Dataset) -> dict[str, Any]:
    """run.json's `data`: where the rows came from, their fingerprint, rows per split, whether they were
    streamed (and for a classification stream, whose splits are not stratified, each split's class shares)."""
    from nettrain.data.stream import StreamDataset

    record = {"source": dataset.source, "fingerprint": dataset.fingerprint, "rows": split_rows(dataset),
              "stream": isinstance(dataset, StreamDataset)}
    counts = class_counts(dataset)
    if counts:
        record["class_counts"] = counts
    if isinstance(dataset, StreamDataset):
        shares = dataset.class_shares()
        if shares:
            record["class_shares"] = shares
    return record


def write_start_files(prep: "Prepared", out: Path, record: rundir.RunRecord) -> None:
    """config.yaml, labels.json and the plugins' copies: what every run (a k-fold parent too, whose
    refit or ensemble model.h5 loads the plugins' objects from them) has from its start."""
    rundir.write_config(out, prep.cfg.to_dict())
    if prep.dataset.schema.class_names:
        atomic.write_json(out / rundir.LABELS, prep.dataset.schema.class_labels)
    if prep.cfg.plugins:  # the code that built the model, kept with its sha256
        record.update(plugins=plugins.keep_copies(out, prep.cfg.plugins))


def start_run_dir(prep: "Prepared", model: "keras.Model", out: Path, monitors: dict[str, str],
                  record: rundir.RunRecord | None = None, **extra: Any) -> rundir.RunRecord:
    """The files a run has before its first epoch: run.json first (so the folder is a run from the
    start, and a run killed here can be resumed), then config, labels, features and summary."""
    record = record or rundir.RunRecord(out)
    with guard.deferred():
        record.update(**run_fields(prep, label_mode=prep.mode, epochs_done=0, best_epoch=None, stopped_epoch=None,
                                   monitor=monitors["best"], notes=list(prep.dataset.notes), **extra))
        with record.active():
            write_start_files(prep, out, record)
            atomic.write_json(out / rundir.FEATURES, prep.features(model))
            write_signature(prep, out)
            atomic.write_text(out / rundir.SUMMARY, model_summary(model) + "\n")
    return record


def write_signature(prep: "Prepared", out: Path) -> None:
    """signature.json, the input contract predict and evaluate --data check new rows against
    (`data.contract`), from the statistics of the training rows the model was built from."""
    from nettrain.data.contract import signature_of, training_header
    from nettrain.data.stats import train_stats

    dataset = prep.dataset
    stats = dataset.stats
    if stats is None and getattr(dataset, "fold_stats", None):
        stats = dataset.fold_stats[0]  # a streamed k-fold run: its first fold's training rows
    if stats is None and dataset.train is None:
        return  # no statistics of the training rows to describe them by
    data = prep.cfg.data
    ignored = list(data.drop) + training_header(data.train or data.source)  # no extra columns in new data
    atomic.write_json(out / rundir.SIGNATURE, signature_of(dataset.schema, stats or train_stats(dataset), ignored))


def write_card(out: Path) -> None:
    """MODEL.md (`report.modelcard`), once the run's final files are written; a card that cannot be
    drawn is a warning, and the run stands."""
    from nettrain.report.modelcard import write_model_card

    try:
        write_model_card(out)
    except Exception as e:  # noqa: BLE001 - the run is complete on disk; the card only describes it
        import warnings

        from nettrain.words import reason

        warnings.warn(f"{rundir.MODEL_CARD} was not written: {reason(e)}")
