"""`nettrain validate CONFIG --print-config [--origins]`: the resolved config as YAML.

The text is the run's config.yaml (`Config.to_dict()`: defaults filled, paths resolved, `extends:`
and --set applied, a `${env:...}` value as its reference); with `origins` every value carries a
comment saying where it came from: `# FILE:LINE`, `# --set` or `# default`. No TensorFlow here.
"""

from __future__ import annotations

from typing import Any

import yaml

from nettrain.config.schema import Config


def config_yaml(cfg: Config, origins: bool = False) -> str:
    """The resolved config as YAML; with `origins`, each value's source as a comment beside it."""
    data = cfg.to_dict()
    if not origins:
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    out: list[str] = []
    _mapping(data, (), 0, cfg, out)
    return "\n".join(out) + "\n"


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _origin(cfg: Config, path: tuple) -> str:
    return "  # " + cfg.source.origin(".".join(str(p) for p in path))


def _leaf(value: Any) -> bool:
    return not isinstance(value, (dict, list)) or not value


def _mapping(data: dict, path: tuple, indent: int, cfg: Config, out: list[str], first: str | None = None) -> None:
    pad = " " * indent
    for i, (key, value) in enumerate(data.items()):
        lead = first if first is not None and i == 0 else pad
        here = path + (key,)
        if _leaf(value):
            out.append(f"{lead}{_scalar(key)}: {_scalar(value)}{_origin(cfg, here)}")
        else:
            out.append(f"{lead}{_scalar(key)}:")
            _block(value, here, indent + 2, cfg, out)


def _block(value: Any, path: tuple, indent: int, cfg: Config, out: list[str]) -> None:
    if isinstance(value, dict):
        _mapping(value, path, indent, cfg, out)
        return
    pad = " " * indent
    for i, item in enumerate(value):
        here = path + (i,)
        if _leaf(item):
            out.append(f"{pad}- {_scalar(item)}{_origin(cfg, here)}")
        elif isinstance(item, dict):
            _mapping(item, here, indent + 2, cfg, out, first=f"{pad}- ")
        else:
            out.append(f"{pad}-")
            _block(item, here, indent + 2, cfg, out)
