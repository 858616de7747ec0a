"""nettrain: train Keras models from YAML experiment specs."""

__version__ = "0.1.0"
