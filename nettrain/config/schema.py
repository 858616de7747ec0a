"""The experiment config: one pydantic model per section, unknown keys refused.

Nothing here imports TensorFlow. Names that only Keras can judge (layer types and their
arguments, losses, optimizers, metrics) are checked against the Keras catalog snapshot in
`catalog.py` at validation time and against Keras itself when the model is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_serializer, field_validator,
                      model_validator)

from nettrain.config import env
from nettrain.config.args import (CODE_LAYERS, GENERATOR_ARGS, LAYER_ARG_SUFFIXES, LAYER_ARGS, LOSS_METRIC_ARGS,
                                  MAX_EPOCHS, MAX_GENERATED, MAX_INT, MAX_LAYERS, MAX_NAME, MAX_SEED, MAX_SIZE,
                                  OPTIMIZER_ARGS, ArgError, check_args, show)
from nettrain.config.sweep import SweepConfig
from nettrain.config.template import check_template
from nettrain.errors import ConfigError
from nettrain.words import masked_uri


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class WithArguments(BaseModel):
    """A mapping whose keys other than the fields are arguments passed on as written (`kwargs()`)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _count_or_word(v: Any, words: str, unit: str = "") -> Any:
    """A field that takes a word or a count: `v` when it is no integer or one in [1, MAX_INT]."""
    if isinstance(v, int) and not 1 <= v <= MAX_INT:
        raise ValueError(f"must be {words} or an integer in [1, {MAX_INT}]{unit}, got {show(v)}")
    return v


# ---------------------------------------------------------------------------------- data



class GeneratorSource(WithArguments):
    """`{generator: make_regression, n_samples: 200, ...}`: any argument of the sklearn function."""

    generator: Literal["make_regression", "make_classification", "make_blobs"]

    @model_validator(mode="after")
    def _arguments(self) -> "GeneratorSource":
        extra = self.__pydantic_extra__ or {}
        extra.update(check_args(extra, GENERATOR_ARGS))
        n, f = extra.get("n_samples", 100), extra.get("n_features", 2 if self.generator == "make_blobs" else 100)
        total = (sum(n) if isinstance(n, list) else n) * f if isinstance(f, int) else 0
        if total > MAX_GENERATED:
            raise ArgError(("n_samples",), f"n_samples x n_features = {total:,} values; at most "
                           f"{MAX_GENERATED:,} are allowed (use a data file for more)")
        return self


class SplitConfig(Section):
    test: float = Field(0.2, description="fraction held out for the final test (0 for none)")
    validation: float = Field(0.2, description="fraction of the remaining rows used for validation (0 for none)")
    shuffle: bool = Field(True, description="false keeps file order: the last rows are held out")
    stratify: bool | None = Field(None, description="default: true for classification")
    folds: int = Field(1, ge=1, le=MAX_INT, description="k > 1 runs k-fold cross-validation on the non-test rows")
    refit: bool = Field(False, description="with folds > 1: then train one model on all non-test rows for the mean "
                        "best epoch of the folds (the k-fold run's model.h5)")

    @field_validator("test", "validation")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"must be a fraction in [0, 1) (0 turns the split off), got {v!r}")
        return v

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> "SplitConfig":
        if (1 - self.test) * (1 - self.validation) <= 0:
            raise ValueError("test and validation fractions leave no training rows")
        return self

    @model_validator(mode="after")
    def _refit_needs_folds(self) -> "SplitConfig":
        if self.refit and self.folds <= 1:
            raise ArgError(("refit",), f"refit: true applies only to k-fold runs (data.split.folds > 1, here "
                           f"{self.folds}): it trains the final model on all non-test rows after the folds; "
                           "set folds to 2 or more, or remove refit")
        return self




