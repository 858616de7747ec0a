"""Run the nettrain CLI in a subprocess with a fault injected at the model-file write (tests only).

    python tests/inject.py FAULT -- fit config.yaml --run-dir RUN ...

FAULT (environment-free, so the product has no test hooks):
- `none`
- `slow:WHICH:SECONDS`: the write of WHICH (`last` for the checkpoint of epoch 2, `model` for the
  final model.h5) takes SECONDS longer; a line `writing WHICH` goes to stderr when it starts.
- `oserror:WHICH:ERRNO`: the write of WHICH (`last` at epoch 3, `model`) writes part of the file and
  fails with that errno (28 ENOSPC, 30 EROFS), as a full disk or a read-only folder does.
- `kill:STEP:EPOCH`: the process kills itself (SIGKILL) right after STEP of the end of epoch EPOCH:
  `row` (its metrics.csv row appended) or `checkpoint` (its checkpoint files renamed into place).
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _which(path: Path, meta: dict | None) -> str | None:
    if ".model.h5." in path.name:
        return "model"
    if ".last.h5." in path.name and meta is not None:
        return f"last@{meta.get('epoch')}"
    return None


def install(fault: str) -> None:
    if fault == "none":
        return
    from nettrain.store import h5

    kind, which, value = fault.split(":")
    if kind == "kill":
        return _kill_after(which, int(value))
    target = {"slow": {"last": "last@2", "model": "model"},
              "oserror": {"last": "last@3", "model": "model"}}[kind][which]
    original = h5.write_model

    def write_model(model, path, meta=None):
        if _which(Path(path), meta) != target:
            return original(model, path, meta)
        if kind == "slow":
            sys.stderr.write(f"writing {which}\n")
            sys.stderr.flush()
            original(model, path, meta)
            time.sleep(float(value))
            return None
        Path(path).write_bytes(b"\x89HDF\r\n" + b"\0" * 4096)  # part of a file, then the disk is full
        code = int(value)
        raise OSError(code, os.strerror(code), str(path))

    h5.write_model = write_model


def _kill_after(step: str, epoch: int) -> None:
    import signal

    from nettrain.store import rundir
    from nettrain.training import callbacks

    def killing(original, epoch_of):
        def wrapped(self, arg):
            out = original(self, arg)
            if epoch_of(arg) == epoch:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return wrapped

    if step == "row":
        rundir.MetricsCSV.append = killing(rundir.MetricsCSV.append, lambda row: row.get("epoch"))
    elif step == "checkpoint":
        callbacks.Checkpointer.commit = killing(callbacks.Checkpointer.commit, lambda plan: plan.epoch)
    else:
        raise ValueError(f"kill: unknown step {step!r}")


if __name__ == "__main__":
    fault = sys.argv[1]
    assert sys.argv[2] == "--"
    sys.argv = ["nettrain"] + sys.argv[3:]
    from nettrain.store import guard

    guard.install()
    install(fault)
    from nettrain.__main__ import main

    main()
