"""Sweep trials: `python -m nettrain.sweep.trial --serve` (a warm worker, see `serve`: trial after trial,
each spec a line on standard input, as the sweep process gives it, so that no password is in a file),
or one trial in a process of its own: `python -m nettrain.sweep.trial SPEC.json` (or `-`: on stdin).

The sweep process asks Optuna for a trial and gives it to an idle worker. It loads the config with the trial's values applied
through `--set`, trains one ordinary run into the trial's folder with a pruning callback, and
tells the study how the trial ended: complete with its value, pruned (run.json status `pruned`),
or failed with the message a user would have seen. Exit codes are the command line's.

A trial never outlives its sweep process: when that process dies (even by SIGKILL) the trial gets
SIGTERM, its normal Ctrl-C path, so it stops at its epoch's end with its run and its trial both
`interrupted`. Linux: the kernel signals the death (prctl PR_SET_PDEATHSIG, SIGUSR1, turned into
one SIGTERM); elsewhere a thread waits for the end of a pipe whose other end only the sweep
process holds to close.

What a trial reports to its study, each epoch (the pruning callback) and at its end (its value), is
in metric.py.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.errors import EXIT_FAILED, EXIT_INTERRUPTED, Interrupted, NettrainError
from nettrain.sweep.metric import delivered, pruning_callback  # tests also reach them as trial.<name>


_OPENED: dict[tuple[str, str], Any] = {}  # a warm worker's study, opened once (its storage engine kept)


def _study(url: str, name: str):
    """The study `name` at `url`: opened once per process (a warm worker's later trials reuse it)."""
    from nettrain.sweep import study as ST

    key = (url, name)
    if key not in _OPENED:
        _OPENED[key] = ST.Study.load(ST.open_storage(url, mode="existing"), name)
    return _OPENED[key]


def run_trial(spec: dict[str, Any]) -> int:
    import optuna

    from nettrain.config import load_config
    from nettrain.sweep import study as ST

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(spec["storage"], spec["study"])
    number = int(spec["number"])
    state = optuna.trial.TrialState

    def fail(message: str, **attrs: Any) -> None:
        study.end(number, state.FAIL, {ST.ERROR: message[:1000], ST.RUN_DIR: spec["run_dir"], **attrs})

    later: list = []  # what each session left for after the result (fit.after_result): plots, MLflow's end
    try:
        if orphaned(spec):  # the sweep process died before this one could watch it
            raise KeyboardInterrupt
        cfg = load_config(spec["config"], spec["overrides"])
        study.use_pruner(ST.pruner(cfg.sweep, cfg.training.epochs))
        pruning = pruning_callback(study, number, spec["metric"], ST.first_prune_step(cfg.sweep, cfg.training.epochs))
        from nettrain.training import fit as F
        from nettrain.training import tracking

        with tracking.nested_in(spec.get("mlflow_parent"), run_name=f"trial-{number:04d}",
                                tags={TRIAL_TAG: str(number), STUDY_TAG: spec["study"]}), F.after_result() as later:
            if cfg.data.split.folds > 1:
                ending = kfold_trial(cfg, Path(spec["run_dir"]), pruning, spec["metric"], spec["direction"])
            else:
                ending = one_run_trial(cfg, Path(spec["run_dir"]), pruning, spec["metric"], spec["direction"])
    except Interrupted as e:
        fail(e.message, **{ST.INTERRUPTED: True})
        sys.stderr.write(f"error: {e.message}\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        fail("interrupted", **{ST.INTERRUPTED: True})
        return EXIT_INTERRUPTED
    except NettrainError as e:
        fail(e.message)
        sys.stderr.write(f"error: {e.message}\n")
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - a trial's crash is its failure, not the sweep's
        traceback.print_exc()
        fail(f"internal error: {type(e).__name__}: {str(e).strip()[:300]}")
        return EXIT_FAILED
    attrs = {ST.RUN_DIR: spec["run_dir"], ST.EPOCHS: ending.epochs, ST.VALUE_EPOCH: ending.value_epoch,
             ST.BEST_EPOCH: ending.best_epoch}
    if ending.pruned:
        study.end(number, state.PRUNED, attrs)
        after_result(spec, cfg, later, "pruned", None, study)
        return 0
    if ending.value is None:
        fail(f"the run logged no finite {spec['metric']}", **attrs)
        after_result(spec, cfg, later, "failed", None, study)
        return EXIT_FAILED
    study.end(number, state.COMPLETE, attrs, value=ending.value)
    after_result(spec, cfg, later, "complete", ending.value, study)
    return 0


TRIAL_TAG = "nettrain.trial"   # MLflow tags of a trial's run (nested in the sweep's run)
STUDY_TAG = "nettrain.study"


def after_result(spec: dict[str, Any], cfg, later: list, state: str, value: float | None, study) -> None:
    """Once the study knows how the trial ended (its seconds in the study end there): the trial's plots
    and its MLflow run's end (fit.after_result), then the trial's value and state on its MLflow run and
    the sweep's. A failure here is a warning in the trial's log: the trial's result stands."""
    import warnings

    from nettrain.training import tracking
    from nettrain.words import reason

    for job in later:
        try:
            job()
        except Exception as e:  # noqa: BLE001 - the result is told; the run has everything but its plots
            warnings.warn(f"trial {spec['number']}: drawing its plots failed: {reason(e)}")
    if spec.get("mlflow_parent"):
        tracking.trial_done(cfg, Path(spec["run_dir"]), spec["mlflow_parent"], int(spec["number"]), state, value,
                            study.frozen(int(spec["number"])).params)


_DATA: dict[str, Any] = {}  # a warm worker's rows in memory: {data key: (dataset, its notes)}, the last one kept


def data_key(cfg) -> str:
    """What the prepared rows depend on: the config file (relative paths), data.*, preprocessing.*, the
    seed (the split) and what decides the task (task, training.loss). Trials that differ only in other
    keys (the model, the optimizer, ...) share their rows."""
    d = cfg.to_dict()
    return json.dumps({"file": cfg.source.file, "data": d.get("data"), "preprocessing": d.get("preprocessing"),
                       "seed": d.get("seed"), "task": d.get("task"), "loss": (d.get("training") or {}).get("loss")},
                      sort_keys=True, default=str)


def kept_dataset(cfg):
    """The rows in memory for `cfg`'s data keys: loaded here once per warm worker (the next trial with the
    same data keys reuses them, its own list of notes) or None for a stream (read by the session)."""
    import dataclasses

    from nettrain.data import load_dataset
    from nettrain.data.stream import choose

    key = data_key(cfg)
    if key not in _DATA:
        if choose(cfg).stream:
            return None
        dataset = load_dataset(cfg)
        _DATA.clear()
        _DATA[key] = (dataset, list(dataset.notes))
    dataset, notes = _DATA[key]
    return dataclasses.replace(dataset, notes=list(notes))


@dataclass
class Ending:
    """How a trial's training ended: pruned, or its value (the saved model's) and epochs."""

    pruned: bool
    value: float | None
    epochs: int | None
    value_epoch: int | None = None
    best_epoch: int | None = None


def one_run_trial(cfg, run_dir: Path, pruning, metric: str, direction: str) -> Ending:
    """One ordinary run into `run_dir` with the pruning callback; a pruned run is marked `pruned`."""
    from nettrain.lifecycle import orchestrate
    from nettrain.store import rundir

    from nettrain.training import fit as F

    result = orchestrate.fresh_run(cfg, run_dir=run_dir, quiet=True, extra_callbacks=[pruning],
                                   dataset=kept_dataset(cfg))
    F.later(lambda: _log_result(result))  # its table in its log once the study knows the result
    if pruning.pruned_at is not None:
        rundir.RunRecord.load(result.run_dir).update(status="pruned", pruned_epoch=pruning.pruned_at)
        return Ending(True, None, result.epochs_done)
    value, epoch, best_epoch = delivered(result, metric, direction)
    return Ending(False, value, result.epochs_done, epoch, best_epoch)


def kfold_trial(cfg, run_dir: Path, pruning, metric: str, direction: str) -> Ending:
    """A k-fold run into `run_dir`: every fold in turn (the pruner sees the running mean across folds);
    the trial's value is the mean of the folds' values (each its saved model's). A trial that is pruned
    keeps the folds it trained; its parent run and the fold it stopped in are marked `pruned`. The
    config's refit (data.split.refit) is left to `nettrain fit best.yaml`: a trial is judged by its folds."""
    from nettrain.lifecycle import orchestrate
    from nettrain.store import guard, rundir
    from nettrain.training import fit as F
    from nettrain.training import kfold

    rundir.check_run_dir(run_dir, force=False)
    prep = F.prepare(cfg, dataset=kept_dataset(cfg))
    kfold.check_folds(prep)
    monitors = F.check_monitors(cfg, prep.dataset.schema, True)
    epochs = cfg.training.epochs
    values: list[float] = []
    per_fold: list[dict] = []
    with rundir.new_run_dir(cfg.output.dir, cfg.name or "run", run_dir, force=False) as out, guard.deferred():
        record = kfold.start_kfold_dir(prep, out)
        with kfold.folds_running(out, record):
            for i, fold_prep in kfold.folds(prep):
                model, fold_record = kfold.start_fold(fold_prep, out, i, monitors)
                result = orchestrate.train_session(fold_prep, model, kfold.fold_dir(out, i), fold_record, monitors,
                                                   last_epoch=epochs, quiet=True, json_output=True,
                                                   extra_callbacks=[pruning])
                per_fold.append(result.metrics)
                record.update(folds_done=i)
                if pruning.pruned_at is not None:
                    fold_record.update(status="pruned", pruned_epoch=pruning.pruned_at)
                    break
                value = delivered(result, metric, direction)[0]
                if value is None:
                    return Ending(False, None, i)
                values.append(value)
                pruning.next_fold(value, epochs)
            if pruning.pruned_at is None:
                metrics = kfold.finish(prep, out, record, per_fold, None)
        if pruning.pruned_at is not None:
            record.update(status="pruned", ended=rundir.now(), pruned_epoch=pruning.pruned_at,
                          pruned_fold=len(per_fold))
            return Ending(True, None, epochs * (len(per_fold) - 1) + pruning.pruned_at)
    from nettrain.report.tables import make_console, print_metrics

    print_metrics(metrics.get("mean") or {}, make_console(), title="Mean of the folds")
    sys.stdout.write(f"run directory: {out}\n")
    sys.stdout.flush()
    return Ending(False, sum(values) / len(values), epochs * len(values))


def _log_result(result) -> None:
    """The trial's final table and run directory at the end of its log (its stdout), as `fit` shows them."""
    from nettrain.report.tables import make_console, print_metrics

    print_metrics(result.metrics, make_console())
    sys.stdout.write(f"run directory: {result.run_dir}\n")
    sys.stdout.flush()


PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_DIED = getattr(signal, "SIGUSR1", None)  # the kernel's word that the sweep process died


def die_with_parent(spec: dict[str, Any]) -> str | None:
    """SIGTERM to this process, once, when the sweep process (`spec["parent"]`) dies. Returns how it
    is watched: "prctl" (Linux), "pipe" (the end of `spec["lifeline"]`), or None (not a sweep's trial)."""
    if not isinstance(spec.get("parent"), int):
        return None
    if sys.platform.startswith("linux") and PARENT_DIED is not None:
        try:
            import ctypes

            signal.signal(PARENT_DIED, _parent_died)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(PARENT_DIED), 0, 0, 0) == 0:
                return "prctl"
        except (OSError, AttributeError, ValueError):
            pass
    threading.Thread(target=_wait_for_parent, args=(spec["parent"], spec.get("lifeline")), daemon=True,
                     name="nettrain-sweep-lifeline").start()
    return "pipe"


def _parent_died(signum, frame) -> None:
    """The parent-death signal comes once per thread of the dead sweep process (Linux re-parents the
    trial to each in turn): the first becomes one SIGTERM, the normal stop; the others are ignored
    (a second SIGTERM would stop the trial at once, before it tells the study)."""
    signal.signal(signum, signal.SIG_IGN)
    os.kill(os.getpid(), signal.SIGTERM)


def _wait_for_parent(parent: int, fd: int | None) -> None:
    """Block until the sweep process is gone (its pipe's end, else its pid polled), then SIGTERM."""
    if not (isinstance(fd, int) and _until_closed(fd)):
        while os.getppid() == parent:
            time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _until_closed(fd: int) -> bool:
    """Read the pipe `fd` until its other end is closed: True then, False when it cannot be read."""
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        return False
    return True


def orphaned(spec: dict[str, Any]) -> bool:
    """Whether the sweep process that started this trial is gone (this one was adopted)."""
    return isinstance(spec.get("parent"), int) and os.getppid() != spec["parent"]


MEMORY_MB = 4096  # a warm worker whose resident memory is above this after a trial retires (NETTRAIN_SWEEP_WORKER_MB)


def serve(stream=None) -> int:
    """A warm trial worker: `python -m nettrain.sweep.trial --serve`. TensorFlow is imported once; the
    trials come one JSON line each on standard input, after a first line that says how to reach the
    sweep process ({"parent", "lifeline", "results"}). Each trial runs as `run_trial` would in a
    process of its own (a fresh Keras session, the config's seeds set again by its preparation), its
    output (file descriptors 1 and 2) in the trial's log, then `NUMBER EXIT_CODE` goes on the results
    pipe. The worker ends at the end of its input, after an interrupted trial, when its sweep process
    is gone, or when its memory passed MEMORY_MB (the sweep process starts another)."""
    stream = stream or sys.stdin
    header = json.loads(stream.readline() or "{}")
    die_with_parent(header)
    results = int(header["results"])
    import keras  # once, before the first trial: what a warm worker saves

    warm_up(header)
    os.write(results, b"ready\n")  # the sweep process asks the study for a trial only now

    bound = float(os.environ.get("NETTRAIN_SWEEP_WORKER_MB") or MEMORY_MB)
    done = 0
    while True:
        line = stream.readline()
        if not line.strip():
            return 0
        spec = {**json.loads(line), "parent": header.get("parent")}
        os.environ["NETTRAIN_SWEEP_TRIAL"] = str(spec["number"])
        done += 1
        rc = _logged(spec, Path(spec["log"]), f"trial {spec['number']} in worker {os.getpid()} (its trial {done})\n")
        keras.backend.clear_session()  # a fresh session for the next trial, before this one's result is read
        last = rc == EXIT_INTERRUPTED or orphaned(spec) or resident_mb() > bound
        try:  # "last": this worker takes no more trials (the sweep process starts another when it needs one)
            os.write(results, f"{spec['number']} {rc}{' last' if last else ''}\n".encode())
        except OSError:  # the sweep process is gone
            return rc
        if last:
            return rc if rc == EXIT_INTERRUPTED else 0


def warm_up(header: dict[str, Any]) -> None:
    """Once per worker, before its first trial: the modules every trial uses imported and the study the
    header names (`storage`, `study`) opened (a failure to open it is left to the first trial, which tells
    it as before); then Python's collector is told to leave every object made so far alone (gc.freeze):
    TensorFlow's and Keras's hundreds of thousands of objects live as long as the worker, and a full
    collection (Keras's clear_session between trials, or Python's own in a trial) walked them all, about
    0.5 s each time on 2 cores. Only the trials' own objects are collected, as before."""
    import gc

    import optuna

    from nettrain.lifecycle import orchestrate  # noqa: F401 - imported here once, not in the first trial
    from nettrain.training import fit, tracking  # noqa: F401

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if header.get("storage") and header.get("study"):
        try:
            _study(header["storage"], header["study"])
        except Exception:  # noqa: BLE001 - the first trial meets it again and tells it as before
            pass
    gc.collect()
    gc.freeze()


def _logged(spec: dict[str, Any], log: Path, first: str) -> int:
    """run_trial(spec) with standard output and error (the file descriptors: TensorFlow's too) in `log`,
    after the line `first`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, first.encode())
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        try:
            return run_trial(spec)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def resident_mb() -> float:
    """This process's resident memory now, in MB (0 where /proc cannot tell)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def main(argv: list[str] | None = None) -> int:
    from nettrain.store import guard

    guard.install()
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--serve":
        try:
            return serve()
        except KeyboardInterrupt:  # between trials: nothing is running
            return EXIT_INTERRUPTED
    spec = json.loads(sys.stdin.read() if args[0] == "-" else Path(args[0]).read_text(encoding="utf-8"))
    try:
        die_with_parent(spec)
        return run_trial(spec)
    except KeyboardInterrupt:  # the sweep process died while this one was starting: no run yet
        return EXIT_INTERRUPTED
    except NettrainError as e:  # the study cannot be opened: the sweep process shows this line
        sys.stderr.write(f"error: {e.message}\n")
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
