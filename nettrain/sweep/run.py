"""`nettrain sweep`: an Optuna study whose trials are ordinary nettrain runs.

This process asks the study for trials and keeps up to `--jobs` warm worker processes
(`python -m nettrain.sweep.trial --serve`), each running one trial at a time and trial after trial
with TensorFlow imported once; each trial tells the study how it ended, and its worker tells this
process on a results pipe. A worker that dies (a crash, a kill) costs only its trial, which is failed
with the last error line of its log, and the next trial gets a new worker. Any number of such
processes, on one machine or many, can share a study: `sweep.trials` is the total across them.
The study's storage (and the study) is created here once, before any trial process starts.

Ctrl-C (or SIGTERM) stops the running trials at their next epoch end: their runs and trials are
marked interrupted, they do not count toward `sweep.trials`, and the same command continues
the study. The sweep then exits 130. A sweep process that is killed outright takes its trials with
it the same way: each worker gets SIGTERM when its parent dies (see trial.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from nettrain.config import Config, load_config
from nettrain.errors import Interrupted, JobFailed, UsageError
from nettrain.report.metrics import BestTracker, better_way, is_finite
from nettrain.store import atomic
from nettrain.sweep import space as S
from nettrain.sweep import study as ST
from nettrain.words import masked_uri

STOP_WAIT = 120.0    # seconds a trial gets to finish its epoch after Ctrl-C before it is killed
POLL = 0.2


@dataclass
class Worker:
    """A warm trial process (`python -m nettrain.sweep.trial --serve`): TensorFlow imported once, trials
    given one JSON line each on its standard input, `NUMBER EXIT_CODE` back on the `results` pipe."""

    process: subprocess.Popen
    results: int                       # the read end of the results pipe
    lifeline: int                      # the write end of its lifeline: closed when this process dies
    log: Path                          # what the worker says outside any trial
    pending: bytes = b""
    trial: "Running | None" = None
    done: int = 0                      # trials it ran
    last: bool = False                 # it said it takes no more trials (it exits)
    ready: bool = False                # TensorFlow imported: it takes trials
    eof: bool = False                  # its results pipe is closed (it exited)

    def give(self, spec: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(spec) + "\n").encode("utf-8"))
        self.process.stdin.flush()

    def finished(self) -> list[tuple[int, int]]:
        """(trial number, exit code) of every trial it reported since the last call (never blocks)."""
        import select

        out = []
        while select.select([self.results], [], [], 0)[0]:
            chunk = os.read(self.results, 4096)
            if not chunk:
                self.eof = True
                break
            self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            if line.strip() == b"ready":
                self.ready = True
                continue
            number, rc, *last = line.split()
            out.append((int(number), int(rc)))
            self.last = self.last or bool(last)
        return out

    def close(self) -> None:
        """End of its input: an idle worker exits; then the pipes go."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        for fd in (self.results, self.lifeline):
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass
class Running:
    number: int
    process: subprocess.Popen
    run_dir: Path
    log: Path
    started: float
    worker: Worker
    rc: int | None = None               # the exit code its worker reported


@dataclass
class SweepResult:
    folder: Path
    storage: str                       # password hidden
    study: str
    metric: str
    direction: str
    trials: list[dict[str, Any]]       # counted trials, best first (see study.Study.rows)
    best: dict[str, Any] | None
    files: list[str] = field(default_factory=list)
    ran: int = 0                       # trials this process ran
    failed: list[dict[str, Any]] = field(default_factory=list)  # the rows of those that failed, in order
    gates: list[Any] = field(default_factory=list)  # --fail-under on the best trial (report.gates.Gate), checked

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "storage": self.storage, "study": self.study, "metric": self.metric,
                "direction": self.direction, "best": self.best, "trials": self.trials, "files": self.files}


@dataclass
class Plan:
    cfg: Config
    config: Path
    overrides: list[str]
    study: str
    storage: str
    folder: Path
    trials: int
    jobs: int
    timeout: float | None


