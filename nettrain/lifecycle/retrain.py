"""`nettrain retrain CHECKPOINT_OR_RUN`: N more epochs from an .h5, optimizer state and epoch included.

The architecture (and the preprocessing built into the model) comes from the checkpoint;
training keys (epochs, learning rate, callbacks, data) may be overridden. By default the run the
checkpoint belongs to is continued in place when the checkpoint is that run's latest epoch;
otherwise (or with --run-dir, or for an .h5 outside any run) a new run directory names its parent.

Here: the plan (checked before TensorFlow loads), the restored model and the run directory it
trains into. The training session is started by `nettrain.lifecycle.orchestrate.retrain`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from nettrain.config import Config, load_config, parse_override
from nettrain.config.args import MAX_EPOCHS
from nettrain.config.callbacks import CheckpointConfig
from nettrain.words import list_names, masked_uri, show_name
from nettrain.errors import UsageError
from nettrain.lifecycle.target import Target, resolve_target
from nettrain.store import atomic, h5, rundir

# Keys that would change the model's layers, inputs or outputs.
ARCHITECTURE_KEYS = (("model",), ("preprocessing",), ("data", "target"), ("data", "features"), ("data", "drop"),
                     ("data", "columns"), ("data", "id"), ("data", "task"))


@dataclass
class RetrainPlan:
    """What `nettrain retrain` will do, decided from its arguments and the checkpoint's metadata."""

    target: Target
    cfg: Config                   # the checkpoint's config with the overrides, epochs = start + more
    start: int                    # the checkpoint's epoch
    more: int
    in_place: bool                # continue the checkpoint's run (it is that run's latest epoch)
    entry: dict[str, Any]         # this retrain, as listed in run.json `retrains`
    run_dir: Path | None = None   # --run-dir
    fold: int | None = None       # a fold of a k-fold run: it trains on that fold's rows (kfold.fold)


@dataclass
class EnsembleRetrain:
    """`nettrain retrain RUN` of a k-fold run whose model is its folds' ensemble (data.split.refit:
    ensemble): every fold model retrained (`folds`, each from its model.h5, on its own fold's rows), into
    a new k-fold run whose model.h5 is their ensemble again."""

    run: Path                     # the k-fold run retrained
    cfg: Config                   # its config with the overrides (and --data)
    folds: list[RetrainPlan]      # fold i's plan (`run_dir` left to the caller: NEW_RUN/fold-<i>)
    entry: dict[str, Any]         # this retrain, as listed in the new run's run.json `retrains`
    run_dir: Path | None = None   # --run-dir


def plan_retrain(checkpoint: str | Path, *, epochs: int | None = None, overrides: Iterable[str] = (),
                 data: str | Path | None = None, run_dir: str | Path | None = None) -> RetrainPlan:
    overrides = list(overrides)
    target = resolve_target(checkpoint)
    refit = _refit_config(target)
    return _plan(target, overrides, epochs=epochs, data=data, run_dir=run_dir, config=refit)


def _plan(target: Target, overrides: list[str], *, epochs: int | None, data: str | Path | None,
          run_dir: str | Path | None, config: dict[str, Any] | None = None) -> RetrainPlan:
    """`config`: the config to retrain on instead of the checkpoint's (a k-fold run's refit model:
    `_refit_config`); such a retrain is a new run."""
    for text in overrides:
        path, _ = parse_override(text)
        for key in ARCHITECTURE_KEYS:
            if path[: len(key)] == key:
                raise UsageError(f"--set {text}: retrain keeps the architecture of {target.model_path} "
                                 f"({'.'.join(key)} cannot change); start a new run with nettrain fit for that")
    if epochs is not None and not 1 <= epochs <= MAX_EPOCHS:
        raise UsageError(f"--epochs {epochs}: expected an integer in [1, {MAX_EPOCHS}]")
    if run_dir is not None:
        rundir.check_run_dir(run_dir)
    base = _on_data(target.config if config is None else config, data)
    start = target.epoch
    probe = load_config(None, overrides, data=copy.deepcopy(base))
    more = epochs if epochs is not None else probe.training.epochs
    if start + more > MAX_EPOCHS:
        raise UsageError(f"{target.model_path} is at epoch {start}; {more} more would pass the limit of "
                         f"{MAX_EPOCHS} epochs")
    cfg = load_config(None, overrides + [f"training.epochs={start + more}"], data=base, origin=target.model_path)
    _refuse_multi_worker(cfg, target, overrides)
    in_place = (target.run_dir is not None and run_dir is None and config is None
                and _epochs_done(target.run_dir) == start)
    entry = {"at": rundir.now(), "from": str(target.model_path), "from_epoch": start, "epochs": more,
             "overrides": [masked_uri(o) for o in overrides], "data": str(data) if data else None}
    return RetrainPlan(target, cfg, start, more, in_place, entry, Path(run_dir) if run_dir is not None else None,
                       fold=_fold_of(target, cfg))


