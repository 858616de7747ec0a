"""The one training loop and its seams: where the examples come from (a `Feed`), which distribution
strategy the model and step are built under, and the callbacks a caller adds (`extra_callbacks`)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # every test here trains a model (one fixture run, a mirrored run)

ROOT = Path(__file__).resolve().parent.parent


def _data(d: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 3))
    pd.DataFrame(x, columns=list("abc")).assign(y=np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")) \
        .to_csv(d / "d.csv", index=False)


class CountingFeed:
    """A feed that hands out another feed's batches and counts what the loop asks for."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        value = getattr(self.inner, name)
        if callable(value):
            def counted(*args, **kwargs):
                self.calls.append(name)
                return value(*args, **kwargs)
            return counted
        return value


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    import keras

    from nettrain.config import load_config
    from nettrain.store import rundir
    from nettrain.training import fit as F
    from nettrain.training import runfiles as RF

    d = tmp_path_factory.mktemp("session")
    _data(d)
    (d / "c.yaml").write_text("data: {source: d.csv, target: y}\nmodel: {layers: [{type: Dense, units: 4}]}\n"
                              "training: {epochs: 4, batch_size: 16}\noutput: {plots: false}\n")
    out = d / "run"

    class Probe(keras.callbacks.Callback):
        """What a sweep's pruning callback would see at the end of each epoch; stops after epoch 2."""

        seen: list = []

        def on_epoch_end(self, epoch, logs=None):
            rows = rundir.MetricsCSV(out / rundir.METRICS_CSV).read()
            done = json.loads((out / rundir.RUN).read_text())["epochs_done"]
            self.seen.append((epoch + 1, len(rows), done, sorted(logs)))
            if epoch + 1 == 2:
                self.model.stop_training = True

    cfg = load_config(d / "c.yaml")
    prep = F.prepare(cfg)
    model = F.new_model(prep)
    monitors = F.check_monitors(cfg, prep.dataset.schema, prep.has_val)
    feed, probe = CountingFeed(prep.feed), Probe()
    out.mkdir()
    with rundir.RunLock(out):
        record = RF.start_run_dir(prep, model, out, monitors)
        result = F.train(F.Session(prep=prep, model=model, out=out, record=record, feed=feed, strategy=prep.strategy,
                                   monitors=monitors, last_epoch=cfg.training.epochs, extra_callbacks=[probe],
                                   quiet=True))
    return result, feed, probe


def test_extra_callbacks_see_each_epoch_after_it_is_on_disk(session):
    result, _, probe = session
    # epoch, metrics.csv rows, run.json epochs_done: the epoch is recorded before the caller's callback runs
    assert [s[:3] for s in probe.seen] == [(1, 1, 1), (2, 2, 2)]
    assert "val_loss" in probe.seen[0][3]


def test_a_caller_callback_can_stop_the_session_and_the_run_is_whole(session):
    result, _, _ = session
    assert result.status == "completed" and result.epochs_done == 2
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    assert set(result.metrics) == {"train", "validation", "test"}
    assert (result.run_dir / "model.h5").is_file()


def test_the_loop_takes_its_examples_from_the_feed(session):
    _, feed, _ = session
    assert feed.calls.count("train_tensors") == 1 and "class_weight" in feed.calls
    # rows in memory: the validation's rows, then the final evaluation's, as tensors (engine.HeldRows)
    assert feed.calls.count("split_tensors") == 2
    assert "validation" not in feed.calls and "evaluation" not in feed.calls


def test_the_fit_leaf_reaches_no_split_arrays():
    """train() and its parts ask the feed for data: no `.inputs` of a split in the loop."""
    import ast

    parts = {"fit.py": {"train", "_callbacks", "_fit", "_loop"},            # the epochs
             "ending.py": {"finish", "_ending", "_plots", "evaluate_splits"}}  # how the session ends
    functions = []
    for name, loop in parts.items():
        tree = ast.parse((ROOT / "nettrain" / "training" / name).read_text())
        found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in loop]
        assert len(found) == len(loop), name
        functions += found
    for fn in functions:
        for a in ast.walk(fn):
            if isinstance(a, ast.Attribute):
                split_of_dataset = a.attr in ("train", "validation", "test") and \
                    isinstance(a.value, ast.Attribute) and a.value.attr == "dataset"
                assert a.attr != "inputs" and not split_of_dataset, f"{fn.name}, line {a.lineno}"


def test_a_mirrored_strategy_trains_resumes_and_retrains(tmp_path):
    """The strategy's scope is entered for building, loading and the training step, each time anew."""
    _data(tmp_path)
    (tmp_path / "m.yaml").write_text(textwrap.dedent("""
        data: {source: d.csv, target: y}
        model: {layers: [{type: Dense, units: 4}]}
        training: {epochs: 2, batch_size: 16}
        runtime: {distribute: mirrored}
        output: {plots: false}
    """))

    def nettrain(*args):
        proc = subprocess.run([sys.executable, "-m", "nettrain", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    nettrain("fit", "m.yaml", "--run-dir", "run", "--quiet")
    nettrain("retrain", "run", "--epochs", "1", "--quiet")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 3
    assert "mirrored" in record["device"]
