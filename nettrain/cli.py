"""The command line: parse arguments, call one library function, print, map errors to exit codes.

Nothing here imports TensorFlow; `nettrain.api` imports it lazily, only in commands that train
or load a model.
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

from nettrain import __version__
from nettrain.errors import EXIT_FAILED, EXIT_INTERRUPTED, NettrainError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Train Keras neural networks from YAML experiment specs.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,  # tracebacks only with --debug, never with local variables
)

SET_HELP = "Override a config key by dotted path, e.g. --set training.epochs=5 (VALUE is YAML). Repeatable."
DEBUG_OPTION = typer.Option(False, "--debug", help="Show the full traceback of an error, for bug reports "
                            "(also NETTRAIN_DEBUG=1).")


def _debugging(flag: bool) -> bool:
    return flag or os.environ.get("NETTRAIN_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _run(fn, *args, debug: bool = False, **kwargs):
    """Call a library function, turning every error into one message and an exit code.

    A user mistake (NettrainError) prints its message; anything else is an internal error: one
    line and exit 1, the traceback only with --debug.
    """
    debug = _debugging(debug)
    try:
        return fn(*args, **kwargs)
    except NettrainError as err:
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {err.message}", err=True)
        raise typer.Exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        raise  # the reader of stdout went away: Typer ends quietly
    except Exception as err:  # noqa: BLE001 - the one place that turns a bug into a message
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
    config: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Write the run here instead of <output.dir>/<name>/<time>."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run from its last complete epoch."),
    force: bool = typer.Option(False, "--force", help="With --resume: continue even if the config or data changed. "
                               "With --run-dir: replace the nettrain run there (nothing else is ever replaced)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="One plain line per epoch, no progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print only the final metrics as one JSON object on stdout."),
    debug: bool = DEBUG_OPTION,
):
    """Train a model from CONFIG and write a run directory."""
    from nettrain import api

    result = _run(api.fit, config, overrides=set_ or [], run_dir=run_dir, resume=resume,
                  quiet=quiet or as_json, json_output=as_json, force=force, debug=debug)
    if as_json:
        typer.echo(json.dumps(result.metrics, sort_keys=True))


@app.command()
def retrain(
    checkpoint: Path = typer.Argument(..., help="A run directory (its model.h5) or any .h5 checkpoint."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="How many more epochs (default: the config's training.epochs)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP + " Training keys only: the architecture is kept."),
    data: Optional[Path] = typer.Option(None, "--data", help="Train on this data file instead of the run's data."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Write a new run directory here instead of continuing the run in place."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="One plain line per epoch, no progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print only the final metrics as one JSON object on stdout."),
    debug: bool = DEBUG_OPTION,
):
    """Continue training from an .h5 checkpoint for N more epochs, optimizer state included."""
    from nettrain import api

    result = _run(api.retrain, checkpoint, epochs=epochs, overrides=set_ or [], data=data, run_dir=run_dir,
                  quiet=quiet or as_json, json_output=as_json, debug=debug)
    if as_json:
        typer.echo(json.dumps(result.metrics, sort_keys=True))


@app.command()
def validate(
    config: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    build: bool = typer.Option(False, "--build", help="Also load the data, build the model and print its summary (imports TensorFlow)."),
    debug: bool = DEBUG_OPTION,
):
    """Check CONFIG without training (and without TensorFlow unless --build)."""
    from nettrain import api

    text = _run(api.validate, config, overrides=set_ or [], build=build, debug=debug)
    typer.echo(text)


@app.command()
def evaluate(
    target: Path = typer.Argument(..., help="A run directory or an .h5 model file."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate on this data file instead of the run's own data."),
    split: Optional[str] = typer.Option(None, "--split", help="Which part of the run's data: test (default), validation or train."),
    as_json: bool = typer.Option(False, "--json", help="Print every metric as one JSON object on stdout."),
    fail_under: Optional[List[str]] = typer.Option(None, "--fail-under", help="METRIC=VALUE: exit 3 when METRIC misses VALUE (a lower bound; an upper bound for loss-like metrics). Repeatable."),
    debug: bool = DEBUG_OPTION,
):
    """Measure a trained model on its test split (or another split, or a data file)."""
    from nettrain import api

    _run(api.evaluate, target, data=data, split=split, fail_under=fail_under or [], json_output=as_json,
         debug=debug)


@app.command()
def predict(
    target: Path = typer.Argument(..., help="A run directory or an .h5 model file."),
    input: Path = typer.Argument(..., help="Rows to predict (.csv .tsv .parquet .jsonl)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the predictions to this .csv or .parquet file instead of stdout."),
    proba: bool = typer.Option(False, "--proba", help="Add one proba_<class> column per class (classification)."),
    debug: bool = DEBUG_OPTION,
):
    """Predict the rows of INPUT; labels come back as the original class names."""
    from nettrain import api

    frame = _run(api.predict, target, input, output=output, proba=proba, debug=debug)
    if output is None:
        typer.echo(frame.to_csv(index=False), nl=False)
    else:
        typer.echo(f"wrote {len(frame)} predictions to {output}", err=True)


@app.command()
def schema(debug: bool = DEBUG_OPTION):
    """Print the JSON Schema of the config, for editors."""
    from nettrain import api

    typer.echo(json.dumps(_run(api.schema, debug=debug), indent=2))


@app.command()
def init(
    data: Path = typer.Argument(..., help="A data file (.csv .tsv .parquet .jsonl)."),
    target: str = typer.Option(..., "--target", "-t", help="The label column."),
    debug: bool = DEBUG_OPTION,
):
    """Print a starting config for a dataset."""
    from nettrain import api

    typer.echo(_run(api.init_config, data, target, debug=debug), nl=False)


@app.command()
def runs(directory: Path = typer.Argument(Path("runs"), help="Runs root to list."),
         debug: bool = DEBUG_OPTION):
    """Table of runs and their final metrics."""
    from nettrain import api

    _run(api.list_runs, directory, debug=debug)


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