def _on_data(config: dict[str, Any], data: str | Path | None) -> dict[str, Any]:
    """A copy of a run's config, its rows read from `data` (--data) when given."""
    base = copy.deepcopy(config)
    if data is not None:
        base["data"].update(source=os.path.abspath(data), train=None, validation=None, test=None)
    checkpoint = (base.get("callbacks") or {}).get("checkpoint")
    if isinstance(checkpoint, dict) and checkpoint.get("monitor") == CheckpointConfig.model_fields["monitor"].default:
        # config.yaml writes every default: left as one, the monitor follows the rows as at the run's fit
        # (loss where there are no validation rows; an explicit val_loss without them was refused there)
        del checkpoint["monitor"]
    return base


def _fold_of(target: Target, cfg: Config) -> int | None:
    """The fold whose rows the checkpoint's model trains on: that of a fold's run (run.json `fold`) of
    a config that still makes folds; None for any other run."""
    if target.run_dir is None or cfg.data.split.folds <= 1 or not (target.run_dir / rundir.RUN).is_file():
        return None
    fold = rundir.RunRecord.load(target.run_dir).typed.fold
    return fold if fold is not None and 1 <= fold <= cfg.data.split.folds else None


def ensemble_run(checkpoint: str | Path) -> bool:
    """Whether CHECKPOINT_OR_RUN is a k-fold run directory whose model.h5 is its folds' ensemble."""
    path = Path(checkpoint)
    try:
        if not (path / rundir.RUN).is_file():
            return False
    except OSError:
        return False
    record = rundir.RunRecord.load(path).typed
    return record.is_kfold_parent and record.refit is not None and bool(record.refit.members)


def plan_ensemble_retrain(run: str | Path, *, epochs: int | None = None, overrides: Iterable[str] = (),
                          data: str | Path | None = None, run_dir: str | Path | None = None) -> EnsembleRetrain:
    """The plan of each fold's retrain (from its model.h5, --epochs more, the same --set and --data),
    checked before anything trains: every fold has its model and config."""
    overrides, run = list(overrides), Path(run)
    record = rundir.RunRecord.load(run).typed
    k = int(record.folds or 0)
    if run_dir is not None:
        rundir.check_run_dir(run_dir)
    plans = []
    for i in range(1, k + 1):
        fold_dir = run / f"fold-{i}"
        if not (fold_dir / rundir.MODEL).is_file():
            raise UsageError(f"{run} is the ensemble of {k} fold models, and {fold_dir / rundir.MODEL} is missing; "
                             "retrain needs every fold's model (train the k-fold run again with nettrain fit)")
        plan = _plan(resolve_target(fold_dir), overrides, epochs=epochs, data=data, run_dir=None)
        plans.append(dataclasses.replace(plan, in_place=False, fold=i))
    base = _on_data(rundir.read_run_config(run), data)
    cfg = load_config(None, overrides, data=base, origin=run / rundir.CONFIG)
    entry = {"at": rundir.now(), "from": str(run), "folds": k, "from_epochs": [p.start for p in plans],
             "epochs": plans[0].more if plans else 0, "overrides": [masked_uri(o) for o in overrides],
             "data": str(data) if data else None}
    return EnsembleRetrain(run, cfg, plans, entry, Path(run_dir) if run_dir is not None else None)


