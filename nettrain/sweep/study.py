"""The Optuna study of a sweep: where it is stored, opening it, its sampler and pruner, its trials.

`Study` is the one face of an Optuna study that the rest of nettrain sees (see its docstring).
Optuna is imported inside the functions: `nettrain --help` and the other commands never load it.
"""

from __future__ import annotations

import math
import os
import random
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from nettrain.config import Config
from nettrain.config.sweep import SweepConfig
from nettrain.errors import UsageError
from nettrain.sweep import space as S
from nettrain.words import masked_uri
from nettrain.words import first_line

# Trial user attributes nettrain sets (the rest of a trial is Optuna's own record).
RUN_DIR, EPOCHS, ERROR, INTERRUPTED, SURPLUS, HOST, PID = (
    "run_dir", "epochs", "error", "interrupted", "surplus", "host", "pid")
VALUE_EPOCH, BEST_EPOCH = "value_epoch", "best_epoch"  # the epoch of the saved model (the value's), the best logged
ENDING = "ending"           # {run_dir, epochs, value_epoch, best_epoch} of a trial that ended: one write
STUDY_ATTR = "nettrain"     # the study's pinned metric, direction and search space
# A sweep process beats for its running trials every HEARTBEAT seconds; a running trial without a
# beat for GRACE seconds was lost with its process or machine: failed, it does not count.
HEARTBEAT, GRACE = 30, 180


def sweep_folder(cfg: Config, study: str) -> Path:
    """`<output.dir>/<name>/sweep/` (or `sweep-<study>/` for a study named otherwise than the config)."""
    base = Path(cfg.output.dir) / (cfg.name or "run")
    return base / ("sweep" if study == (cfg.name or "run") else f"sweep-{study}")


def default_storage(folder: Path) -> str:
    return f"sqlite:///{(folder / 'study.db').resolve()}"


shown = masked_uri  # a URL for messages and files: its password masked (one rule: words.masked_uri)


def _check_driver(url: str) -> None:
    scheme = url.split("://", 1)[0].lower()
    dialect, _, driver = scheme.partition("+")
    need = {("postgresql", "psycopg"): ("psycopg", "pip install 'nettrain[postgres]' (psycopg 3)"),
            ("postgresql", ""): ("psycopg2", "use postgresql+psycopg://... with pip install 'nettrain[postgres]'"),
            ("postgresql", "psycopg2"): ("psycopg2", "pip install psycopg2-binary, or use postgresql+psycopg://"),
            ("mysql", ""): ("MySQLdb", "pip install mysqlclient, or use mysql+pymysql:// with pip install pymysql"),
            ("mysql", "pymysql"): ("pymysql", "pip install pymysql")}
    if dialect not in ("sqlite", "postgresql", "mysql"):
        raise UsageError(f"sweep storage {shown(url)}: unsupported database {dialect!r}; use sqlite:///FILE, "
                         "postgresql+psycopg://USER@HOST/DB or mysql+pymysql://USER@HOST/DB")
    module, fix = need.get((dialect, driver), (None, ""))
    if module is not None:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            raise UsageError(f"sweep storage {shown(url)}: the database driver {module} is not installed; {fix}")


