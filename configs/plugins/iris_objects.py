"""Custom Keras objects for configs/iris-plugins.yaml: a layer, a loss and a metric.

Each is registered with `keras.saving.register_keras_serializable`, so a config names it like a
built-in (`GatedDense`, `SmoothedCrossentropy`, `confidence`) and a saved model loads again once
this file is imported. nettrain reads the names without importing the file (`validate`), imports
it when the model is built, and keeps a copy with its sha256 in the run (runs/<name>/.../plugins/).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="iris_objects")
class GatedDense(keras.layers.Layer):
    """A dense layer whose outputs are each scaled by a learned sigmoid gate (a GLU)."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        width = input_shape[-1]
        self.kernel = self.add_weight(shape=(width, 2 * self.units), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(2 * self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        h = ops.matmul(inputs, self.kernel) + self.bias
        return self.activation(h[..., : self.units]) * ops.sigmoid(h[..., self.units:])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="iris_objects")
class SmoothedCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy against one-hot labels smoothed towards the uniform distribution."""

    def __init__(self, smoothing=0.1, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        classes = ops.cast(ops.shape(y_true)[-1], y_pred.dtype)
        y = ops.cast(y_true, y_pred.dtype) * (1.0 - self.smoothing) + self.smoothing / classes
        return keras.losses.categorical_crossentropy(y, y_pred)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}


@keras.saving.register_keras_serializable(package="iris_objects")
def confidence(y_true, y_pred):
    """The probability the model gives its predicted class (a metric: higher is surer)."""
    return ops.max(y_pred, axis=-1)
