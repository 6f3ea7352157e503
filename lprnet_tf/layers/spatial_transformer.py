"""LocNet spatial transformer (``lprnet.md`` Table 1) with a bilinear sampler in ``keras.ops``.

The localization network predicts an affine transform; the sampler warps the input with it. The
transform starts as the identity, and a non-trainable ``enabled`` gate (0 or 1, saved with the
weights, so it survives save/load and ``--resume``) keeps the layer a pass-through until training
switches it on ("we turn LocNet on only after 5k iterations", §3.2). The gate is a weight, not a
Python flag, so the graph is the same before and after the switch.
"""

from __future__ import annotations

import keras
from keras import layers, ops


def affine_grid_sample(images, theta):
    """Warp ``images (B, H, W, C)`` with affine ``theta (B, 6)`` (normalized [-1, 1] coordinates).

    Output pixel (x_t, y_t) samples the input at ``theta @ [x_t, y_t, 1]`` with bilinear
    interpolation and zero padding outside. Uses only gather/arithmetics so it converts to builtin
    TFLite ops.
    """
    shape = ops.shape(images)
    b = shape[0]
    h, w, c = images.shape[1], images.shape[2], images.shape[3]
    # The output grid in integer pixel coordinates: exact in any float type, so a float16 TFLite file
    # (whose converter stores every float constant as float16) samples the same points as float32.
    gy, gx = ops.meshgrid(ops.arange(h, dtype="float32"), ops.arange(w, dtype="float32"), indexing="ij")  # (H, W)
    gx = ops.reshape(gx, (1, -1))  # (1, HW)
    gy = ops.reshape(gy, (1, -1))
    t = [theta[:, k:k + 1] for k in range(6)]  # six (B, 1) coefficients
    # theta maps normalized output coordinates (2 * pixel / (size - 1) - 1) to normalized input
    # coordinates; in pixels the same map is sx = a0 gx + a1 gy + a2, sy = b0 gx + b1 gy + b2, with
    # coefficients computed per sample at run time. Element-wise, not a matmul with the constant grid:
    # dynamic-range quantization would quantize the grid as a weight matrix and move every sampling point.
    cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)  # exact: halves of integers
    sx = t[0] * gx + (t[1] * (w - 1) / (h - 1)) * gy + cx * (t[2] + 1.0 - t[0] - t[1])  # (B, HW) pixel coords
    sy = (t[3] * (h - 1) / (w - 1)) * gx + t[4] * gy + cy * (t[5] + 1.0 - t[3] - t[4])
    x0 = ops.floor(sx)
    y0 = ops.floor(sy)
    wx1 = sx - x0
    wy1 = sy - y0
    flat = ops.reshape(images, (-1, c))  # (B*H*W, C)
    base = ops.cast(ops.arange(b) * (h * w), "float32")[:, None]  # (B, 1)

    def tap(xi, yi, weight):
        inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
        xc = ops.clip(xi, 0, w - 1)
        yc = ops.clip(yi, 0, h - 1)
        idx = ops.cast(base + yc * w + xc, "int32")  # (B, HW)
        vals = ops.take(flat, ops.reshape(idx, (-1,)), axis=0)  # (B*HW, C)
        weight = weight * ops.cast(inside, weight.dtype)
        return vals * ops.reshape(weight, (-1, 1))

    out = (tap(x0, y0, (1 - wx1) * (1 - wy1)) + tap(x0 + 1, y0, wx1 * (1 - wy1))
           + tap(x0, y0 + 1, (1 - wx1) * wy1) + tap(x0 + 1, y0 + 1, wx1 * wy1))
    return ops.reshape(out, (-1, h, w, c))  # (B, H, W, C)


@keras.saving.register_keras_serializable(package="lprnet_tf")
class LocNet(layers.Layer):
    """LocNet, ``lprnet.md`` Table 1, plus the sampler and the training gate.

    Input 94x24 RGB -> AvgPool 3x3/2 -> Conv #32 5x5/3 ; in parallel Conv #32 5x5/5 on the input;
    flatten + concatenate -> Dropout 0.5 -> FC 32 tanh -> FC 6 "scaled tanh". The last layer is
    written as ``theta = identity + scale * tanh(z)`` with z initialised to 0, so the transform
    starts at the identity and ``scale`` bounds how far it can move.
    Input ``(B, H, W, 3)`` -> output ``(B, H, W, 3)`` (the warped image, or the input while off).
    """

    def __init__(self, scale: float = 0.5, dropout: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.dropout_rate = float(dropout)
        self.pool = layers.AveragePooling2D(3, strides=2, padding="valid")
        self.conv_a = layers.Conv2D(32, 5, strides=3, padding="same", activation="relu", name="conv_a")
        self.conv_b = layers.Conv2D(32, 5, strides=5, padding="same", activation="relu", name="conv_b")
        self.drop = layers.Dropout(self.dropout_rate)
        self.fc1 = layers.Dense(32, activation="tanh", name="fc1")
        self.fc2 = layers.Dense(6, kernel_initializer="zeros", bias_initializer="zeros", name="fc2")

    def build(self, input_shape):
        _, h, w, c = input_shape
        pooled = self.pool.compute_output_shape(tuple(input_shape))
        self.conv_a.build(pooled)
        self.conv_b.build(tuple(input_shape))
        na = self.conv_a.compute_output_shape(pooled)
        nb = self.conv_b.compute_output_shape(tuple(input_shape))
        flat = na[1] * na[2] * na[3] + nb[1] * nb[2] * nb[3]
        self.fc1.build((None, flat))
        self.fc2.build((None, 32))
        self.enabled = self.add_weight(name="enabled", shape=(), initializer="zeros", trainable=False)
        self.built = True

    def theta(self, x, training=None):
        """The predicted affine transform ``(B, 6)``."""
        a = self.conv_a(self.pool(x))  # (B, h/6, w/6, 32)
        b = self.conv_b(x)  # (B, h/5, w/5, 32)
        f = ops.concatenate([ops.reshape(a, (ops.shape(a)[0], -1)), ops.reshape(b, (ops.shape(b)[0], -1))], axis=-1)
        z = self.fc2(self.fc1(self.drop(f, training=training)))  # (B, 6)
        identity = ops.convert_to_tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=z.dtype)
        return identity[None, :] + self.scale * ops.tanh(z)

    def call(self, x, training=None):
        warped = affine_grid_sample(x, self.theta(x, training=training))  # (B, H, W, 3)
        g = ops.cast(self.enabled, x.dtype)
        return g * warped + (1.0 - g) * x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "dropout": self.dropout_rate}


def set_locnet_enabled(model, on: bool) -> bool:
    """Switch every LocNet in ``model`` on/off; returns True if the model has one."""
    found = False
    for layer in model.layers:
        if isinstance(layer, LocNet):
            layer.enabled.assign(1.0 if on else 0.0)
            found = True
    return found


def locnet_enabled(model) -> bool | None:
    """The gate value of the model's LocNet, or None when it has none."""
    for layer in model.layers:
        if isinstance(layer, LocNet):
            return bool(float(keras.ops.convert_to_numpy(layer.enabled)) > 0.5)
    return None
