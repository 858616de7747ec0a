"""One plain function per command, usable from Python and tests without Typer.

Each returns a result object and prints nothing of it: `nettrain.render` draws it for the command
line. A command that fails after producing a result (a missed --fail-under gate, a sweep whose
trials all failed) raises with the result attached as the error's `result`, so the CLI can show
the tables before the error. fit and retrain write only progress while they train (epoch lines and
notices, on stderr; with `json_output` also the run directory as it ends): their final metrics
table is drawn from the `FitResult` they return.

Imports that pull in TensorFlow (model/, training/) happen inside the functions that need them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nettrain.config import Config, load_config
from nettrain.errors import NettrainError, UsageError


def _attach(err: NettrainError, result: Any) -> NettrainError:
    """`err` carrying what the command produced before it failed (the CLI shows it first)."""
    err.result = result
    return err


def fit(config: str | Path, overrides: Iterable[str] = (), *, run_dir: str | Path | None = None,
        resume: str | Path | None = None, quiet: bool = False, json_output: bool = False, force: bool = False,
        worker: int | None = None, workers: str | None = None, baseline: bool = False):
    """Train from a config file; returns a `FitResult` (run directory, metrics; a k-fold run's also the
    refit model's metrics, `refit`, when it trained in this call).

    `baseline` (`--baseline`): then gradient boosting and a linear model on the run's rows (see
    `baseline`), written into the run as baseline.json and set on the result as `baseline`.

    `worker`/`workers` (`--worker I --workers HOST:PORT,...`): this process is worker I of that cluster;
    sets TF_CONFIG for it and `runtime.distribute: multi_worker` (a worker other than 0 returns a
    `lifecycle.worker.WorkerResult`: the run is the chief's)."""
    if worker is not None or workers is not None:
        from nettrain.config import cluster

        tf_config = cluster.from_options(worker, workers)  # a bad list or index: one line, exit 2
        overrides = ["runtime.distribute=multi_worker", *overrides]
        cfg = load_config(config, overrides)
        if cfg.runtime.distribute != "multi_worker":
            raise UsageError(f"--workers trains with runtime.distribute: multi_worker, but --set made it "
                             f"{cfg.runtime.distribute}")
        os.environ[cluster.ENV] = tf_config
    else:
        cfg = load_config(config, overrides)
    from nettrain.data.stream.progress import quiet as quiet_progress  # --quiet: no first-pass progress either
    from nettrain.lifecycle import orchestrate

    with quiet_progress(quiet):
        return orchestrate.fit(cfg, run_dir=Path(run_dir) if run_dir else None,
                               resume=Path(resume) if resume else None, quiet=quiet, json_output=json_output,
                               force=force, baseline=baseline)


def baseline(target: str | Path, overrides: Iterable[str] = ()):
    """scikit-learn's HistGradientBoosting and a linear model (logistic regression or ridge, inputs
    standardized) fitted on the training rows of a config (`overrides`: its --set) or of a run, as
    nettrain prepares them, and scored on every split under the run's metric names; a run's network
    beside them (its metrics.json), and baseline.json written into the run. Returns a `BaselineResult`."""
    from nettrain.lifecycle.baseline import baseline as _baseline

    return _baseline(target, overrides)


def retrain(checkpoint: str | Path, *, epochs: int | None = None, overrides: Iterable[str] = (),
            data: str | Path | None = None, run_dir: str | Path | None = None, quiet: bool = False,
            json_output: bool = False):
    """N more epochs from an .h5 checkpoint or a run directory; returns a `FitResult`."""
    from nettrain.data.stream.progress import quiet as quiet_progress
    from nettrain.lifecycle import orchestrate

    with quiet_progress(quiet):
        return orchestrate.retrain(checkpoint, epochs=epochs, overrides=overrides, data=data, run_dir=run_dir,
                                   quiet=quiet, json_output=json_output)


def validate(config: str | Path, overrides: Iterable[str] = (), *, build: bool = False,
             print_config: bool = False, origins: bool = False) -> str:
    """Check a config; with `build`, also load the data and build the model. Returns a report.

    With `print_config` (or `origins`) the report is the resolved config as YAML (the run's
    config.yaml), with `origins` each value's source beside it (FILE:LINE, --set or default)."""
    if (print_config or origins) and build:
        given = "--print-config" if print_config else "--origins (which prints the config)"
        raise UsageError(f"{given} and --build: give one of them (--build loads the data and builds the model, "
                         "--print-config prints the resolved config)")
    cfg = load_config(config, overrides)
    if print_config or origins:
        from nettrain.config.printed import config_yaml

        return config_yaml(cfg, origins=origins).rstrip("\n")
    from nettrain.data.kinds import config_kind_problem, config_name_problem

    wrong = config_kind_problem(cfg) or config_name_problem(cfg)
    if wrong:
        raise cfg.error(*wrong)
    lines = [f"{config}: valid", describe(cfg)]
    if cfg.plugins:  # which plugin provides each name (read, never imported)
        from nettrain.config.plugins import declared

        lines += declared(cfg.plugins, cfg.source.file_of("plugins") or str(config)).describe()
    if cfg.data.stream is not False and not build:  # true on a source that cannot stream: a config mistake;
        # auto: the estimate of what reading the data whole would take, and the decision (no TensorFlow here)
        from nettrain.data.stream import choose

        lines.append(choose(cfg).describe())
    if build:
        from nettrain.training.runtime import quiet_native_stderr  # imports TensorFlow without its start-up chatter

        from nettrain.data import load_dataset
        from nettrain.data.stream import choose, load_stream
        from nettrain.model.build import build_model, model_summary

        path = choose(cfg)
        lines.append(path.describe())  # "data: streamed (why)" or "data: in memory (why)"
        dataset = load_stream(cfg, path.why) if path.stream else load_dataset(cfg)
        added: list[str] = []
        with quiet_native_stderr():
            model = build_model(cfg, dataset, notes=added)
        s = dataset.schema
        lines.append(f"data: {dataset.n_rows} rows, task {s.task}, {len(s.columns)} feature columns"
                     + (f", {len(s.class_names)} classes" if s.class_names else ""))
        lines += [f"added: {note}" for note in added]
        from nettrain.training import distributed

        lines.append(distributed.describe_config(cfg))  # strategy, replicas, per-replica batch (none started)
        lines.append(model_summary(model))
    return "\n".join(lines)


def describe(cfg: Config) -> str:
    src = cfg.data.source if cfg.data.source is not None else f"train={cfg.data.train}"
    if not isinstance(src, str):
        src = src.generator
    t = cfg.training
    opt = t.optimizer if isinstance(t.optimizer, str) else t.optimizer["name"]
    loss = t.loss if isinstance(t.loss, str) else t.loss["name"]
    return (f"name {cfg.name}, seed {cfg.seed}, data {src}, {len(cfg.model.layers)} layers "
            f"(+ {cfg.model.output if isinstance(cfg.model.output, str) else cfg.model.output.type} head), "
            f"loss {loss}, optimizer {opt}, {t.epochs} epochs, batch {t.batch_size}")


def evaluate(target: str | Path, *, data: str | Path | None = None, split: str | None = None,
             fail_under: Iterable[str] = (), strict: bool = False, notify=None):
    """Measure a run directory or .h5 on its run's split or a data file; writes eval-<name>.json
    into the run. Returns an `EvalResult` (a `KFoldResult` for a k-fold run without a refit model);
    raises GateFailed, carrying it as `result`, when a gate is missed. A --data file is checked
    against the run's signature.json (`notify(line)`: the drift summary; `strict`: a drift is a
    DataError before the model is measured)."""
    from nettrain.lifecycle.evaluate import check_gates, evaluate as _evaluate

    result = _evaluate(target, data=data, split=split, fail_under=fail_under, strict=strict, notify=notify)
    try:
        check_gates(result)
    except NettrainError as err:
        raise _attach(err, result) from None
    return result


def predict(target: str | Path, input: str | Path, *, output: str | Path | None = None, proba: bool = False,
            to=None, strict: bool = False, notify=None):
    """Predictions for the rows of INPUT, in input order.

    - `output` (.csv or .parquet): written there chunk by chunk, atomically; returns a `Written`
      summary (`rows`, `path`, `columns`), nothing held in memory.
    - `to` (a text stream, e.g. sys.stdout): CSV written to it chunk by chunk, header once; returns
      a `Written` summary (`path` None).
    - neither: returns a pandas DataFrame holding every prediction (for small inputs).

    INPUT is checked against the run's signature.json: `notify(line)` hears the drift summary, the
    result carries the report (`input_check`); `strict`: a drift is a DataError (exit 2) before
    anything is predicted.
    """
    from nettrain.lifecycle.predict import predict as _predict

    return _predict(target, input, output=output, proba=proba, to=to, strict=strict, notify=notify)


def export(target: str | Path, *, format: str = "savedmodel", output: str | Path | None = None,
           force: bool = False):
    """Export the model of a run directory or .h5 as savedmodel, onnx, litert or keras; returns an
    `ExportResult` (the folder, the reloaded model's max difference from the run's on held-out rows)."""
    from nettrain.lifecycle.export import export as _export

    return _export(target, fmt=format, output=output, force=force)


def schema() -> dict[str, Any]:
    """JSON Schema of the config file."""
    s = Config.model_json_schema()
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["title"] = "nettrain experiment config"
    return s


def init_config(data: str | Path, target: str | None = None, *, output: str | Path | None = None, force: bool = False,
                notify=None, test: str | Path | None = None) -> str:
    """A starting config for a data file: column types guessed, task inferred, sane defaults; for an
    image folder (`target` None), a small CNN (`data.imagesuggest`).

    Returns the YAML text. With `output` it is also written there (atomically; an existing file
    only with `force`; never the data file or into a run directory), with `data.source` relative
    to the output's folder; without, `data.source` is relative to the current directory. With
    `test` (a file of test rows) the config names `data.train` and `data.test` instead, and takes
    only validation rows from the training file.
    `notify(line)`, when given, receives a one-line summary of how the columns were taken.
    """
    from nettrain.data.suggest import check_output, suggest, write_config_file

    out = check_output(Path(output), Path(data), force) if output is not None else None
    suggestion = suggest(Path(data), target, output=out, test=Path(test) if test is not None else None)
    if out is not None:
        write_config_file(out, suggestion.text, force)
    if notify is not None:
        notify(suggestion.summary)
    return suggestion.text


@dataclass
class RunListing:
    """What `runs` lists: the selected `runs` (run.json records, in order) out of `found` under `root`,
    and the note on run.json files that could not be read ("" when none)."""

    root: Path
    found: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    note: str = ""
    filters: list[str] = field(default_factory=list)
    sort: str | None = None
    last: int | None = None

    def to_json(self) -> list[dict[str, Any]]:
        """What `runs --json` prints: one summary per listed run."""
        from nettrain.report.runs import run_summary

        return [run_summary(r) for r in self.runs]


def list_runs(directory: str | Path = "runs", *, sort: str | None = None, filters: Iterable[str] = (),
              last: int | None = None) -> RunListing:
    """The runs under `directory`: `filters` are `KEY=VALUE` run.json fields, `last` keeps the N
    newest of the matching runs, `sort` orders them by a metric, best first. Returns a `RunListing`."""
    from nettrain.report import runs as report_runs

    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"no runs directory at {root}" + (" (it is a file)" if root.exists() else "")
                         + "; give the folder runs are written to (output.dir, default runs)")
    filters = list(filters)
    found = report_runs.collect_runs(root)
    runs = report_runs.select_runs(found, filters=filters, last=last, sort=sort)
    return RunListing(root, found, runs, report_runs.skipped_note(found, root), filters, sort, last)


