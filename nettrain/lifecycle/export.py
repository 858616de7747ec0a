"""`nettrain export`: a trained model for other runtimes, verified before it is reported written.

The exported model takes the raw columns by name, one named input per column of the data (a
numeric column float32, a categorical or text column a string; the preprocessing inside, the
fill values of missing numbers too), or for a run trained on an .npz archive one input `x` of
the array's own row shape (an image stays H x W x C), or for an image folder's run one input `x`
of its images' pixels (0..255, H x W x C as data.images says; the rescaling is inside). It returns
named outputs: `probabilities` (one column per class, in `classes` order) and, where the format
carries strings, `class` (the class name); for regression `value`, in the target's own units.

Formats (Keras's own exporters; TensorFlow is imported only here):

| format      | written                                  | reloaded with for the check      | carries  |
|-------------|------------------------------------------|----------------------------------|----------|
| savedmodel  | `<out>/1/saved_model.pb` (TF Serving)    | `tf.saved_model.load`            | all      |
| onnx        | `<out>/model.onnx` (tf2onnx, extra onnx) | onnxruntime                      | numbers  |
| litert      | `<out>/model.tflite`                     | the LiteRT interpreter           | numbers  |
| keras       | `<out>/model.keras` (`keras.saving`)     | `keras.saving.load_model`        | all      |

Every folder also holds `export.json` (format, inputs, outputs, classes, the check's figures)
and `features.json` (the feature schema, so that `nettrain predict` reads a file for it), with the
run's `signature.json` (the input contract `predict` checks new rows against) when it has one.

The model is written into a temporary folder beside the output, reloaded with its own runtime and
compared with the run's model on held-out rows (the run's test split, else validation, else
train); only then is the folder renamed into place (the model and its files: `writers`). A yes/no
column (1/0 for the network) is a string input of the formats that carry strings, its words looked
up inside the model (`rawinputs.yes_no_values`). A date column (its parts made before the model)
is a string input of savedmodel alone: its serving function makes the parts with TensorFlow's
string ops (`rawinputs.date_parts`, `writers._dated_savedmodel`). What a format cannot carry (a
string or yes/no column in onnx or litert, a date column but in savedmodel, mixed precision in
onnx) is refused before anything is written. After an export of a run's model a record is
appended to the run's `exports.json`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.errors import UsageError
from nettrain.lifecycle.rawinputs import date_parts, servable_date  # noqa: F401 - date_parts: also export's
from nettrain.lifecycle.target import Target, resolve_target
from nettrain.lifecycle.writers import FILES, STRINGS, VERSION, served_model, serving_name, write
from nettrain.store import atomic, rundir
from nettrain.words import ascii_name, first_line, list_names

FORMATS = ("savedmodel", "onnx", "litert", "keras")
INFO = "export.json"
EXPORTS = rundir.EXPORTS                   # the run's list of verified exports
ROWS = 256                                 # held-out rows compared
TOLERANCE = {"savedmodel": 1e-4, "onnx": 1e-4, "keras": 1e-4, "litert": 1e-3}
# A model of runtime.mixed_precision computes its layers in 16 bits: two runtimes (or a graph and an
# eager call) may round its products differently by about that type's precision (bfloat16 keeps 8
# bits of mantissa, float16 11), so its export is held to this instead where it is larger.
MIXED_TOLERANCE = {"mixed_bfloat16": 2e-2, "mixed_float16": 4e-3}
ONNX_EXTRA = "pip install 'nettrain[onnx]' (tf2onnx and onnxruntime)"


@dataclass
class ExportResult:
    """What `export` wrote and how well the reloaded model agreed with the run's."""

    format: str
    path: Path                             # the export folder
    model_path: Path                       # what a runtime loads: the version folder or the model file
    source: Path                           # the .h5 file exported
    run_dir: Path | None
    inputs: list[dict[str, Any]]
    outputs: list[str]
    classes: list[str] | None
    max_abs_diff: float
    max_scaled_diff: float                 # the difference held to the tolerance (`compare`)
    rows_compared: int
    split: str
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": str(self.path), "model_path": str(self.model_path),
                "source": str(self.source), "run_dir": str(self.run_dir) if self.run_dir else None,
                "inputs": self.inputs, "outputs": self.outputs, "classes": self.classes,
                "max_abs_diff": self.max_abs_diff, "max_scaled_diff": self.max_scaled_diff,
                "rows_compared": self.rows_compared, "split": self.split,
                "seconds": round(self.seconds, 3), "notes": self.notes}


# ------------------------------------------------------------------------------ the plan

