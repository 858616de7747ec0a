"""`nettrain fit CONFIG --resume RUN_DIR`: continue an interrupted run from its last complete epoch.

The run's `checkpoints/last.h5` holds the weights, the optimizer state and the epoch it was saved
at; metrics.csv rows past that epoch (an epoch that was cut off) are dropped, and so are the
temporary files of a killed process. With the epoch's data order derived from (seed, epoch), the
continuation is the same as a straight run (exactly, without dropout). A run that had trained all
its epochs (or stopped early) but not written its final files is only finished. A k-fold run
keeps its completed folds, resumes the fold that was cut off and trains the rest.

Here: the checks (same config, same data) and the state of a run on disk (its last checkpoint,
metrics.csv up to it). Which runs are resumed, and the training sessions, are in
`nettrain.lifecycle.orchestrate`. TensorFlow (training/) is imported once a model is needed.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from nettrain.config.schema import Config
from nettrain.errors import UsageError
from nettrain.store import atomic, h5, rundir


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "",
                   defaults: Config | None = None) -> list[str]:
    """Dotted keys whose values differ between two resolved configs. With `defaults` (the new config), a
    key that the old config lacks (written by a nettrain that did not have it) counts as its default."""
    out: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if key not in old and defaults is not None and _is_default(defaults, path, b):
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_changes(a, b, path + ".", defaults))
        elif a != b:
            out.append(f"{path} ({a!r} -> {b!r})")
    return out


def _is_default(cfg: Config, path: str, value: Any) -> bool:
    """Whether `value` (plain data) is the schema's default of the dotted key `path` in `cfg`'s sections."""
    from pydantic import BaseModel

    *parents, name = path.split(".")
    section: Any = cfg
    for part in parents:
        section = getattr(section, part, None)
        if not isinstance(section, BaseModel):
            return False
    field = type(section).model_fields.get(name)
    if field is None or field.is_required():
        return False
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        default = default.model_dump(mode="json", exclude_none=False)
    return default == value


def _saved_config(run_dir: Path) -> dict[str, Any] | None:
    """The config the run was started with: config.yaml, or the one inside last.h5 when config.yaml
    was never written (a process killed while starting); None when there is neither."""
    if (run_dir / rundir.CONFIG).exists():
        return rundir.read_run_config(run_dir)
    last = run_dir / rundir.CHECKPOINTS / rundir.LAST
    if last.exists():
        config = h5.read_meta(last).get("config")
        return config if isinstance(config, dict) else None
    return None


def finished_metrics(run_dir: Path, record: rundir.RunRecord, epochs: int) -> dict | None:
    """metrics.json of a run that completed (all `epochs`, or stopped early); None when it did not
    or when a final file is missing, so that resuming writes them again."""
    data = record.data
    if data.get("status") != "completed" or not (run_dir / rundir.MODEL).is_file():
        return None
    if (data.get("epochs_done") or 0) < epochs and data.get("stopped_epoch") is None:
        return None
    try:
        metrics = json.loads((run_dir / rundir.METRICS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def check_resumable(cfg: Config, run_dir: Path, record: rundir.RunRecord, force: bool) -> None:
    saved = _saved_config(run_dir)
    changes = config_changes(saved, cfg.to_dict(), defaults=cfg) if saved is not None else []
    if changes and not force:
        raise UsageError(f"--resume {run_dir}: the config differs from the run's config.yaml at "
                         f"{'; '.join(changes[:5])}{' ...' if len(changes) > 5 else ''}. Resume with the same "
                         "config, or pass --force to continue with the new one")


@contextlib.contextmanager
def opened(run_dir: Path) -> Iterator[rundir.RunRecord]:
    """The run's record, with the run locked for this process and a killed writer's temporary files gone."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run directory")
    rundir.RunRecord.load(run_dir)  # a clear error before the lock file is created in a non-run folder
    with rundir.RunLock(run_dir):
        atomic.remove_leftovers(run_dir)
        yield rundir.RunRecord.load(run_dir)  # again, now that no one else writes it


def is_kfold(cfg: Config, record: rundir.RunRecord) -> bool:
    return cfg.data.split.folds > 1 or bool(record.data.get("folds"))


def check_kfold_config(cfg: Config, run_dir: Path, record: rundir.RunRecord) -> None:
    if cfg.data.split.folds <= 1:
        raise UsageError(f"--resume {run_dir}: the run is a k-fold run ({record.data.get('folds')} folds) but the "
                         "config has data.split.folds: 1; resume it with the config it was started with")


def check_same_data(prep, run_dir: Path, record: rundir.RunRecord, force: bool) -> None:
    fingerprint = (record.data.get("data") or {}).get("fingerprint")
    if fingerprint and fingerprint != prep.dataset.fingerprint and not force:
        raise UsageError(f"--resume {run_dir}: the data changed since the run started (fingerprint differs); "
                         "pass --force to continue on the new data")


@dataclass
class Restored:
    """Where a run continues: its model, the epochs done and to do, and metrics.csv up to there."""

    model: Any
    epoch: int
    end: int
    history: list[dict]

    def describe(self, run_dir: Path) -> str:
        return (f"resuming {run_dir} after epoch {self.epoch}" if self.end > self.epoch else
                f"finishing {run_dir}: all its epochs are done ({self.epoch}), writing the final files")


def restore(prep, run_dir: Path, record: rundir.RunRecord, monitors: dict[str, str], **start_extra: Any) -> Restored:
    """The run in `run_dir` (locked by the caller) at its last checkpoint, marked running again; a
    run that died before its first checkpoint starts over in the same directory (run.json gets
    `start_extra`). Call inside `guard.deferred()`."""
    from nettrain.training import fit as F
    from nettrain.training import runfiles as RF

    cfg = prep.cfg
    last = run_dir / rundir.CHECKPOINTS / rundir.LAST
    if last.exists():
        epoch = int(h5.read_meta(last).get("epoch") or 0)
        with prep.scope():
            model = h5.load_model(last)
    else:  # died before the first checkpoint: start over in the same directory
        epoch = 0
        model = F.new_model(prep)
        RF.start_run_dir(prep, model, run_dir, monitors, record, **start_extra)
    stopped = record.data.get("stopped_epoch")
    end = epoch if stopped is not None and stopped == epoch else cfg.training.epochs
    csv = rundir.MetricsCSV(run_dir / rundir.METRICS_CSV)
    csv.truncate_after(epoch)
    history = [r for r in csv.read() if r.get("epoch") is not None and r["epoch"] <= epoch]
    resumes = list(record.data.get("resumed") or []) + [{"at": rundir.now(), "from_epoch": epoch}]
    record.update(status="running", ended=None, epochs=cfg.training.epochs, epochs_done=epoch, resumed=resumes)
    return Restored(model, epoch, end, history)