def plot_runs(runs: Iterable[str | Path], *, metric: str = "loss", output: str | Path | None = None) -> Path:
    """Learning curves of one or more runs overlaid in one PNG (default ./learning-curves.png), from
    their metrics.csv: train solid, validation dashed, one colour per run, best epochs marked; a k-fold
    run without a metrics.csv of its own (an ensemble) gives its folds' curves. Never writes into a run
    directory. Returns the PNG's path."""
    from nettrain.report.compare import curve_runs, open_run, read_history
    from nettrain.report.plots import Curves, metric_columns, overlay_curves

    paths = [p for r in runs for p in curve_runs(r)]  # a k-fold run: its folds' curves
    if not paths:
        raise UsageError("plot: give at least one RUN (a run directory)")
    metric = str(metric).strip()
    if not metric:
        raise UsageError("--metric '': expected a metric of metrics.csv, e.g. loss, accuracy or val_loss")
    out = Path(output) if output is not None else Path("learning-curves.png")
    _check_plot_output(out)
    series = []
    for path in paths:
        run = open_run(path)
        columns, rows = read_history(path)
        train, val = metric_columns(columns, metric)
        if train is None and val is None:
            names = [c for c in columns if c not in ("epoch", "seconds")]
            raise UsageError(f"RUN {path}: no metric '{metric}' in its metrics.csv; it has: "
                             f"{', '.join(names) or 'no metric columns'}")
        name = run.get("name") if isinstance(run.get("name"), str) else None
        label = str(path) if not name or name in path.parts else f"{name} ({path})"
        best = run.get("best_epoch") if isinstance(run.get("best_epoch"), int) else None
        monitor = run.get("monitor") if isinstance(run.get("monitor"), str) else None
        series.append(Curves(label, {c: [r.get(c) for r in rows] for c in columns}, best, monitor))
    overlay_curves(series, metric, out)
    return out


