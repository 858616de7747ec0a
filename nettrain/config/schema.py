"""The experiment config: one pydantic model per section, unknown keys refused.

The root (`Config`, and `ConfigSource`: where a loaded config came from) and the smaller sections
are here; the larger sections have a module each: `data.py`, `callbacks.py` and `sweep.py`, their
bases `section.py`.

Nothing here imports TensorFlow. Names that only Keras can judge (layer types and their
arguments, losses, optimizers, metrics) are checked against the Keras catalog snapshot in
`catalog.py` at validation time and against Keras itself when the model is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Union

from pydantic import Field, PrivateAttr, ValidationInfo, field_serializer, field_validator, model_validator

from nettrain.config import env
from nettrain.config.args import (CODE_LAYERS, LAYER_ARG_SUFFIXES, LAYER_ARGS, LOSS_METRIC_ARGS, MAX_EPOCHS, MAX_INT,
                                  MAX_LAYERS, MAX_NAME, MAX_SEED, OPTIMIZER_ARGS, ArgError, check_args, show)
from nettrain.config.callbacks import CallbacksConfig
from nettrain.config.data import DataConfig
from nettrain.config.section import Section, WithArguments, count_or_word
from nettrain.config.sweep import SweepConfig
from nettrain.errors import ConfigError
from nettrain.words import masked_uri


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
        return count_or_word(v, "'auto'")

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

