"""Config schema and loader (no TensorFlow)."""

from nettrain.config.loader import load_config
from nettrain.config.overrides import parse_override
from nettrain.config.schema import Config, ConfigSource

__all__ = ["Config", "ConfigSource", "load_config", "parse_override"]
