"""The command line: parse arguments, call one library function, show its result, map errors to exit codes.

Results are drawn by `nettrain.render` (tables, or one JSON line with --json); `--set`, `--json`
and `--debug` are declared once here. Nothing here imports TensorFlow; `nettrain.api` imports it
lazily, only in commands that train or load a model.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperCommand

from nettrain import __version__, render
from nettrain.errors import EXIT_FAILED, EXIT_INTERRUPTED, NettrainError
from nettrain.store import guard


class _Command(TyperCommand):
    """Help that names arguments and option values as users type them (`CONFIG`, `RUN...`,
    `--set KEY=VALUE`), not Typer's `{config}`, `<path>` or `<list[str]>`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:  # a parameter without its own metavar is named after itself
            flag = param.param_type_name == "option" and (getattr(param, "is_flag", False)
                                                          or getattr(param, "count", False))
            if param.metavar is None and not flag:
                param.metavar = (param.name or "value").upper()

    @staticmethod
    def _argument_name(param) -> str:
        name = param.metavar or (param.name or "value").upper()
        return name if param.nargs == 1 or name.endswith("...") else name + "..."

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = self._argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx, formatter):
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((self._argument_name(param), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class _App(typer.Typer):
    """Every command gets `_Command`'s help formatting."""

    def command(self, *args, **kwargs):
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _App(
    add_completion=True,  # nettrain --install-completion / --show-completion SHELL
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Train Keras neural networks from YAML experiment specs.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,  # tracebacks only with --debug, never with local variables
)

SET_HELP = "Override a config key by dotted path, e.g. --set training.epochs=5 (VALUE is YAML). Repeatable."
DEBUG_OPTION = typer.Option(False, "--debug", help="Show the full traceback of an error, for bug reports "
                            "(also NETTRAIN_DEBUG=1).")
FIT_JSON_HELP = ("Print one JSON object on stdout: run_dir, the files written and the final metrics per split; "
                 "progress goes to stderr.")


def _set_option(extra: str = ""):
    """`--set KEY=VALUE` (repeatable); `extra` says what it may change in this command."""
    return typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP + extra)


def _json_option(what: str):
    """`--json`: the result as one JSON line on stdout (`nettrain.render.print_json`); `what` says what it holds."""
    return typer.Option(False, "--json", help=what)


def _debugging(flag: bool) -> bool:
    return flag or os.environ.get("NETTRAIN_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _own_line(code: int) -> str:
    """After Ctrl-C the terminal shows ^C where the cursor was: start the message on a new line."""
    return "\n" if code == EXIT_INTERRUPTED and sys.stderr.isatty() else ""


def _run(name: str, *args, debug: bool = False, show=None, **kwargs):
    """Call `nettrain.api.<name>` and `show` its result, turning every error into one message and
    an exit code.

    A user mistake (NettrainError) prints its message, after showing the result it carries (the
    tables of a missed gate); anything else is an internal error: one line and exit 1, the
    traceback only with --debug. The api is imported inside, so a signal that arrives while it
    loads is reported like any other.
    """
    debug = _debugging(debug)
    try:
        from nettrain import api

        result = getattr(api, name)(*args, **kwargs)
        if show is not None:
            show(result)
        return result
    except NettrainError as err:
        if show is not None and getattr(err, "result", None) is not None:
            show(err.result)
        if debug:
            traceback.print_exc()
        typer.echo(_own_line(err.exit_code) + f"error: {err.message}", err=True)
        if err.exit_code == EXIT_INTERRUPTED:
            guard.tell()
        raise typer.Exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo(_own_line(EXIT_INTERRUPTED) + "interrupted", err=True)
        guard.tell()
        raise typer.Exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        raise  # the reader of stdout went away: Typer ends quietly
    except Exception as err:  # noqa: BLE001 - the one place that turns a bug into a message
        if guard.interrupted() and not debug:  # a signal cut an import or a set-up, which then failed half-made
            typer.echo(_own_line(EXIT_INTERRUPTED) + "interrupted", err=True)
            guard.tell()
            raise typer.Exit(EXIT_INTERRUPTED)
        if debug:
            traceback.print_exc()
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        typer.echo(f"error: internal error: {type(err).__name__}{': ' + first[:300] if first else ''}"
                   + ("" if debug else " (run with --debug for details)"), err=True)
        raise typer.Exit(EXIT_FAILED)


def _version(value: bool):
    if value:
        typer.echo(f"nettrain {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """Train Keras neural networks from YAML experiment specs."""


@app.command()
def fit(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Experiment spec (YAML)."),
    set_: Optional[List[str]] = _set_option(),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", metavar="DIR", help="Write the run here instead of <output.dir>/<name>/<time>."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="RUN_DIR", help="Continue an interrupted run from its last complete epoch."),
    force: bool = typer.Option(False, "--force", help="With --resume: continue even if the config or data changed. "
                               "With --run-dir: replace the nettrain run there (nothing else is ever replaced)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="One plain line per epoch, no progress bars."),
    as_json: bool = _json_option(FIT_JSON_HELP),
    worker: Optional[int] = typer.Option(None, "--worker", metavar="I", help="With --workers: this machine is worker I "
                                         "of the list (0, the chief, writes the run). Sets TF_CONFIG and "
                                         "runtime.distribute: multi_worker."),
    workers: Optional[str] = typer.Option(None, "--workers", metavar="HOST:PORT,...", help="Every worker's address, "
                                          "the same list on every machine (see --worker)."),
    baseline: bool = typer.Option(False, "--baseline", help="After training, fit gradient boosting and a linear "
                                  "model on the same rows (scikit-learn): their metrics beside the network's in "
                                  "the table, and baseline.json in the run (see nettrain baseline)."),
    debug: bool = DEBUG_OPTION,
):
    """Train a model from CONFIG and write a run directory."""
    _run("fit", config, overrides=set_ or [], run_dir=run_dir, resume=resume, quiet=quiet or as_json,
         json_output=as_json, force=force, worker=worker, workers=workers, baseline=baseline, debug=debug,
         show=lambda result: render.show_fit(result, as_json))


@app.command()
def retrain(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT_OR_RUN", help="A run directory (its model.h5) or any .h5 checkpoint."),
    epochs: Optional[int] = typer.Option(None, "--epochs", metavar="N", help="How many more epochs (default: the config's training.epochs)."),
    set_: Optional[List[str]] = _set_option(" Training keys only: the architecture is kept."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="FILE", help="Train on this data file instead of the run's data."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", metavar="DIR", help="Write a new run directory here instead of continuing the run in place."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="One plain line per epoch, no progress bars."),
    as_json: bool = _json_option(FIT_JSON_HELP),
    debug: bool = DEBUG_OPTION,
):
    """Continue training from an .h5 checkpoint for N more epochs, optimizer state included."""
    _run("retrain", checkpoint, epochs=epochs, overrides=set_ or [], data=data, run_dir=run_dir,
         quiet=quiet or as_json, json_output=as_json, debug=debug, show=lambda result: render.show_fit(result, as_json))


@app.command()
def validate(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Experiment spec (YAML)."),
    set_: Optional[List[str]] = _set_option(),
    build: bool = typer.Option(False, "--build", help="Also load the data, build the model and print its summary (imports TensorFlow)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML (defaults filled, paths resolved, extends and --set applied): the run's config.yaml."),
    origins: bool = typer.Option(False, "--origins", help="With --print-config: each value's source beside it (# FILE:LINE, # --set or # default)."),
    debug: bool = DEBUG_OPTION,
):
    """Check CONFIG without training (and without TensorFlow unless --build)."""
    text = _run("validate", config, overrides=set_ or [], build=build, print_config=print_config,
                origins=origins, debug=debug)
    typer.echo(text)


@app.command()
def evaluate(
    target: Path = typer.Argument(..., metavar="TARGET", help="A run directory or an .h5 model file."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="FILE", help="Evaluate on this data file instead of the run's own data."),
    split: Optional[str] = typer.Option(None, "--split", metavar="SPLIT", help="Which part of the run's data: test (default), validation or train."),
    as_json: bool = _json_option("Print every metric as one JSON object on stdout."),
    fail_under: Optional[List[str]] = typer.Option(None, "--fail-under", metavar="METRIC=VALUE", help="METRIC=VALUE: exit 3 when METRIC misses VALUE (a lower bound; an upper bound for loss-like metrics). Repeatable."),
    strict: bool = typer.Option(False, "--strict", help="With --data: exit 2 before measuring when the file's rows drift from the run's training rows (signature.json)."),
    debug: bool = DEBUG_OPTION,
):
    """Measure a trained model on its test split (or another split, or a data file)."""
    _run("evaluate", target, data=data, split=split, fail_under=fail_under or [], strict=strict,
         notify=lambda line: typer.echo(line, err=True), debug=debug,
         show=lambda result: render.show_evaluate(result, as_json))


@app.command()
def baseline(
    target: Path = typer.Argument(..., metavar="CONFIG|RUN", help="A config (YAML) or a run directory (its rows, "
                                  "and its network's metrics beside the baselines)."),
    set_: Optional[List[str]] = _set_option(" With a CONFIG only."),
    as_json: bool = _json_option("Print one JSON object on stdout: every model's metrics per split."),
    debug: bool = DEBUG_OPTION,
):
    """Gradient boosting and a linear model on the same rows and splits as the network (scikit-learn)."""
    _run("baseline", target, overrides=set_ or [], debug=debug,
         show=lambda result: render.show_baseline(result, as_json))


@app.command()
def predict(
    target: Path = typer.Argument(..., metavar="TARGET", help="A run directory or an .h5 model file."),
    input: Path = typer.Argument(..., metavar="INPUT", help="Rows to predict (.csv .tsv .parquet .jsonl); for an "
                                 "image model an image folder, an image file or a .txt list of image files."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the predictions to this .csv or .parquet file instead of stdout."),
    proba: bool = typer.Option(False, "--proba", help="Add one proba_<class> column per class (classification)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 2 before predicting anything when INPUT drifts from the run's training rows (signature.json)."),
    debug: bool = DEBUG_OPTION,
):
    """Predict the rows of INPUT; labels come back as the original class names."""
    # without --output the CSV goes to stdout chunk by chunk, as the predictions are made
    written = _run("predict", target, input, output=output, proba=proba, to=None if output else sys.stdout,
                   strict=strict, notify=lambda line: typer.echo(line, err=True), debug=debug)
    if output is not None:
        typer.echo(f"wrote {written.rows} predictions to {output}", err=True)


@app.command()
def export(
    target: Path = typer.Argument(..., metavar="RUN_OR_H5", help="A run directory or an .h5 model file."),
    format_: str = typer.Option("savedmodel", "--format", metavar="FORMAT", help="savedmodel (TF Serving "
                                "layout <DIR>/1/), onnx (needs the extra 'onnx'), litert or keras."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="DIR", help="Write the export into DIR "
                                          "(default: <run>/export/<format>/)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing, non-empty DIR (after the new export "
                               "is verified)."),
    as_json: bool = _json_option("Print one JSON object on stdout: the folder, inputs, outputs and the check "
                                 "(max_abs_diff, rows_compared)."),
    debug: bool = DEBUG_OPTION,
):
    """Export a trained model for TF Serving, onnxruntime, LiteRT or Keras, verified on held-out rows."""
    _run("export", target, format=format_, output=output, force=force, debug=debug,
         show=lambda result: render.show_export(result, as_json))


@app.command()
def schema(debug: bool = DEBUG_OPTION):
    """Print the JSON Schema of the config, for editors."""
    typer.echo(json.dumps(_run("schema", debug=debug), indent=2))


@app.command()
def init(
    data: Path = typer.Argument(..., metavar="DATA", help="A data file (.csv .tsv .parquet .jsonl), or an image "
                                "folder (one sub-folder per class): a small CNN config."),
    target: Optional[str] = typer.Option(None, "--target", "-t", metavar="COLUMN", help="The label column (a "
                                         "data file; an image folder's classes are its sub-folders)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the config to FILE "
                                          "(.yaml) instead of stdout; its data path is then relative to FILE's folder."),
    force: bool = typer.Option(False, "--force", help="With --output: replace an existing FILE."),
    test: Optional[Path] = typer.Option(None, "--test", metavar="FILE", help="A file of test rows: the config "
                                        "names it as data.test (DATA as data.train) and takes no test split from "
                                        "DATA, only validation rows."),
    debug: bool = DEBUG_OPTION,
):
    """Print (or write) a starting config for a dataset."""
    text = _run("init_config", data, target, output=output, force=force, test=test,
                notify=lambda line: typer.echo(line, err=True), debug=debug)
    if output is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"wrote {output}; check it with: nettrain validate {output}", err=True)


@app.command()
def runs(
    directory: Path = typer.Argument(Path("runs"), metavar="DIR", help="Runs root to list.", show_default=True),
    as_json: bool = _json_option("Print the runs as one JSON array on stdout (path, name, status, times, epochs, "
                                 "best epoch, the listed metrics and their split, final_metrics)."),
    sort: Optional[str] = typer.Option(None, "--sort", metavar="METRIC", help="Sort by METRIC, best first (higher is "
                                       "better for accuracy-like metrics, lower for loss-like ones): a listed metric "
                                       "(accuracy), val_loss, or SPLIT.METRIC (test.accuracy). Runs without it last."),
    filter_: Optional[List[str]] = typer.Option(None, "--filter", metavar="KEY=VALUE", help="Only runs whose run.json "
                                                "field KEY equals VALUE, e.g. status=completed, name=iris, task=binary "
                                                "(dotted keys for nested fields). Repeatable: all must match."),
    last: Optional[int] = typer.Option(None, "--last", metavar="N", help="Only the N newest runs (taken after "
                                       "--filter, then sorted by --sort)."),
    debug: bool = DEBUG_OPTION,
):
    """Table of runs and their final metrics, newest first."""
    _run("list_runs", directory, sort=sort, filters=filter_ or [], last=last, debug=debug,
         show=lambda listing: render.show_runs(listing, as_json))


@app.command()
def plot(
    runs: List[Path] = typer.Argument(..., metavar="RUN...", help="One or more run directories."),
    metric: str = typer.Option("loss", "--metric", "-m", metavar="METRIC", help="What to plot: a metrics.csv column "
                               "(loss, accuracy, mae, ...) drawn for train and validation, or val_METRIC for "
                               "validation only."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="The PNG to write (default "
                                          "./learning-curves.png); never inside a run directory."),
    debug: bool = DEBUG_OPTION,
):
    """Learning curves of one or more runs overlaid in one PNG, best epochs marked."""
    path = _run("plot_runs", runs, metric=metric, output=output, debug=debug)
    from nettrain.report.compare import curve_runs

    drawn = sum(len(curve_runs(r)) for r in runs)  # a k-fold run draws its folds
    typer.echo(f"wrote {path} ({metric}, {drawn} run{'s' if drawn != 1 else ''})")


@app.command()
def clean(
    runs: List[Path] = typer.Argument(..., metavar="RUN...", help="One or more run directories."),
    debug: bool = DEBUG_OPTION,
):
    """Remove the prepared rows a streamed run keeps for evaluate (RUN/.cache/); the run stays whole."""
    for run, files, size in _run("clean", runs, debug=debug):
        typer.echo(f"{run}: removed {files} file{'s' if files != 1 else ''} ({size / 2**20:.1f} MB) of kept rows"
                   if files else f"{run}: no kept rows")


@app.command()
def compare(
    run_a: Path = typer.Argument(..., metavar="RUN", help="The first run directory (A)."),
    run_b: Path = typer.Argument(..., metavar="RUN", help="The second run directory (B)."),
    as_json: bool = _json_option("Print the comparison as one JSON object on stdout."),
    debug: bool = DEBUG_OPTION,
):
    """Two runs side by side: config differences, final metrics with deltas, epochs and status."""
    _run("compare_runs", run_a, run_b, debug=debug, show=lambda result: render.show_compare(result, as_json))


@app.command()
def sweep(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Experiment spec (YAML) with a sweep section."),
    trials: Optional[int] = typer.Option(None, "--trials", metavar="N", help="Total trials across all workers "
                                         "(default: sweep.trials)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL", help="Optuna storage shared by the "
                                          "workers: sqlite:///FILE or postgresql+psycopg://USER@HOST/DB "
                                          "(default: sweep.storage, else sqlite in the sweep folder)."),
    study: Optional[str] = typer.Option(None, "--study", metavar="NAME", help="Study name (default: the config's "
                                        "name). The same command again continues it."),
    jobs: int = typer.Option(1, "--jobs", "-j", metavar="N", help="Trial processes to run at once on this machine."),
    set_: Optional[List[str]] = _set_option(),
    as_json: bool = _json_option("Print the trial table as one JSON object on stdout."),
    fail_under: Optional[List[str]] = typer.Option(None, "--fail-under", metavar="METRIC=VALUE", help="Exit 3 when "
                                                   "the best trial misses VALUE: the sweep metric, or a final "
                                                   "metric of its run (test.accuracy). Repeatable."),
    debug: bool = DEBUG_OPTION,
):
    """Search hyperparameters with Optuna; every trial is a full run. Writes best.yaml and plots."""
    _run("sweep", config, overrides=set_ or [], trials=trials, storage=storage, study=study, jobs=jobs,
         fail_under=fail_under or [], live=_live_view(), say=lambda line: typer.echo(line, err=True), debug=debug,
         show=lambda result: render.show_sweep(result, as_json))


def _live_view():
    """In a terminal (not CI, not NO_COLOR): the sweep's live panel of running trials, on stderr."""
    if not sys.stderr.isatty() or os.environ.get("CI") or os.environ.get("NO_COLOR"):
        return None
    from nettrain.report.sweep import LiveView

    return LiveView


@app.command("sweep-status")
def sweep_status(
    folder: Optional[Path] = typer.Argument(None, metavar="DIR", help="A sweep folder (<output.dir>/<name>/sweep)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL", help="The study's storage instead of "
                                          "a folder."),
    study: Optional[str] = typer.Option(None, "--study", metavar="NAME", help="The study's name (default: the "
                                        "folder's, or the only one in the storage)."),
    as_json: bool = _json_option("Print the trial table as one JSON object on stdout."),
    debug: bool = DEBUG_OPTION,
):
    """The trials of a sweep so far, best first (while it runs, too)."""
    _run("sweep_status", folder, storage=storage, study=study, debug=debug,
         show=lambda result: render.show_sweep(result, as_json))


@app.command()
def inspect(
    target: Path = typer.Argument(..., metavar="CONFIG|RUN|MODEL", help="A config (its freshly initialized "
                                  "model), a run directory or an .h5 model file (the trained model)."),
    batch: Optional[int] = typer.Option(None, "--batch", metavar="N", help="Rows of training data to measure on "
                                        "(default: training.batch_size, at least 256)."),
    set_: Optional[List[str]] = _set_option(" With a CONFIG only."),
    as_json: bool = _json_option("Print one JSON object on stdout: layers, variables, findings."),
    debug: bool = DEBUG_OPTION,
):
    """Variables, gradients, activations and update sizes on one batch, with findings in plain words."""
    _run("inspect_model", target, overrides=set_ or [], batch=batch, debug=debug,
         show=lambda report: render.show_inspect(report, as_json))


@app.command("lr-find")
def lr_find(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Experiment spec (YAML)."),
    min_lr: float = typer.Option(1e-6, "--min", metavar="LR", help="The first learning rate.", show_default=True),
    max_lr: float = typer.Option(1.0, "--max", metavar="LR", help="The last learning rate.", show_default=True),
    steps: int = typer.Option(100, "--steps", metavar="N", help="Training steps (batches) from --min to --max.",
                              show_default=True),
    set_: Optional[List[str]] = _set_option(),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="DIR", help="Folder for lr_find.csv and "
                                          "lr_find.png (default <output.dir>/<name>/lr-find-<time>; never in a run)."),
    as_json: bool = _json_option("Print the suggestion and the files as one JSON object."),
    debug: bool = DEBUG_OPTION,
):
    """Learning-rate range test from the initial weights; suggests a rate (steepest descent of the loss)."""
    _run("lr_find", config, overrides=set_ or [], min_lr=min_lr, max_lr=max_lr, steps=steps, output=output,
         debug=debug, show=lambda result: render.show_lr_find(result, as_json))


def _warning_line(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Run the command line (the console script enters through `nettrain.__main__`, which installs
    the signal handlers first)."""
    if os.environ.get("NO_COLOR") or os.environ.get("CI"):
        os.environ.setdefault("TERM", "dumb")
    warnings.formatwarning = _warning_line  # one line per warning, no source excerpt
    app(prog_name="nettrain")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
