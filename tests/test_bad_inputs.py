"""The bad-input corpus: what a careless user or an attacker types, for every command.

Each case runs the real command line on a sandbox holding a finished run, user data files and a
user folder, and asserts: the exit code, one or two lines that name the culprit (file, key path,
column, argument), no traceback, and that no file in the sandbox changed, disappeared or appeared
(a run's `.lock` excepted). Deeper corpora per layer: test_config_hostile.py (YAML and config
values), test_hostile_files.py (data, model and output files), test_signals.py (signals, kills,
full disks).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import digest, regression_csv

runner = CliRunner()

GOOD = """\
data: {source: mixed.csv, target: label, id: id}
model: {layers: [{type: Dense, units: 4, activation: relu}]}
training: {epochs: 1, batch_size: 16}
output: {plots: false}
"""
SWEEP = "sweep:\n  trials: 2\n  params:\n    {}\n"


@pytest.fixture(scope="module")
def sandbox(mixed_run, tmp_path_factory) -> Path:
    """A folder as a user has it: data files, a config, a finished run, a folder of their own.

    The run is a copy of the session's shared run (tests/conftest.py), trained from GOOD on the same
    data; good.yaml is the config it was trained with (its name, its data file), so that a resume
    with good.yaml differs from the run in nothing but what a case sets."""
    shared_config = (mixed_run.parent / "mixed.yaml").read_text()
    assert shared_config == GOOD, "GOOD is the config of the shared mixed_run (tests/conftest.py MIXED)"
    box = tmp_path_factory.mktemp("corpus")
    shutil.copy(mixed_run.parent / "mixed.csv", box / "mixed.csv")
    regression_csv(box / "reg.csv", n=60)
    (box / "good.yaml").write_text("name: mixed\n" + GOOD.replace("source: mixed.csv",
                                                                 f"source: {mixed_run.parent / 'mixed.csv'}"))
    shutil.copytree(mixed_run, box / "run", ignore=shutil.ignore_patterns(".lock"))
    (box / "mine").mkdir()
    (box / "mine" / "notes.txt").write_text("my notes\n")
    shutil.copytree(box / "run", box / "run-foreign")
    (box / "run-foreign" / "notes.txt").write_text("mine\n")
    # runs whose files were edited into other shapes
    for name, file, content in [("edited-list", "run.json", "[1, 2]"),
                                ("edited-type", "run.json", None),
                                ("edited-config", "config.yaml", "- just\n- a list\n"),
                                ("edited-meta", None, None)]:
        shutil.copytree(box / "run", box / name)
        if file and content is not None:
            (box / name / file).write_text(content)
    record = json.loads((box / "run" / "run.json").read_text())
    (box / "edited-type" / "run.json").write_text(json.dumps({**record, "epochs_done": "many"}))
    with h5py.File(box / "edited-meta" / "model.h5", "a") as f:
        f.attrs["nettrain"] = "{not json"
    # data files with something wrong
    frame = pd.read_csv(box / "mixed.csv")
    (box / "dup.csv").write_text("x1,x1,label\n1,2,a\n3,4,b\n")
    (box / "nul.csv").write_bytes(b"x1,label\n1,a\n2\x00,b\n")
    frame.assign(label=np.nan).to_csv(box / "nan_target.csv", index=False)
    frame.drop(columns=["x2"]).to_csv(box / "lacks_x2.csv", index=False)
    (box / "empty.csv").write_text("")
    cut = (box / "mixed.csv").read_text().splitlines()
    cut[60] += ",extra"    # line 61: a field too many, read by a stream
    (box / "cut.csv").write_text("\n".join(cut) + "\n")
    (box / "data.xlsx").write_text("not really")
    np.savez(box / "objects.npz", x=np.array([[1, 2], [3]], dtype=object), y=np.array([0, 1]))
    (box / "notes.txt").write_text("not a model\n")
    (box / "fake.h5").write_text("not hdf5\n")
    (box / "keras-home").mkdir()
    return box


# (id, command line with {box} and {cfg} placeholders, config text or None, exit code, regexes that must
#  appear in the message)
CASES = [
    # ---------------------------------------------------------------- validate: YAML and values
    ("missing-config", "validate {box}/nope.yaml", None, 2, [r"config file not found: .*nope\.yaml"]),
    ("config-is-folder", "validate {box}/mine", None, 2, [r"not a file: .*mine"]),
    ("empty-config", "validate {cfg}", "", 2, [r"\.yaml: the config is empty"]),
    ("top-level-list", "validate {cfg}", "- a\n- b\n", 2, [r"\.yaml:1: the top level must be a mapping"]),
    ("billion-laughs", "validate {cfg}",
     "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", 2, [r"\.yaml:\d+: .*alias"]),
    ("recursive-alias", "validate {cfg}", "a: &a [*a]\n", 2, [r"\.yaml:1: recursive YAML alias"]),
    ("deep-nesting", "validate {cfg}", "data: " + "[" * 500 + "]" * 500 + "\n", 2, [r"\.yaml:1: nested deeper"]),
    ("nul-byte", "validate {cfg}", "data: {source: mixed\0.csv, target: label}\n", 2, [r"\.yaml:1: a NUL"]),
    ("complex-key", "validate {cfg}", GOOD + "? [a, b]\n: 1\n", 2, [r"\.yaml:5: .*key"]),
    ("boolean-key", "validate {cfg}", GOOD + "yes: 1\n", 2, [r"\.yaml:5: .*quote it: 'yes'"]),
    ("python-tag", "validate {cfg}", "data: !!python/object/apply:os.system [echo hi]\n", 2,
     [r"\.yaml:1: data: YAML tag not allowed"]),
    ("duplicate-key", "validate {cfg}", GOOD + "data: {source: mixed.csv, target: label}\n", 2,
     [r"\.yaml:5: data: key 'data' appears twice"]),
    ("huge-config", "validate {cfg}", "# " + "x" * (1 << 20) + "\n" + GOOD, 2,
     [r"\.yaml: the file is larger than 1 MiB"]),
    ("unknown-key-typo", "validate {cfg}", GOOD.replace("training:", "trainng:"), 2,
     [r"\.yaml:3: trainng: unknown key 'trainng'; did you mean 'training'"]),
    ("learning-rate-word", "validate {cfg}", GOOD.replace("training: {epochs: 1, batch_size: 16}",
                  "training: {epochs: 1, optimizer: {name: adam, learning_rate: fast}}"), 2,
     [r"training\.optimizer\.learning_rate: got 'fast'"]),
    ("learning-rate-mapping", "validate {cfg}",
     GOOD.replace("training: {epochs: 1, batch_size: 16}", "training: {optimizer: {name: sgd, learning_rate: {a: 1}}}"),
     2, [r"training\.optimizer\.learning_rate: got \{'a': 1\}"]),
    ("negative-seed", "validate {cfg}", GOOD + "seed: -1\n", 2, [r"\.yaml:5: seed: got -1"]),
    ("batch-size-too-big", "validate {cfg}",
     GOOD.replace("batch_size: 16", "batch_size: 99999999999999999999999"), 2, [r"training\.batch_size: got"]),
    ("zero-epochs", "validate {cfg}", GOOD.replace("epochs: 1", "epochs: 0"), 2, [r"training\.epochs: got 0"]),
    ("absurd-decay-steps", "validate {cfg}",
     GOOD + "callbacks: {lr_schedule: {type: exponential, decay_steps: 1.0e+300}}\n", 2,
     [r"callbacks\.lr_schedule\.decay_steps"]),
    ("infinite-min-delta", "validate {cfg}", GOOD + "callbacks: {early_stopping: {min_delta: .inf}}\n", 2,
     [r"callbacks\.early_stopping\.min_delta: got inf"]),
    ("template-attribute", "validate {cfg}", GOOD + "callbacks: {checkpoint: {filename: '{epoch.__class__}.h5'}}\n",
     2, [r"callbacks\.checkpoint\.filename: .*attribute or index access"]),
    ("template-index", "validate {cfg}", GOOD + "callbacks: {checkpoint: {filename: '{epoch.x.y[3]}.h5'}}\n",
     2, [r"callbacks\.checkpoint\.filename: .*not allowed"]),
    ("template-unknown-field", "validate {cfg}", GOOD + "callbacks: {checkpoint: {filename: 'e{foo}.h5'}}\n", 2,
     [r"callbacks\.checkpoint\.filename: unknown field \{foo\}"]),
    ("template-huge-width", "validate {cfg}",
     GOOD + "callbacks: {checkpoint: {filename: 'e{epoch:999999999d}.h5'}}\n", 2,
     [r"callbacks\.checkpoint\.filename: .*format spec"]),
    ("template-slash", "validate {cfg}", GOOD + "callbacks: {checkpoint: {filename: '../../x{epoch}.h5'}}\n", 2,
     [r"callbacks\.checkpoint\.filename: .*plain file name"]),
    ("template-wrong-type", "validate {cfg}", GOOD + "callbacks: {checkpoint: {filename: 'e{val_loss:d}.h5'}}\n",
     2, [r"callbacks\.checkpoint\.filename: .*\{val_loss:d\}.*nan or inf"]),
    ("template-suffix", "validate {cfg}", GOOD + "callbacks: {checkpoint: {filename: 'e{epoch}.txt'}}\n", 2,
     [r"callbacks\.checkpoint\.filename: .*\.h5"]),
    ("lambda-layer", "validate {cfg}", GOOD.replace("{type: Dense, units: 4, activation: relu}",
                                                     "{type: Lambda, function: x}"), 2,
     [r"model\.layers\.0\.type: .*'Lambda' runs arbitrary code"]),
    ("unknown-layer", "validate {cfg}", GOOD.replace("type: Dense", "type: Dens"), 2,
     [r"model\.layers\.0\.type: Keras has no layer 'Dens'; did you mean 'Dense'"]),
    ("unknown-layer-arg", "validate {cfg}", GOOD.replace("units: 4", "units: 4, unit: 3"), 2,
     [r"model\.layers\.0\.unit: Dense has no argument 'unit'"]),
    ("units-word", "validate {cfg}", GOOD.replace("units: 4", "units: abc"), 2,
     [r"model\.layers\.0\.units: got 'abc'"]),
    ("dropout-rate", "validate {cfg}", GOOD.replace("{type: Dense, units: 4, activation: relu}",
                                                     "{type: Dropout, rate: 1.5}"), 2, [r"model\.layers\.0\.rate: got 1\.5"]),
    ("unknown-optimizer", "validate {cfg}", GOOD.replace("epochs: 1,", "epochs: 1, optimizer: adamm,"), 2,
     [r"training\.optimizer: Keras has no optimizer 'adamm'"]),
    ("unknown-loss", "validate {cfg}", GOOD.replace("epochs: 1,", "epochs: 1, loss: crossentropy_x,"), 2,
     [r"training\.loss: Keras has no loss 'crossentropy_x'"]),
    ("bad-device", "validate {cfg}", GOOD + "runtime: {device: tpu}\n", 2, [r"runtime\.device: must be auto, cpu"]),
    ("name-with-slash", "validate {cfg}", GOOD + "name: ../escape\n", 2, [r"\.yaml:5: name: .*names a folder"]),
    ("split-out-of-range", "validate {cfg}", GOOD.replace("id: id}", "id: id, split: {test: 1.5}}"), 2,
     [r"data\.split\.test: must be a fraction"]),
    ("source-and-train", "validate {cfg}", GOOD.replace("id: id}", "id: id, train: mixed.csv}"), 2,
     [r"data: give 'source' or 'train', not both"]),
    ("not-utf8", "validate {cfg}", b"data: {source: \xff\xfe.csv}\n", 2, [r"\.yaml"]),
    ("set-without-equals", "validate {box}/good.yaml --set training.epochs", None, 2,
     [r"--set expects KEY=VALUE .*'training\.epochs'"]),
    ("set-unknown-key", "validate {box}/good.yaml --set training.epoch=3", None, 2,
     [r"training\.epoch: unknown key 'epoch'; did you mean 'epochs'.*--set training\.epoch"]),
    ("set-bad-index", "validate {box}/good.yaml --set model.layers.7.units=3", None, 2,
     [r"--set model\.layers\.7\.units: model\.layers has 1 items, no index 7"]),
    ("set-bad-yaml", "validate {box}/good.yaml --set training.epochs=[1", None, 2,
     [r"--set training\.epochs"]),
    ("set-wrong-type", "validate {box}/good.yaml --set training.epochs=many", None, 2,
     [r"training\.epochs: got 'many'.*--set training\.epochs"]),
    # ---------------------------------------------------------------- fit: data, run folders
    ("data-missing", "fit {cfg}", GOOD.replace("mixed.csv", "absent.csv"), 2,
     [r"data\.source: data file not found: .*absent\.csv"]),
    ("target-missing", "fit {cfg}", GOOD.replace("target: label", "target: labl"), 2,
     [r"labl.*did you mean 'label'"]),
    ("duplicate-header", "fit {cfg}", GOOD.replace("mixed.csv", "dup.csv").replace(", id: id", ""), 2,
     [r"dup\.csv: .*x1"]),
    ("nul-in-data", "fit {cfg}", GOOD.replace("mixed.csv", "nul.csv").replace(", id: id", ""), 2, [r"nul\.csv"]),
    ("all-nan-target", "fit {cfg}", GOOD.replace("mixed.csv", "nan_target.csv"), 2,
     [r"nan_target\.csv: missing values in target 'label'"]),
    ("unknown-extension", "fit {cfg}", GOOD.replace("mixed.csv", "data.xlsx"), 2,
     [r"data\.source: unknown data file type '\.xlsx'"]),
    ("empty-data", "fit {cfg}", GOOD.replace("mixed.csv", "empty.csv"), 2, [r"empty\.csv: the file is empty"]),
    ("stream-bad-line", "fit {cfg}", GOOD.replace("mixed.csv", "cut.csv").replace("id: id}", "id: id, stream: true}"),
     2, [r"cut\.csv: cannot read it as csv: expected 5 fields in line 61, saw 6"]),
    ("pickled-npz", "fit {cfg}", GOOD.replace("mixed.csv", "objects.npz").replace("target: label, id: id", "target: target"),
     2, [r"objects\.npz: .*(object|pickle)"]),
    ("keras-set-absent", "fit {cfg}", "data: {source: 'keras:mnist'}\n", 2,
     [r"data\.source: keras:mnist needs the file .*mnist\.npz"]),
    ("class-weight-unknown-class", "fit {cfg}", GOOD.replace("batch_size: 16", "batch_size: 16, class_weight: {purple: 2.0}"), 2,
     [r"training\.class_weight\.purple: no class 'purple'"]),
    ("monitor-never-logged", "fit {cfg}", GOOD + "callbacks: {early_stopping: {monitor: val_auc}}\n", 2,
     [r"callbacks\.early_stopping\.monitor: 'val_auc' is never logged"]),
    ("layer-cannot-allocate", "fit {cfg}", GOOD.replace(
        "[{type: Dense, units: 4, activation: relu}]",
        "[{type: Dense, units: 16000000}, {type: Dense, units: 16000000}]"), 2,
     [r"model\.layers\.1: Dense\(units=16000000\).*cannot be allocated"]),
    ("run-dir-root", "fit {box}/good.yaml --run-dir /", None, 2, [r"--run-dir /: refusing the filesystem root"]),
    ("run-dir-home", "fit {box}/good.yaml --run-dir ~", None, 2, [r"--run-dir .*: refusing the home folder"]),
    ("run-dir-user-folder", "fit {box}/good.yaml --run-dir {box}/mine", None, 2,
     [r"--run-dir .*mine holds files that are not a nettrain run \(notes\.txt\)"]),
    ("run-dir-user-folder-force", "fit {box}/good.yaml --run-dir {box}/mine --force", None, 2,
     [r"--run-dir .*mine holds files that are not a nettrain run"]),
    ("run-dir-existing-run", "fit {box}/good.yaml --run-dir {box}/run", None, 2,
     [r"--run-dir .*run already holds a run .*--force"]),
    ("run-dir-force-foreign", "fit {box}/good.yaml --run-dir {box}/run-foreign --force", None, 2,
     [r"--force replaces only a nettrain run, and this folder also holds notes\.txt"]),
    ("run-dir-is-file", "fit {box}/good.yaml --run-dir {box}/mixed.csv", None, 2,
     [r"--run-dir .*mixed\.csv exists and is not a folder"]),
    ("run-dir-through-file", "fit {box}/good.yaml --run-dir {box}/mixed.csv/sub", None, 2,
     [r"mixed\.csv/sub"]),
    ("resume-missing", "fit {box}/good.yaml --resume {box}/nope", None, 2, [r"--resume .*nope: no such run directory"]),
    ("resume-user-folder", "fit {box}/good.yaml --resume {box}/mine", None, 2,
     [r"mine is not a run directory \(no run\.json\)"]),
    ("resume-run-json-list", "fit {box}/good.yaml --resume {box}/edited-list", None, 2,
     [r"edited-list/run\.json: expected a JSON object"]),
    ("resume-run-json-type", "fit {box}/good.yaml --resume {box}/edited-type", None, 2,
     [r"edited-type/run\.json: 'epochs_done' holds 'many'"]),
    ("resume-config-list", "fit {box}/good.yaml --resume {box}/edited-config", None, 2,
     [r"edited-config/config\.yaml: 'config' is a list, expected a mapping"]),
    ("resume-other-config", "fit {box}/good.yaml --resume {box}/run --set training.epochs=3", None, 2,
     [r"--resume .*run: the config differs .*training\.epochs"]),
    # ---------------------------------------------------------------- retrain
    ("retrain-missing", "retrain {box}/nope.h5", None, 2, [r"nope\.h5"]),
    ("retrain-not-h5", "retrain {box}/notes.txt", None, 2, [r"notes\.txt is neither a run directory nor an \.h5"]),
    ("retrain-fake-h5", "retrain {box}/fake.h5", None, 2, [r"fake\.h5 is not a readable \.h5"]),
    ("retrain-user-folder", "retrain {box}/mine", None, 2, [r"mine is not a run directory"]),
    ("retrain-architecture", "retrain {box}/run --set model.layers.0.units=8", None, 2,
     [r"--set model\.layers\.0\.units=8: retrain keeps the architecture"]),
    ("retrain-set-type", "retrain {box}/run --set training.epochs=abc", None, 2,
     [r"^error: --set training\.epochs=abc: got 'abc'; expected an integer"]),
    ("retrain-epochs-zero", "retrain {box}/run --epochs 0", None, 2, [r"--epochs 0: expected an integer"]),
    ("retrain-epochs-huge", "retrain {box}/run --epochs 99999999", None, 2, [r"--epochs 99999999"]),
    ("retrain-damaged-meta", "retrain {box}/edited-meta", None, 2, [r"edited-meta/model\.h5: .*nettrain"]),
    ("retrain-run-json-type", "retrain {box}/edited-type", None, 2, [r"edited-type/run\.json: 'epochs_done'"]),
    ("retrain-run-dir-user", "retrain {box}/run --run-dir {box}/mine", None, 2,
     [r"--run-dir .*mine holds files that are not a nettrain run"]),
    ("retrain-data-missing", "retrain {box}/run --data {box}/absent.csv", None, 2, [r"absent\.csv"]),
    # ---------------------------------------------------------------- evaluate
    ("evaluate-missing", "evaluate {box}/nope", None, 2, [r"no such run directory or \.h5 file: .*nope"]),
    ("evaluate-user-folder", "evaluate {box}/mine", None, 2, [r"mine is not a run directory"]),
    ("evaluate-split", "evaluate {box}/run --split tset", None, 2, [r"--split 'tset': choose one of test"]),
    ("evaluate-split-and-data", "evaluate {box}/run --split test --data {box}/mixed.csv", None, 2,
     [r"either --data FILE or --split NAME"]),
    ("evaluate-gate-syntax", "evaluate {box}/run --fail-under accuracy", None, 2,
     [r"--fail-under 'accuracy': expected METRIC=VALUE"]),
    ("evaluate-gate-number", "evaluate {box}/run --fail-under accuracy=high", None, 2,
     [r"--fail-under 'accuracy=high': 'high' is not a number"]),
    ("evaluate-gate-metric", "evaluate {box}/run --fail-under acuracy=0.5", None, 2,
     [r"--fail-under: unknown metric 'acuracy'; did you mean 'accuracy'"]),
    ("evaluate-data-lacks-column", "evaluate {box}/run --data {box}/lacks_x2.csv", None, 2,
     [r"lacks_x2\.csv.*x2"]),
    ("evaluate-damaged-meta", "evaluate {box}/edited-meta", None, 2, [r"edited-meta/model\.h5: .*nettrain"]),
    # ---------------------------------------------------------------- predict
    ("predict-input-missing", "predict {box}/run {box}/absent.csv", None, 2, [r"absent\.csv"]),
    ("predict-overwrite-input", "predict {box}/run {box}/mixed.csv --output {box}/mixed.csv", None, 2,
     [r"--output .*mixed\.csv"]),
    ("predict-into-run", "predict {box}/run {box}/mixed.csv --output {box}/run/metrics.csv", None, 2,
     [r"--output .*run/metrics\.csv"]),
    ("predict-through-file", "predict {box}/run {box}/mixed.csv --output {box}/mixed.csv/p.csv", None, 2,
     [r"--output .*mixed\.csv/p\.csv"]),
    ("predict-output-suffix", "predict {box}/run {box}/mixed.csv --output {box}/p.txt", None, 2,
     [r"--output .*p\.txt: unknown output type '\.txt'"]),
    ("predict-output-folder", "predict {box}/run {box}/mixed.csv --output {box}/mine", None, 2,
     [r"--output .*mine"]),
    ("predict-lacks-column", "predict {box}/run {box}/lacks_x2.csv", None, 2, [r"lacks_x2\.csv.*x2"]),
    # ---------------------------------------------------------------- export
    ("export-unknown-format", "export {box}/run --format pickle", None, 2,
     [r"--format 'pickle': unknown export format"]),
    ("export-not-a-run", "export {box}/mine", None, 2, [r"mine is not a run directory"]),
    ("export-onnx-string", "export {box}/run --format onnx", None, 2, [r"column 'color' is categorical .*savedmodel, keras"]),
    ("predict-damaged-meta", "predict {box}/edited-meta {box}/mixed.csv", None, 2, [r"edited-meta/model\.h5"]),
    # ---------------------------------------------------------------- init, runs, schema
    ("init-target-missing", "init {box}/mixed.csv --target lable", None, 2,
     [r"mixed\.csv: no column 'lable'.*did you mean 'label'"]),
    ("init-all-nan-target", "init {box}/nan_target.csv --target label", None, 2, [r"nan_target\.csv: .*label"]),
    ("init-unknown-extension", "init {box}/data.xlsx --target label", None, 2, [r"data\.xlsx: unknown data file"]),
    ("init-duplicate-header", "init {box}/dup.csv --target label", None, 2, [r"dup\.csv: .*x1"]),
    ("runs-not-a-folder", "runs {box}/mixed.csv", None, 2, [r"mixed\.csv"]),
    ("runs-missing", "runs {box}/nope", None, 2, [r"no runs directory at .*nope"]),
    ("runs-sort-unknown", "runs {box} --sort nope", None, 2, [r"--sort 'nope': no run has this metric; available"]),
    ("runs-filter-syntax", "runs {box} --filter bad", None, 2, [r"--filter 'bad': expected KEY=VALUE"]),
    ("runs-last-zero", "runs {box} --last 0", None, 2, [r"--last 0: expected a whole number >= 1"]),
    ("plot-missing", "plot {box}/nope", None, 2, [r"RUN .*nope: no such folder"]),
    ("plot-user-folder", "plot {box}/mine", None, 2, [r"RUN .*mine is not a run directory"]),
    ("plot-unknown-metric", "plot {box}/run --metric nope", None, 2,
     [r"RUN .*run: no metric 'nope' in its metrics\.csv; it has: loss"]),
    ("plot-into-run", "plot {box}/run --output {box}/run/x.png", None, 2,
     [r"--output .*run/x\.png is inside the run directory"]),
    ("plot-not-png", "plot {box}/run --output {box}/x.txt", None, 2, [r"--output .*x\.txt: expected a file name ending in \.png"]),
    ("compare-user-folder", "compare {box}/run {box}/mine", None, 2, [r"RUN .*mine is not a run directory"]),
    ("compare-file", "compare {box}/run {box}/mixed.csv", None, 2, [r"RUN .*mixed\.csv is a file, not a run directory"]),
    ("clean-user-folder", "clean {box}/mine", None, 2, [r"RUN .*mine: not a run directory \(no run\.json in it\)"]),
    ("clean-file", "clean {box}/mixed.csv", None, 2, [r"RUN .*mixed\.csv: not a run directory"]),
    # ---------------------------------------------------------------- inspect, lr-find
    ("inspect-batch-zero", "inspect {box}/good.yaml --batch 0", None, 2, [r"--batch 0: expected a whole number of rows"]),
    ("inspect-set-on-run", "inspect {box}/run --set seed=1", None, 2, [r"--set applies to a CONFIG; .*run is a trained model"]),
    ("inspect-user-folder", "inspect {box}/mine", None, 2, [r"mine is not a run directory"]),
    ("inspect-not-h5", "inspect {box}/fake.h5", None, 2, [r"fake\.h5"]),
    ("lr-find-range", "lr-find {box}/good.yaml --min 1 --max 0.1", None, 2, [r"--min 1 --max 0\.1: the range must grow"]),
    ("lr-find-steps", "lr-find {box}/good.yaml --steps 3", None, 2, [r"--steps 3: expected a whole number from 10"]),
    ("lr-find-into-run", "lr-find {box}/good.yaml --output {box}/run/lr", None, 2,
     [r"--output .*run/lr is inside the run directory"]),
    ("lr-find-user-folder", "lr-find {box}/good.yaml --output {box}/mine", None, 2,
     [r"--output .*mine holds other files \(notes\.txt\)"]),
    # ---------------------------------------------------------------- sweep: all before any trial
    ("sweep-no-section", "sweep {cfg}", GOOD, 2, [r"\.yaml: sweep: no sweep section"]),
    ("sweep-unknown-key", "sweep {cfg}", GOOD + SWEEP.format("model.layers.0.unitz: {choice: [2, 4]}"), 2,
     [r"sweep\.params\.model\.layers\.0\.unitz: .*unitz"]),
    ("sweep-refused-value", "sweep {cfg}", GOOD + SWEEP.format("model.layers.0.units: {choice: [2, -4]}"), 2,
     [r"sweep\.params\.model\.layers\.0\.units: the value -4 does not fit"]),
    ("sweep-bad-range", "sweep {cfg}", GOOD + SWEEP.format("model.layers.0.units: {int: [8, 2]}"), 2,
     [r"sweep\.params\.model\.layers\.0\.units: int: low must be below high, got \[8, 2\]"]),
    ("sweep-bad-metric", "sweep {cfg}", GOOD + SWEEP.format("training.batch_size: {choice: [8, 16]}")
     + "  metric: val_nope\n", 2, [r"sweep\.metric: a run of this config does not log 'val_nope'"]),
    ("sweep-trials-zero", "sweep {cfg} --trials 0", GOOD + SWEEP.format("training.batch_size: {choice: [8, 16]}"),
     2, [r"--trials 0: expected a count"]),
    ("sweep-unreachable-storage", "sweep {cfg} --storage postgresql+psycopg://me:hunter2@127.0.0.1:1/db",
     GOOD + SWEEP.format("training.batch_size: {choice: [8, 16]}"), 2,
     [r"cannot reach the sweep storage postgresql\+psycopg://me:\*\*\*@127\.0\.0\.1:1/db"]),
    ("sweep-unknown-database", "sweep {cfg} --storage mongodb://host/db",
     GOOD + SWEEP.format("training.batch_size: {choice: [8, 16]}"), 2, [r"unsupported database 'mongodb'"]),
    ("sweep-status-user-folder", "sweep-status {box}/mine", None, 2, [r"mine is not a sweep folder"]),
    ("sweep-status-nothing", "sweep-status", None, 2, [r"give a sweep folder or --storage URL"]),
    ("sweep-status-missing-db", "sweep-status --storage sqlite:///{box}/typo-folder/stduy.db", None, 2,
     [r"no study database at .*typo-folder/stduy\.db"]),
    ("sweep-status-not-sqlite", "sweep-status --storage sqlite:///{box}/mixed.csv", None, 2,
     [r"mixed\.csv is not an SQLite database"]),
    ("sweep-storage-not-sqlite", "sweep {cfg} --storage sqlite:///{box}/mixed.csv",
     GOOD + SWEEP.format("training.batch_size: {choice: [8, 16]}"), 2, [r"mixed\.csv is not an SQLite database"]),
    ("sweep-storage-in-memory", "sweep {cfg} --storage sqlite:///:memory:",
     GOOD + SWEEP.format("training.batch_size: {choice: [8, 16]}"), 2,
     [r"--storage sqlite:///:memory:: an SQLite database without a file lives inside one process"]),
    ("sweep-multi-worker", "sweep {cfg} --set runtime.distribute=multi_worker",
     GOOD + SWEEP.format("training.batch_size: {choice: [8, 16]}"), 2,
     [r"runtime\.distribute: multi_worker: a sweep trial is one process"]),
    ("tracking-timeout-zero", "validate {cfg} --set tracking.timeout=0", GOOD, 2,
     [r"tracking\.timeout: got 0; expected a number in \(0, 600\]"]),
    ("tracking-password-in-a-bad-uri", "validate {cfg} --set tracking.mlflow=ftp://me:hunter2@host/x", GOOD, 2,
     [r"^(?!.*hunter2)error: .*tracking\.mlflow: .*got 'ftp://me:\*\*\*@host/x'"]),
    ("tracking-file-store-under-a-file", "fit {cfg} --set tracking.mlflow=file://{box}/notes.txt/mlruns", GOOD, 2,
     [r"tracking\.mlflow: file:///.*/notes\.txt/mlruns: .*notes\.txt is a file, not a folder"]),
    ("tracking-retrain-masked-password", "retrain {box}/run/model.h5 --set tracking.mlflow=http://me:***@127.0.0.1:1",
     None, 2, [r"tracking\.mlflow: .*the password of this MLflow URI is not stored with a run"]),
    ("baseline-set-on-run", "baseline {box}/run --set seed=1", None, 2, [r"--set changes a CONFIG"]),
    ("baseline-user-folder", "baseline {box}/mine", None, 2, [r"mine is not a run directory"]),
    ("baseline-missing", "baseline {box}/nope.yaml", None, 2, [r"no such config file or run directory: .*nope\.yaml"]),
    ("baseline-kfold", "baseline {cfg}", GOOD.replace("target: label,", "target: label, split: {folds: 3},"), 2,
     [r"data\.split\.folds: .*folds: 1"]),
    ("baseline-edited-data", "baseline {box}/edited-config", None, 2, [r"config\.yaml"]),
    ("fit-baseline-kfold", "fit {cfg} --baseline --run-dir {box}/mine/new", GOOD.replace(
        "target: label,", "target: label, split: {folds: 3},"), 2, [r"data\.split\.folds"]),
    ("schema-extra-argument", "schema extra", None, 2, [r"(?i)unexpected extra argument|Got unexpected"]),
    ("unknown-command", "fitt {box}/good.yaml", None, 2, [r"(?i)no such command"]),
]


SLOW_CASES = {"layer-cannot-allocate"}  # TensorFlow tries the allocation first: ~10 s


@pytest.mark.parametrize("case_id, line, config, code, patterns",
                         [pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if c[0] in SLOW_CASES else [])
                          for c in CASES])
def test_bad_input(sandbox, monkeypatch, case_id, line, config, code, patterns):
    monkeypatch.setenv("KERAS_HOME", str(sandbox / "keras-home"))
    cfg = sandbox / f"case-{case_id}.yaml"
    if config is not None:
        cfg.write_bytes(config if isinstance(config, bytes) else config.encode("utf-8"))
    before = digest(sandbox)
    args = [a.replace("{box}", str(sandbox)).replace("{cfg}", str(cfg)) for a in line.split(" ")]
    args = [os.path.expanduser(a) if a == "~" else a for a in args]
    result = runner.invoke(app, args)
    output = result.output
    assert result.exit_code == code, (result.exit_code, output)
    assert "Traceback" not in output, output
    assert not (result.exception and not isinstance(result.exception, SystemExit)), repr(result.exception)
    message = result.stderr.strip()
    if not case_id.startswith(("schema-", "unknown-command")):  # Typer's own usage errors are boxed
        assert message.startswith("error: ") and len(message.splitlines()) <= 2, message
    for pattern in patterns:
        assert re.search(pattern, message, re.M), (pattern, message)
    assert digest(sandbox) == before, "a file in the sandbox changed"
    cfg.unlink(missing_ok=True)


def test_the_corpus_covers_every_command():
    from typer.main import get_command

    commands = set(get_command(app).commands)
    covered = {c[1].split(" ")[0] for c in CASES}
    assert commands <= covered, commands - covered
    assert len(CASES) >= 80


def test_internal_error_is_one_line_and_debug_shows_the_traceback(sandbox, monkeypatch):
    """An unexpected failure (a bug) is one line and exit 1; --debug or NETTRAIN_DEBUG=1 gives the traceback."""
    import nettrain.api as api

    def broken(*args, **kwargs):
        raise RuntimeError("something internal broke")

    monkeypatch.setattr(api, "init_config", broken)
    result = runner.invoke(app, ["init", str(sandbox / "mixed.csv"), "--target", "label"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: internal error: RuntimeError: something internal broke "
                                     "(run with --debug for details)")
    result = runner.invoke(app, ["init", str(sandbox / "mixed.csv"), "--target", "label", "--debug"])
    assert result.exit_code == 1 and "Traceback" in result.stderr and "something internal broke" in result.stderr
    monkeypatch.setenv("NETTRAIN_DEBUG", "1")
    result = runner.invoke(app, ["init", str(sandbox / "mixed.csv"), "--target", "label"])
    assert result.exit_code == 1 and "Traceback" in result.stderr


@pytest.mark.slow
def test_force_replaces_only_a_nettrain_run(sandbox, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sandbox / "run", run)
    (run / "eval-test.json").write_text("{}")
    result = runner.invoke(app, ["fit", str(sandbox / "good.yaml"), "--run-dir", str(run), "--force", "--quiet",
                                 "--set", "training.epochs=2"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    assert not (run / "eval-test.json").exists()  # the old run's files are gone, the new run is whole
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2]


@pytest.mark.slow
def test_run_dir_may_be_an_empty_folder(sandbox, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["fit", str(sandbox / "good.yaml"), "--run-dir", str(empty), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (empty / "run.json").exists()


@pytest.mark.slow
def test_resume_writes_again_the_final_files_a_run_lost(sandbox, tmp_path):
    """A completed run whose metrics.json went missing is finished again, not retrained."""
    run = tmp_path / "run"
    shutil.copytree(sandbox / "run", run)
    (run / "metrics.json").unlink()
    before = (run / "metrics.csv").read_bytes()
    result = runner.invoke(app, ["fit", str(sandbox / "good.yaml"), "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "finishing" in result.stderr and "finishing" not in result.stdout  # a notice: stderr
    trained = json.loads((sandbox / "run" / "metrics.json").read_text())["test"]
    assert json.loads((run / "metrics.json").read_text())["test"] == pytest.approx(trained, rel=1e-6)  # same model
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert (run / "metrics.csv").read_bytes() == before  # no epoch trained again
