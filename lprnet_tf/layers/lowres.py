"""Layers of the low-resolution models: per-slot dense heads (``multitask-lowres-lpr.md`` §2.1) and
the residual block of the MTGAN generator (``mtgan.md``, "a hierarchy of K residual blocks").
Backend-neutral: ``keras.ops`` and ``keras.layers`` only."""

from __future__ import annotations

import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="lprnet_tf")
class SlotDense(layers.Layer):
    """One fully-connected layer per character slot, computed as one batched product.

    ``multitask-lowres-lpr.md`` §2.1: "each task contains additional two fully-connected layers";
    Table 1 gives them 512 neurons ("Non-shared FCs") and the alphabet size ("Output layers"). Slot
    ``s`` has its own kernel ``(D, units)`` and bias, exactly as ``slots`` separate ``Dense`` layers,
    but the ``slots`` products run as one einsum instead of ``slots`` small matmuls.

    Input ``(B, D)`` (every slot reads the same shared features) or ``(B, slots, D)`` (slot ``s``
    reads row ``s``) -> output ``(B, slots, units)``. Each slot's kernel is Glorot-uniform over its
    own fan-in/fan-out, as a ``Dense`` layer's would be.
    """

    def __init__(self, slots: int, units: int, activation=None, **kwargs):
        super().__init__(**kwargs)
        if int(slots) < 1 or int(units) < 1:
            raise ValueError(f"SlotDense needs slots >= 1 and units >= 1, got {slots}, {units}")
        self.slots, self.units = int(slots), int(units)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        if len(input_shape) == 3 and input_shape[1] != self.slots:
            raise ValueError(f"SlotDense({self.slots}): a 3-D input must have {self.slots} slots, got {input_shape}")
        d = int(input_shape[-1])
        limit = math.sqrt(6.0 / (d + self.units))  # Glorot uniform of one (D, units) kernel
        self.kernel = self.add_weight(name="kernel", shape=(self.slots, d, self.units),
                                      initializer=keras.initializers.RandomUniform(-limit, limit))
        self.bias = self.add_weight(name="bias", shape=(self.slots, self.units), initializer="zeros")
        self.built = True

    def call(self, x):
        if len(x.shape) == 2:
            y = ops.einsum("bd,sdu->bsu", x, self.kernel)  # (B, S, units)
        else:
            y = ops.einsum("bsd,sdu->bsu", x, self.kernel)  # (B, S, units)
        return self.activation(y + self.bias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.slots, self.units)

    def get_config(self):
        return {**super().get_config(), "slots": self.slots, "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="lprnet_tf")
class ResidualBlock(layers.Layer):
    """Residual block of the MTGAN generator (``mtgan.md``: "a hierarchy of K residual blocks").

    The poster does not draw the block; we use the SRResNet form: 3x3 conv, batch norm, ReLU, 3x3
    conv, batch norm, plus the input. Input ``(B, H, W, C)`` -> output ``(B, H, W, C)`` with
    ``C = filters``.
    """

    def __init__(self, filters: int = 64, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.conv1 = layers.Conv2D(self.filters, self.kernel_size, padding="same", use_bias=False, name="conv1")
        self.bn1 = layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name="bn1")
        self.conv2 = layers.Conv2D(self.filters, self.kernel_size, padding="same", use_bias=False, name="conv2")
        self.bn2 = layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name="bn2")

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(f"ResidualBlock({self.filters}): input has {input_shape[-1]} channels; the skip "
                             f"connection needs {self.filters}")
        shape = tuple(input_shape)
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, x, training=None):
        y = ops.relu(self.bn1(self.conv1(x), training=training))  # (B, H, W, C)
        y = self.bn2(self.conv2(y), training=training)  # (B, H, W, C)
        return x + y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}
