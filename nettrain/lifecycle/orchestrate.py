"""What a training command does with runs: the one place that picks and starts training sessions.

`fit` is a fresh run, a k-fold run (one run per fold under a parent run) or, with `--resume`, the
continuation of either; `retrain` is N more epochs from a checkpoint. Each ends in `train_session`, the
one place a `training.fit.Session` is made: a sweep trial (its pruning callback in
`extra_callbacks`) or a distributed worker (its strategy) is one more caller of it.

Arrows: lifecycle -> training, never back. The pieces live where they belong: one session in
`training.fit` (the leaf), the folds' rows and the parent run's record in `training.kfold`, the
state of an interrupted run in `lifecycle.resume`, the checkpoint and its run in
`lifecycle.retrain`. TensorFlow (training/) is imported inside the functions, once the cheap
checks of a command's arguments have passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from nettrain.config.schema import Config
from nettrain.lifecycle import resume as R
from nettrain.lifecycle import retrain as RT
from nettrain.store import guard, rundir

if TYPE_CHECKING:
    from nettrain.training.fit import FitResult, Prepared


def fit(cfg: Config, *, run_dir: Path | None = None, resume: Path | None = None, quiet: bool = False,
        json_output: bool = False, force: bool = False, baseline: bool = False) -> "FitResult":
    """`nettrain fit`: continue the run `resume`, or start a k-fold run or one fresh run. With `baseline`
    (`fit --baseline`), then the baselines on the run's rows (`lifecycle.baseline`, baseline.json), on
    the result as its `baseline`; what they refuse in the config is said before training."""
    if not baseline:
        return _fit(cfg, run_dir=run_dir, resume=resume, quiet=quiet, json_output=json_output, force=force)
    from nettrain.lifecycle import baseline as B

    B.check_config(cfg)
    result = _fit(cfg, run_dir=run_dir, resume=resume, quiet=quiet, json_output=json_output, force=force)
    return B.after_fit(result)


def _fit(cfg: Config, *, run_dir: Path | None = None, resume: Path | None = None, quiet: bool = False,
         json_output: bool = False, force: bool = False) -> "FitResult":
    if cfg.runtime.distribute == "multi_worker":  # one process of a cluster: the chief's run, or a worker's part
        from nettrain.lifecycle import worker

        return worker.fit(cfg, run_dir=run_dir, resume=resume, quiet=quiet, json_output=json_output, force=force)
    from nettrain.training import tracking

    tracking.preflight(cfg)  # tracking.mlflow: the extra is installed, the store answers (before the data loads)
    if resume is not None:
        return resume_run(cfg, Path(resume), quiet=quiet, json_output=json_output, force=force)
    if cfg.data.split.folds > 1:
        return kfold_run(cfg, run_dir=run_dir, quiet=quiet, json_output=json_output, force=force)
    return fresh_run(cfg, run_dir=run_dir, quiet=quiet, json_output=json_output, force=force)


def fresh_run(cfg: Config, *, run_dir: Path | None = None, quiet: bool = False, json_output: bool = False,
              force: bool = False, extra_callbacks: Iterable[Any] = (), dataset: Any = None) -> "FitResult":
    """One new run; `extra_callbacks` (Keras callbacks, e.g. a sweep trial's pruning) run after nettrain's own.
    `dataset`: the rows in memory, already loaded from the same data keys (a warm sweep worker's), reused."""
    if run_dir is not None:
        rundir.check_run_dir(run_dir, force=force)  # before the slow part
    from nettrain.training import fit as F
    from nettrain.training import runfiles as RF

    prep = F.prepare(cfg, dataset=dataset)
    model = F.new_model(prep)
    monitors = F.check_monitors(cfg, prep.dataset.schema, prep.has_val)
    prep.feed.class_weight(cfg)  # errors before anything is written
    # deferred: a signal between the first write and the training loop is raised inside it (status interrupted)
    with rundir.new_run_dir(cfg.output.dir, cfg.name or "run", run_dir, force=force) as out, guard.deferred():
        record = RF.start_run_dir(prep, model, out, monitors)
        return train_session(prep, model, out, record, monitors, last_epoch=cfg.training.epochs, quiet=quiet,
                      json_output=json_output, extra_callbacks=list(extra_callbacks))


def kfold_run(cfg: Config, *, run_dir: Path | None = None, quiet: bool = False, json_output: bool = False,
              force: bool = False) -> "FitResult":
    if run_dir is not None:
        rundir.check_run_dir(run_dir, force=force)  # before the slow part
    from nettrain.training import fit as F
    from nettrain.training import kfold

    prep = F.prepare(cfg)
    kfold.check_folds(prep)
    F.check_monitors(cfg, prep.dataset.schema, True)
    with rundir.new_run_dir(cfg.output.dir, cfg.name or "run", run_dir, force=force) as out, guard.deferred():
        record = kfold.start_kfold_dir(prep, out)
        return _run_folds(prep, out, record, quiet=quiet, json_output=json_output)


def resume_run(cfg: Config, run_dir: Path, *, quiet: bool = False, json_output: bool = False,
               force: bool = False) -> "FitResult":
    """`--resume`: a run that completed is only reported; a k-fold run keeps its completed folds."""
    with R.opened(run_dir) as record:
        folds = R.is_kfold(cfg, record)
        if folds:
            R.check_kfold_config(cfg, run_dir, record)
        R.check_resumable(cfg, run_dir, record, force)
        metrics = R.finished_metrics(run_dir, record, 0 if folds else cfg.training.epochs)
        if folds and metrics is not None and not ("mean" in metrics and "mean" in (
                record.data.get("final_metrics") or {})):
            metrics = None  # a refit model completed, its k-fold run's files not yet: finish them
        from nettrain.training import fit as F

        if metrics is not None:
            if folds:
                from nettrain.training.kfold import KFoldFitResult

                F.report_result(metrics, run_dir, json_output)
                return KFoldFitResult(run_dir, "completed", metrics, cfg.training.epochs)
            return completed_result(run_dir, record, metrics, json_output)
        prep = F.prepare(cfg, stream=recorded_stream(record))
        R.check_same_data(prep, run_dir, record, force)
        if folds:
            return _run_folds(prep, run_dir, record, quiet=quiet, json_output=json_output)
        return continue_run(prep, run_dir, record, quiet=quiet, json_output=json_output)


def completed_result(run_dir: Path, record: rundir.RunRecord, metrics: dict[str, Any],
                     json_output: bool) -> "FitResult":
    """`--resume` of a run that already completed: reported from its record, not trained again."""
    from nettrain.training import fit as F

    F.report_result(metrics, run_dir, json_output)
    done = record.typed
    splits = {k: v for k, v in metrics.items() if k != "test_interval"}  # the interval is no split
    return F.FitResult(run_dir, "completed", splits, done.epochs_done or 0, done.best_epoch, done.stopped_epoch,
                       test_interval=metrics.get("test_interval"))


def recorded_stream(record: rundir.RunRecord) -> bool | None:
    """Whether the run was started on streamed data (run.json `data.stream`): `--resume` keeps that path
    under `data.stream: auto` even when the available memory changed since."""
    return record.typed.stream


def retrain(checkpoint: str | Path, *, epochs: int | None = None, overrides: Iterable[str] = (),
            data: str | Path | None = None, run_dir: str | Path | None = None, quiet: bool = False,
            json_output: bool = False) -> "FitResult":
    """`nettrain retrain`: N more epochs from a checkpoint, in its run or in a new one; a fold's checkpoint
    on its fold's rows; the run of a k-fold ensemble fold by fold (`retrain_ensemble`)."""
    if RT.ensemble_run(checkpoint):
        return retrain_ensemble(checkpoint, epochs=epochs, overrides=overrides, data=data, run_dir=run_dir,
                                quiet=quiet, json_output=json_output)
    plan = RT.plan_retrain(checkpoint, epochs=epochs, overrides=overrides, data=data, run_dir=run_dir)
    from nettrain.training import fit as F
    from nettrain.training import kfold
    from nettrain.training import tracking

    tracking.preflight(plan.cfg)  # tracking.mlflow: the store answers, its password given again (masked in runs)
    prep = F.prepare(plan.cfg)
    if plan.fold is not None:  # a fold's model: its own fold's rows, not the first fold's
        kfold.check_folds(prep)
        prep = kfold.fold(prep, plan.fold)
    model = RT.restore_model(plan, prep)
    monitors = F.check_monitors(plan.cfg, prep.dataset.schema, prep.has_val)
    with RT.open_run(plan) as out, guard.deferred():
        record, history = RT.start_run(plan, prep, model, out, monitors)
        F.notice(RT.describe(plan, out))
        return train_session(prep, model, out, record, monitors, first_epoch=plan.start, last_epoch=plan.start + plan.more,
                      history=history, quiet=quiet, json_output=json_output, continue_early_stopping=False)


def retrain_ensemble(run: str | Path, *, epochs: int | None = None, overrides: Iterable[str] = (),
                     data: str | Path | None = None, run_dir: str | Path | None = None, quiet: bool = False,
                     json_output: bool = False) -> "FitResult":
    """`nettrain retrain RUN` of a k-fold run whose model is its folds' ensemble: a new k-fold run (the
    retrained run stays as it was) in which every fold model is retrained from its model.h5 for N more
    epochs on its own fold's rows (of --data when given), then averaged again into model.h5; its
    metrics.json and run.json are a k-fold run's, with run.json `retrains`."""
    import dataclasses

    from nettrain.training import fit as F
    from nettrain.training import kfold
    from nettrain.training import tracking

    plan = RT.plan_ensemble_retrain(run, epochs=epochs, overrides=overrides, data=data, run_dir=run_dir)
    tracking.preflight(plan.cfg)
    prep = F.prepare(plan.cfg)
    kfold.check_folds(prep)
    k = kfold.count(prep)
    if k != len(plan.folds):
        raise plan.cfg.error("data.split.folds", f"the data makes {k} folds and {plan.run} has {len(plan.folds)} "
                             "fold models; retrain keeps the folds")
    monitors = F.check_monitors(plan.cfg, prep.dataset.schema, True)
    for fold_plan in plan.folds:  # (data that does not fit the fold models: refused before a run exists)
        RT.check_same_features(fold_plan.target, prep.dataset.schema)
    with rundir.new_run_dir(plan.cfg.output.dir, plan.cfg.name or "run", plan.run_dir) as out, guard.deferred():
        record = kfold.start_kfold_dir(prep, out)
        record.update(retrains=[plan.entry])
        per_fold = []
        with kfold.folds_running(out, record, again=f"start the retrain again: nettrain retrain {plan.run}"):
            for i, fold_plan in enumerate(plan.folds, start=1):
                fold_prep = dataclasses.replace(kfold.fold(prep, i), cfg=fold_plan.cfg)  # its epochs: start + more
                model = RT.restore_model(fold_plan, fold_prep)
                fold_dir = kfold.fold_dir(out, i)
                fold_dir.mkdir(exist_ok=True)
                fold_record, history = RT.start_run(fold_plan, fold_prep, model, fold_dir, monitors,
                                                    **kfold.fold_fields(i, out))
                F.notice(f"fold {i}/{k}: " + RT.describe(fold_plan, fold_dir))
                result = train_session(fold_prep, model, fold_dir, fold_record, monitors, first_epoch=fold_plan.start,
                                       last_epoch=fold_plan.start + fold_plan.more, history=history, quiet=quiet,
                                       json_output=True, continue_early_stopping=False)
                per_fold.append({s: v for s, v in result.metrics.items() if s != "test_interval"})
                record.update(folds_done=i)
            refitted = kfold.ensemble(prep, out, record, k)
            metrics = kfold.finish(prep, out, record, per_fold, refitted.metrics, interval=refitted.test_interval)
    if not json_output:
        F.notice(f"ensemble model {out / rundir.MODEL}: the mean of the {k} retrained fold models")
    F.report_result(metrics, out, json_output)
    return kfold.KFoldFitResult(out, "completed", metrics, plan.cfg.training.epochs, refit=refitted.metrics,
                                ensemble=True)


def _run_folds(prep: "Prepared", out: Path, record: rundir.RunRecord, *, quiet: bool,
               json_output: bool) -> "FitResult":
    """Every fold of the locked k-fold run `out`, in order; then the parent's metrics (mean, std), and
    the refit model's when the config asks for one (its table is drawn from the result)."""
    from nettrain.training import fit as F
    from nettrain.training import kfold

    cfg = prep.cfg
    monitors = F.check_monitors(cfg, prep.dataset.schema, True)
    k = kfold.count(prep)
    per_fold = []
    with kfold.folds_running(out, record):
        for i, fold_prep in kfold.folds(prep):
            per_fold.append(_fold(fold_prep, out, i, k, monitors, quiet=quiet, json_output=json_output))
            record.update(folds_done=i)
        mode = cfg.data.split.refit
        refitted = kfold.ensemble(prep, out, record, k) if mode == "ensemble" else \
            _refit(prep, out, record, k, quiet=quiet, json_output=json_output) if mode else None
        refit = refitted.metrics if refitted is not None else None
        metrics = kfold.finish(prep, out, record, per_fold, refit,
                               interval=refitted.test_interval if refitted is not None else None)
    if refit is not None and not json_output:
        plan = record.typed.refit
        F.notice(f"ensemble model {out / rundir.MODEL}: the mean of the {plan.members} fold models"
                 if plan.members else
                 f"refit model {out / rundir.MODEL}: {plan.epochs} epoch(s) on all {plan.rows} non-test rows")
    F.report_result(metrics, out, json_output)
    return kfold.KFoldFitResult(out, "completed", metrics, cfg.training.epochs, refit=refit,
                                ensemble=refit is not None and cfg.data.split.refit == "ensemble")


def _refit(prep: "Prepared", out: Path, record: rundir.RunRecord, k: int, *, quiet: bool,
           json_output: bool) -> "FitResult":
    """`data.split.refit`: one model on all the non-test rows for the mean best epoch of the folds,
    trained in the k-fold run's own directory; its metrics. A refit that was cut off continues from
    its last checkpoint (`checkpoints/last.h5`), or starts again when it has none. Its result (metrics,
    test interval)."""
    from nettrain.training import fit as F
    from nettrain.training import runfiles as RF
    from nettrain.training import kfold

    recorded = record.typed.refit
    started = recorded is not None and recorded.epochs is not None
    plan = record.data["refit"] if started else kfold.refit_plan(prep, out, k)
    rp = kfold.refit_prep(prep, plan["epochs"])
    monitors = F.check_monitors(rp.cfg, rp.dataset.schema, rp.has_val)
    if started and (out / rundir.CHECKPOINTS / rundir.LAST).is_file():
        F.notice(f"refit: resumed ({plan['epochs']} epoch(s) in all)")
        return continue_run(rp, out, record, quiet=quiet, json_output=True)
    model = kfold.start_refit(rp, out, record, monitors, plan)
    F.notice(f"refit: {plan['epochs']} epoch(s), the mean of the folds' best epochs {plan['fold_best_epochs']}"
             f"{' (' + plan['monitor'] + ')' if plan.get('monitor') else ''}, on all "
             f"{RF.split_rows(rp.dataset)['train']} non-test rows")
    return train_session(rp, model, out, record, monitors, last_epoch=plan["epochs"], quiet=quiet, json_output=True)


def _fold(fold_prep: "Prepared", out: Path, i: int, k: int, monitors: dict[str, str], *, quiet: bool,
          json_output: bool) -> dict[str, dict[str, float]]:
    """Fold i's metrics: a fold that completed is kept, one that was cut off is resumed, a new one is trained.
    The folds' own lines go to stderr, so the parent's table is what stdout shows."""
    from nettrain.training import fit as F
    from nettrain.training import runfiles as RF
    from nettrain.training import kfold

    fold_dir = kfold.fold_dir(out, i)
    if (fold_dir / rundir.RUN).is_file():
        fold_record = rundir.RunRecord.load(fold_dir)
        done = R.finished_metrics(fold_dir, fold_record, fold_prep.cfg.training.epochs)
        if done is None:
            done = continue_run(fold_prep, fold_dir, fold_record, quiet=quiet, json_output=True,
                             **kfold.fold_fields(i, out)).metrics
            F.notice(f"fold {i}/{k}: resumed")
        else:
            F.notice(f"fold {i}/{k}: already done")
        return {s: v for s, v in done.items() if s != "test_interval"}  # splits, as a fold trained now gives
    model, fold_record = kfold.start_fold(fold_prep, out, i, monitors)
    rows = RF.split_rows(fold_prep.dataset)
    F.notice(f"fold {i}/{k}: {rows['train']} training rows, {rows['validation']} validation rows")
    return train_session(fold_prep, model, fold_dir, fold_record, monitors, last_epoch=fold_prep.cfg.training.epochs,
                  quiet=quiet, json_output=True).metrics


def continue_run(prep: "Prepared", run_dir: Path, record: rundir.RunRecord, *, quiet: bool, json_output: bool,
              **start_extra: Any) -> "FitResult":
    """Train the run in `run_dir` (locked by the caller) from its last checkpoint to the end."""
    from nettrain.training import fit as F

    monitors = F.check_monitors(prep.cfg, prep.dataset.schema, prep.has_val)
    with guard.deferred():
        restored = R.restore(prep, run_dir, record, monitors, **start_extra)
        F.notice(restored.describe(run_dir))
        return train_session(prep, restored.model, run_dir, record, monitors, first_epoch=restored.epoch,
                      last_epoch=restored.end, history=restored.history, quiet=quiet, json_output=json_output)


def train_session(prep: "Prepared", model, out: Path, record: rundir.RunRecord, monitors: dict[str, str], *,
           last_epoch: int, first_epoch: int = 0, history: list[dict] | None = None, quiet: bool = False,
           json_output: bool = False, continue_early_stopping: bool = True,
           extra_callbacks: list[Any] | None = None) -> "FitResult":
    """One training session: the prepared rows (`prep.feed`) under the run's distribution strategy."""
    from nettrain.training import fit as F

    return F.train(F.Session(prep=prep, model=model, out=out, record=record, feed=prep.feed,
                             strategy=prep.strategy, monitors=monitors, first_epoch=first_epoch,
                             last_epoch=last_epoch, history=history or [], quiet=quiet, json_output=json_output,
                             continue_early_stopping=continue_early_stopping,
                             extra_callbacks=extra_callbacks or []))