class ColumnConfig(Section):
    type: Literal["numeric", "categorical", "text", "date"] = Field(
        description="numeric, categorical, text, or date (expanded into year, month, day, weekday and hour numbers)")
    max_tokens: int | None = Field(None, ge=2, le=MAX_INT, description="text: vocabulary size (default 10000)")
    output_mode: Literal["multi_hot", "count", "tf_idf", "int"] | None = Field(
        None, description="text: multi_hot (default), count, tf_idf or int token sequences")
    sequence_length: int | None = Field(None, ge=1, le=MAX_SIZE,
                                        description="text with output_mode int: pad/cut to this length")
    embedding_dim: int | None = Field(None, ge=1, le=MAX_SIZE,
                                      description="categorical: an embedding this wide (whatever preprocessing.categorical "
                                      "says); text with output_mode int: an Embedding after it")

    @model_validator(mode="after")
    def _text_only(self) -> "ColumnConfig":
        if self.type != "text":
            for key in ("max_tokens", "output_mode", "sequence_length"):
                if getattr(self, key) is not None:
                    raise ValueError(f"'{key}' applies only to columns of type text, this column is {self.type}")
        if self.type == "date" and self.embedding_dim is not None:
            raise ValueError("'embedding_dim' applies to categorical and text columns; a date column becomes numbers "
                             "(year, month, day, weekday, hour)")
        return self


IMAGE_COLORS = ("rgb", "grayscale")
IMAGE_BAD = ("error", "skip")
MAX_IMAGE_SIDE = 4096


class ImagesConfig(Section):
    """`data.images`: how the files of an image folder become model inputs (see data/images.py)."""

    size: list[int] = Field(default_factory=lambda: [256, 256],
                            description="[height, width] every image is resized to (bilinear)")
    color: Literal["rgb", "grayscale"] = Field("rgb", description="rgb: 3 channels, grayscale: 1 channel")
    bad: Literal["error", "skip"] = Field(
        "error", description="an unreadable image (truncated, not an image, an unconvertible mode): error (exit 2 "
        "naming it) or skip (left out, counted, the first few named on stderr)")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if not isinstance(v, list) or len(v) != 2 or not all(type(n) is int and 1 <= n <= MAX_IMAGE_SIDE for n in v):
            raise ValueError(f"must be [height, width], two integers in [1, {MAX_IMAGE_SIDE}], got {show(v)}")
        return v


class DataConfig(Section):
    source: str | GeneratorSource | None = Field(
        None, description="file (.csv .tsv .parquet .jsonl .npz), sklearn:NAME, keras:NAME or a generator mapping")
    target: str | None = Field(None, description="label column; optional for bundled sets and generators")
    features: list[str] | None = Field(None, description="input columns; default all but target and drop")
    drop: list[str] = Field(default_factory=list, description="columns ignored")
    id: str | None = Field(None, description="identifier column: never a feature, passed through by predict")
    columns: dict[str, ColumnConfig] = Field(default_factory=dict, description="per-column type overrides")
    task: Literal["auto", "regression", "binary", "multiclass"] = "auto"
    train: str | None = Field(None, description="separate training file instead of source + split")
    validation: str | None = Field(None, description="separate validation file")
    test: str | None = Field(None, description="separate test file")
    split: SplitConfig = Field(default_factory=SplitConfig)
    stream: Literal["auto", True, False] = Field(
        "auto", description="read CSV/TSV/Parquet in chunks with bounded memory; auto: when reading it whole "
        "would take more than half of the available memory (estimated from a sample of the file)")
    images: ImagesConfig | None = Field(None, description="an image folder (data.source: a folder with one "
                                        "sub-folder per class): size, color, bad; default {size: [256, 256], "
                                        "color: rgb, bad: error}")

    @model_validator(mode="after")
    def _images_need_a_folder(self) -> "DataConfig":
        import os

        if self.images is not None and not (isinstance(self.source, str) and os.path.isdir(self.source)):
            what = f"{self.source}, not a folder" if isinstance(self.source, str) else "not a folder"
            raise ArgError(("images",), "applies to an image folder (data.source: a folder with one sub-folder per "
                           f"class), and data.source is {what}")
        return self

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        if self.source is None and self.train is None:
            raise ValueError("give either 'source' (one dataset, split by ratio) or 'train' (separate files)")
        if self.source is not None and self.train is not None:
            raise ValueError("give 'source' or 'train', not both")
        return self