@dataclass
class Plan:
    """The exported model's inputs and outputs, decided from the feature schema before TF loads."""

    format: str
    numeric: list[str]                     # numeric columns, in the model's numeric-input order
    strings: list[tuple[str, str]]         # (column, kind) of the categorical and text columns
    image: tuple[int, ...] | None          # the row shape of an .npz run's x, its one input `x`
    imputation: dict[str, float]
    mode: str                              # binary, multiclass, regression
    threshold: float
    classes: list[str] | None
    # a numeric column made from a yes/no column (`data.typing`): its raw column and (yes word, no word)
    words: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # a numeric column made from a date column (savedmodel only): (its raw column, the date format, the part)
    dates: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # an image folder's model: its images' `size` [height, width] and `color`; `image` is (h, w, channels)
    pixels: dict[str, Any] | None = None
    # the input name of each column where `serving_name` alone would give two that differ only in case
    names: dict[str, str] = field(default_factory=dict)

    def serving(self, column: str) -> str:
        """The exported model's input name of a column (`serving_name`, made unique regardless of case)."""
        return self.names.get(column) or serving_name(column)

    @property
    def outputs(self) -> list[str]:
        if self.mode == "regression":
            return ["value"]
        return ["probabilities", "class"] if self.format in STRINGS else ["probabilities"]

    def inputs(self) -> list[dict[str, Any]]:
        """The exported model's inputs: `name` (`serving_name` of the column), the `column` it takes, dtype, shape."""
        if self.pixels is not None:  # pixels 0..255 of images resized to `size` (the model rescales them)
            return [{"name": "x", "dtype": "float32", "shape": [None, *self.image], "kind": "image", **self.pixels}]
        if self.image is not None:
            return [{"name": "x", "dtype": "float32", "shape": [None, *self.image]}]
        numbers: list[dict[str, Any]] = []
        for c in self.numeric:
            if c in self.words:
                numbers.append({"name": self.serving(self.words[c][0]), "column": self.words[c][0], "dtype": "string",
                                "shape": [None], "kind": "yes/no", "words": list(self.words[c][1:]), "numeric": c})
            elif c in self.dates:  # one string input per date column, at its first part; its parts in order
                raw, fmt, _ = self.dates[c]
                if not any(i.get("kind") == "date" and i["column"] == raw for i in numbers):
                    numbers.append({"name": self.serving(raw), "column": raw, "dtype": "string", "shape": [None],
                                    "kind": "date", "format": fmt,
                                    "parts": {d: part for d, (r, _, part) in self.dates.items() if r == raw}})
            else:
                numbers.append({"name": self.serving(c), "column": c, "dtype": "float32", "shape": [None]})
        return numbers + [{"name": self.serving(c), "column": c, "dtype": "string", "shape": [None], "kind": k}
                          for c, k in self.strings]


def check_format(fmt: str) -> str:
    name = (fmt or "").strip().lower()
    if name not in FORMATS:
        raise UsageError(f"--format {fmt!r}: unknown export format; allowed: {', '.join(FORMATS)}")
    return name