def open_storage(url: str, *, heartbeat: bool = False, mode: str = "create"):
    """Optuna's RDB storage at `url`. `mode`: "create" (a sweep process: the storage and its tables
    are made on first use; two processes that create it at the same moment race in Optuna's table
    creation and the loser retries), "existing" (a trial process: the SQLite file must be there) or
    "read" (`sweep-status`: nothing is created or written, an SQLite file is opened read-only).
    An SQLite file that is not a database, or a damaged one, is refused and left as it is. With
    `heartbeat` (a sweep process) running trials carry heartbeats (see HEARTBEAT, GRACE)."""
    import optuna
    import sqlalchemy.exc

    _check_driver(url)
    is_sqlite, path = sqlite_target(url)
    if is_sqlite and not path:
        raise UsageError(f"sweep storage {shown(url)}: {IN_MEMORY}")
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        _check_sqlite_file(url, Path(path), mode)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}  # wait for another worker's write
        if mode == "read":
            kwargs["engine_kwargs"] = {"creator": _read_only_connect(Path(path))}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    if mode == "read":
        _check_tables(url, kwargs["engine_kwargs"])
        kwargs["skip_table_creation"] = True
    if heartbeat:
        kwargs.update(heartbeat_interval=HEARTBEAT, grace_period=GRACE)
    last: Exception | None = None
    for attempt in range(6):
        try:
            with warnings.catch_warnings():  # Optuna marks the heartbeat arguments experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:  # the creation race
            last = e
            time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)
        except sqlalchemy.exc.OperationalError as e:
            if "already exists" in str(e) or "locked" in str(e):
                last = e
                time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)
                continue
            raise UsageError(f"cannot reach the sweep storage {shown(url)}: {first_line(e)[:300]}") from None
        except sqlalchemy.exc.DatabaseError as e:
            raise UsageError(f"sweep storage {shown(url)}: a damaged database: {first_line(e)[:300]}") from None
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ValueError, RuntimeError) as e:
            raise UsageError(f"sweep storage {shown(url)}: {first_line(e)[:300]}") from None
    raise UsageError(f"cannot create the sweep storage {shown(url)}: {first_line(last)[:300]}")


IN_MEMORY = ("an SQLite database without a file lives inside one process, and every trial runs in a "
             "process of its own; give a file (sqlite:///PATH/study.db) or a database server URL")
SQLITE_MAGIC = b"SQLite format 3\x00"
OPTUNA_TABLES = ("studies", "trials", "version_info", "alembic_version")


def sqlite_target(url: str) -> tuple[bool, str]:
    """(True, file) for an SQLite URL (file "" when it names none: `sqlite://`, `:memory:`), else (False, "")."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
        backend = u.get_backend_name()
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: open_storage reports it
        return False, ""
    if backend != "sqlite":
        return False, ""
    db = u.database or ""
    if str(u.query.get("uri", "")).lower() in ("true", "1"):
        if u.query.get("mode") == "memory" or ":memory:" in db:
            return True, ""
        db = db[len("file:"):] if db.startswith("file:") else db
    return True, "" if db == ":memory:" else db


def unshareable(url: str) -> bool:
    """Whether trial processes could not share the storage (an SQLite database without a file)."""
    is_sqlite, path = sqlite_target(url)
    return is_sqlite and not path


def _check_sqlite_file(url: str, path: Path, mode: str) -> None:
    """The file of an SQLite storage must be an SQLite database that passes quick_check; with mode
    create it may also be empty, or absent (then its folder is made). Nothing else is written."""
    if path.is_dir():
        raise UsageError(f"sweep storage {shown(url)}: {path} is a folder, not a database file")
    if not path.exists():
        if mode == "create":
            from nettrain.store.paths import run_dir_above

            run = run_dir_above(path.parent)
            if run is not None:  # as every command's output: a run is written only while it trains
                raise UsageError(f"sweep storage {shown(url)}: {path} is inside the run directory {run} (it holds "
                                 "run.json); a sweep never writes into a run: choose a file outside it")
            folder = path.parent
            if folder.exists() and not folder.is_dir():
                raise UsageError(f"sweep storage {shown(url)}: {folder} is not a folder")
            folder.mkdir(parents=True, exist_ok=True)
            return
        raise UsageError(f"no study database at {path}; {_near(path)}give the storage URL nettrain sweep used")
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        from nettrain.errors import describe_os_error

        raise UsageError(f"cannot read the sweep storage {path}: {describe_os_error(e)}") from None
    if not head and mode == "create":
        return
    if not head:
        raise UsageError(f"{path} is an empty file, not a study database (sweep storage {shown(url)})")
    if head != SQLITE_MAGIC:
        raise UsageError(f"{path} is not an SQLite database (sweep storage {shown(url)}); it was left as it "
                         "is: give the study.db of a sweep, or a new file")
    problem = _damage(path)
    if problem:
        raise UsageError(f"{path} is a damaged SQLite database ({problem}); it was left as it is: "
                         "restore it from a copy or give a new file")


def _read_only_connect(path: Path):
    """A connection factory for `path` in SQLite's read-only mode: no write, no file created."""
    import sqlite3
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    return lambda: sqlite3.connect(uri, uri=True, timeout=120, check_same_thread=False)