def plan(config: str | Path, overrides: Iterable[str] = (), *, trials: int | None = None,
         storage: str | None = None, study: str | None = None, jobs: int = 1) -> Plan:
    """Everything checked before a trial runs: config, search space, metric, counts, storage URL."""
    overrides = list(overrides)
    cfg = load_config(config, overrides)
    sweep = S.sweep_of(cfg)
    if trials is not None and not 1 <= trials <= 100_000:
        raise UsageError(f"--trials {trials}: expected a count from 1 to 100000")
    if not 1 <= jobs <= 256:
        raise UsageError(f"--jobs {jobs}: expected a number of worker processes from 1 to 256")
    name = study if study is not None else (cfg.name or "run")
    if not name or len(name) > 200 or not name.isprintable():
        raise UsageError(f"--study {name!r}: expected a printable name of at most 200 characters")
    S.check_space(cfg, config, overrides)
    folder = ST.sweep_folder(cfg, name) if study is None or _safe(name) else ST.sweep_folder(cfg, _slug(name))
    url = storage or sweep.storage or ST.default_storage(folder)
    if ST.unshareable(url):  # every trial is a process of its own: it must reach the same study
        if storage is not None:
            raise UsageError(f"--storage {ST.shown(url)}: {ST.IN_MEMORY}")
        raise cfg.error("sweep.storage", f"{ST.shown(url)}: {ST.IN_MEMORY}")
    from nettrain.training import tracking

    tracking.preflight(cfg)  # tracking.mlflow: a store no trial could use is exit 2 now, not a failure per trial
    return Plan(cfg, Path(config).resolve(), overrides, name, url, folder, trials or sweep.trials, jobs, sweep.timeout)


def _safe(name: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "._-") for c in name) and not name.startswith(".")


def _slug(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in name).lstrip(".-")[:80] or "study"


def run_sweep(p: Plan, *, say: Callable[[str], None],
              watch: Callable[[list[tuple[int, Path, float]]], None] | None = None) -> SweepResult:
    """Run trials until the study has `p.trials` (or this worker's timeout); `say` gets one line per
    finished trial, `watch` (a live view) the running trials (number, run dir, start) as it waits."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = ST.open_study(p.cfg, p.storage, p.study).study
    sweep = p.cfg.sweep
    direction = S.direction(sweep)
    p.folder.mkdir(parents=True, exist_ok=True)
    _write_sweep_json(p, direction)
    done = sum(ST.counted(t) for t in study.trials())
    say(f"sweep {p.study}: {p.trials} trials{f' ({done} done or running)' if done else ''} in {p.folder} "
        f"(storage {ST.shown(p.storage)}, {p.jobs} process{'es' if p.jobs != 1 else ''} here)")
    for n in study.fail_orphans():
        say(f"trial {n}: left running by a sweep process that is gone; marked interrupted")
    from nettrain.training import tracking

    parent = tracking.open_sweep(p.cfg, p.folder, p.study)  # tracking.mlflow: the trials' runs nest in it
    dists = S.distributions(sweep)
    running: dict[int, Running] = {}
    workers: list[Worker] = []
    stillborn = 0                      # workers in a row that died before they were ready
    started, ended = time.monotonic(), []
    best_line = BestTracker(direction)  # the best trial so far, for the progress lines: the study's best first
    for row in study.rows():
        if row["state"] == "complete":
            best_line.offer(row["value"], row["number"])
    last_beat = time.monotonic()
    try:
        while True:
            if running and time.monotonic() - last_beat >= ST.HEARTBEAT / 3:
                study.beat(list(running))
                last_beat = time.monotonic()
            for w in list(workers):
                for number, rc in w.finished():
                    r = running.pop(number, None)
                    if r is not None:
                        r.rc, w.trial = rc, None
                        w.done += 1
                        ended.append(_settle(study, r, say, best_line, sweep.metric))
                if w.process.poll() is not None:  # exited (retired, interrupted) or crashed
                    workers.remove(w)
                    w.close()
                    stillborn = 0 if w.ready else stillborn + 1
                    if stillborn >= 3:
                        raise JobFailed(f"trial workers exit before they start (exit code {w.process.returncode})"
                                        f"{': ' + _last_line(w.log) if _last_line(w.log) else ''}; see {w.log}")
                    r = w.trial
                    if r is not None and r.number in running:
                        del running[r.number]
                        ended.append(_settle(study, r, say, best_line, sweep.metric))
            out_of_time = p.timeout is not None and time.monotonic() - started >= p.timeout
            if not out_of_time and len(running) < p.jobs:
                worker = next((w for w in workers if w.ready and w.trial is None and not w.last), None)
                if worker is None:  # a trial is asked for only when a worker is ready to run it
                    if not _needed(study, p):
                        if not running:
                            break
                    elif sum(not w.last for w in workers) < p.jobs:
                        workers.append(_spawn(p))
                else:
                    trial = _ask(study, p, dists)
                    if trial is not None:
                        running[trial.number] = _start(p, trial, direction, worker, parent)
                        study.beat([trial.number])
                        continue
                    if not running:
                        break
            elif not running:
                break
            if watch is not None:
                watch([(r.number, r.run_dir, r.started) for r in running.values()])
            _wait(workers, POLL)
    except KeyboardInterrupt:
        _stop(study, running, workers, say)
        raise Interrupted(f"sweep interrupted; {len(running)} running trial(s) marked interrupted. The study "
                          f"continues with the same command (storage {ST.shown(p.storage)})") from None
    finally:
        _retire(workers)
    failed = [row for row in ended if row["state"] == "failed"]
    if failed and len(failed) < len(ended):
        say(f"sweep {p.study}: {len(failed)} of {len(ended)} trials run here failed ({_count(ended, 'complete')} "
            f"complete, {_count(ended, 'pruned')} pruned); each failure's message is in the table")
    result = finish(p, study, direction, ran=len(ended))
    result.failed = failed
    tracking.finish_sweep(p.cfg, parent, result.best)
    return result


def _wait(workers: list[Worker], seconds: float) -> None:
    """Until a worker says something on its results pipe (a trial's end: the next trial is asked for at
    once), or `seconds`."""
    import select

    pipes = [w.results for w in workers if not w.eof]
    if pipes:
        select.select(pipes, [], [], seconds)
    else:
        time.sleep(seconds)


def _retire(workers: list[Worker]) -> None:
    """The end of the sweep here: each worker's input closed (an idle one exits at once), then waited for."""
    for w in workers:
        w.close()
    for w in workers:
        try:
            w.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()
    workers.clear()


