"""run.json as nettrain reads it back: `store.record.RunRecord`, `read_record` and the one k-fold rule."""

import json

import pytest

from nettrain.lifecycle import evaluate, target
from nettrain.store import rundir
from nettrain.store.record import RefitPlan, RunData, RunRecord, read_record

# What a completed run of this version writes (training.fit.run_fields and the end of training).
WRITTEN = {
    "name": "iris", "status": "completed", "started": "2024-05-01T10:00:00+02:00", "ended": "2024-05-01T10:01:00+02:00",
    "seed": 42, "device": "cpu", "versions": {"nettrain": "0.1.0"}, "config_file": "iris.yaml", "task": "multiclass",
    "epochs": 20, "final_metrics": {"test": {"loss": 0.2, "accuracy": 0.9}},
    "data": {"source": "iris.csv", "fingerprint": "ab" * 32, "rows": {"train": 96, "validation": 24, "test": 30},
             "stream": False},
    "label_mode": "sparse", "epochs_done": 12, "best_epoch": 9, "stopped_epoch": 12, "monitor": "val_loss",
    "notes": [], "retrains": [{"from_epoch": 12, "epochs": 3}],
}


def write(folder, content) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / rundir.RUN).write_text(content if isinstance(content, str) else json.dumps(content))


def test_a_written_record_reads_back_typed_with_every_other_key_kept(tmp_path):
    write(tmp_path, WRITTEN)
    record = read_record(tmp_path)
    assert record.status == "completed" and record.task == "multiclass" and record.monitor == "val_loss"
    assert (record.epochs, record.epochs_done, record.best_epoch, record.stopped_epoch) == (20, 12, 9, 12)
    assert record.final_metrics == {"test": {"loss": 0.2, "accuracy": 0.9}}
    assert isinstance(record.data, RunData) and record.data.rows["test"] == 30
    assert record.fingerprint == "ab" * 32 and record.stream is False
    assert record.retrains == [{"from_epoch": 12, "epochs": 3}]
    assert not record.is_kfold_parent and not record.is_fold
    # keys nettrain does not type pass through untouched
    assert record.model_extra == {"seed": 42, "device": "cpu", "versions": {"nettrain": "0.1.0"},
                                  "config_file": "iris.yaml", "label_mode": "sparse"}


def test_a_record_of_an_older_or_newer_nettrain_loads(tmp_path):
    """Older runs lack fields (no data.stream, no monitor); a newer one may add keys anywhere."""
    write(tmp_path, {"name": "old", "status": "completed", "epochs_done": 3,
                     "data": {"source": "x.csv", "fingerprint": "ff", "added_later": {"k": 1}}, "kind": "run"})
    record = read_record(tmp_path)
    assert record.name == "old" and record.epochs_done == 3 and record.best_epoch is None
    assert record.stream is None and record.fingerprint == "ff"
    assert record.data.model_extra == {"added_later": {"k": 1}} and record.model_extra == {"kind": "run"}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '"text"', "null", "", b"\xff\xfe\x00\x01"])
def test_a_run_json_that_cannot_be_read_gives_no_record(tmp_path, content):
    if isinstance(content, bytes):
        (tmp_path / rundir.RUN).write_bytes(content)
    else:
        write(tmp_path, content)
    assert read_record(tmp_path) is None


def test_no_run_directory_or_no_run_json_gives_no_record(tmp_path):
    assert read_record(None) is None
    assert read_record(tmp_path) is None
    assert read_record(tmp_path / "missing") is None
    (tmp_path / "dir" / rundir.RUN).mkdir(parents=True)  # a folder where run.json should be
    assert read_record(tmp_path / "dir") is None


def test_a_value_of_another_type_reads_as_absent_and_the_rest_stays():
    record = RunRecord.of({"status": {"a": 1}, "name": ["multi\nline"], "epochs_done": "many", "best_epoch": True,
                           "stopped_epoch": -1, "epochs": 2.5, "folds": "3", "monitor": 5, "final_metrics": [1],
                           "data": [1], "refit": "soon", "notes": "one", "task": "binary", "fold": 2})
    assert record.task == "binary" and record.fold == 2  # the fields that fit are kept
    for field in ("status", "name", "epochs_done", "best_epoch", "stopped_epoch", "epochs", "folds", "monitor",
                  "final_metrics", "data", "refit", "notes"):
        assert getattr(record, field) is None, field
    inner = RunRecord.of({"data": {"fingerprint": 5, "stream": "yes", "rows": {"train": 3}},
                          "refit": {"epochs": "7", "monitor": "loss", "rows": 90}})
    assert inner.fingerprint is None and inner.stream is None and inner.data.rows == {"train": 3}
    assert inner.refit == RefitPlan(monitor="loss", rows=90) and inner.refit.epochs is None
    assert RunRecord.of({"data": {"fingerprint": ""}}).fingerprint is None  # an empty one names nothing


# (run.json content, is a k-fold parent): the one rule every reader uses
KFOLD_CASES = [
    ({"folds": 3}, True),
    ({"folds": 2, "fold": None, "refit": {"epochs": 4}}, True),
    ({"folds": 3, "fold": 2}, False),          # a fold's own record
    ({"fold": 1, "parent": "/runs/kf"}, False),
    ({"folds": 1}, False),
    ({"folds": 0}, False),
    ({"folds": True}, False),                  # not a count
    ({"folds": "3"}, False),
    ({}, False),
]


@pytest.mark.parametrize("content, parent", KFOLD_CASES)
def test_one_kfold_parent_rule_for_every_reader(tmp_path, content, parent):
    record = RunRecord.of(content)
    assert record.is_kfold_parent is parent
    assert record.is_fold is (content.get("fold") is not None)
    write(tmp_path, {**WRITTEN, **content})
    # TARGET resolution and evaluate read it the same way
    assert target._kfold_folds(tmp_path) == (content["folds"] if parent else None)
    found = evaluate.kfold_parent(tmp_path)
    assert (found is not None) is parent
    if parent:
        assert found.folds == content["folds"] and found.name == "iris"


def test_evaluate_reads_an_unreadable_record_as_an_empty_one(tmp_path):
    write(tmp_path, "{not json")
    assert evaluate.run_record(tmp_path) == RunRecord() and evaluate.run_record(None) == RunRecord()
    assert evaluate.kfold_parent(tmp_path) is None and target._kfold_folds(tmp_path) is None
    assert evaluate.kfold_parent(tmp_path / rundir.RUN) is None  # a file is no run directory


def test_the_writer_shows_what_it_holds_typed(tmp_path):
    writer = rundir.RunRecord(tmp_path)
    writer.update(status="running", folds=3, folds_done=1)
    assert writer.typed.status == "running" and writer.typed.is_kfold_parent and writer.typed.folds_done == 1
    writer.update(status="completed", refit={"epochs": 5, "fold_best_epochs": [4, 5, 6], "monitor": "val_loss"})
    loaded = rundir.RunRecord.load(tmp_path).typed
    assert loaded == read_record(tmp_path)
    assert loaded.status == "completed" and loaded.refit.epochs == 5 and loaded.refit.fold_best_epochs == [4, 5, 6]


def test_a_record_is_read_only():
    record = RunRecord.of({"status": "running"})
    with pytest.raises(Exception):
        record.status = "completed"
    assert record.status == "running"
