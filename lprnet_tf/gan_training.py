"""The adversarial training step of :class:`lprnet_tf.models.mtgan.MTGAN` (``papers/mtgan.md`` §4).

Model code stays backend-neutral; the gradient step needs the backend's autodiff, so it lives here
and is written for the TensorFlow backend (``tf.GradientTape``), the backend ``lprnet-train`` uses.
One step: the generator super-resolves the LR batch, the discriminator scores the HR batch and the
super-resolved one, both losses come from :func:`lprnet_tf.losses.mtgan_losses` on that one forward
pass, and each network takes an optimizer step on its own loss (simultaneous updates: the
discriminator's update does not see the generator's new weights until the next step).
"""

from __future__ import annotations

import keras

from lprnet_tf.losses import mtgan_losses


def _unpack(data):
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError("MTGAN.fit expects x = LR images and y = (HR images, labels)")
    lr, y = data[0], data[1]
    if not isinstance(y, (tuple, list)) or len(y) != 2:
        raise ValueError("MTGAN.fit expects y = (HR images (B, H, W, 3), labels (B, L))")
    return lr, y[0], y[1]


def mtgan_train_step(model, data) -> dict:
    """One adversarial step of ``model`` (an MTGAN) on ``data = (lr, (hr, labels))``; returns the running
    means of ``d_loss``, ``g_loss``, ``mse``, ``l_real``, ``l_fake``, ``rec_hr``, ``rec_sr``."""
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(f"the MTGAN training step is written for the TensorFlow backend; "
                                  f"KERAS_BACKEND is {keras.backend.backend()!r}")
    import tensorflow as tf

    if model.d_optimizer is None:
        raise ValueError("compile the MTGAN first: model.compile(g_optimizer=..., d_optimizer=...)")
    lr, hr, labels = _unpack(data)
    gen, disc = model.generator, model.discriminator
    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
        sr = gen(lr, training=True)  # (B, H, W, 3)
        real_adv, real_rec = disc(hr, training=True)  # (B, 1), (B, S, C)
        fake_adv, fake_rec = disc(sr, training=True)
        losses = mtgan_losses(hr, sr, labels, real_adv, real_rec, fake_adv, fake_rec,
                              adv_weight=model.adv_weight, rec_weight=model.rec_weight)
    d_vars, g_vars = disc.trainable_variables, gen.trainable_variables
    d_grads = d_tape.gradient(losses["d_loss"], d_vars)
    g_grads = g_tape.gradient(losses["g_loss"], g_vars)
    model.d_optimizer.apply_gradients(zip(d_grads, d_vars))
    model.optimizer.apply_gradients(zip(g_grads, g_vars))
    for tracker in model.loss_trackers:
        tracker.update_state(losses[tracker.name])
    return {t.name: t.result() for t in model.loss_trackers}