def _count(rows: list[dict[str, Any]], state: str) -> int:
    return sum(row["state"] == state for row in rows)


def check_trials(result: SweepResult) -> None:
    """JobFailed (exit 1) when every trial this process ran failed: the first failure's message.
    Pruned trials are not failures; a sweep with some failed and some finished trials passes."""
    if result.ran and len(result.failed) == result.ran:
        first = result.failed[0]
        message = str(first.get("error") or "no message").strip().splitlines() or ["no message"]
        raise JobFailed(f"all {result.ran} trial{'s' if result.ran != 1 else ''} of the sweep failed; the first, "
                        f"trial {first['number']}: {message[0]}")


def _needed(study: ST.Study, p: Plan) -> bool:
    """Whether the study still wants trials (before a worker is started for one)."""
    return sum(ST.counted(t) for t in study.trials()) < p.trials


def _last_line(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _ask(study: ST.Study, p: Plan, dists: dict[str, Any]):
    """A new trial, or None when the study has its `trials` (counted across every worker)."""
    study.fail_lost()  # a trial whose machine or sweep process died does not hold its place
    trials = study.trials()
    if sum(ST.counted(t) for t in trials) >= p.trials:
        return None
    trial = study.ask(dists, ST.sampler(p.cfg.sweep, p.cfg.seed + len(trials)))  # seeded, apart from other workers'
    before = [t for t in study.trials() if t.number < trial.number and ST.counted(t)]
    if len(before) >= p.trials:  # another worker took the last one at the same moment
        study.withdraw(trial)
        return None
    return trial  # its owner (this process) and run directory are marked once a worker has it (_start)


def _spawn(p: Plan) -> Worker:
    """A new warm trial worker (see trial.serve): its own session (Ctrl-C reaches the sweep, which stops
    the trials), a results pipe, and a lifeline whose end it sees when this process dies."""
    logs = p.folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    read_end, lifeline = os.pipe()
    results, write_results = os.pipe()
    log = logs / "workers.log"
    try:
        with open(log, "ab") as sink:
            process = subprocess.Popen([sys.executable, "-m", "nettrain.sweep.trial", "--serve"],
                                       stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                       start_new_session=True, pass_fds=(read_end, write_results))
    except BaseException:
        for fd in (lifeline, results):
            os.close(fd)
        raise
    finally:
        os.close(read_end)
        os.close(write_results)
    worker = Worker(process, results, lifeline, log)
    try:
        worker.give({"parent": os.getpid(), "lifeline": read_end, "results": write_results, "storage": p.storage,
                     "study": p.study})
    except BrokenPipeError:  # it died at once: seen as an exit by the loop
        pass
    return worker


def _start(p: Plan, trial, direction: str, worker: Worker, mlflow_parent: str | None = None) -> Running:
    run_dir = p.folder / f"trial-{trial.number:04d}"
    logs = p.folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"trial-{trial.number:04d}.log"
    spec = {"config": str(p.config), "overrides": [*p.overrides, *S.set_args(trial.params)], "storage": p.storage,
            "study": p.study, "number": trial.number, "run_dir": str(run_dir), "metric": p.cfg.sweep.metric,
            "direction": direction, "log": str(log), **({"mlflow_parent": mlflow_parent} if mlflow_parent else {})}
    log.write_bytes(b"")
    running = Running(trial.number, worker.process, run_dir, log, time.monotonic(), worker)
    worker.trial = running
    try:
        worker.give(spec)
    except BrokenPipeError:  # the worker died: settled as a crash with its log (_settle)
        pass
    # while the worker starts the trial (the study's clock runs from the ask): its run directory in the
    # study, and the record on disk, with every password masked (the worker read the real spec on its input)
    from optuna.exceptions import UpdateFinishedTrialError

    try:  # the owner marks: fail_orphans of a later sweep process fails it when this one is gone
        for k, v in {**ST.owner_marks(), ST.RUN_DIR: str(run_dir)}.items():
            trial.set_user_attr(k, v)
    except UpdateFinishedTrialError:  # it failed at once: the worker told the study, with its run directory
        pass
    atomic.write_json(logs / f"trial-{trial.number:04d}.json", {**spec, "storage": ST.shown(p.storage),
                                                                "overrides": [masked_uri(o) for o in spec["overrides"]]})
    return running


def _settle(study: ST.Study, r: Running, say: Callable[[str], None], best: BestTracker, metric: str) -> dict[str, Any]:
    """After a trial process ended: make sure the study knows (a crash that could not tell it is a
    failure with the log's last error line), then one progress line. Returns the trial's row."""
    from optuna.trial import TrialState

    row = study.row(r.number)
    if row["state"] == "running":  # the process ended without telling the study
        code = r.rc if r.rc is not None else r.process.returncode
        message = _last_error(r.log) or f"the trial process exited with code {code}; see {r.log}"
        study.end(r.number, TrialState.FAIL, {ST.ERROR: message})
        row = study.row(r.number)
    best.offer(row["value"] if row["state"] == "complete" else None, r.number)
    seconds = time.monotonic() - r.started
    what = {"complete": f"{metric} {_fmt(row['value'])}", "pruned": f"pruned after epoch {row['epochs']}",
            "failed": f"failed: {row['error']}"}.get(row["state"], row["state"])
    best_text = f"best {_fmt(best.best)} (trial {best.best_at})" if best.best is not None else "no result yet"
    say(f"trial {r.number}: {what}; {best_text}; {seconds:.1f} s; {_params(row['params'])}")
    return row


def _fmt(v: Any) -> str:
    from nettrain.report.tables import format_value

    return format_value(v)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _last_error(log: Path) -> str | None:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):][:1000]
    return None


