"""TARGET on the command line: a run directory or an .h5 file (from a run or copied away)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.data.types import FeatureSchema
from nettrain.errors import UsageError
from nettrain.store import h5, rundir


@dataclass
class Target:
    model_path: Path
    run_dir: Path | None          # the run the file belongs to, if any
    meta: dict[str, Any]          # nettrain metadata: features, config, epoch, run
    schema: FeatureSchema

    @property
    def features(self) -> dict[str, Any]:
        return self.meta["features"]

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def label_mode(self) -> str:
        return self.features.get("label_mode", "regression")

    @property
    def threshold(self) -> float:
        return float(self.features.get("threshold", 0.5))

    @property
    def epoch(self) -> int:
        return int(self.meta.get("epoch") or 0)


def owning_run(model_path: Path) -> Path | None:
    for candidate in (model_path.parent, model_path.parent.parent):
        if (candidate / rundir.RUN).is_file() and (candidate / rundir.CONFIG).is_file():
            if candidate == model_path.parent or model_path.parent.name == rundir.CHECKPOINTS:
                return candidate
    return None


def resolve_target(target: str | Path) -> Target:
    path = Path(target)
    if path.is_dir():
        model_path = path / rundir.MODEL
        if not (path / rundir.RUN).is_file():
            raise UsageError(f"{path} is not a run directory (no run.json); give a run directory or an .h5 file")
        if not model_path.is_file():
            raise UsageError(f"{path} has no {rundir.MODEL} (the run did not finish); "
                             f"use a checkpoint such as {path / rundir.CHECKPOINTS / 'last.h5'}")
    elif path.suffix == ".h5" or path.is_file():
        if not path.exists():
            raise UsageError(f"no such file or run directory: {path}")
        if path.suffix != ".h5":
            raise UsageError(f"{path} is neither a run directory nor an .h5 model file")
        model_path = path
    else:
        raise UsageError(f"no such run directory or .h5 file: {path}")
    meta = h5.read_meta(model_path)
    run = owning_run(model_path)
    if not meta.get("features") and run is not None:  # files written before metadata existed
        meta = {"features": json.loads((run / rundir.FEATURES).read_text()),
                "config": _yaml(run / rundir.CONFIG), "epoch": None}
    if not meta.get("features"):
        raise UsageError(f"{model_path} was not written by nettrain (no feature schema inside and no run "
                         "directory around it)")
    schema_fields = {k: v for k, v in meta["features"].items()
                     if k in FeatureSchema.__dataclass_fields__}
    return Target(model_path=model_path, run_dir=run, meta=meta, schema=FeatureSchema.from_dict(schema_fields))


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())