# ---------------------------------------------------------------------------- preprocessing

class PreprocessingConfig(Section):
    numeric: Literal["standard", "minmax", "none", "quantile", "piecewise", "auto"] = Field(
        "standard", description="numeric columns: standard (z-score), minmax, none, quantile (normal scores of the "
        "training distribution), piecewise (piecewise-linear encoding), auto (piecewise, with quantile scores for "
        "heavy-tailed columns)")
    categorical: Literal["one_hot", "embedding", "none"] = "one_hot"
    missing: Literal["error", "mean", "median", "most_frequent", "drop_rows"] = "error"
    labels: Literal["auto", "sparse", "one_hot"] = "auto"
    target: Literal["standard", "none"] = Field(
        "standard", description="regression: train on the z-scored target; metrics and predictions in the original "
        "units")


# ---------------------------------------------------------------------------------- model

class LayerSpec(WithArguments):
    """`{type: Dense, units: 64, ...}`: the other keys are the layer's constructor arguments."""

    type: str

    @model_validator(mode="after")
    def _arguments(self) -> "LayerSpec":
        extra = self.__pydantic_extra__ or {}
        extra.update(check_args(extra, LAYER_ARGS, suffixes=LAYER_ARG_SUFFIXES))
        return self

    @field_validator("type")
    @classmethod
    def _no_code(cls, v: str) -> str:
        if v in CODE_LAYERS:
            raise ValueError(f"layer type {v!r} runs arbitrary code and is refused; use built-in layers")
        return v


Initializer = Union[str, dict[str, Any]]


class ModelConfig(Section):
    layers: list[LayerSpec] = Field(
        default_factory=lambda: [LayerSpec(type="Dense", units=64, activation="relu")], max_length=MAX_LAYERS,
        description=f"the layer stack (at most {MAX_LAYERS} layers)")
    kernel_initializer: Initializer | None = Field(
        None, description="default initializer for every layer that takes one; a layer's own value wins")
    output: Literal["auto", "none"] | LayerSpec = Field(
        "auto", description="auto: head from the task; none: the stack already ends in it; or a layer")

    @field_validator("kernel_initializer")
    @classmethod
    def _finite_initializer(cls, v):
        return check_args(v, {}) if isinstance(v, dict) else v


# ------------------------------------------------------------------------------- training

NameOrMapping = Union[str, dict[str, Any]]


class TrainingConfig(Section):
    loss: NameOrMapping = Field("auto", description="Keras loss name or {name: huber, delta: 1.0}; auto from the task")
    optimizer: NameOrMapping = Field("adam", description="Keras optimizer name or {name: sgd, learning_rate: 0.01, ...}")
    metrics: Literal["auto"] | list[NameOrMapping] = Field("auto", description="Keras metric names or mappings")
    epochs: int = Field(20, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(32, ge=1, le=MAX_INT)
    class_weight: Literal["none", "balanced"] | dict[str | int, float] = "none"
    steps_per_execution: int | Literal["auto"] = Field(
        "auto", description="batches run per call into TensorFlow; auto picks up to 32 (faster on small models)")

    @field_validator("steps_per_execution")
    @classmethod
    def _positive(cls, v):
        return _count_or_word(v, "'auto'")

    @field_validator("loss", "optimizer")
    @classmethod
    def _named(cls, v, info):
        if isinstance(v, dict):
            if "name" not in v:
                raise ValueError("a mapping needs a 'name' key, e.g. {name: sgd, learning_rate: 0.01}")
            v = check_args(v, OPTIMIZER_ARGS if info.field_name == "optimizer" else LOSS_METRIC_ARGS)
        return v

    @field_validator("metrics")
    @classmethod
    def _named_metrics(cls, v):
        if isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict) and "name" not in item:
                    raise ValueError("a metric mapping needs a 'name' key, e.g. {name: auc, curve: PR}")
                if isinstance(item, dict):
                    v[i] = check_args(item, LOSS_METRIC_ARGS, prefix=(i,))
        return v

    @field_validator("class_weight")
    @classmethod
    def _weights(cls, v):
        if isinstance(v, dict):
            for label, weight in v.items():
                if weight < 0:
                    raise ArgError((label,), f"got {show(weight)}; a class weight is a number >= 0")
        return v


