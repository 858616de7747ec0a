"""One CliRunner test per remaining command, and the data mistakes a user makes, end to end."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import mixed_csv

runner = CliRunner()


def test_validate_build_prints_the_model_summary(tmp_path):
    mixed_csv(tmp_path / "m.csv")
    cfg = tmp_path / "m.yaml"
    cfg.write_text("data: {source: m.csv, target: label, id: id}\nmodel: {layers: [{type: Dense, units: 7}]}\n")
    result = runner.invoke(app, ["validate", str(cfg), "--build"])
    assert result.exit_code == 0, result.output
    assert "task multiclass" in result.stdout and "3 classes" in result.stdout
    assert "Total params" in result.stdout and "dense" in result.stdout.lower()


@pytest.mark.slow
def test_init_prints_a_config_that_trains(tmp_path):
    mixed_csv(tmp_path / "m.csv")
    result = runner.invoke(app, ["init", str(tmp_path / "m.csv"), "--target", "label"])
    assert result.exit_code == 0, result.output
    cfg = tmp_path / "init.yaml"
    cfg.write_text(result.stdout)
    fit = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(tmp_path / "r"), "--quiet",
                              "--set", f"data.source={tmp_path / 'm.csv'}", "--set", "training.epochs=1"])
    assert fit.exit_code == 0, fit.output


def test_init_unknown_target_exits_2(tmp_path):
    mixed_csv(tmp_path / "m.csv")
    result = runner.invoke(app, ["init", str(tmp_path / "m.csv"), "--target", "lable"])
    assert result.exit_code == 2
    assert "label" in result.stderr


def test_init_of_an_npz_takes_its_y_and_a_bundled_set_is_named(tmp_path):
    """An .npz holds its label as the array y (the column `target` to nettrain, the default of its
    data.target): init asked for --target, which no name in the file answers. A bundled set
    (`sklearn:iris`) was refused as "unknown data file type '(no extension)'"."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    np.savez(tmp_path / "a.npz", x=x, y=(x[:, 0] > 0).astype(int))
    result = runner.invoke(app, ["init", str(tmp_path / "a.npz"), "--output", str(tmp_path / "a.yaml")])
    assert result.exit_code == 0, result.output
    assert "target 'target' (binary, 2 classes)" in result.stderr
    fit = runner.invoke(app, ["fit", str(tmp_path / "a.yaml"), "--run-dir", str(tmp_path / "r"), "--quiet",
                              "--set", "training.epochs=1"])
    assert fit.exit_code == 0, fit.output
    result = runner.invoke(app, ["init", "sklearn:iris"])
    assert result.exit_code == 2 and "sklearn:iris is a bundled set, not a file: it needs no init" in result.stderr