def _check_plot_output(out: Path) -> None:
    if out.suffix.lower() != ".png":
        raise UsageError(f"--output {out}: expected a file name ending in .png (the plot is a PNG image)")
    if out.is_dir():
        raise UsageError(f"--output {out} is a folder; give a file name such as {out / 'learning-curves.png'}")
    folder = out.parent.resolve()
    for parent in (folder, *folder.parents):
        if (parent / "run.json").is_file():
            raise UsageError(f"--output {out} is inside the run directory {parent}; nettrain writes into a run "
                             "only while training it: choose a file outside (default ./learning-curves.png)")


def clean(runs: Iterable[str | Path]) -> list[tuple[Path, int, int]]:
    """Remove what runs keep only to be faster: a streamed run's prepared rows (`RUN/.cache/`, and
    its folds'), which `evaluate RUN` reads instead of parsing the data again. Each RUN must be a run
    directory that no process is writing (its lock is taken while it is cleaned). Returns (run, files,
    bytes) removed per run."""
    from nettrain.data.stream.keep import remove_kept
    from nettrain.store.rundir import try_lock

    paths = list({Path(r).resolve(): Path(r) for r in runs}.values())  # (a RUN named twice is cleaned once)
    if not paths:
        raise UsageError("clean: give at least one RUN (a run directory)")
    for path in paths:
        if not (path / "run.json").is_file():
            raise UsageError(f"RUN {path}: not a run directory (no run.json in it)")
    locks = []
    try:
        for path in paths:  # every lock first: a RUN being written leaves every RUN as it was
            lock = try_lock(path)
            if lock is None:
                raise UsageError(f"RUN {path} is being written by another process (fit, retrain or evaluate); "
                                 "clean it once that ends")
            locks.append(lock)
        out = []
        for path in paths:
            try:
                out.append((path, *remove_kept(path)))
            except OSError as e:
                raise UsageError(f"RUN {path}: cannot remove {e.filename or 'its .cache folder'}: "
                                 f"{e.strerror or e}") from None
        return out
    finally:
        for lock in locks:
            lock.release()


