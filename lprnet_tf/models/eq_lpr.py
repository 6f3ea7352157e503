"""EQ-LPR quality-awareness networks, ``papers/eq-lpr.md`` §2.2-2.3 and Fig. 2.

A quality network maps one plate crop to a **quality awareness score** ``a`` in [0, 1]; Algorithm 1
(:mod:`lprnet_tf.stream`) runs the recognizer only on frames whose ``a`` beats the best so far.

**Quality label** (eq. 3): ``α = min over the plate's characters of the recognizer's softmax
probability of that character`` (:func:`recognition_quality`). Our recognizer is a CTC LPRNet, whose
T output steps are not characters, so the characters are aligned as the greedy CTC decoder reads
them: the arg-max path is cut into runs of one non-blank class (a run = one emitted character, as
the collapse rule says); a character's probability is the largest softmax probability of its class
over its run; α is the smallest of these over the characters (0 if nothing is read). Every crop's
α is computed by the frozen recognizer ("teacher") inside :meth:`QualityNet.compute_loss`, so the
networks train with ``lprnet-train`` on any data source (synthetic plates, tracklet frames, real crops);
labels are not used.

The three architectures of Fig. 2 (all convolutions 3x3), input RGB ``(B, H, W, 3)`` in [0, 1] at the
recognizer's input size:

- ``eq_lpr_p`` (pseudo-siamese, Fig. 2a): its own CNN of the recognizer's structure (LPRNet
  Table 3 backbone, :func:`lprnet_tf.models.lprnet.lprnet_backbone`) on the **grayscale** crop, no
  parameter shared, then ``N'_q``: global average pool, FC 128 + ReLU, FC 1 + sigmoid.
- ``eq_lpr_s`` (siamese, Fig. 2b): ``N'_q`` on the recognizer's own backbone features ``F_r``
  (parameters shared). The paper alternates L_r and L_q updates; with a trained recognizer the
  L_r step has nothing left to do, so the shared backbone is frozen (copied from the recognizer)
  and only ``N'_q`` learns from L_q (eq. 4).
- ``eq_lpr_e`` (distilled, Fig. 2c): a light CNN ``N*_q`` on the grayscale crop at half size (four
  3x3 convs, 16-32-64-64 channels, the first three with stride 2), global average pool and FC to
  ``F*_q`` (the size of the pooled ``F_r``), FC 1 + sigmoid. Loss (eq. 5)
  ``L*_q = |α - a| + ‖F*_q - F_r‖₂``; ``F_r`` = the recognizer's backbone output (layer
  ``drop2``, ``(B, 16, 18, 256)`` at 24x94) averaged over space to 256 values, because ``N*_q``
  is much smaller than the backbone and cannot match its full map.

Loss of P and S: ``L_q = |α - a|`` (eq. 4). Output: ``{"quality": (B,)}`` (E adds ``"features"``).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from lprnet_tf.layers import conv_bn_relu
from lprnet_tf.models.lprnet import BACKBONE_OUTPUT, lprnet_backbone

VARIANTS = ("p", "s", "e")


def recognition_quality(logits):
    """CTC logits ``(B, T, C)`` -> α ``(B,)``: the smallest per-character probability of the greedy
    reading (eq. 3 of ``eq-lpr.md``; alignment in the module docstring). Backend ops: usable on
    numpy arrays and inside a loss."""
    p = ops.softmax(ops.cast(logits, "float32"), axis=-1)  # (B, T, C)
    best = ops.argmax(p, axis=-1)  # (B, T)
    top = ops.max(p, axis=-1)  # (B, T)
    t_len = logits.shape[1]
    emits = ops.not_equal(best, 0)  # (B, T)
    # a run continues at t when step t emits the same class as step t-1
    same_prev = [ops.zeros_like(emits[:, 0])] + [ops.logical_and(emits[:, t], ops.equal(best[:, t], best[:, t - 1]))
                                                 for t in range(1, t_len)]
    fwd, bwd = [top[:, 0]], [None] * t_len
    for t in range(1, t_len):  # running max from the start of the run
        fwd.append(ops.where(same_prev[t], ops.maximum(fwd[-1], top[:, t]), top[:, t]))
    bwd[-1] = top[:, -1]
    for t in range(t_len - 2, -1, -1):  # running max from the end of the run
        bwd[t] = ops.where(same_prev[t + 1], ops.maximum(bwd[t + 1], top[:, t]), top[:, t])
    run_max = ops.maximum(ops.stack(fwd, axis=1), ops.stack(bwd, axis=1))  # (B, T) the run's character probability
    alpha = ops.min(ops.where(emits, run_max, ops.ones_like(run_max)), axis=1)  # (B,)
    return ops.where(ops.any(emits, axis=1), alpha, ops.zeros_like(alpha))


@keras.saving.register_keras_serializable(package="lprnet_tf")
class Grayscale(layers.Layer):
    """RGB ``(B, H, W, 3)`` -> luma ``(B, H, W, 1)`` (ITU-R BT.601 weights): the ``G(P)`` of eq. 1."""

    def call(self, x):
        w = ops.convert_to_tensor([[0.299], [0.587], [0.114]], dtype=x.dtype)  # (3, 1)
        return ops.matmul(x, w)  # (B, H, W, 1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)


def _quality_head(x, name: str = "head"):
    """``N'_q``: ``(B, h, w, c)`` -> ``(B,)`` score in [0, 1]."""
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)  # (B, c)
    x = layers.Dense(128, activation="relu", name=f"{name}_fc1")(x)  # (B, 128)
    x = layers.Dense(1, activation="sigmoid", name=f"{name}_fc2")(x)  # (B, 1)
    return layers.Reshape((), name="quality")(x)  # (B,)


