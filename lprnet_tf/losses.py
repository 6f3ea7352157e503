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