def plan_for(target: Target, fmt: str) -> Plan:
    """What the export of `target` takes and gives in `fmt`, or a UsageError naming what `fmt` cannot carry."""
    from nettrain.data.images import ImageSpec, is_image_model

    if _precision(target) and fmt == "onnx":
        raise UsageError("the model computes in mixed precision (runtime.mixed_precision: true) and onnx export "
                         "needs float32 layers; formats that can carry it: savedmodel, keras, litert")
    classes = list(target.schema.class_names) if target.schema.class_names else None
    if is_image_model(target):  # one input: the images' pixels
        spec = ImageSpec.of(((target.config or {}).get("data") or {}).get("images"))
        return Plan(format=fmt, numeric=[], strings=[], image=spec.shape, imputation={}, mode=target.label_mode,
                    threshold=target.threshold, classes=classes,
                    pixels={"size": list(spec.size), "color": spec.color})
    schema = target.schema
    words, dates = {}, {}
    for column in schema.columns:
        origin = column.origin
        if origin is None:
            continue
        raw = origin.get("column", column.name)
        if origin.get("type") == "boolean" and fmt in STRINGS:  # yes/no words: a lookup inside the model
            words[column.name] = (raw, str(origin["true"]), str(origin["false"]))
        elif origin.get("type") == "boolean":
            raise UsageError(f"column '{raw}' holds yes/no words (a string input) and {fmt} cannot carry string "
                             f"inputs; formats that can: {', '.join(STRINGS)}")
        elif fmt == "savedmodel" and servable_date(origin.get("format")):
            dates[column.name] = (raw, str(origin["format"]), str(origin["part"]))
        else:
            can = "savedmodel" if servable_date(origin.get("format")) else "none"
            raise UsageError(f"column '{raw}' is a date that nettrain turns into numbers before the model "
                             f"({column.name}), and {fmt} cannot carry that step (formats that can: {can}; "
                             "savedmodel parses dates of one format without a UTC offset): predict with the run, "
                             "or train on numeric columns made beforehand")
    for raw in {r for r, _, _ in dates.values()}:
        have = {part for r, _, part in dates.values() if r == raw}
        if not {"year", "month", "day"} <= have:  # the parts the strings are written again from (served.feed_of)
            raise UsageError(f"column '{raw}' is a date of which the model takes only {', '.join(sorted(have))}; "
                             "savedmodel export needs its year, month and day: predict with the run")
    strings = [(c.name, c.kind) for c in schema.other_columns]
    if strings and fmt not in STRINGS:
        name, kind = strings[0]
        raise UsageError(f"column '{name}' is {kind} (a string input) and {fmt} cannot carry string inputs; "
                         f"formats that can: {', '.join(STRINGS)}")
    numeric = schema.numeric_columns
    image = _image_shape(target, numeric) if not strings else None
    imputation = {}
    for name in numeric:
        fill = schema.imputation.get(name)
        if fill is not None:
            imputation[name] = float(fill)
    mode = target.label_mode
    names = case_safe([*numeric, *(raw for raw, _, _ in words.values()), *(raw for raw, _, _ in dates.values()),
                       *(name for name, _ in strings)])
    return Plan(format=fmt, numeric=numeric, strings=strings, image=image, imputation=imputation, mode=mode,
                threshold=target.threshold, classes=classes, words=words, dates=dates, names=names)


def case_safe(columns: list[str]) -> dict[str, str]:
    """{column: input name} for the columns whose `serving_name`s differ only in case (`x` and `X`): a
    SavedModel's signature takes its argument names in lower case, and refused two named `x`. The one
    written in lower case (else the first in order) keeps its name; each other gets the hash tag of its
    column, as `serving_name` gives it to names it changes (`X_<6 hex digits>`)."""
    groups: dict[str, list[str]] = {}
    for column in dict.fromkeys(columns):
        groups.setdefault(serving_name(column).lower(), []).append(column)
    out: dict[str, str] = {}
    for group in (g for g in groups.values() if len(g) > 1):
        keep = min(group, key=lambda c: (serving_name(c) != serving_name(c).lower(), c))
        out.update({c: f"{serving_name(c)}_{ascii_name(c)[1]}" for c in group if c != keep})
    return out


def _image_shape(target: Target, numeric: list[str]) -> tuple[int, ...] | None:
    """The row shape of x in the run's .npz archive when its rows are more than a vector and the model
    reads every value of them (columns x0..xN in order); else None (one input per column)."""
    data = (target.config or {}).get("data") or {}
    source = data.get("source") or data.get("train")
    if not isinstance(source, str) or not source.lower().endswith(".npz"):
        return None
    shape = _npz_row_shape(Path(source))
    if shape is None or len(shape) < 2 or math.prod(shape) != len(numeric):
        return None
    if numeric != [f"x{i}" for i in range(len(numeric))]:
        return None
    return shape


def _npz_row_shape(path: Path) -> tuple[int, ...] | None:
    """The shape of one row of x in an .npz archive (a vector's too), from the array's header alone."""
    from nettrain.data.sources import npz_x_shape

    shape = npz_x_shape(path)
    return shape[1:] if shape is not None and len(shape) > 1 else None


# ------------------------------------------------------------------------------ where it goes

def default_output(target: Target, fmt: str) -> Path:
    if target.run_dir is None:
        raise UsageError(f"{target.model_path} is not inside a run directory, so there is no default export "
                         "folder; give one with --output DIR")
    base = target.run_dir / rundir.EXPORT_DIR
    if target.model_path == target.run_dir / rundir.MODEL:
        return base / fmt
    return base / f"{target.model_path.stem}-{fmt}"