def _damage(path: Path) -> str | None:
    """SQLite's quick_check of `path` (read-only): None when it is whole, else what is wrong."""
    import sqlite3

    try:
        con = _read_only_connect(path)()
    except sqlite3.Error:
        return None  # cannot open it (permissions): Optuna's own error says so
    try:
        rows = con.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError:
        return None  # locked or busy, not damaged
    except sqlite3.DatabaseError as e:
        return first_line(e)[:300]
    finally:
        con.close()
    if rows == [("ok",)]:
        return None
    return str(rows[0][0])[:200] if rows else "no answer to quick_check"


def _check_tables(url: str, engine_kwargs: dict[str, Any]) -> None:
    """A storage opened to read holds Optuna's tables (else nothing would be there to show)."""
    import sqlalchemy
    import sqlalchemy.exc

    try:
        engine = sqlalchemy.create_engine(url, **engine_kwargs)
        try:
            names = set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except sqlalchemy.exc.OperationalError as e:
        raise UsageError(f"cannot reach the sweep storage {shown(url)}: {first_line(e)[:300]}") from None
    except sqlalchemy.exc.DatabaseError as e:
        raise UsageError(f"sweep storage {shown(url)}: a damaged database: {first_line(e)[:300]}") from None
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ValueError) as e:
        raise UsageError(f"sweep storage {shown(url)}: {first_line(e)[:300]}") from None
    missing = [t for t in OPTUNA_TABLES if t not in names]
    if missing:
        raise UsageError(f"sweep storage {shown(url)} holds no sweep study (no Optuna table {missing[0]!r}); "
                         "give the storage URL nettrain sweep used")


def _near(path: Path) -> str:
    """"did you mean X? " when correcting each missing part of `path` to its closest neighbour's name
    gives an existing file, else ""."""
    import difflib
    import itertools

    path = Path(os.path.abspath(path))
    fixed = Path(path.anchor)
    for name in path.parts[1:]:
        if not (fixed / name).exists():
            try:
                with os.scandir(fixed) as entries:
                    names = [e.name for e in itertools.islice(entries, 10_000)]
            except OSError:
                return ""
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            if not close:
                return ""
            name = close[0]
        fixed = fixed / name
    return f"did you mean {fixed}? " if fixed.is_file() else ""




def sampler(sweep: SweepConfig, seed: int):
    import optuna

    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sweep.sampler == "grid":
        return optuna.samplers.GridSampler(S.grid_space(sweep), seed=seed)
    if sweep.sampler == "cmaes":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def warmup_epochs(sweep: SweepConfig, epochs: int) -> int:
    """Epochs every trial runs before the median pruner may stop it: `warmup_epochs`, else a quarter of
    `training.epochs` (at least 1, so no trial is ever stopped at its first epoch)."""
    options = sweep.pruner_options
    given = getattr(options, "warmup_epochs", None)
    return max(1, given if given is not None else math.ceil(epochs / 4))


def min_epochs(sweep: SweepConfig, epochs: int) -> int:
    """Hyperband's first rung: `min_epochs`, else a quarter of `training.epochs` (at least 2, at most epochs)."""
    given = getattr(sweep.pruner_options, "min_epochs", None)
    return max(1, min(epochs, given if given is not None else max(2, math.ceil(epochs / 4))))


def pruner(sweep: SweepConfig, epochs: int):
    """The sweep's pruner. Steps are epochs (1-based); Optuna's MedianPruner may stop a trial at step
    `n_warmup_steps` at the earliest, so that is the first epoch after the warm-up."""
    import optuna

    name, options = sweep.pruner_name, sweep.pruner_options
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=options.startup_trials,
                                           n_warmup_steps=warmup_epochs(sweep, epochs) + 1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_epochs(sweep, epochs), max_resource=max(1, epochs),
                                              reduction_factor=options.reduction_factor)
    return optuna.pruners.NopPruner()


