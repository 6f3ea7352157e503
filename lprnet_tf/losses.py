"""Losses. CTC for the LPRNet family (``lprnet.md`` §3.1): labels are padded with the blank class 0."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lprnet_tf")
class CTCLoss(keras.losses.Loss):
    """CTC loss on logits ``(B, T, C)`` with dense labels ``(B, L)`` padded with 0 (the blank).

    Label lengths are the number of non-zero entries; every logit step is valid. Returns the
    per-sample negative log-likelihood (Keras averages over the batch).
    """

    def __init__(self, name="ctc", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        label_len = ops.sum(ops.cast(ops.not_equal(y_true, 0), "int32"), axis=-1)  # (B,)
        b, t = ops.shape(y_pred)[0], ops.shape(y_pred)[1]
        logit_len = ops.full((b,), t, dtype="int32")
        return ops.ctc_loss(y_true, ops.cast(y_pred, "float32"), label_len, logit_len, mask_index=0)


@keras.saving.register_keras_serializable(package="lprnet_tf")
class SlotCrossEntropy(keras.losses.Loss):
    """Multi-task loss of slot models (``multitask-lowres-lpr.md`` §2.1: one task per character slot).

    Logits ``(B, S, C)``, labels ``(B, L)`` padded with class 0, which for a slot model is the pad class
    "no character in this slot" (so the pipeline's labels are used as they are). Slots past ``L`` (a
    model with more slots than the labels) are pad. Returns the per-sample **sum** over slots of the
    softmax cross-entropy: the tasks' losses added, as a multi-task network does (Keras averages over
    the batch).
    """

    def __init__(self, name="slot_ce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        s, length = y_pred.shape[1], y_true.shape[1]
        if s is not None and length is not None and length != s:
            if length > s:
                raise ValueError(f"labels have {length} positions but the model has only {s} slots")
            y_true = ops.pad(y_true, [[0, 0], [0, s - length]])  # (B, S), extra slots are pad
        ce = ops.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"), from_logits=True)  # (B, S)
        return ops.sum(ce, axis=-1)


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights: the grey target of a one-channel image model


@keras.saving.register_keras_serializable(package="lprnet_tf")
class ImageMSE(keras.losses.Loss):
    """Pixel mean squared error of an image-to-image model (the DGM, ``multitask-lowres-lpr.md`` §2.2).

    The paper names no loss for its autoencoder; we use the usual one of a convolutional autoencoder,
    the mean over pixels and channels of the squared difference to the target, images in [0, 1].
    Prediction ``(B, H, W, c)``, target ``(B, H, W, 3)``: a one-channel prediction (the paper's
    single-filter last layer) is compared with the grey (:data:`LUMA`) version of the target. Returns
    the per-sample MSE (Keras averages over the batch); PSNR = ``10 log10(1 / MSE)``.
    """

    def __init__(self, name="image_mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        if y_pred.shape[-1] == 1 and y_true.shape[-1] == 3:
            y_true = ops.sum(y_true * ops.convert_to_tensor(LUMA, "float32"), axis=-1, keepdims=True)  # (B, H, W, 1)
        return ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))  # (B,)


LOSSES_BY_KIND = {"ctc": CTCLoss, "slot": SlotCrossEntropy, "image": ImageMSE}


def loss_for_kind(kind: str, model_name: str = "") -> keras.losses.Loss:
    """The training loss of a model kind (``lprnet_tf.models.registry.model_kind``): CTC for sequence
    models, per-slot cross-entropy for slot models, :class:`ImageMSE` for image-to-image models (DGM),
    None for attention, quality and GAN models (they compute their own loss:
    :meth:`lprnet_tf.models.iq_stan.IQSTAN.compute_loss`, :meth:`lprnet_tf.models.eq_lpr.QualityNet.compute_loss`,
    the MTGAN's two losses in :func:`lprnet_tf.gan_training.mtgan_train_step`). Another kind raises ConfigError."""
    if kind in ("attn", "quality", "gan"):
        return None  # the model's own loss (IQ-STAN: eq. 4 of iq-stan.md; EQ-LPR: eq. 4-5 of eq-lpr.md; MTGAN: §4)
    if kind not in LOSSES_BY_KIND:
        from lprnet_tf.config import ConfigError

        raise ConfigError(f"model '{model_name or kind}' is a {kind!r} model with no lprnet-train recipe (models "
                          f"of kinds {sorted(LOSSES_BY_KIND) + ['attn', 'gan', 'quality']} train there); see its "
                          f"module docstring")
    return LOSSES_BY_KIND[kind]()


def _bce_prob(target: float, logits):
    """Binary cross-entropy of sigmoid(logits) against a constant target, probabilities clipped to
    [1e-7, 1 - 1e-7] as ``keras.losses.binary_crossentropy`` does (so every term stays finite)."""
    p = ops.clip(ops.sigmoid(ops.cast(logits, "float32")), 1e-7, 1.0 - 1e-7)
    return -ops.mean(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))


def mtgan_losses(hr, sr, labels, real_adv, real_rec, fake_adv, fake_rec, adv_weight: float = 1.0,
                 rec_weight: float = 1.0) -> dict:
    """The MTGAN losses (``mtgan.md`` §4), backend-neutral.

    - discriminator: ``L_D = L_R + L_F`` (BCE of the real/fake head on HR crops labelled real and on
      super-resolved crops labelled fake) ``+ rec_weight * (CE(HR) + CE(SR))`` (its recognition head,
      :class:`SlotCrossEntropy`, on both, since it reads super-resolved plates at inference);
    - generator: ``L_G = L_MSE - adv_weight * L_F + rec_weight * CE(SR)``: the paper's
      ``L_MSE - L_F`` (pixel MSE to the HR crop minus the discriminator's fake loss) plus the
      recognition loss of its output, through which recognition guides super-resolution.

    ``real_adv``/``fake_adv`` are logits ``(B, 1)``; ``real_rec``/``fake_rec`` slot logits ``(B, S, C)``.
    Returns a dict of scalars: ``d_loss``, ``g_loss``, ``mse``, ``l_real``, ``l_fake``, ``rec_hr``, ``rec_sr``.
    """
    ce = SlotCrossEntropy(reduction=None)
    l_real = _bce_prob(1.0, real_adv)
    l_fake = _bce_prob(0.0, fake_adv)
    rec_hr = ops.mean(ce(labels, real_rec))
    rec_sr = ops.mean(ce(labels, fake_rec))
    mse = ops.mean(ops.square(ops.cast(hr, "float32") - ops.cast(sr, "float32")))
    return {"d_loss": l_real + l_fake + rec_weight * (rec_hr + rec_sr),
            "g_loss": mse - adv_weight * l_fake + rec_weight * rec_sr,
            "mse": mse, "l_real": l_real, "l_fake": l_fake, "rec_hr": rec_hr, "rec_sr": rec_sr}