def restore_model(plan: RetrainPlan, prep):
    """The checkpoint's model, loaded under the run's distribution strategy, with the training overrides."""
    check_same_features(plan.target, prep.dataset.schema)
    with prep.scope():
        model = h5.load_model(plan.target.model_path)
        _apply_training_overrides(plan.cfg, model, plan.target.config.get("training", {}), prep)
    return model


def open_run(plan: RetrainPlan):
    """The run directory to train into, locked: the checkpoint's own run, or a new one."""
    if plan.in_place:
        return rundir.RunLock(plan.target.run_dir)
    return rundir.new_run_dir(plan.cfg.output.dir, plan.cfg.name or "run", plan.run_dir)


def start_run(plan: RetrainPlan, prep, model, out: Path, monitors: dict[str, str], **fields: Any):
    """run.json and metrics.csv of the run `out` at the checkpoint's epoch: (record, history).
    In place the rows past that epoch are dropped; a new run copies its parent's rows (`fields`: more
    run.json fields of a new run, over `parent`: a fold's own k-fold run)."""
    from nettrain.training import runfiles as RF

    cfg, start, more, data = plan.cfg, plan.start, plan.more, plan.entry["data"]
    if plan.in_place:
        atomic.remove_leftovers(out)
        record = rundir.RunRecord.load(out)
        csv = rundir.MetricsCSV(out / rundir.METRICS_CSV)
        csv.truncate_after(start)
        history = csv.read()
        record.update(status="running", ended=None, epochs=start + more, stopped_epoch=None,
                      retrains=list(record.data.get("retrains") or []) + [plan.entry],
                      data=RF.data_record(prep.dataset) if data else record.data.get("data"))
        with record.active():
            rundir.write_config(out, cfg.to_dict())
    else:
        parent = plan.target.run_dir or plan.target.model_path
        history = _inherit_history(plan.target, start, out)
        fold = {"fold": plan.fold} if plan.fold is not None else {}  # its rows are that fold's (runrows.run_parts)
        record = RF.start_run_dir(prep, model, out, monitors, **{"parent": str(parent), "retrains": [plan.entry],
                                                                  **fold, **fields})
        record.update(epochs_done=start)
    return record, history


def describe(plan: RetrainPlan, out: Path) -> str:
    return f"retraining {plan.target.model_path} from epoch {plan.start} for {plan.more} more epoch(s) into {out}"


def _refuse_multi_worker(cfg: Config, target: Target, overrides: list[str]) -> None:
    """retrain runs in one process: `runtime.distribute: multi_worker` is refused, with where it came from
    (the checkpoint's run was trained so, or this command's --set asked for it)."""
    if cfg.runtime.distribute != "multi_worker":
        return
    key = ("runtime", "distribute")
    asked = next((t for t in reversed(overrides) if key[:len(parse_override(t)[0])] == parse_override(t)[0]), None)
    if asked is not None:
        raise UsageError(f"--set {asked}: retrain runs in one process, not over a cluster; use "
                         "runtime.distribute none or mirrored (nettrain fit trains multi_worker runs)")
    raise UsageError(f"{target.model_path} was trained with runtime.distribute: multi_worker, and retrain runs in "
                     "one process: add --set runtime.distribute=none (or mirrored)")


def _refit_config(target: Target) -> dict[str, Any] | None:
    """The config a k-fold run's refit model (`data.split.refit: true`, trained on every non-test row)
    is retrained on, else None: one split, no validation rows (the same test rows: they are held out
    first, by the same rule), the callbacks of the refit session (`config.callbacks.on_training_rows`).
    The retrain is a new run of that config, its parent the k-fold run, which stays as it was. The
    model.h5 of an ensemble named as a file is refused (its run is retrained fold by fold,
    `plan_ensemble_retrain`)."""
    from nettrain.config.callbacks import on_training_rows

    run = target.run_dir
    if run is None or not (run / rundir.RUN).is_file():
        return None
    record = rundir.RunRecord.load(run).typed
    if not record.is_kfold_parent:
        return None
    if record.refit is not None and record.refit.members:
        raise UsageError(f"{target.model_path} is the ensemble of the {record.refit.members} fold models of the k-fold "
                         f"run {run}; give the run directory ({run}) to retrain every fold model and average them "
                         "again, or a fold's run directory (fold-<i>/) for one of them")
    config = copy.deepcopy(target.config)
    config["data"]["split"] = {**(config["data"].get("split") or {}), "folds": 1, "members": None, "refit": False,
                               "validation": 0.0}
    probe = load_config(None, data=copy.deepcopy(config), check_names=False, origin=target.model_path)
    config["callbacks"] = on_training_rows(probe.callbacks).model_dump(mode="json")
    return config