class _Teacher:
    """Holds the frozen recognizer outside Keras' tracking (it is not part of the saved network)."""

    def __init__(self):
        self.net = None


@keras.saving.register_keras_serializable(package="lprnet_tf")
class QualityNet(keras.Model):
    """An EQ-LPR quality network (variant ``p``, ``s`` or ``e``); see the module docstring.

    ``recognizer``: the recognizer whose α the network learns (a shipped name, run dir or .keras
    file; it must read the same ``height x width``). ``eq_lpr_s`` copies its backbone at
    construction; every variant loads it again (lazily) only to train.
    """

    def __init__(self, variant: str, recognizer: str, height: int = 24, width: int = 94, feature_dim: int = 256,
                 **kwargs):
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"EQ-LPR variant must be one of {VARIANTS}, got {variant!r}")
        self.variant, self.recognizer, self.height, self.width = variant, str(recognizer), int(height), int(width)
        self.feature_dim = int(feature_dim)
        self._teacher = _Teacher()
        inputs = keras.Input((self.height, self.width, 3), name="image")  # (B, 24, 94, 3) in [0, 1]
        outputs = {}
        if variant == "p":
            x = Grayscale(name="gray")(inputs)  # (B, 24, 94, 1)
            x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(x)
            x = lprnet_backbone(x)  # (B, 16, 18, 256) own weights, the recognizer's structure
            outputs["quality"] = _quality_head(x)
        elif variant == "s":
            backbone = self._recognizer_backbone()  # (B, 16, 18, 256) the recognizer's, frozen
            backbone.trainable = False
            outputs["quality"] = _quality_head(backbone(inputs, training=False))
        else:
            x = Grayscale(name="gray")(inputs)  # (B, 24, 94, 1)
            x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(x)
            x = layers.AveragePooling2D(2, name="half")(x)  # (B, 12, 47, 1)
            x = conv_bn_relu(16, 3, strides=2, name="e_conv1")(x)  # (B, 6, 24, 16)
            x = conv_bn_relu(32, 3, strides=2, name="e_conv2")(x)  # (B, 3, 12, 32)
            x = conv_bn_relu(64, 3, strides=2, name="e_conv3")(x)  # (B, 2, 6, 64)
            x = conv_bn_relu(64, 3, name="e_conv4")(x)  # (B, 2, 6, 64)
            f = layers.GlobalAveragePooling2D(name="e_pool")(x)  # (B, 64)
            f = layers.Dense(self.feature_dim, name="features")(f)  # (B, 256) F*_q
            outputs["features"] = f
            a = layers.Dense(1, activation="sigmoid", name="head_fc")(layers.ReLU(name="features_relu")(f))
            outputs["quality"] = layers.Reshape((), name="quality")(a)  # (B,)
        self.net = keras.Model(inputs, outputs, name=f"eq_lpr_{variant}_net")
        self.built = True

    def _load_recognizer(self):
        from lprnet_tf.modelio import load_for_inference

        model, fmt, _ = load_for_inference(self.recognizer)
        if (fmt.height, fmt.width) != (self.height, self.width):
            raise ValueError(f"recognizer {self.recognizer} reads {fmt.height}x{fmt.width} crops, the quality "
                             f"network {self.height}x{self.width}; use the recognizer's plate format")
        return model

    def _recognizer_backbone(self):
        rec = self._load_recognizer()
        return keras.Model(rec.input, rec.get_layer(BACKBONE_OUTPUT).output, name="shared_backbone")

    def teacher(self):
        """The frozen recognizer as ``x -> (logits (B, T, C), F_r (B, h, w, 256))`` (loaded on first use,
        which must be eager: :meth:`fit` and :meth:`train_on_batch` do it)."""
        if self._teacher.net is None:
            rec = self._load_recognizer()
            rec.trainable = False
            self._teacher.net = keras.Model(rec.input, [rec.output, rec.get_layer(BACKBONE_OUTPUT).output],
                                            name="teacher")
        return self._teacher.net

    def targets(self, x) -> tuple:
        """``x`` -> (α ``(B,)``, pooled ``F_r`` ``(B, 256)``) from the frozen recognizer."""
        logits, f_r = self.teacher()(x, training=False)
        alpha = recognition_quality(logits)
        return ops.stop_gradient(alpha), ops.stop_gradient(ops.mean(ops.cast(f_r, "float32"), axis=(1, 2)))

    def build(self, input_shape=None):
        self.built = True  # built in __init__

    # Load the teacher eagerly before any traced train step: loaded lazily inside fit's traced step,
    # its weights would be assigned by graph ops that never run and the "teacher" would be a randomly
    # initialised net. (Not in compile(): Keras skips a custom compile() when it loads a model.)
    def fit(self, *args, **kwargs):
        self.teacher()
        return super().fit(*args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self.teacher()
        return super().train_on_batch(*args, **kwargs)

    def call(self, inputs, training=False):
        return dict(self.net(inputs, training=training))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        alpha, f_r = self.targets(x)
        loss = ops.mean(ops.abs(alpha - ops.cast(y_pred["quality"], "float32")))  # eq. 4: |α - a|
        if self.variant == "e":  # eq. 5: + ‖F*_q - F_r‖₂
            diff = ops.cast(y_pred["features"], "float32") - f_r
            loss = loss + ops.mean(ops.sqrt(ops.sum(ops.square(diff), axis=-1) + 1e-12))
        return loss

    def get_config(self):
        return {**super().get_config(), "variant": self.variant, "recognizer": self.recognizer,
                "height": self.height, "width": self.width, "feature_dim": self.feature_dim}