def compare_runs(a: str | Path, b: str | Path) -> dict[str, Any]:
    """Two runs side by side: config differences, final metrics per split with the delta, and
    status/epochs/best epoch. Returns the comparison (see `nettrain.report.compare.compare_runs`)."""
    from nettrain.report.compare import compare_runs as _compare

    return _compare(a, b)


def sweep(config: str | Path, overrides: Iterable[str] = (), *, trials: int | None = None,
          storage: str | None = None, study: str | None = None, jobs: int = 1, fail_under: Iterable[str] = (),
          say=None, live=None):
    """Search hyperparameters with Optuna: every trial a full run under the sweep folder; writes
    best.yaml, trials.json and plots/. `say(line)` gets one line per finished trial; `live(total)`,
    when given, is a context manager whose `say` and `watch` show the running trials instead (the
    CLI's live panel in a terminal). Returns a `SweepResult` with its checked `gates`; raises, the
    result attached, JobFailed when every trial run here failed and GateFailed when a `fail_under`
    gate misses on the best trial."""
    from nettrain.report.gates import parse_gates
    from nettrain.sweep import run as R

    gates = parse_gates(fail_under)
    p = R.plan(config, overrides, trials=trials, storage=storage, study=study, jobs=jobs)
    if live is not None:
        with live(p.trials) as view:
            result = R.run_sweep(p, say=view.say, watch=view.watch)
    else:
        result = R.run_sweep(p, say=say or (lambda line: None))
    try:
        R.check_trials(result)  # every trial run here failed: exit 1 with the first failure's message
        _sweep_gates(result, gates)
    except NettrainError as err:
        raise _attach(err, result) from None
    return result


