"""IQ-STAN, ``papers/iq-stan.md`` §2 (Fig. 2) and the loss of §2.3 (eq. 4-6).

Input: K frames of one plate, each resized to ``frame_height x frame_width``, placed side by side
(frame 0 left) as one image ``(B, frame_height, K * frame_width, 3)`` float32 in [0, 1]; the paper's
default is K = 5 frames of 168 x 50 -> an 840 x 50 input (:func:`lprnet_tf.runtime.tile_frames` lays
crops out this way). Normalization to [-1, 1] is the first layer.

1. **Shared CNN** (§2.1): six 3x3 conv + BN + ReLU layers interleaved with three max-pools
   (conv, pool 2x2, conv, conv, pool 2x2, conv, conv, pool 2x1 (height only), conv) and dropout:
   ``F`` of ``(B, ceil(H/8), K*W/4, C)`` = 7 x 210 for the paper's 50 x 840 input.
2. **IQ branch** (:class:`~lprnet_tf.layers.iq_stan.PatchQuality`): ``M = K * patches_per_frame``
   vertical patches of ``F`` (35 = 5 x 7) -> one quality score each.
3. **IQ-guided deconv attention** (:class:`~lprnet_tf.layers.iq_stan.IQDeconvAttention`, eq. 1):
   ``F~ = A ⊙ F`` with A a softmax over the frames built from the patch scores by two deconvolutions.
4. **Encoder** (eq. 2): the columns of ``F~`` (height folded into channels, projected to
   ``encoder_units``) through a bidirectional LSTM -> states ``(B, K*W/4, 2 * encoder_units)``.
5. **Decoder** (eq. 3, :class:`~lprnet_tf.layers.iq_stan.AttentionDecoder`): spatial attention
   LSTM, ``max_length + 1`` steps, class 0 = end of plate.

Outputs (inference, ``training=False``): a dict ``logits (B, S, C)`` (S = max_length + 1, decoded by
:func:`lprnet_tf.decoding.attention_decode`), ``quality (B, M)`` (patch scores; absent without the IQ
branch) and ``frame_weights (B, K)`` (the temporal attention per frame, summing to 1). In training the
dict holds the encoder ``memory`` instead of ``logits``: the decoder runs in :meth:`IQSTAN.compute_loss`
with teacher forcing on the targets (``model.evaluate()``, which calls with ``training=False``, scores the
greedy logits instead).

Training targets ``y``: float32 ``(B, L + M)``: the plate's class ids padded with 0 (L = max_length),
then the quality map, M = K x 7 per-strip scores in [0, 1] (a frame's score is the mean of its
strips, :mod:`lprnet_tf.quality`). Loss (eq. 4): ``μ L_R + (1 - μ) L_S + λ R`` with
- ``L_R`` (eq. 5): the negative log-likelihood of the plate, summed over the decoder steps up to and
  including the first end class (what the labels hold after it is ignored);
- ``L_S`` (eq. 6): the ℓ1 distance between each frame's score and the mean of its patches' predicted
  scores, summed over the frames (``patch``: between the patch scores, summed over the M patches);
- ``R``: ℓ2 of the weights. The paper gives λ = 0.5 without the normalisation of R; with R as the sum
  of squares a λ of 0.5 would swamp the other terms, so R here is the **mean** squared kernel weight
  over all kernels (dense, conv, LSTM), which keeps λ = 0.5 meaningful.
μ = 0.5 and λ = 0.5 by default, as in the paper. ``use_quality=False`` is the paper's baseline (no IQ
branch, uniform attention, loss ``L_R + λ R``).
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from lprnet_tf.layers import conv_bn_relu
from lprnet_tf.layers.iq_stan import AttentionDecoder, IQDeconvAttention, PatchQuality

QUALITY_TARGETS = ("frame", "patch")


def build_shared_cnn(height: int, width: int, filters=(32, 64, 64, 128, 128, 256), dropout: float = 0.2,
                     name: str = "shared_cnn") -> keras.Model:
    """``(B, H, W, 3)`` in [0, 1] -> ``F (B, ceil(H/8), W/4, filters[-1])`` (§2.1; shapes for 50 x 840)."""
    if len(filters) != 6:
        raise ValueError(f"the shared CNN has 6 conv layers (iq-stan.md §2.1); got {len(filters)} filter counts")
    inputs = keras.Input((height, width, 3), name="frames")  # (B, 50, 840, 3)
    x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(inputs)  # [-1, 1]
    x = conv_bn_relu(filters[0], 3, name="conv1")(x)  # (B, 50, 840, c1)
    x = layers.MaxPooling2D((2, 2), padding="same", name="pool1")(x)  # (B, 25, 420, c1)
    x = conv_bn_relu(filters[1], 3, name="conv2")(x)  # (B, 25, 420, c2)
    x = conv_bn_relu(filters[2], 3, name="conv3")(x)  # (B, 25, 420, c3)
    x = layers.MaxPooling2D((2, 2), padding="same", name="pool2")(x)  # (B, 13, 210, c3)
    x = conv_bn_relu(filters[3], 3, name="conv4")(x)  # (B, 13, 210, c4)
    x = conv_bn_relu(filters[4], 3, name="conv5")(x)  # (B, 13, 210, c5)
    x = layers.MaxPooling2D((2, 1), padding="same", name="pool3")(x)  # (B, 7, 210, c5)
    x = layers.Dropout(dropout, name="drop1")(x)
    x = conv_bn_relu(filters[5], 3, name="conv6")(x)  # (B, 7, 210, c6)
    x = layers.Dropout(dropout, name="drop2")(x)
    return keras.Model(inputs, x, name=name)


@keras.saving.register_keras_serializable(package="lprnet_tf")
class IQSTAN(keras.Model):
    """IQ-STAN; see the module docstring. ``num_classes`` and ``max_length`` come from the plate format."""

    def __init__(self, num_classes: int, max_length: int, frames: int = 5, frame_height: int = 50,
                 frame_width: int = 168, filters=(32, 64, 64, 128, 128, 256), dropout: float = 0.2,
                 patches_per_frame: int = 7, quality_units: int = 64, deconv_filters: int = 16,
                 encoder_units: int = 128, decoder_units: int = 128, attention_units: int = 128, embed_dim: int = 32,
                 use_quality: bool = True, mu: float = 0.5, l2: float = 0.5, quality_target: str = "frame", **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.max_length, self.frames = int(num_classes), int(max_length), int(frames)
        self.frame_height, self.frame_width = int(frame_height), int(frame_width)
        self.filters, self.dropout = tuple(int(f) for f in filters), float(dropout)
        self.patches_per_frame, self.quality_units = int(patches_per_frame), int(quality_units)
        self.deconv_filters, self.encoder_units = int(deconv_filters), int(encoder_units)
        self.decoder_units, self.attention_units, self.embed_dim = int(decoder_units), int(attention_units), int(embed_dim)
        self.use_quality, self.mu, self.l2 = bool(use_quality), float(mu), float(l2)
        self.quality_target = str(quality_target)
        if self.quality_target not in QUALITY_TARGETS:
            raise ValueError(f"quality_target must be one of {QUALITY_TARGETS}, got {quality_target!r}")
        if self.frames < 1 or self.frame_width % 4 or (self.frame_width // 4) % self.patches_per_frame:
            raise ValueError(f"frame_width {frame_width} must be a multiple of 4 whose quarter splits into "
                             f"{patches_per_frame} patches (e.g. 168 or 112 for 7 patches), and frames >= 1")
        self.patches = self.frames * self.patches_per_frame  # M
        self.steps = self.max_length + 1  # + the end class

        # 1-4: frames -> encoder states, patch scores, frame weights (one functional graph)
        inputs = keras.Input((self.frame_height, self.frames * self.frame_width, 3), name="frames")
        f = build_shared_cnn(self.frame_height, self.frames * self.frame_width, self.filters, self.dropout)(inputs)
        h, w, c = f.shape[1], f.shape[2], f.shape[3]  # (B, 7, 210, C)
        if self.use_quality:
            scores = PatchQuality(self.patches, self.quality_units, name="iq_branch")(f)  # (B, M)
            attended, weights = IQDeconvAttention(self.frames, self.deconv_filters, name="iq_attention")([f, scores])
        else:  # the paper's baseline: no IQ branch, uniform attention
            attended, weights = IQDeconvAttention(self.frames, self.deconv_filters, use_quality=False,
                                                  name="iq_attention")(f)
        seq = layers.Permute((2, 1, 3), name="columns")(attended)  # (B, W, h, C)
        seq = layers.Reshape((w, h * c), name="fold_height")(seq)  # (B, W, h*C)
        seq = layers.Dense(self.encoder_units, activation="relu", name="project")(seq)  # (B, W, E)
        memory = layers.Bidirectional(layers.LSTM(self.encoder_units, return_sequences=True),
                                      name="encoder")(seq)  # (B, W, 2E)
        outputs = {"memory": memory, "frame_weights": weights}
        if self.use_quality:
            outputs["quality"] = scores
        self.encoder_net = keras.Model(inputs, outputs, name="encoder_net")
        # 5: the decoder, run on the memory
        self.decoder = AttentionDecoder(self.num_classes, self.steps, self.decoder_units, self.attention_units,
                                        self.embed_dim, name="decoder")
        self.decoder.build((None, w, 2 * self.encoder_units))
        self.built = True

    @property
    def input_size(self) -> tuple:
        """``(H, K * W)`` of the tiled input."""
        return self.frame_height, self.frames * self.frame_width

    def build(self, input_shape=None):
        self.built = True  # built in __init__

    def call(self, inputs, training=False):
        out = dict(self.encoder_net(inputs, training=training))
        if training:
            return out  # the decoder runs with teacher forcing in compute_loss
        logits, _ = self.decoder(out.pop("memory"))  # (B, S, C), greedy feedback
        out["logits"] = logits
        return out

    def decode_steps(self, inputs):
        """Inference with the decoder's spatial attention: dict with ``alphas (B, S, T)`` added."""
        out = dict(self.encoder_net(inputs, training=False))
        out["logits"], out["alphas"] = self.decoder(out.pop("memory"))
        return out

    def split_targets(self, y):
        """``y (B, L + M)`` -> (labels int32 (B, L), quality map (B, M))."""
        labels = ops.cast(y[:, :self.max_length], "int32")
        return labels, ops.cast(y[:, self.max_length:], "float32")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y.shape[-1] is not None and y.shape[-1] != self.max_length + self.patches:
            raise ValueError(f"IQ-STAN targets are (B, {self.max_length} + {self.patches}): class ids then the quality "
                             f"map of {self.frames} frames x {self.patches_per_frame} patches; got {tuple(y.shape)} "
                             f"(data.frames must be {self.frames})")
        labels, q_true = self.split_targets(y)
        targets = ops.pad(labels, [[0, 0], [0, 1]])  # (B, S): the plate then the end class 0
        if "memory" in y_pred:  # training: teacher forcing
            logits, _ = self.decoder(y_pred["memory"], targets=targets)  # (B, S, C)
        else:  # model.evaluate() calls with training=False: the greedy logits of call()
            logits = y_pred["logits"]  # (B, S, C)
        ce = keras.losses.sparse_categorical_crossentropy(targets, ops.cast(logits, "float32"), from_logits=True)  # (B, S)
        # up to and including the first end class: step t counts when no target before t is 0
        ends = ops.cast(ops.equal(targets, 0), "int32")  # (B, S)
        mask = ops.cast(ops.equal(ops.cumsum(ends, axis=-1) - ends, 0), "float32")  # (B, S)
        l_r = ops.mean(ops.sum(ce * mask, axis=-1))  # eq. 5
        loss = l_r
        if self.use_quality:
            q_hat = ops.cast(y_pred["quality"], "float32")  # (B, M)
            if self.quality_target == "frame":  # eq. 6: the frame's score vs the mean of its patches
                q_hat = ops.mean(ops.reshape(q_hat, (-1, self.frames, self.patches_per_frame)), axis=-1)  # (B, K)
                q_true = ops.mean(ops.reshape(q_true, (-1, self.frames, self.patches_per_frame)), axis=-1)  # (B, K)
            l_s = ops.mean(ops.sum(ops.abs(q_true - q_hat), axis=-1))  # eq. 6
            loss = self.mu * l_r + (1.0 - self.mu) * l_s
        if self.l2:  # (the kernel list is not kept on the model: Keras would save it as state)
            kernels = [v for v in self.trainable_weights if "kernel" in v.path]
            r = sum(ops.sum(ops.square(ops.cast(v, "float32"))) for v in kernels)
            loss = loss + self.l2 * r / float(sum(math.prod(v.shape) for v in kernels))
        return loss

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "max_length": self.max_length,
                "frames": self.frames, "frame_height": self.frame_height, "frame_width": self.frame_width,
                "filters": list(self.filters), "dropout": self.dropout, "patches_per_frame": self.patches_per_frame,
                "quality_units": self.quality_units, "deconv_filters": self.deconv_filters,
                "encoder_units": self.encoder_units, "decoder_units": self.decoder_units,
                "attention_units": self.attention_units, "embed_dim": self.embed_dim,
                "use_quality": self.use_quality, "mu": self.mu, "l2": self.l2, "quality_target": self.quality_target}


def build_iq_stan(num_classes: int, max_length: int, frame_height: int, frame_width: int, name: str = "iq_stan",
                  **options) -> IQSTAN:
    """IQ-STAN for a plate format: frame size from the format (``frame_height x frame_width``)."""
    return IQSTAN(num_classes, max_length, frame_height=frame_height, frame_width=frame_width, name=name, **options)