def judge(pruner: Any) -> str:
    """Where a trial asks `pruner` for its verdict: "here" (Optuna's PercentilePruner, the median pruner:
    its verdict rests on the trial's own reported values and the study's complete trials alone, and it
    writes nothing, so the trial process asks it itself: `Study.should_prune`), "none" (it never stops a
    trial) or "storage" (any other, hyperband: its rungs are written to the study, `Trial.should_prune`)."""
    import optuna

    if isinstance(pruner, optuna.pruners.NopPruner):
        return "none"
    if isinstance(pruner, optuna.pruners.PercentilePruner):
        return "here"
    return "storage"


def first_prune_step(sweep: SweepConfig, epochs: int) -> float:
    """The first step (epoch) at which the sweep's pruner may stop a trial (`pruner`): the median
    pruner's after its warm-up, hyperband's first rung; infinity without a pruner."""
    name = sweep.pruner_name
    if name == "median":
        return warmup_epochs(sweep, epochs) + 1
    if name == "hyperband":
        return min_epochs(sweep, epochs)
    return math.inf


class Study:
    """A sweep's Optuna study together with the storage it lives in.

    The one place that knows how Optuna keeps a study's trials: by the storage's trial ids, where
    nettrain (the sweep process, each trial process, sweep-status) names a trial by its number.
    Callers use these methods and read trials as Optuna's FrozenTrial records; `optuna` (the
    optuna.Study itself) goes only to Optuna's own functions (plots, importances).

    No line here reads a private attribute of Optuna (`Study._storage`, `Study._study_id`,
    `Trial._trial_id`): the study's id and a trial's id come from the storage's own lookups,
    `get_study_id_from_name` and `get_trial_id_from_study_id_trial_number` (methods of Optuna's
    storage interface, `optuna.storages.BaseStorage`), asked of the RDBStorage that nettrain opened
    itself (`open_storage`) rather than through the study's private `_storage` (Optuna's caching
    wrapper around that same RDBStorage, which passes heartbeats and lookups through unchanged).
    A trial another process asked for is rebuilt with Optuna's public `Trial(study, trial_id)`.
    `tests/test_sweep_study.py` fails if those private names appear in nettrain/ outside this class.
    """

    def __init__(self, study: Any, storage: Any):
        self.optuna = study       # optuna.Study
        self.storage = storage    # the RDBStorage of open_storage (the study wraps it in Optuna's cache)
        self.id: int = storage.get_study_id_from_name(study.study_name)
        self._ids: dict[int, int] = {}  # trial number -> the storage's trial id (fixed once the trial exists)

    @classmethod
    def create(cls, storage: Any, name: str, *, direction: str, sampler: Any, pruner: Any) -> "Study":
        """The study `name` in `storage`, made on first use (else the one there)."""
        import optuna

        return cls(optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True,
                                       sampler=sampler, pruner=pruner), storage)

    @classmethod
    def load(cls, storage: Any, name: str) -> "Study":
        """The existing study `name` in `storage`."""
        import optuna

        return cls(optuna.load_study(study_name=name, storage=storage), storage)

    @property
    def name(self) -> str:
        return self.optuna.study_name

    @property
    def direction(self) -> str:
        """"minimize" or "maximize"."""
        return self.optuna.direction.name.lower()

    @property
    def user_attrs(self) -> dict[str, Any]:
        return self.optuna.user_attrs

    def set_user_attr(self, key: str, value: Any) -> None:
        self.optuna.set_user_attr(key, value)

    def trials(self, states: tuple | None = None) -> list:
        """The trials (FrozenTrial records, by number; not copies: read them, never change them)."""
        return self.optuna.get_trials(deepcopy=False, states=states)

    def use_pruner(self, pruner: Any) -> None:
        self.optuna.pruner = pruner

    @property
    def pruner(self) -> Any:
        return self.optuna.pruner

    def complete(self) -> list:
        """The complete trials now (FrozenTrial records; what a median pruner compares a trial with)."""
        from optuna.trial import TrialState

        return self.trials(states=(TrialState.COMPLETE,))

    def should_prune(self, number: int, reported: dict[int, float], complete: list) -> bool:
        """The verdict of the study's pruner (one `judge` says is asked "here") on trial `number` having
        reported `reported` (step -> value) while the study's complete trials are `complete` (`complete()`):
        the pruner's own `prune`, given a view of the study that holds those trials, so nothing is read
        from the storage; for the same values and trials it is the verdict of Optuna's Trial.should_prune."""
        import optuna
        from optuna.trial import TrialState

        trial = optuna.trial.FrozenTrial(number=number, state=TrialState.RUNNING, value=None, datetime_start=None,
                                         datetime_complete=None, params={}, distributions={}, user_attrs={},
                                         system_attrs={}, intermediate_values=dict(reported),
                                         trial_id=self._ids.get(number, -1))
        return bool(self.pruner.prune(_Held(self.optuna.direction, complete), trial))

    def ask(self, distributions: dict[str, Any], sampler: Any):
        """A new running trial (an optuna Trial) with its values drawn from `distributions` by `sampler`."""
        self.optuna.sampler = sampler
        with warnings.catch_warnings():  # Optuna's heartbeats serve its optimize(); nettrain beats itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            return self.optuna.ask(distributions)

    def withdraw(self, trial) -> None:
        """Fail a trial this process just asked for that the study turned out not to need (another
        worker took the last place at the same moment): marked surplus, it is never counted."""
        from optuna.trial import TrialState

        trial.set_user_attr(SURPLUS, True)
        self.optuna.tell(trial, state=TrialState.FAIL)

    # ------------------------------------------------------------------ trials by number

    def trial_id(self, number: int) -> int:
        """The storage's id of trial `number` (the storage's lookup: Optuna has none by number elsewhere)."""
        if number not in self._ids:
            self._ids[number] = self.storage.get_trial_id_from_study_id_trial_number(self.id, number)
        return self._ids[number]

    def frozen(self, number: int):
        """Trial `number` as the storage holds it now (FrozenTrial)."""
        return self.storage.get_trial(self.trial_id(number))

    def trial(self, number: int):
        """Trial `number` as an optuna Trial (to report to and ask the pruner), in a process other than
        the one that asked for it: Optuna's public Trial(study, trial_id) constructor, since ask()
        only makes new trials."""
        import optuna

        return optuna.trial.Trial(self.optuna, self.trial_id(number))

    def beat(self, numbers: Iterable[int]) -> None:
        """A heartbeat for each running trial (by number) of this sweep process."""
        for number in numbers:
            self.storage.record_heartbeat(self.trial_id(number))  # Optuna records beats by trial id only

    def fail_lost(self) -> None:
        """Running trials of any machine whose sweep process stopped beating GRACE seconds ago: failed
        (shown as interrupted, not counted), so the study can still reach sweep.trials."""
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.optuna)

    def fail_orphans(self) -> list[int]:
        """Trials left `running` by a sweep process of this machine that no longer exists (killed):
        marked failed and interrupted, so they do not count and the study can finish. Returns their numbers."""
        from optuna.trial import TrialState

        host, done = socket.gethostname(), []
        for t in self.trials(states=(TrialState.RUNNING,)):
            pid = t.user_attrs.get(PID)
            if t.user_attrs.get(HOST) != host or not isinstance(pid, int) or _alive(pid):
                continue
            self.end(t.number, TrialState.FAIL, {INTERRUPTED: True})
            done.append(t.number)
        return done

    def end(self, number: int, state, attrs: dict[str, Any] | None = None, value: float | None = None) -> None:
        """Finish trial `number` (its user attributes first) unless it already is: a write per attribute
        (the ending's four are one: the study's storage is busy with every epoch's report), then Optuna's
        tell. A trial another process finished refuses the first write: nothing more is written."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        attrs = dict(attrs or {})
        ending = {k: attrs.pop(k) for k in (RUN_DIR, EPOCHS, VALUE_EPOCH, BEST_EPOCH) if k in attrs}
        writes = {**({ENDING: ending} if ending else {}), **attrs}
        try:
            for k, v in writes.items():
                self.storage.set_trial_user_attr(self.trial_id(number), k, v)
        except UpdateFinishedTrialError:
            return
        self.optuna.tell(number, value if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)

    def rows(self) -> list[dict[str, Any]]:
        """Every counted trial as plain data: number, state, params, value, epochs, seconds, run_dir, error."""
        return [row_of(t) for t in self.trials() if not t.user_attrs.get(SURPLUS)]

    def row(self, number: int) -> dict[str, Any]:
        """Trial `number` as a row of `rows`."""
        return row_of(self.frozen(number))


class _Held:
    """What Optuna's PercentilePruner reads of a study (its direction, its trials by state), from trials in
    memory (`Study.should_prune`)."""

    def __init__(self, direction: Any, trials: list):
        self.direction, self._trials = direction, trials

    def get_trials(self, deepcopy: bool = False, states: tuple | None = None) -> list:
        return [t for t in self._trials if states is None or t.state in states]


@dataclass
class Opened:
    study: Study
    url: str
    created: bool


def open_study(cfg: Config, url: str, name: str) -> Opened:
    """The study `name` at `url`, created on first use and pinned to the sweep's metric and space;
    a study that exists with another metric, direction or search space is refused."""
    sweep = S.sweep_of(cfg)
    storage = open_storage(url, heartbeat=True)
    pinned = S.space_record(sweep)
    try:
        existing = {s.study_name for s in storage.get_all_studies()}
    except Exception as e:  # noqa: BLE001 - an unreachable server is a usage problem, not a crash
        raise UsageError(f"cannot read the sweep storage {shown(url)}: {first_line(e)[:300]}") from None
    created = name not in existing
    study = Study.create(storage, name, direction=pinned["direction"], sampler=sampler(sweep, cfg.seed),
                         pruner=pruner(sweep, cfg.training.epochs))
    have = study.user_attrs.get(STUDY_ATTR)
    if have is None:
        if study.trials() and not created:
            raise UsageError(f"the study {name!r} in {shown(url)} was not made by nettrain sweep; "
                             "choose another --study name")
        study.set_user_attr(STUDY_ATTR, pinned)
    elif have != pinned or study.direction != pinned["direction"]:
        raise UsageError(f"the study {name!r} in {shown(url)} exists with another {_difference(have, pinned)}; "
                         "a study keeps one search: use another --study name (or sweep.storage) for this one")
    return Opened(study, url, created)


def _difference(have: dict, want: dict) -> str:
    if have.get("metric") != want["metric"]:
        return f"metric ({have.get('metric')} there, {want['metric']} here)"
    if have.get("direction") != want["direction"]:
        return f"direction ({have.get('direction')} there, {want['direction']} here)"
    return "search space (sweep.params)"


# ----------------------------------------------------------------------------- trials

def counted(trial) -> bool:
    """Whether a trial counts toward sweep.trials: every trial but those interrupted, lost or surplus."""
    from optuna.trial import TrialState

    return not (trial.state == TrialState.FAIL and (_lost(trial) or trial.user_attrs.get(SURPLUS)))


def _lost(trial) -> bool:
    """A failed trial that was interrupted, or failed without a message: nettrain gives every failure
    it sees its message, so that one was failed by the heartbeat check (its process is gone)."""
    return bool(trial.user_attrs.get(INTERRUPTED)) or trial.user_attrs.get(ERROR) is None


def owner_marks() -> dict[str, Any]:
    return {HOST: socket.gethostname(), PID: os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def row_of(t) -> dict[str, Any]:
    state = t.state.name.lower()
    if state == "fail":
        state = "interrupted" if _lost(t) else "failed"
    seconds = None
    if t.datetime_start is not None and t.datetime_complete is not None:
        seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
    ending = {**t.user_attrs, **(t.user_attrs.get(ENDING) or {})}
    return {"number": t.number, "state": state, "params": dict(t.params), "value": t.value,
            "epochs": ending.get(EPOCHS), "value_epoch": ending.get(VALUE_EPOCH),
            "best_epoch": ending.get(BEST_EPOCH), "seconds": seconds, "run_dir": ending.get(RUN_DIR),
            "error": t.user_attrs.get(ERROR)}
