"""Keras model building: preprocessing layers, the layer stack, the head, compile by name.

Import the modules themselves (`nettrain.model.build`, `nettrain.model.compile`): this package imports
nothing, so that a module of it that needs no Keras (`outputs`: the classes from a served model's
probabilities) is imported without TensorFlow.
"""
