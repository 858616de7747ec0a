"""One sweep trial in its own process: `python -m nettrain.sweep.trial SPEC.json` (or `-`: the spec on
standard input, as the sweep process gives it, so that no password is in a file).

The sweep process asks Optuna for a trial and starts this one per trial (so TensorFlow's memory
goes back to the system when the trial ends). It loads the config with the trial's values applied
through `--set`, trains one ordinary run into the trial's folder with a pruning callback, and
tells the study how the trial ended: complete with its value, pruned (run.json status `pruned`),
or failed with the message a user would have seen. Exit codes are the command line's.

A trial never outlives its sweep process: when that process dies (even by SIGKILL) the trial gets
SIGTERM, its normal Ctrl-C path, so it stops at its epoch's end with its run and its trial both
`interrupted`. Linux: the kernel signals the death (prctl PR_SET_PDEATHSIG, SIGUSR1, turned into
one SIGTERM); elsewhere a thread waits for the end of a pipe whose other end only the sweep
process holds to close.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from nettrain.errors import EXIT_FAILED, EXIT_INTERRUPTED, Interrupted, NettrainError


def pruning_callback(trial, metric: str):
    """A Keras callback: report `metric` after every epoch; stop training when the pruner says so.

    Hand-written rather than optuna_integration's (the same few lines) so that the sweep process
    needs no TensorFlow; training stops at the epoch's end, so the run is whole up to it."""
    import keras

    class Pruning(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values: list[float] = []
            self.pruned_at: int | None = None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(metric)
            if value is None:
                return
            value = float(value)
            self.values.append(value)
            if not math.isfinite(value):
                return
            trial.report(value, step=epoch + 1)
            if trial.should_prune():
                self.pruned_at = epoch + 1
                self.model.stop_training = True

    return Pruning()


def best_value(values: list[float], direction: str) -> float | None:
    """The trial's value: the best of its epochs' values by the one monitor rule (None without a finite one)."""
    from nettrain.report.metrics import best_of

    return best_of(enumerate(values, 1), direction).best


def run_trial(spec: dict[str, Any]) -> int:
    import optuna

    from nettrain.config import load_config
    from nettrain.sweep import study as ST

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = ST.Study.load(ST.open_storage(spec["storage"], mode="existing"), spec["study"])
    number = int(spec["number"])
    state = optuna.trial.TrialState

    def fail(message: str, **attrs: Any) -> None:
        study.end(number, state.FAIL, {ST.ERROR: message[:1000], **attrs})

    try:
        if orphaned(spec):  # the sweep process died before this one could watch it
            raise KeyboardInterrupt
        cfg = load_config(spec["config"], spec["overrides"])
        study.use_pruner(ST.pruner(cfg.sweep, cfg.training.epochs))
        trial = study.trial(number)
        from nettrain.lifecycle import orchestrate

        pruning = pruning_callback(trial, spec["metric"])
        result = orchestrate.fresh_run(cfg, run_dir=Path(spec["run_dir"]), quiet=True,
                                       extra_callbacks=[pruning])
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
    _log_result(result)
    attrs = {ST.EPOCHS: result.epochs_done}
    if pruning.pruned_at is not None:
        from nettrain.store import rundir

        rundir.RunRecord.load(result.run_dir).update(status="pruned", pruned_epoch=pruning.pruned_at)
        study.end(number, state.PRUNED, attrs)
        return 0
    value = best_value(pruning.values, spec["direction"])
    if value is None:
        fail(f"the run logged no finite {spec['metric']}", **attrs)
        return EXIT_FAILED
    study.end(number, state.COMPLETE, attrs, value=value)
    return 0


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


def main(argv: list[str] | None = None) -> int:
    from nettrain.store import guard

    guard.install()
    args = sys.argv[1:] if argv is None else argv
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
