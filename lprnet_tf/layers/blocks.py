"""Building blocks of LPRNet (``papers/lprnet.md``): small basic block, channel max-pooling and the
per-sample global context. Backend-neutral: ``keras.ops`` and ``keras.layers`` only."""

from __future__ import annotations

import keras
from keras import layers, ops


def conv_bn_relu(filters, kernel_size, strides=1, padding="same", name=None):
    """Convolution followed by batch normalization and ReLU, as after every convolution in the paper."""
    return keras.Sequential(
        [
            layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False),
            layers.BatchNormalization(momentum=0.9, epsilon=1e-3),
            layers.ReLU(),
        ],
        name=name,
    )


@keras.saving.register_keras_serializable(package="lprnet_tf")
class SmallBasicBlock(layers.Layer):
    """Small basic block, ``lprnet.md`` Table 2.

    1x1 conv to C_out/4, 3x1 conv (pad h), 1x3 conv (pad w), 1x1 conv to C_out; every convolution is
    followed by batch normalization and ReLU ("BN and ReLU after each convolution", §3.1).
    Input ``(B, H, W, C_in)`` -> output ``(B, H, W, C_out)``.
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        if filters % 4:
            raise ValueError(f"SmallBasicBlock filters must be divisible by 4, got {filters}")
        self.filters = int(filters)
        q = self.filters // 4
        self.convs = [
            conv_bn_relu(q, (1, 1), name="squeeze"),
            conv_bn_relu(q, (3, 1), name="conv3x1"),
            conv_bn_relu(q, (1, 3), name="conv1x3"),
            conv_bn_relu(self.filters, (1, 1), name="expand"),
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.built = True

    def call(self, x, training=None):
        for conv in self.convs:  # (B, H, W, C/4) ... (B, H, W, C_out)
            x = conv(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="lprnet_tf")
class ChannelMaxPool(layers.Layer):
    """Max-pool over groups of channels down to ``channels`` maps.

    Table 3 lists "MaxPooling #64 3x3" after layers with 128 and 256 maps: the pooling also reduces
    the depth to 64. We take the max over each group of C_in/64 consecutive channels (a maxout),
    which keeps the strongest response instead of dropping channels.
    Input ``(B, H, W, C_in)`` -> ``(B, H, W, channels)``.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, x):
        c_in = x.shape[-1]
        if c_in % self.channels:
            raise ValueError(f"ChannelMaxPool: {c_in} input channels are not a multiple of {self.channels}")
        h, w = x.shape[1], x.shape[2]
        x = ops.reshape(x, (-1, h, w, self.channels, c_in // self.channels))  # (B, H, W, C, g)
        return ops.max(x, axis=-1)  # (B, H, W, C)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="lprnet_tf")
class GlobalContext(layers.Layer):
    """Global context embedding (ParseNet-style), ``lprnet.md`` §3.1 and Table 5 ("Global context").

    A fully-connected layer over the globally pooled backbone output gives a context vector; it is
    tiled over every position and concatenated with the feature map. Both parts are L2-style
    normalized **per sample** (divided by that sample's own mean of squares), so one plate's output
    never depends on what else is in the batch.
    Input ``(B, H, W, C)`` -> ``(B, H, W, C + units)``.
    """

    def __init__(self, units: int = 128, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.epsilon = float(epsilon)
        self.fc = layers.Dense(self.units, name="fc")

    def build(self, input_shape):
        self.fc.build((input_shape[0], input_shape[-1]))
        self.built = True

    def _normalize(self, x, axes):
        return x / (ops.mean(ops.square(x), axis=axes, keepdims=True) + self.epsilon)

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        g = self.fc(ops.mean(x, axis=(1, 2)))  # (B, units)
        g = self._normalize(g, axes=(1,))
        x = self._normalize(x, axes=(1, 2, 3))  # (B, H, W, C), per sample
        g = ops.tile(g[:, None, None, :], (1, h, w, 1))  # (B, H, W, units)
        return ops.concatenate([x, g], axis=-1)  # (B, H, W, C + units)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "epsilon": self.epsilon}