# ------------------------------------------------------------------------------ callbacks

class EarlyStoppingConfig(Section):
    monitor: str = "val_loss"
    patience: int = Field(0, ge=0, le=MAX_INT)
    min_delta: float = Field(0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = False
    baseline: float | None = None
    start_from_epoch: int = Field(0, ge=0, le=MAX_INT)


class CheckpointConfig(Section):
    enabled: bool = True
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    save_best_only: bool = False
    filename: str = "epoch{epoch:03d}.h5"
    keep: int | None = Field(5, ge=1, le=MAX_INT,
                             description="how many templated files to keep (newest); null keeps all")

    @field_validator("filename")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        # syntax and sample renderings here; the fields against the names the run can log in loader.py
        return check_template(v)


class StepDecay(Section):
    type: Literal["step_decay"]
    drop: float = Field(0.5, gt=0, le=1)
    every: int = Field(10, ge=1, le=MAX_INT)


class ExponentialDecay(Section):
    type: Literal["exponential"]
    decay_rate: float = Field(0.96, gt=0)
    decay_steps: int = Field(1000, ge=1, le=MAX_INT, description="optimizer steps (batches), as in Keras")
    staircase: bool = False


class CosineDecay(Section):
    type: Literal["cosine"]
    decay_steps: int | None = Field(None, ge=1, le=MAX_INT, description="optimizer steps; default: the whole run")
    alpha: float = Field(0.0, ge=0, le=1)


class WarmupCosine(Section):
    type: Literal["warmup_cosine"]
    warmup_epochs: int = Field(1, ge=0, le=MAX_EPOCHS)
    warmup_start: float = Field(0.0, ge=0, description="learning rate at the first step of warm-up")
    decay_steps: int | None = Field(None, ge=1, le=MAX_INT,
                                    description="optimizer steps after warm-up; default: the rest of the run")
    alpha: float = Field(0.0, ge=0, le=1)


class ReduceOnPlateau(Section):
    type: Literal["reduce_on_plateau"]
    monitor: str = "val_loss"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(10, ge=0, le=MAX_INT)
    min_lr: float = Field(0.0, ge=0)
    min_delta: float = Field(1e-4, ge=0)
    cooldown: int = Field(0, ge=0, le=MAX_INT)
    mode: Literal["auto", "min", "max"] = "auto"


LRSchedule = Annotated[
    Union[StepDecay, ExponentialDecay, CosineDecay, WarmupCosine, ReduceOnPlateau],
    Field(discriminator="type"),
]


class TensorBoardConfig(Section):
    histogram_freq: int = Field(0, ge=0, le=MAX_INT)
    update_freq: Literal["epoch", "batch"] | int = "epoch"
    write_graph: bool = False

    @field_validator("update_freq")
    @classmethod
    def _batches(cls, v):
        return _count_or_word(v, "epoch, batch", " (batches)")


class GradientStatsConfig(Section):
    every: int = Field(1, ge=1, le=MAX_INT, description="measure at the first epoch, then every N epochs")


class CallbacksConfig(Section):
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    lr_schedule: LRSchedule | None = None
    tensorboard: TensorBoardConfig | None = None
    terminate_on_nan: bool = True
    gradient_stats: GradientStatsConfig | None = Field(
        None, description="per-layer gradient norms on a fixed training batch into metrics.csv, TensorBoard and "
        "plots/gradients.png")

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _off(cls, v):
        if v is False or v is None:
            return {"enabled": False}
        if v is True:
            return {}
        return v


# -------------------------------------------------------------------------------- runtime

class RuntimeConfig(Section):
    device: str = Field("auto", description="auto, cpu, gpu or gpu:N")
    mixed_precision: Literal[False, "mixed_float16", "mixed_bfloat16"] = False
    deterministic: bool = True
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"
    devices: list[str] | None = Field(None, description="mirrored: the devices to train on ([gpu:0, gpu:1], or "
                                      "[cpu:0, cpu:1] to split the CPU into logical devices); default: all GPUs")
    worker_timeout: float | None = Field(None, gt=0, le=86400, description="multi_worker: seconds a process waits at "
                                         "the start for the others to start, and at one step for the others, before the "
                                         "run fails (a peer that dies is noticed sooner); default 600")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|gpu(:[0-9]{1,4})?", v):
            raise ValueError(f"must be auto, cpu, gpu or gpu:N, got {show(v)}")
        return v

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one device, e.g. [gpu:0, gpu:1], or leave the key out for all GPUs")
        for d in v:
            if not isinstance(d, str) or not re.fullmatch(r"(cpu|gpu):[0-9]{1,3}", d):
                raise ValueError(f"each device is cpu:N or gpu:N, got {show(d)}")
        if len({d.split(":")[0] for d in v}) > 1:
            raise ValueError(f"all cpu:N or all gpu:N, not both: {', '.join(v)}")
        if len(set(v)) != len(v):
            raise ValueError(f"a device is listed twice: {', '.join(v)}")
        return v

    @model_validator(mode="after")
    def _devices_need_mirrored(self) -> "RuntimeConfig":
        if self.devices is not None and self.distribute != "mirrored":
            raise ArgError(("devices",), f"is used by distribute: mirrored only (here distribute: {self.distribute}); "
                           "a multi_worker worker trains on all its GPUs, or its CPU")
        if self.devices is not None and self.device not in ("auto", self.devices[0][:3]):
            raise ArgError(("devices",), f"{', '.join(self.devices)} disagree with device: {self.device}; "
                           "leave device: auto when devices are given")
        return self


TRACKING_SCHEMES = ("file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")


MAX_TRACKING_TIMEOUT = 600


class TrackingConfig(Section):
    mlflow: str | None = Field(
        None, description="MLflow tracking URI (file:PATH, sqlite:///PATH, http(s)://HOST:PORT, ...): params, "
        "per-epoch metrics, final metrics, plots and model.h5 logged there; needs the mlflow extra; a password "
        "in it is never shown, stored or logged (written as user:***@)")
    timeout: float = Field(
        5.0, gt=0, le=MAX_TRACKING_TIMEOUT, description="seconds a tracking call may take before nettrain gives up "
        "on tracking (before training: exit 2; during training: training goes on, the failure is reported once)")

    @field_serializer("mlflow")
    def _no_password(self, v: str | None) -> str | None:
        """config.yaml, checkpoint metadata and MLflow params get the URI with its password masked."""
        return masked_uri(v) if v else v

    @field_validator("mlflow")
    @classmethod
    def _uri(cls, v: str | None, info: ValidationInfo) -> str | None:
        """A URI with a known scheme; a relative file:/sqlite: path is made absolute here, from the config
        file's folder (or the current directory for --set), as the paths of `data` are."""
        if v is None or v == "databricks":
            return v
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", v, flags=re.S)
        scheme = m.group(1).lower().split("+")[0] if m else None
        if scheme not in TRACKING_SCHEMES:
            raise ValueError(f"expected an MLflow tracking URI starting with one of "
                             f"{', '.join(s + ':' for s in TRACKING_SCHEMES)} (e.g. sqlite:///mlflow.db or "
                             f"http://localhost:5000), got {show(masked_uri(v))}")
        rest = m.group(2)
        if scheme in ("http", "https") and not re.fullmatch(r"//[^/\s?#]+.*", rest, flags=re.S):
            raise ValueError(f"an {scheme} URI needs a host, e.g. {scheme}://localhost:5000, got {show(masked_uri(v))}")
        if scheme in ("file", "sqlite"):
            source = (info.context or {}).get("source") if isinstance(info.context, dict) else None
            return _absolute_store_uri(scheme, rest, v, source)
        return v


def _absolute_store_uri(scheme: str, rest: str, v: str, source: "ConfigSource | None") -> str:
    """`sqlite:///rel.db`, `file:rel` -> the same URI with an absolute path (an absolute one is kept)."""
    import os
    from pathlib import Path

    if scheme == "sqlite":
        if not rest.startswith("///") or rest == "///" or rest.startswith("///:memory:"):
            raise ValueError(f"an MLflow sqlite URI names a database file: sqlite:///relative/path.db or "
                             f"sqlite:////absolute/path.db, got {show(v)}")
        path = rest[3:]
    else:
        path = rest[2:] if rest.startswith("///") else rest[11:] if rest.startswith("//localhost/") else rest
        if rest.startswith("//") and not rest.startswith(("///", "//localhost/")):
            raise ValueError(f"a file: URI names a local folder (file:relative/path or file:///absolute/path), "
                             f"got {show(v)}")
        if not path:
            raise ValueError(f"a file: URI needs a folder, e.g. file:mlruns, got {show(v)}")
    p = Path(os.path.expanduser(path))
    if not p.is_absolute():
        file = source.file_of("tracking.mlflow") if source is not None else None  # a base's own folder
        by_set = source is not None and source.override_of("tracking.mlflow") is not None
        base = Path(file).resolve().parent if file and file != "<config>" and not by_set else Path.cwd()
        p = base / p
    p = Path(os.path.normpath(p))
    return f"sqlite:///{p}" if scheme == "sqlite" else p.as_uri()


class OutputConfig(Section):
    dir: str = Field("runs", description="runs root: a run goes to <dir>/<name>/<YYYYmmdd-HHMMSS>")
    plots: bool = Field(True, description="write plots/ (learning curves, confusion matrix or predicted vs actual)")
    keras: bool = Field(False, description="also write model.keras (native Keras format, optimizer state included)")


# ---------------------------------------------------------------------------------- root

@dataclass(frozen=True)
class ConfigSource:
    """Where a loaded config came from, so every stage can point at the culprit: `cfg.source`.

    `load_config` fills it in (`Config.model_validate(data, context={"source": ...})` does too);
    a Config built in code has the empty one.
    """

    file: str | None = None
    """What messages name as the config: the YAML file, the model file a retrained or evaluated
    config was read from (`load_config(..., origin=...)`), "<config>" for data given without
    either, None for a Config built in code."""
    lines: Mapping[str, int] = field(default_factory=dict)
    """The YAML line of each dotted key path of the file (`"model.layers.0.units" -> 7`). Read only."""
    overrides: tuple[str, ...] = ()
    """The dotted key paths that `--set` arguments set, in order."""
    files: Mapping[str, str] = field(default_factory=dict)
    """The file that wrote each dotted key path written in another file than `file` (a base config
    reached through `extends:`). Read only."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The text as written of each dotted key path whose value came from `${env:NAME}`: what
    `Config.to_dict()` writes in place of the resolved value. Read only."""

    def file_of(self, path: str) -> str | None:
        """The file that wrote `path` (or the nearest section holding it that has a line)."""
        probe = path
        while probe:
            if probe in self.lines:
                return self.files.get(probe, self.file)
            probe = probe.rpartition(".")[0]
        return self.file

    def origin(self, path: str) -> str:
        """Where the value at `path` came from: `--set`, `FILE:LINE`, or `default`."""
        if self.override_of(path) is not None:
            return "--set"
        probe = path
        while probe:
            if probe in self.lines:
                # a key written as a scalar the schema turned into a mapping (optimizer: adam) is its own
                if probe == path or not any(k.startswith(probe + ".") for k in self.lines):
                    return f"{self.files.get(probe, self.file)}:{self.lines[probe]}"
                break
            probe = probe.rpartition(".")[0]
        return "default"

    def override_of(self, path: str) -> str | None:
        """The --set key path that set `path` (or a key inside it, or a section holding it), else None."""
        for o in self.overrides:
            if path == o or path.startswith(o + ".") or o.startswith(path + "."):
                return o
        return None

    def line_of(self, path: str) -> int | None:
        """The YAML line of `path`, or of the nearest section holding it that has one."""
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe.rpartition(".")[0]
        return None

    def error(self, path: str, message: str) -> ConfigError:
        """A ConfigError for the key `path` (dotted): the --set argument that set it, else the file and line."""
        o = self.override_of(path)
        if o is not None:
            return ConfigError(message + f" (set by --set {o}=...)", file=self.file, path=path)
        return ConfigError(message, file=self.file_of(path), path=path, line=self.line_of(path))


class Config(Section):
    name: str | None = Field(None, description="run name; default: the config file stem")
    seed: int = Field(42, ge=0, le=MAX_SEED)
    data: DataConfig
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    callbacks: CallbacksConfig = Field(default_factory=CallbacksConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    sweep: SweepConfig | None = Field(None, description="what `nettrain sweep` searches (other commands keep it as is)")
    plugins: list[str] = Field(
        default_factory=list, max_length=MAX_LAYERS,
        description="Python files (relative to the config) whose classes and functions decorated with "
        "@keras.saving.register_keras_serializable the config may name like built-in layers, losses, metrics, ...; "
        "a run keeps a copy of each, with its sha256")

    # Where the config came from (`source`): given at validation, never written afterwards.
    _source: ConfigSource = PrivateAttr(default_factory=ConfigSource)

    @property
    def source(self) -> ConfigSource:
        """Where this config came from: file, YAML lines, --set key paths (see ConfigSource)."""
        return self._source

    @model_validator(mode="after")
    def _take_source(self, info: ValidationInfo) -> "Config":
        source = (info.context or {}).get("source") if isinstance(info.context, dict) else None
        if source is not None:
            if not isinstance(source, ConfigSource):
                raise TypeError(f"the validation context's source must be a ConfigSource, got {type(source).__name__}")
            self._source = source
        return self

    def error(self, path: str, message: str) -> ConfigError:
        """A ConfigError for the key `path` (dotted), with the file and line it came from."""
        return self._source.error(path, message)

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError(f"use letters, digits, '.', '_' and '-' only (it names a folder), got {show(v)}")
        if v is not None and len(v) > MAX_NAME:
            raise ValueError(f"at most {MAX_NAME} characters (it names a folder), got {len(v)}: {show(v)}")
        return v

    @field_validator("plugins")
    @classmethod
    def _plugin_paths(cls, v: list[str], info: ValidationInfo) -> list[str]:
        """Each plugin a .py file, made absolute from the folder of the config that lists it (the
        current directory for --set), as the paths of `data` are."""
        import os
        from pathlib import Path

        source = (info.context or {}).get("source") if isinstance(info.context, dict) else None
        file = source.file_of("plugins") if source is not None else None
        by_set = source is not None and source.override_of("plugins") is not None
        base = Path(file).resolve().parent if file and file != "<config>" and not by_set and \
            Path(file).suffix in (".yaml", ".yml") else Path.cwd()
        out = []
        for i, item in enumerate(v):
            if not item.endswith(".py"):
                raise ArgError((i,), f"a plugin is a Python file (.py), got {show(item)}")
            p = Path(os.path.expanduser(item))
            out.append(os.path.normpath(p if p.is_absolute() else base / p))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data with every default filled in (what config.yaml in a run holds)."""
        out = self.model_dump(mode="json", exclude_none=False)
        env.write_back(out, self._source.env)  # a resolved ${env:...} never leaves memory
        return out