def _epochs_done(run_dir: Path) -> int:
    """Epochs the run has done: a checkpoint of that epoch continues the run in place."""
    return rundir.RunRecord.load(run_dir).typed.epochs_done or 0


def check_same_features(target, schema) -> None:
    """The data's feature columns and classes (`schema`) are the model's (`target`'s), or a UsageError
    naming what differs."""
    old = [(c.name, c.kind) for c in target.schema.columns]
    new = [(c.name, c.kind) for c in schema.columns]
    if old != new:
        kinds, taken = dict(new), dict(old)
        lost = [f"'{show_name(n)}' ({k})" for n, k in old if n not in kinds]
        moved = [f"'{show_name(n)}' ({k}, now {kinds[n]})" for n, k in old if n in kinds and kinds[n] != k]
        extra = [f"'{show_name(n)}' ({k})" for n, k in new if n not in taken]
        said = "; ".join(part for part in (f"the model takes {', '.join(lost)}, which the data lacks" if lost else "",
                                           f"typed otherwise: {', '.join(moved)}" if moved else "",
                                           f"columns the model does not take: {', '.join(extra)}" if extra else "")
                         if part) or "the same columns in another order"
        raise UsageError(f"the data's feature columns differ from the model's ({said}); retrain keeps the "
                         f"model's inputs: {', '.join(f'{show_name(n)} ({k})' for n, k in old)}")
    if (target.schema.class_names or None) != (schema.class_names or None):
        raise UsageError(f"the data's classes {list_names(schema.class_names or [])} differ from the model's "
                         f"{list_names(target.schema.class_names or [])}; retrain needs the same label set")


def _apply_training_overrides(cfg, model, old_training: dict, prep) -> None:
    """Keep the restored optimizer (its state is the point of retraining) unless the config changed it:
    a new learning rate is set on it; another optimizer or other arguments recompile from the config."""
    from nettrain.config import catalog
    from nettrain.model.compile import compile_model

    def spec(opt):
        return dict(opt) if isinstance(opt, dict) else {"name": opt}

    old, new = spec(old_training.get("optimizer", "adam")), spec(cfg.training.optimizer)
    same_name = catalog.normalize(old.pop("name")) == catalog.normalize(new.pop("name"))
    old_lr, new_lr = old.pop("learning_rate", None), new.pop("learning_rate", None)
    if not same_name or old != new:
        compile_model(cfg, model, prep.dataset.schema, steps_per_execution=prep.spe)
        return
    if new_lr is not None and new_lr != old_lr:
        model.optimizer.learning_rate = float(new_lr)
    if old_training.get("loss") != cfg.training.loss or old_training.get("metrics") != cfg.training.metrics:
        compile_model(cfg, model, prep.dataset.schema, steps_per_execution=prep.spe, optimizer=model.optimizer)


def _inherit_history(target, start: int, out: Path) -> list[dict]:
    """Copy the parent run's metrics.csv rows up to the checkpoint's epoch into the new run."""
    if target.run_dir is None:
        return []
    parent = rundir.MetricsCSV(target.run_dir / rundir.METRICS_CSV)
    rows = [r for r in parent.read() if r.get("epoch") is not None and r["epoch"] <= start]
    if rows:
        child = rundir.MetricsCSV(out / rundir.METRICS_CSV)
        for r in rows:
            child.append({k: (int(v) if k == "epoch" else v) for k, v in r.items()})
    return rows
