"""`nettrain fit CONFIG --resume RUN_DIR`: continue an interrupted run from its last complete epoch.

The run's `checkpoints/last.h5` holds the weights, the optimizer state and the epoch it was saved
at; metrics.csv rows past that epoch (an epoch that was cut off) are dropped. With the epoch's
data order derived from (seed, epoch), the continuation is the same as a straight run (exactly,
without dropout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from nettrain.config.schema import Config
from nettrain.errors import UsageError
from nettrain.store import h5, rundir


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs."""
    out: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_changes(a, b, path + "."))
        elif a != b:
            out.append(f"{path} ({a!r} -> {b!r})")
    return out


def resume_fit(cfg: Config, run_dir: Path, *, quiet: bool = False, json_output: bool = False,
               force: bool = False):
    from nettrain.training import fit as F

    run_dir = Path(run_dir)
    record = rundir.RunRecord.load(run_dir)
    try:
        saved = yaml.safe_load((run_dir / rundir.CONFIG).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"cannot read {run_dir / rundir.CONFIG}: {e}") from None
    changes = config_changes(saved, cfg.to_dict())
    if changes and not force:
        raise UsageError(f"--resume {run_dir}: the config differs from the run's config.yaml at "
                         f"{'; '.join(changes[:5])}{' ...' if len(changes) > 5 else ''}. Resume with the same "
                         "config, or pass --force to continue with the new one")
    if record.data.get("status") == "completed" and record.data.get("epochs_done", 0) >= cfg.training.epochs:
        metrics = json.loads((run_dir / rundir.METRICS_JSON).read_text())
        F.report_result(metrics, run_dir, json_output)
        return F.FitResult(run_dir, "completed", metrics, record.data.get("epochs_done", 0),
                           record.data.get("best_epoch"), record.data.get("stopped_epoch"))

    prep = F.prepare(cfg)
    fingerprint = record.data.get("data", {}).get("fingerprint")
    if fingerprint and fingerprint != prep.dataset.fingerprint and not force:
        raise UsageError(f"--resume {run_dir}: the data changed since the run started (fingerprint differs); "
                         "pass --force to continue on the new data")
    last = run_dir / rundir.CHECKPOINTS / "last.h5"
    monitors = F.check_monitors(cfg, prep.dataset.schema, prep.has_val)
    csv = rundir.MetricsCSV(run_dir / rundir.METRICS_CSV)
    if last.exists():
        epoch = int(h5.read_meta(last).get("epoch") or 0)
        with prep.scope:
            model = h5.load_model(last)
    else:  # died before the first checkpoint: start over in the same directory
        epoch = 0
        model = F.new_model(prep)
    csv.truncate_after(epoch)
    history = [r for r in csv.read() if r.get("epoch") is not None and r["epoch"] <= epoch]
    resumes = list(record.data.get("resumed", [])) + [{"at": rundir.now(), "from_epoch": epoch}]
    record.update(status="running", ended=None, epochs=cfg.training.epochs, epochs_done=epoch, resumed=resumes)
    if not quiet and not json_output:
        print(f"resuming {run_dir} after epoch {epoch}")
    return F.train(F.Session(prep, model, run_dir, record, epoch, cfg.training.epochs, monitors, history,
                             quiet=quiet, json_output=json_output))
