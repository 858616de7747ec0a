"""Keras model building: preprocessing layers, the layer stack, the head, compile by name."""

from nettrain.model.build import build_model, model_summary
from nettrain.model.compile import (class_weights, compile_model, encode_targets, initial_learning_rate,
                                    label_mode, metric_names, output_activation_kind)

__all__ = ["build_model", "model_summary", "compile_model", "encode_targets", "label_mode", "metric_names",
           "class_weights", "initial_learning_rate", "output_activation_kind"]