def _stop(study: ST.Study, running: dict[int, Running], workers: list[Worker], say: Callable[[str], None]) -> None:
    """Each worker gets one SIGINT (a running trial ends at its epoch's end, run interrupted; an idle
    worker exits); then the running trials are marked."""
    from optuna.trial import TrialState

    for w in workers:
        if w.process.poll() is None:
            try:
                w.process.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_WAIT
    for w in workers:
        try:
            w.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):  # too long, or a second Ctrl-C: stop waiting
            w.process.kill()
            w.process.wait()
    for r in running.values():
        study.end(r.number, TrialState.FAIL, {ST.INTERRUPTED: True, ST.ERROR: "interrupted"})
        say(f"trial {r.number}: interrupted")


def _write_sweep_json(p: Plan, direction: str) -> None:
    atomic.write_json(p.folder / "sweep.json", {"storage": ST.shown(p.storage), "study": p.study,
                                                 "config": str(p.config), "metric": p.cfg.sweep.metric,
                                                 "direction": direction})


# ----------------------------------------------------------------------------- the end

def finish(p: Plan, study: ST.Study, direction: str, *, ran: int = 0) -> SweepResult:
    """The trial table (best first), best.yaml and the plots in the sweep folder."""
    rows = sort_rows(study.rows(), direction)
    best = rows[0] if rows and rows[0]["state"] == "complete" else None
    files = []
    if best is not None and best.get("run_dir"):
        config = Path(best["run_dir"]) / "config.yaml"
        if config.is_file():
            atomic.write_text(p.folder / "best.yaml", config.read_text(encoding="utf-8"))
            files.append(str(p.folder / "best.yaml"))
    atomic.write_json(p.folder / "trials.json", rows)
    files.append(str(p.folder / "trials.json"))
    if p.cfg.output.plots:
        from nettrain.report.sweep import sweep_plots

        files += [str(f) for f in sweep_plots(study.optuna, p.folder / "plots", p.cfg.sweep.metric)]
    return SweepResult(p.folder, ST.shown(p.storage), p.study, p.cfg.sweep.metric, direction, rows, best, files, ran)


