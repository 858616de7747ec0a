"""nettrain.sweep.study.Study: the one face of an Optuna study, and the only place in nettrain/ that
may touch Optuna's private attributes. Real SQLite studies, no trial runs (tests/test_sweep.py runs them)."""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nettrain.config import load_config
from nettrain.sweep import space as S
from nettrain.sweep import study as ST

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = re.compile(r"\._(storage|study_id|trial_id)\b")
HOME = ("sweep/study.py", "Study")  # the file and the class where Optuna's private attributes may appear

CONFIG = """
data: {source: "sklearn:iris", target: target}
model:
  layers:
    - {type: Dense, units: 8, activation: relu}
training: {epochs: 2}
sweep:
  trials: 5
  params:
    training.batch_size: {choice: [16, 32]}
"""


def private_uses(package: Path, home: tuple[str, str] = HOME) -> list[str]:
    """"file:line: text" for every `._storage`, `._study_id` or `._trial_id` under `package` outside
    the class `home` names. AssertionError when that class is not there."""
    file, cls = home
    tree = ast.parse((package / file).read_text(encoding="utf-8"))
    spans = [(n.lineno, n.end_lineno) for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    assert spans, f"no class {cls} in {package / file}"
    allowed = range(spans[0][0], spans[0][1] + 1)
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if PRIVATE.search(line) and not (rel == file and number in allowed):
                found.append(f"{rel}:{number}: {line.strip()}")
    return found


def test_only_the_study_class_touches_optunas_private_attributes():
    found = private_uses(ROOT / "nettrain")
    assert not found, "Optuna's private attributes outside sweep.study.Study:\n" + "\n".join(found)


def test_the_private_attribute_check_finds_a_use_outside_the_class(tmp_path):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "study.py").write_text(
        "class Study:\n    def id(self):\n        return self.optuna._study_id\n\n\n"
        "def beat(study, trial):\n    study._storage.record_heartbeat(trial._trial_id)\n")
    (tmp_path / "report.py").write_text("x = 1\nkey = study._storage\n")
    assert private_uses(tmp_path) == ["report.py:2: key = study._storage",
                                      "sweep/study.py:7: study._storage.record_heartbeat(trial._trial_id)"]
    (tmp_path / "sweep" / "study.py").write_text("class Other:\n    pass\n")
    with pytest.raises(AssertionError):
        private_uses(tmp_path)


# ----------------------------------------------------------------------------- the class

@pytest.fixture
def opened(write_config, tmp_path):
    """(config, the Study in tmp_path/study.db as the sweep process opens it, its storage URL)."""
    cfg = load_config(str(write_config(CONFIG)))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    return cfg, ST.open_study(cfg, url, "s").study, url


def _ask(cfg, study, seed=0):
    return study.ask(S.distributions(cfg.sweep), ST.sampler(cfg.sweep, seed))


def test_a_trial_process_reaches_its_trial_by_number(opened):
    """What the sweep process asks for, the trial process (a study loaded afresh) reports to and ends."""
    cfg, study, url = opened
    asked = _ask(cfg, study)
    assert study.direction == "minimize" and study.name == "s"
    other = ST.Study.load(ST.open_storage(url, mode="existing"), "s")
    assert other.trial_id(asked.number) == study.trial_id(asked.number)
    trial = other.trial(asked.number)
    trial.report(0.5, step=1)
    assert not trial.should_prune()
    other.end(asked.number, _complete(), {ST.EPOCHS: 1}, value=0.25)
    row = study.row(asked.number)
    assert (row["state"], row["value"], row["epochs"], row["params"]) == ("complete", 0.25, 1, asked.params)
    assert study.frozen(asked.number).intermediate_values == {1: 0.5}
    other.end(asked.number, _fail(), {ST.ERROR: "too late"})  # an ended trial stays as it ended
    assert study.row(asked.number)["state"] == "complete" and study.row(asked.number)["error"] is None
    assert [r["number"] for r in study.rows()] == [asked.number]


def test_a_withdrawn_trial_is_not_counted_nor_listed(opened):
    cfg, study, _ = opened
    kept, extra = _ask(cfg, study, 0), _ask(cfg, study, 1)
    study.withdraw(extra)
    assert [ST.counted(t) for t in study.trials()] == [True, False]
    assert [r["number"] for r in study.rows()] == [kept.number]
    assert study.frozen(extra.number).user_attrs[ST.SURPLUS] is True


def test_trials_left_running_by_a_dead_sweep_process_here_are_interrupted(opened):
    cfg, study, _ = opened
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine, orphan, elsewhere = _ask(cfg, study, 0), _ask(cfg, study, 1), _ask(cfg, study, 2)
    for trial, host, pid in ((mine, socket.gethostname(), os.getpid()), (orphan, socket.gethostname(), dead.pid),
                             (elsewhere, "another-machine", dead.pid)):
        trial.set_user_attr(ST.HOST, host)
        trial.set_user_attr(ST.PID, pid)
    assert study.fail_orphans() == [orphan.number]
    states = {r["number"]: r["state"] for r in study.rows()}
    assert states == {mine.number: "running", orphan.number: "interrupted", elsewhere.number: "running"}
    assert study.frozen(orphan.number).user_attrs[ST.INTERRUPTED] is True


def test_the_study_is_pinned_to_its_search(opened):
    cfg, study, url = opened
    assert study.user_attrs[ST.STUDY_ATTR] == S.space_record(cfg.sweep)
    again = ST.open_study(cfg, url, "s")
    assert not again.created and again.study.id == study.id


def _fail():
    from optuna.trial import TrialState

    return TrialState.FAIL


def _complete():
    from optuna.trial import TrialState

    return TrialState.COMPLETE
