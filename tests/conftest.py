"""Test set-up, and the tiny runs several modules read, trained once per test session.

A shared run is trained the first time a test asks for it and reused by every later test of the
session; under pytest-xdist the workers share it too (the first worker trains it under a file lock,
the others wait and reuse it). Shared runs are read-only: a test that writes into a run (evaluate
writes eval-*.json, retrain and resume write everything) works on `helpers.copy_run(run, tmp_path)`.
Each worker checks at the end of the session that the shared runs are byte for byte as trained.

Tests that train for more than a few seconds or start nettrain in a subprocess carry the `slow`
marker: `pytest -m "not slow"` is the quick subset, `make test` runs everything. A fixture that trains
or starts a subprocess carries `helpers.slow_fixture`, and every test that uses it is marked by rule.
"""

import contextlib
import fcntl
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CI", "1")  # plain progress lines in tests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import digest, mark_slow_by_fixture, mixed_csv, regression_csv, slow_fixture  # noqa: E402


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    """Mark slow every test that uses a fixture that trains or starts a subprocess."""
    mark_slow_by_fixture(items)


@pytest.fixture
def write_config(tmp_path):
    """Write YAML text to tmp_path/NAME and return its path."""
    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


# ------------------------------------------------------------------------------ shared runs

def _shared_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the folder above the workers' own: one per pytest run, seen by every worker
    path = base / "shared-runs"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_once(tmp_path_factory, name: str, make_data, config: str) -> Path:
    """ROOT/NAME/run: `config` (written as NAME.yaml next to the data `make_data(folder)` writes)
    trained through the CLI, once per session. The fit's stdout is kept in fit-output.txt."""
    shared = _shared_dir(tmp_path_factory)
    root = shared / name
    with _locked(shared / f"{name}.lock"):
        if not (root / "trained.json").exists():
            shutil.rmtree(root, ignore_errors=True)  # a worker that failed halfway
            root.mkdir()
            make_data(root)
            (root / f"{name}.yaml").write_text(textwrap.dedent(config).lstrip("\n"))
            from typer.testing import CliRunner

            from nettrain.cli import app

            result = CliRunner().invoke(app, ["fit", str(root / f"{name}.yaml"), "--run-dir", str(root / "run"),
                                              "--quiet"])
            assert result.exit_code == 0, result.output
            (root / "fit-output.txt").write_text(result.stdout)
            (root / "trained.json").write_text(json.dumps(digest(root)))
    return root / "run"


def _check_untouched(run: Path) -> None:
    trained = json.loads((run.parent / "trained.json").read_text())
    now = {k: v for k, v in digest(run.parent).items() if k != "trained.json"}
    changed = sorted(k for k in set(trained) | set(now) if trained.get(k) != now.get(k))
    assert not changed, f"a test wrote into the shared run {run.parent} (use helpers.copy_run): {changed}"


MIXED = """
    data: {source: mixed.csv, target: label, id: id}
    model: {layers: [{type: Dense, units: 4, activation: relu}]}
    training: {epochs: 1, batch_size: 16}
    output: {plots: false}
"""


@pytest.fixture(scope="session")
@slow_fixture
def mixed_run(tmp_path_factory) -> Path:
    """A weak 3-class model (1 epoch, 80 rows of helpers.mixed_csv; accuracy is its default metric)
    with an id column: its run directory, next to mixed.csv and mixed.yaml. Read-only."""
    run = _train_once(tmp_path_factory, "mixed", lambda d: mixed_csv(d / "mixed.csv", n=80), MIXED)
    yield run
    _check_untouched(run)


REGRESSION = """
    data: {source: reg.csv, target: y}
    training: {epochs: 30, optimizer: {name: adam, learning_rate: 0.05}}
"""


@pytest.fixture(scope="session")
@slow_fixture
def regression_run(tmp_path_factory) -> Path:
    """A regression run that has learned its linear target (30 epochs, 200 rows of
    helpers.regression_csv, plots on): its run directory, next to reg.csv. Read-only."""
    run = _train_once(tmp_path_factory, "reg", lambda d: regression_csv(d / "reg.csv"), REGRESSION)
    yield run
    _check_untouched(run)


KFOLD = """
    data: {source: mixed.csv, target: label, drop: [id], split: {folds: 3, test: 0.2}}
    model: {layers: [{type: Dense, units: 8, activation: relu}]}
    training: {epochs: 2, metrics: [accuracy]}
    output: {plots: false}
"""


@pytest.fixture(scope="session")
@slow_fixture
def kfold_run(tmp_path_factory) -> Path:
    """A 3-fold run (2 epochs per fold) on 150 rows of helpers.mixed_csv (id dropped), 30 of them held
    out for the test: its run directory, next to mixed.csv and fit-output.txt (what fit printed). Read-only."""
    run = _train_once(tmp_path_factory, "kfold", lambda d: mixed_csv(d / "mixed.csv", n=150), KFOLD)
    yield run
    _check_untouched(run)