def test_init_with_a_test_file_on_stdout(tmp_path):
    mixed_csv(tmp_path / "m.csv")
    mixed_csv(tmp_path / "t.csv", n=60, seed=1)
    result = runner.invoke(app, ["init", str(tmp_path / "m.csv"), "--target", "label", "--test", str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    import yaml

    data = yaml.safe_load(result.stdout)["data"]
    assert data["train"] == str(tmp_path / "m.csv") and data["test"] == str(tmp_path / "t.csv")
    # no test fraction; 240 rows: init's 5-fold ensemble (suggest.ensemble_folds)
    assert data["split"] == {"folds": 5, "refit": "ensemble", "shuffle": True, "stratify": True}
    assert "init:" in result.stderr and "missing: error" not in result.stdout
    missing = runner.invoke(app, ["init", str(tmp_path / "m.csv"), "--target", "label", "--test", str(tmp_path / "no.csv")])
    assert missing.exit_code == 2 and "no.csv" in missing.stderr


def test_runs_lists_finished_runs(mixed_run, tmp_path):
    shutil.copytree(mixed_run, tmp_path / "runs" / "first", ignore=shutil.ignore_patterns(".lock"))
    result = runner.invoke(app, ["runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["first"]]
    assert len(rows) == 1 and rows[0][1:3] == ["mixed", "completed"], result.stdout  # folder, name, status


def test_runs_on_missing_directory_exits_2(tmp_path):
    result = runner.invoke(app, ["runs", str(tmp_path / "nothing")])
    assert result.exit_code == 2


def test_every_command_has_help():
    import typer.main

    for name in typer.main.get_command(app).commands:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout, name


@pytest.fixture
def csv_case(tmp_path):
    def make(df=None, text=None, extra=""):
        path = tmp_path / "d.csv"
        if text is not None:
            path.write_text(text)
        else:
            df.to_csv(path, index=False)
        cfg = tmp_path / "c.yaml"
        cfg.write_text("data: {source: d.csv, target: y}\ntraining: {epochs: 1}\n" + extra)
        return cfg
    return make


def frame(n=50, **cols):
    rng = np.random.default_rng(0)
    base = {"a": rng.normal(size=n), "b": rng.normal(size=n), "y": rng.integers(0, 2, size=n)}
    base.update(cols)
    return pd.DataFrame(base)


@pytest.mark.parametrize("case, words", [
    ("missing_file", ["nope.csv"]),
    ("header_only", ["no rows"]),
    ("empty", ["empty"]),
    ("non_numeric", ["'b'", "oops"]),
    ("missing_error", ["'a'", "missing"]),
    ("tiny_split", ["data.split"]),
])
@pytest.mark.filterwarnings(r"ignore:data\.split\.\w+. cannot stratify:UserWarning")  # tiny_split
def test_data_mistakes_exit_2_naming_the_culprit(csv_case, tmp_path, case, words):
    if case == "missing_file":
        cfg = csv_case(frame())
        cfg.write_text(cfg.read_text().replace("d.csv", "nope.csv"))
    elif case == "header_only":
        cfg = csv_case(text="a,b,y\n")
    elif case == "empty":
        cfg = csv_case(text="")
    elif case == "non_numeric":
        df = frame()
        df["b"] = df["b"].astype(object)
        df.loc[7, "b"] = "oops"
        cfg = csv_case(df, extra="data: {source: d.csv, target: y, columns: {b: {type: numeric}}}\n")
        cfg.write_text("data: {source: d.csv, target: y, columns: {b: {type: numeric}}}\ntraining: {epochs: 1}\n")
    elif case == "missing_error":
        df = frame()
        df.loc[[3, 9], "a"] = np.nan
        cfg = csv_case(df)
    else:
        cfg = csv_case(frame(n=3, y=[0, 1, 0]))
    result = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w.lower() in result.stderr.lower(), result.stderr
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ output streams

STREAMS = """\
name: streams
seed: 4
data:
  source: {generator: make_classification, n_samples: 120, n_features: 4, n_informative: 3, n_redundant: 0,
           random_state: 0}
model: {layers: [{type: Dense, units: 4, activation: relu}]}
training: {epochs: 2, batch_size: 16}
callbacks: {early_stopping: {monitor: val_loss, patience: 5, restore_best_weights: true}}
output: {dir: runs, plots: false}
sweep:
  trials: 1
  sampler: random
  pruner: none
  params:
    training.optimizer.learning_rate: {log_uniform: [1.0e-3, 1.0e-2]}
"""
EPOCH_LINE = re.compile(r"^epoch \d+/\d+  ", re.M)
NOTICES = ("best epoch", "best checkpoint", "fold 1/2:", "fold 2/2:", "refit:", "refit model", "retraining",
           "restored the best weights", "early stopping at")


def only_results(result, first: str | None = None, last: str | None = None, progress: bool = True) -> None:
    """stdout holds results only: no epoch line, no notice; they are on stderr (when the command has any)."""
    assert result.exit_code == 0, result.output
    out, err = result.stdout, result.stderr
    assert not EPOCH_LINE.search(out), out
    assert not [n for n in NOTICES if n in out], out
    if progress:
        assert EPOCH_LINE.search(err), err
    lines = [line for line in out.splitlines() if line.strip()]
    if first is not None:
        assert lines[0].startswith(first), out
    if last is not None:
        assert lines[-1] == last, out


@pytest.mark.slow
def test_every_command_keeps_stdout_for_results_and_stderr_for_progress(tmp_path, monkeypatch):
    """docs/config.md, Output streams: epoch lines and notices on stderr, results on stdout, for fit
    (plain, --quiet, --json, k-fold with refit), retrain, evaluate, predict, inspect, lr-find and sweep."""
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(STREAMS)
    fit = runner.invoke(app, ["fit", "c.yaml", "--run-dir", "run"])
    only_results(fit, first="Final metrics", last="run directory: run")
    assert "best epoch" in fit.stderr
    quiet = runner.invoke(app, ["fit", "c.yaml", "--run-dir", "quiet", "--quiet"])
    only_results(quiet, first="Final metrics", last="run directory: quiet")
    as_json = runner.invoke(app, ["fit", "c.yaml", "--run-dir", "json", "--quiet", "--json"])
    only_results(as_json)
    assert json.loads(as_json.stdout)["run_dir"] == "json" and "run directory: json" in as_json.stderr
    assert not breaks(json.loads(as_json.stdout), shape("fit"))
    folds = runner.invoke(app, ["fit", "c.yaml", "--run-dir", "kf", "--quiet", "--set", "data.split.folds=2",
                                "--set", "data.split.refit=true"])
    only_results(folds, first="Refit model", last="run directory: kf")
    assert "run directory: kf/fold-1" not in folds.stdout
    err = folds.stderr  # each fold's header comes before its epoch lines, on the same stream
    assert err.index("fold 1/2:") < err.index("epoch 1/2") < err.index("fold 2/2:") < err.index("refit:")
    retrain = runner.invoke(app, ["retrain", "run", "--epochs", "1"])
    only_results(retrain, first="Final metrics", last="run directory: run")
    assert "retraining" in retrain.stderr and "epoch 3/3" in retrain.stderr

    evaluate = runner.invoke(app, ["evaluate", "run"])
    only_results(evaluate, first="evaluated run/model.h5", progress=False)
    only_results(runner.invoke(app, ["evaluate", "run", "--json"]), first="{", progress=False)
    rows = pd.DataFrame(np.random.default_rng(0).normal(size=(5, 4)), columns=[f"x{i}" for i in range(4)])
    rows.to_csv("rows.csv", index=False)
    predict = runner.invoke(app, ["predict", "run", "rows.csv", "--proba"])
    only_results(predict, first="prediction,proba_0,proba_1", progress=False)
    assert len(predict.stdout.splitlines()) == 6 and predict.stderr == ""
    only_results(runner.invoke(app, ["inspect", "run"]), first="inspect run: the trained", progress=False)
    found = runner.invoke(app, ["lr-find", "c.yaml", "--steps", "10", "--output", "lr"])
    only_results(found, first="lr-find: 10 steps", progress=False)
    sweep = runner.invoke(app, ["sweep", "c.yaml", "--json", "--set", "training.epochs=1"])
    only_results(sweep, progress=False)
    assert json.loads(sweep.stdout)["trials"][0]["state"] == "complete" and "trial 0" in sweep.stderr
    assert not breaks(json.loads(sweep.stdout), shape("sweep")) and json.loads(sweep.stdout)["trials"]


# ------------------------------------------------------------------------------ --json shapes

PUBLISHED = json.loads((Path(__file__).resolve().parents[1] / "docs" / "json-output.schema.json").read_text())
KINDS = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None), "integer": int,
         "number": (int, float)}


def resolved(schema: dict, root: dict) -> dict:
    """`schema` with its local `$ref` ("#/a/b") followed."""
    while "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _type_breaks(value, schema: dict, where: str) -> list[str]:
    allowed = schema.get("type")
    if allowed is None:
        return []
    allowed = [allowed] if isinstance(allowed, str) else allowed
    fits = [t for t in allowed if isinstance(value, KINDS[t])
            and not (t in ("integer", "number") and isinstance(value, bool))]
    return [] if fits else [f"{where}: {type(value).__name__} is not {' or '.join(allowed)}"]


def breaks(value, schema: dict, where: str = "$", root: dict = PUBLISHED) -> list[str]:
    """Where `value` breaks `schema`, a small JSON Schema (type, required, properties, items,
    additionalProperties, minItems, maxItems, local $ref into `root`): one line per place."""
    schema = resolved(schema, root)
    out = _type_breaks(value, schema, where)
    if out:
        return out
    if isinstance(value, dict):
        out += [f"{where}: no key {k!r}" for k in schema.get("required", []) if k not in value]
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                out += breaks(v, props[k], f"{where}.{k}", root)
            elif isinstance(extra, dict):
                out += breaks(v, extra, f"{where}.{k}", root)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{where}: {len(value)} items, fewer than {schema['minItems']}")
        if len(value) > schema.get("maxItems", len(value)):
            out.append(f"{where}: {len(value)} items, more than {schema['maxItems']}")
        for i, item in enumerate(value):
            out += breaks(item, schema.get("items", {}), f"{where}[{i}]", root)
    return out


def shape(command: str) -> dict:
    """The published schema of `command --json` (docs/json-output.schema.json)."""
    return PUBLISHED["commands"][command]


def test_the_schema_check_finds_what_breaks_it():
    fit = shape("fit")
    assert breaks({"run_dir": "r", "files": [], "train": {"loss": 0.5}, "test": {"loss": None}}, fit) == []
    found = breaks({"run_dir": 3, "files": ["a", 1], "train": {"loss": "x"}}, fit)
    assert found == ["$: no key 'test'", "$.run_dir: int is not string", "$.files[1]: int is not string",
                     "$.train.loss: str is not number or null"]
    assert breaks([True], {"type": "array", "items": {"type": "integer"}, "minItems": 2}) == [
        "$: 1 items, fewer than 2", "$[0]: bool is not integer"]
    assert breaks({"runs": [{}, {}, {}]}, shape("compare"))[:2] == ["$: no key 'config_differences'",
                                                                     "$: no key 'metrics'"]
    assert set(PUBLISHED["commands"]) == {"fit", "retrain", "evaluate", "baseline", "runs", "compare", "inspect",
                                          "lr-find", "sweep", "sweep-status", "export"}
    baseline = {"run_dir": None, "config": "c.yaml", "name": None, "task": "binary", "seed": 1, "fit_on": "train",
                "rows": {"train": 8}, "metrics": ["auc"], "notes": [], "files": [],
                "models": {"hist_gradient_boosting": {"estimator": "H", "metrics": {"train": {"auc": 0.5}}},
                           "linear": {"estimator": "L", "metrics": {"train": {"auc": None}}}}}
    assert breaks(baseline, shape("baseline")) == []
    assert breaks({**baseline, "models": {"linear": {"estimator": "L", "metrics": {"train": {"auc": "x"}}}}},
                  shape("baseline")) == ["$.models: no key 'hist_gradient_boosting'",
                                         "$.models.linear.metrics.train.auc: str is not number or null"]


def test_json_is_one_line_with_null_for_nan_and_text_for_paths():
    from nettrain import render

    text = render.json_text({"loss": float("nan"), "top": float("-inf"), "run_dir": Path("a/b"), "n": [1, 2.5]})
    assert text == '{"loss": null, "top": null, "run_dir": "a/b", "n": [1, 2.5]}'


def test_every_json_follows_its_schema_and_a_missed_gate_prints_it_first(mixed_run, tmp_path):
    """docs/config.md, JSON output: evaluate shares fit's keys (run_dir, files, the split's metrics);
    runs, compare, inspect and lr-find print one line each that fits the published schema; a missed
    gate prints the object, then the error."""
    for name in ("a", "b"):
        shutil.copytree(mixed_run, tmp_path / "runs" / name, ignore=shutil.ignore_patterns(".lock"))
    a, b = str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "b")
    evaluated = runner.invoke(app, ["evaluate", a, "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert len(evaluated.stdout.splitlines()) == 1
    shown = json.loads(evaluated.stdout)
    assert not breaks(shown, shape("evaluate")), breaks(shown, shape("evaluate"))
    assert shown["test"] == shown["metrics"] and shown["split"] == "test" and shown["run_dir"] == a
    missed = runner.invoke(app, ["evaluate", b, "--json", "--fail-under", "accuracy=0.999"])
    assert missed.exit_code == 3, missed.output
    assert json.loads(missed.stdout)["passed"] is False and "missed" in missed.stderr
    config = str(mixed_run.parent / "mixed.yaml")
    for args in (["runs", str(tmp_path / "runs")], ["compare", a, b], ["inspect", a], ["baseline", a],
                 ["lr-find", config, "--steps", "10", "--output", str(tmp_path / "lr")]):
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        assert len(result.stdout.splitlines()) == 1, result.stdout
        shown = json.loads(result.stdout)
        assert not breaks(shown, shape(args[0])), (args[0], breaks(shown, shape(args[0])))
        assert shown if args[0] != "runs" else len(shown) == 2