def check_output(target: Target, output: str | Path | None, fmt: str, force: bool) -> Path:
    """The export folder: the default inside the run, or --output (outside any run but this one);
    an existing non-empty folder only with --force."""
    from nettrain.store.paths import check_output_path, run_dir_above

    if output is None:
        path, named = default_output(target, fmt), "the export folder"
    else:
        path, named = Path(output), f"--output {output}"
        own = target.run_dir is not None and run_dir_above(path.parent if not path.exists() else path)
        inside_own = bool(own) and Path(own) == target.run_dir.resolve()
        if not inside_own:
            check_output_path(path, writer="export", wanted="a folder", kind="folder", force=force)
    try:
        if path.exists() and not path.is_dir():
            raise UsageError(f"{named} {path} is a file; give a folder")
        if path.is_dir() and any(path.iterdir()):
            shown = named if output is not None else f"{named} {path}"
            if not force:
                raise UsageError(f"{shown} already exists and is not empty; choose another folder with "
                                 "--output, or replace it with --force")
            if not (path / INFO).is_file():  # a run directory, its checkpoints, a folder of the user's files
                what = "is a run directory" if (path / rundir.RUN).is_file() else \
                    f"holds files that are not a nettrain export (no {INFO})"
                raise UsageError(f"{shown} {what}; --force replaces only an earlier export: choose "
                                 "another folder with --output")
    except OSError as e:
        raise UsageError(f"{named} {path}: cannot use this path: {e.strerror or e}") from None
    return path


def _onnx_ready() -> None:
    import importlib.util

    missing = [m for m in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"--format onnx needs the optional extra 'onnx' ({', '.join(missing)} not installed): "
                         f"{ONNX_EXTRA}")


# ------------------------------------------------------------------------------ export

def export(target_path: str | Path, *, fmt: str = "savedmodel", output: str | Path | None = None,
           force: bool = False) -> ExportResult:
    """Export the model of a run directory or .h5 file as `fmt` (see the module docstring)."""
    started = time.monotonic()
    fmt = check_format(fmt)
    target = resolve_target(target_path)
    plan = plan_for(target, fmt)
    out = check_output(target, output, fmt, force)
    if target.run_dir is not None and rundir.is_being_written(target.run_dir):
        raise UsageError(f"{target.run_dir} is being written by another nettrain process (one writer per run); "
                         "export its model when that has finished")
    if fmt == "onnx":
        _onnx_ready()
    from nettrain.lifecycle import served

    rows, split = held_out(target)
    model = _load(target)
    reference = served.reference_outputs(target, model, rows, plan)
    wrapper = served_model(model, plan)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{atomic.TEMP_MARK}", dir=out.parent))
    try:
        write(wrapper, plan, tmp, served.feed_of(rows, plan, limit=8))
        info = {"format": fmt, "inputs": plan.inputs(), "outputs": plan.outputs, "classes": plan.classes,
                "label_mode": plan.mode, "threshold": plan.threshold, "source": str(target.model_path),
                "model": VERSION if fmt == "savedmodel" else FILES[fmt]}
        atomic.write_json(tmp / "features.json", target.features)
        if target.run_dir is not None and (target.run_dir / rundir.SIGNATURE).is_file():
            # the input contract travels with the model: predict checks new rows against it
            shutil.copyfile(target.run_dir / rundir.SIGNATURE, tmp / rundir.SIGNATURE)
        if fmt == "keras" and (target.config or {}).get("plugins"):
            # model.keras loads once its plugins are imported: the code `_load` imported from the run's
            # copies goes into the export's plugins/, its sha256 into export.json (`served.load` reads them)
            from nettrain.store import plugins

            info["plugins"] = plugins.keep_copies(tmp, target.config["plugins"])
        atomic.write_json(tmp / INFO, info)
        loaded = served.load(tmp, info)
        got = served.run(loaded, served.feed_of(rows, plan))
        diff, scaled = compare(reference, got, plan)
        tolerance = tolerance_for(fmt, target)
        if not scaled <= tolerance:
            of_size = f", {scaled:.3g} of the values' size" if scaled != diff else ""
            raise UsageError(f"the {fmt} export disagrees with the run's model on {rows_count(rows)} held-out rows "
                             f"(max difference {diff:.3g}{of_size} > {tolerance:g}); nothing was written")
        info.update(max_abs_diff=diff, max_scaled_diff=scaled, tolerance=tolerance, rows_compared=rows_count(rows),
                    split=split, written_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        atomic.write_json(tmp / INFO, info)
        _into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    model_path = out / (VERSION if fmt == "savedmodel" else FILES[fmt])
    result = ExportResult(format=fmt, path=out, model_path=model_path, source=target.model_path,
                          run_dir=target.run_dir, inputs=plan.inputs(), outputs=plan.outputs, classes=plan.classes,
                          max_abs_diff=diff, max_scaled_diff=scaled, rows_compared=rows_count(rows), split=split,
                          seconds=time.monotonic() - started)
    if target.run_dir is not None:
        record(target.run_dir, result, info["written_at"])
        result.notes.extend(_model_card(target.run_dir))
    return result


def tolerance_for(fmt: str, target: Target) -> float:
    """The largest difference an export of `fmt` may show against the run's model (MIXED_TOLERANCE)."""
    return max(TOLERANCE[fmt], MIXED_TOLERANCE.get(_precision(target) or "", 0.0))


def _precision(target: Target) -> str | None:
    """The model's runtime.mixed_precision policy (`mixed_bfloat16`, `mixed_float16`), None for float32."""
    policy = ((target.config or {}).get("runtime") or {}).get("mixed_precision")
    return policy if isinstance(policy, str) and policy else None


def _load(target: Target):
    from nettrain.lifecycle.target import load_model

    return load_model(target)


def held_out(target: Target):
    """Up to ROWS rows of the run's test split (else validation, else train), as one Split."""
    from nettrain.data.types import Split
    from nettrain.lifecycle.runrows import run_split_rows

    last: UsageError | None = None
    for split in ("test", "validation", "train"):
        try:
            rows = run_split_rows(target, split)
            first = next(iter(rows))
        except UsageError as e:
            last = e
            continue
        n = min(ROWS, len(first))
        take = getattr(first, "take", None)
        part = take(np.arange(n)) if take is not None else first
        assert isinstance(part, Split)
        return part, split
    raise UsageError(f"{target.model_path}: no held-out rows of its run to check the export against: "
                     f"{first_line(last) if last else 'no data'}")


def rows_count(split) -> int:
    return int(len(split))


def compare(reference: dict[str, np.ndarray], got: dict[str, np.ndarray], plan: Plan) -> tuple[float, float]:
    """(the largest absolute difference of the numeric outputs, the largest difference scaled by the
    size of the run's value where it is above 1: |a - b| / max(1, |a|)), the second the one held to the
    tolerance: float32 keeps about 7 digits, so a regression value of 2e6 differs by 0.06 between two
    runtimes that round once differently. A class name that differs where the probabilities are not
    tied is an infinite difference."""
    diff = scaled = 0.0
    for name in plan.outputs:
        if name not in got:
            raise UsageError(f"the {plan.format} export gives no output '{name}' (it gives "
                             f"{list_names(sorted(got))}); nothing was written")
        if name == "class":
            continue
        a = np.asarray(reference[name], dtype=np.float64).reshape(len(reference[name]), -1)
        b = np.asarray(got[name], dtype=np.float64).reshape(len(got[name]), -1)
        if a.shape != b.shape:
            return math.inf, math.inf
        if a.size:
            apart = np.abs(a - b)
            diff = max(diff, float(np.max(apart)))
            scaled = max(scaled, float(np.max(apart / np.maximum(1.0, np.abs(a)))))
    if "class" in plan.outputs and "probabilities" in reference:
        names = np.asarray(plan.classes, dtype=object)[np.argmax(reference["probabilities"], axis=1)]
        top = np.sort(reference["probabilities"], axis=1)
        clear = top[:, -1] - top[:, -2] > 1e-5 if top.shape[1] > 1 else np.ones(len(top), bool)
        have = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(got["class"])], object)
        if np.any((have != names) & clear):
            return math.inf, math.inf
    return diff, scaled


