"""The layers of IQ-STAN (``papers/iq-stan.md`` §2.2, Fig. 1 and Fig. 2).

- :class:`PatchQuality`: the image-quality scoring branch. The shared feature map ``F`` is cut into
  ``M`` vertical patches (5 frames x 7 characters = 35 in the paper); each patch goes through "two
  different pooling layers" (global average and global max) and "two fully connected layers" to one
  quality score in [0, 1].
- :class:`IQDeconvAttention`: the "IQ-guided deconv attention": two transposed convolutions turn the
  ``M`` patch scores into an attention map ``A`` the size of ``F`` (eq. 1: ``F~ = A ⊙ F``); ``A`` is a
  softmax over the K frames at every position of a frame (times K, so uniform attention is 1), i.e.
  temporal attention: where one frame scores better than the others, its features weigh more.
- :class:`AttentionDecoder`: the spatial-attention LSTM decoder of eq. 3 (Cheng et al. 2017, the
  paper's [19]): at step t an additive attention ``α_t`` over the encoder states, glimpse
  ``V_t = Σ α_tj f_j``, an LSTM cell fed ``[V_t, embedding(y_{t-1})]``, a softmax over the classes.
  Teacher forcing when targets are given (training), greedy feedback otherwise. Class 0 ends the
  plate (the pad/blank class of the plate format), a GO token starts it. Unrolled over a fixed number
  of steps (max plate length + 1), so it exports to TFLite with builtin ops only.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="lprnet_tf")
class PatchQuality(layers.Layer):
    """``F (B, h, W, C)`` -> patch quality scores ``(B, M)`` in [0, 1] (``iq-stan.md`` §2.2, Fig. 2).

    ``W`` must be a multiple of ``patches`` (M); each patch is ``W / M`` feature columns wide.
    """

    def __init__(self, patches: int = 35, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.patches, self.units = int(patches), int(units)
        self.fc1 = layers.Dense(self.units, activation="relu", name="fc1")
        self.fc2 = layers.Dense(1, name="fc2")

    def build(self, input_shape):
        h, w, c = input_shape[1:]
        if w % self.patches:
            raise ValueError(f"PatchQuality: feature width {w} is not a multiple of {self.patches} patches")
        self.fc1.build((None, self.patches, 2 * c))
        self.fc2.build((None, self.patches, self.units))

    def call(self, f):
        h, w, c = f.shape[1], f.shape[2], f.shape[3]
        p = ops.reshape(f, (-1, h, self.patches, w // self.patches, c))  # (B, h, M, W/M, C)
        z = ops.concatenate([ops.mean(p, axis=(1, 3)), ops.max(p, axis=(1, 3))], axis=-1)  # (B, M, 2C)
        s = ops.sigmoid(self.fc2(self.fc1(z)))  # (B, M, 1)
        return ops.squeeze(s, -1)  # (B, M)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.patches)

    def get_config(self):
        return {**super().get_config(), "patches": self.patches, "units": self.units}


@keras.saving.register_keras_serializable(package="lprnet_tf")
class IQDeconvAttention(layers.Layer):
    """``[F (B, h, W, C), s (B, M)]`` -> ``[F~ = A ⊙ F (B, h, W, C), frame weights (B, K)]`` (eq. 1, Fig. 1).

    The scores, laid out as a ``(B, 1, M, 1)`` map, go through deconv 1 (kernel and stride ``1 x W/M``:
    every patch score spreads over its columns, ``filters`` channels, ReLU) and deconv 2 (kernel and
    stride ``h x 1``, ``C`` channels: over the height and the feature channels), giving attention
    logits ``(B, h, W, C)``. The width holds K frames side by side; a softmax over the frames at each
    (row, column within the frame, channel), times K, is ``A`` (mean 1 over the frames). The frame
    weights are A's mean over each frame divided by K (they sum to 1): how much each frame counts.

    ``use_quality=False`` is the paper's baseline ("the remainder after removing the IQ scoring
    branch"): ``A = 1``, uniform frame weights; the input is ``F`` alone (or ``[F, s]``, s ignored).
    """

    def __init__(self, frames: int = 5, filters: int = 16, use_quality: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.frames, self.filters, self.use_quality = int(frames), int(filters), bool(use_quality)
        self.deconv1 = self.deconv2 = None

    def build(self, input_shape):
        if not self.use_quality:
            if input_shape[0] is not None and not isinstance(input_shape[0], int):  # [F, s] given
                input_shape = input_shape[0]
            if input_shape[2] % self.frames:
                raise ValueError(f"IQDeconvAttention: feature width {input_shape[2]} must split into {self.frames} frames")
            return
        if len(input_shape) != 2 or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"IQDeconvAttention(use_quality=True) takes [F, patch scores]; got one input of shape "
                             f"{tuple(input_shape)} (use_quality=False takes F alone)")
        f_shape, s_shape = input_shape
        h, w, c = f_shape[1:]
        m = s_shape[-1]
        if w % self.frames or w % m or m % self.frames:
            raise ValueError(f"IQDeconvAttention: feature width {w} and {m} patches must split into {self.frames} frames")
        if self.use_quality:
            self.deconv1 = layers.Conv2DTranspose(self.filters, (1, w // m), strides=(1, w // m), activation="relu",
                                                  name="deconv1")
            self.deconv1.build((None, 1, m, 1))
            self.deconv2 = layers.Conv2DTranspose(c, (h, 1), strides=(h, 1), name="deconv2")
            self.deconv2.build((None, 1, w, self.filters))

    def call(self, inputs):
        k = self.frames
        if not self.use_quality:
            f = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            weights = ops.zeros_like(f[:, 0, :k, 0]) + 1.0 / k  # (B, K)
            return f, weights
        f, s = inputs
        h, w, c = f.shape[1], f.shape[2], f.shape[3]
        m = s.shape[-1]
        a = self.deconv1(ops.reshape(s, (-1, 1, m, 1)))  # (B, 1, W, filters)
        a = self.deconv2(a)  # (B, h, W, C) attention logits
        a = ops.reshape(a, (-1, h, k, w // k, c))  # (B, h, K, W/K, C)
        a = ops.softmax(a, axis=2) * float(k)  # temporal attention: softmax over the frames, mean 1
        weights = ops.mean(a, axis=(1, 3, 4)) / float(k)  # (B, K), sums to 1
        a = ops.reshape(a, (-1, h, w, c))  # (B, h, W, C)
        return a * f, weights

    def compute_output_shape(self, input_shape):
        f_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        return f_shape, (f_shape[0], self.frames)

    def get_config(self):
        return {**super().get_config(), "frames": self.frames, "filters": self.filters,
                "use_quality": self.use_quality}


@keras.saving.register_keras_serializable(package="lprnet_tf")
class AttentionDecoder(layers.Layer):
    """Encoder states ``(B, T, D)`` [+ targets ``(B, S)``] -> ``[logits (B, S, C), alphas (B, S, T)]`` (eq. 3).

    ``steps`` = S output positions (the format's max plate length + 1, so every plate ends with the
    end class 0); ``num_classes`` = C, class 0 = end of plate. The input token of step t is GO
    (index C of the embedding) at t = 0, then the target of step t-1 (teacher forcing, when
    ``targets`` are given) or the arg-max of step t-1's logits (greedy decoding).
    """

    def __init__(self, num_classes: int, steps: int, units: int = 128, attention_units: int = 128,
                 embed_dim: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.steps = int(num_classes), int(steps)
        self.units, self.attention_units, self.embed_dim = int(units), int(attention_units), int(embed_dim)
        self.embed = layers.Embedding(self.num_classes + 1, self.embed_dim, name="embed")  # + GO
        self.key = layers.Dense(self.attention_units, use_bias=False, name="attn_key")
        self.query = layers.Dense(self.attention_units, name="attn_query")
        self.score = layers.Dense(1, use_bias=False, name="attn_score")
        self.cell = layers.LSTMCell(self.units, name="cell")
        self.classifier = layers.Dense(self.num_classes, name="classifier")

    def build(self, memory_shape, targets_shape=None):
        d = memory_shape[-1]
        self.embed.build((None,))
        self.key.build((None, None, d))
        self.query.build((None, self.units))
        self.score.build((None, None, self.attention_units))
        self.cell.build((None, d + self.embed_dim))
        self.classifier.build((None, self.units + d))

    def call(self, memory, targets=None):
        if targets is not None and targets.shape[1] is not None and targets.shape[1] < self.steps:
            raise ValueError(f"AttentionDecoder: targets have {targets.shape[1]} steps but the decoder runs "
                             f"{self.steps}; pad the targets with the end class 0 to {self.steps}")
        keys = self.key(memory)  # (B, T, A)
        zero = ops.zeros_like(memory[:, 0, :1])  # (B, 1), in the compute dtype (float16 under mixed precision)
        h = zero + ops.zeros((1, self.units), dtype=zero.dtype)  # (B, U)
        c = h
        token = ops.cast(zero[:, 0], "int32") + self.num_classes  # (B,) GO
        logits, alphas = [], []
        for t in range(self.steps):
            e = self.score(ops.tanh(keys + ops.expand_dims(self.query(h), 1)))  # (B, T, 1)
            alpha = ops.softmax(e, axis=1)  # (B, T, 1)
            glimpse = ops.sum(alpha * memory, axis=1)  # (B, D)
            x = ops.concatenate([glimpse, self.embed(token)], axis=-1)  # (B, D + E)
            h, (h, c) = self.cell(x, [h, c])  # (B, U)
            logit = self.classifier(ops.concatenate([h, glimpse], axis=-1))  # (B, C)
            logits.append(logit)
            alphas.append(ops.squeeze(alpha, -1))
            if targets is not None:
                token = ops.cast(targets[:, t], "int32")
            else:
                # arg-max as top-1 (first index on ties, as argmax): keras' float argmax adds a sign-bit
                # test (BitwiseAnd) that TFLite has no builtin op for (docs/deployment.md)
                token = ops.cast(ops.top_k(logit, 1)[1][:, 0], "int32")
        return ops.stack(logits, axis=1), ops.stack(alphas, axis=1)  # (B, S, C), (B, S, T)

    def compute_output_shape(self, memory_shape, targets_shape=None):
        return (memory_shape[0], self.steps, self.num_classes), (memory_shape[0], self.steps, memory_shape[1])

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "steps": self.steps, "units": self.units,
                "attention_units": self.attention_units, "embed_dim": self.embed_dim}