def sweep_status(folder: str | Path | None = None, *, storage: str | None = None, study: str | None = None):
    """The trial table of a sweep (its folder, or `storage` and `study`), best first. Returns a `SweepResult`."""
    from nettrain.sweep import run as R

    return R.status(folder, storage=storage, study=study)


def _sweep_gates(result, gates) -> None:
    """`--fail-under METRIC=V` on the best trial: the sweep metric, or a final metric of its run
    (`test.accuracy`, or `accuracy` for the test split). Fills `result.gates`; GateFailed on a miss."""
    if not gates:
        return
    from nettrain.errors import GateFailed
    from nettrain.report.gates import check_gate_names
    from nettrain.report.tables import format_value

    if result.best is None:
        raise GateFailed("--fail-under: no trial completed, so no best trial to gate on")
    values: dict[str, float] = {result.metric: result.best["value"]}
    run = result.best.get("run_dir")
    metrics_file = Path(run) / "metrics.json" if run else None
    if metrics_file is not None and metrics_file.is_file():
        final = json.loads(metrics_file.read_text(encoding="utf-8"))
        for split, named in final.items():
            if isinstance(named, dict):
                for name, v in named.items():
                    if isinstance(v, (int, float)):
                        values[f"{split}.{name}"] = float(v)
                        if split == "test":
                            values.setdefault(name, float(v))
    check_gate_names(gates, values)
    missed = []
    for gate in gates:
        gate.value = values[gate.metric]
        if not gate.passed:
            missed.append(f"{gate.metric} {format_value(gate.value)}")
    result.gates = gates
    if missed:
        raise GateFailed(f"the best trial ({result.best['number']}) missed --fail-under: {', '.join(missed)}")


def inspect_model(target: str | Path, overrides: Iterable[str] = (), *, batch: int | None = None):
    """Variables, weight statistics, gradient norms, activation statistics and update sizes of a
    CONFIG's freshly initialized model (or a run's / .h5 file's trained one) on one batch of its
    training rows, with plain-words findings (vanishing or exploding gradients, dead or saturated
    units, initializers that do not fit the activation). Writes nothing. Returns an `InspectReport`."""
    from nettrain.lifecycle.inspect import inspect as _inspect

    return _inspect(target, overrides=overrides, batch=batch)


def lr_find(config: str | Path, overrides: Iterable[str] = (), *, min_lr: float = 1e-6, max_lr: float = 1.0,
            steps: int = 100, output: str | Path | None = None):
    """The learning-rate range test from CONFIG's initial weights: lr_find.csv and lr_find.png in
    `output` (default <output.dir>/<name>/lr-find-<time>/, never inside a run), and a suggested
    rate (steepest descent of the smoothed loss) with its reasoning. Returns an `LRFindResult`."""
    from nettrain.lifecycle.lrfind import check_range, lr_find as _lr_find

    check_range(min_lr, max_lr, steps)  # before the config and TensorFlow load
    return _lr_find(config, overrides, min_lr=min_lr, max_lr=max_lr, steps=steps, output=output)