def _into_place(tmp: Path, out: Path) -> None:
    """Rename the verified folder to `out`; an existing `out` (--force) is moved aside first and
    removed once the new one is in place."""
    aside = None
    if out.exists():
        aside = out.parent / f".{out.name}{atomic.TEMP_MARK}old-{os.getpid()}"
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(out, aside)
    try:
        os.replace(tmp, out)
    except OSError:
        if aside is not None:
            os.replace(aside, out)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


# ------------------------------------------------------------------------------ the run's records

def record(run_dir: Path, result: ExportResult, written_at: str) -> None:
    """Append the export to the run's exports.json (written atomically)."""
    path = run_dir / EXPORTS
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(entries, list):
            entries = []
    except (OSError, ValueError):
        entries = []
    try:
        shown = str(result.path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        shown = str(result.path.resolve())
    entries.append({"format": result.format, "path": shown, "max_abs_diff": result.max_abs_diff,
                    "rows_compared": result.rows_compared, "written_at": written_at})
    atomic.write_json(path, entries)


def _model_card(run_dir: Path) -> list[str]:
    """Refresh the run's model card when the report module that writes it is installed."""
    import importlib

    try:
        card = importlib.import_module("nettrain.report.modelcard")
    except ImportError:
        return []
    write = getattr(card, "write_model_card", None)
    if write is None:
        return []
    try:
        write(run_dir)
    except Exception as e:  # noqa: BLE001 - the export itself is written and verified
        return [f"the model card was not updated: {first_line(e)[:200]}"]
    return []
