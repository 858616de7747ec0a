"""The `data` section of the config: where the rows come from (a file, a bundled set, a generator, an
image folder), which columns are what, and how the rows are split.

One pydantic model per mapping, unknown keys refused (`section.py`); the root `Config` in `schema.py`
holds it. Nothing here imports TensorFlow, nor reads the data.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from nettrain.config.args import GENERATOR_ARGS, MAX_GENERATED, MAX_INT, MAX_SIZE, ArgError, check_args, show
from nettrain.config.section import Section, WithArguments


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
    members: int | None = Field(None, ge=1, le=MAX_INT,
                                description="with folds > 1: train only the first m of the k fold models (default: "
                                            "all k); each still trains on k-1 folds and validates on its own")
    refit: bool | Literal["ensemble"] = Field(
        False, description="with folds > 1, the k-fold run's model.h5: true trains one model on all non-test rows "
                           "for the mean best epoch of the folds; ensemble averages the fold models' predictions")

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
            raise ArgError(("refit",), f"refit: {str(self.refit).lower()} applies only to k-fold runs "
                           f"(data.split.folds > 1, here {self.folds}): it makes the final model out of the folds; "
                           "set folds to 2 or more, or remove refit")
        return self

    @model_validator(mode="after")
    def _members_of_folds(self) -> "SplitConfig":
        if self.members is not None and (self.folds <= 1 or self.members > self.folds):
            raise ArgError(("members",), f"members: {self.members} counts fold models to train, from 1 to "
                           f"data.split.folds ({self.folds}); "
                           + ("set folds to 2 or more, or remove members" if self.folds <= 1
                              else f"use at most {self.folds}, or raise folds"))
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