def sort_rows(rows: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """Completed trials by value (best first, as `BestTracker` ranks them: of equal values the first
    trial; a value that is not finite last), then pruned, running, failed, interrupted by number."""
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 2, "failed": 3, "interrupted": 4}
    sign = -1.0 if better_way(direction) == "max" else 1.0

    def key(row):
        ranked = row["state"] == "complete" and is_finite(row["value"])
        return (order.get(row["state"], 5), not ranked, sign * float(row["value"]) if ranked else 0.0, row["number"])

    return sorted(rows, key=key)


def status(folder: str | Path | None = None, *, storage: str | None = None, study: str | None = None) -> SweepResult:
    """`nettrain sweep-status`: the table of a sweep folder's study (or of `--storage`/`--study`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record: dict[str, Any] = {}
    if folder is not None:
        path = Path(folder)
        if not (path / "sweep.json").is_file():
            raise UsageError(f"{path} is not a sweep folder (no sweep.json); give the folder nettrain sweep "
                             "printed, or --storage URL --study NAME")
        try:
            record = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {path / 'sweep.json'}: {e}") from None
    url = storage or record.get("storage")
    if not url:
        raise UsageError("give a sweep folder or --storage URL")
    if "***" in url and storage is None:
        raise UsageError(f"{folder}/sweep.json keeps the storage without its password; give --storage URL")
    name = study or record.get("study")
    if ST.unshareable(url):
        raise UsageError(f"--storage {ST.shown(url)}: an SQLite database without a file holds no study; give the "
                         "storage URL nettrain sweep used (sqlite:///PATH/study.db or a server URL)")
    st = ST.open_storage(url, mode="read")  # writes nothing, creates nothing
    names = [s.study_name for s in st.get_all_studies()]
    if name is None:
        if len(names) != 1:
            raise UsageError(f"the storage {ST.shown(url)} holds {len(names)} studies; name one with --study "
                             f"({', '.join(names) or 'none'})")
        name = names[0]
    if name not in names:
        raise UsageError(f"no study {name!r} in {ST.shown(url)}; it holds: {', '.join(names) or 'none'}")
    s = ST.Study.load(st, name)
    pinned = s.user_attrs.get(ST.STUDY_ATTR) or {}
    direction = s.direction
    rows = sort_rows(s.rows(), direction)
    best = rows[0] if rows and rows[0]["state"] == "complete" else None
    return SweepResult(Path(folder) if folder else Path("."), ST.shown(url), name, pinned.get("metric", "value"),
                       direction, rows, best)
