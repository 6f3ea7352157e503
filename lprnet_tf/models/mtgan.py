"""MTGAN: joint plate super-resolution and recognition in one multi-task GAN, ``papers/mtgan.md``.

- **Generator** (GN, §2): a 3x3 convolution, "a hierarchy of K residual blocks"
  (:class:`lprnet_tf.layers.ResidualBlock`), "a deconvolutional layer with stride of two ... to enlarge
  the resolution of the feature map", and "a deconvolutional layer with three filters of 1x1 to
  generate the three-channel high-resolution images" (a sigmoid keeps them in [0, 1]). Low-resolution
  input ``(B, H/2, W/2, 3)`` -> super-resolved ``(B, H, W, 3)``.
- **Discriminator** (DN, §3): "M convolution layers and a fully connected (FC) layer (M = 8)", then
  two heads: real/fake (one logit; the paper's sigmoid classifier, applied in the loss) and
  recognition (per-slot logits ``(B, S, C)``, :class:`lprnet_tf.layers.SlotDense`, class 0 = pad as
  in :mod:`lprnet_tf.models.multitask_cnn`). The convolutions follow the SRGAN discriminator the
  poster builds on: 3x3, filters 64, 64, 128, 128, 256, 256, 512, 512, stride 2 on every second one,
  LeakyReLU(0.2), batch norm after all but the first.
- **Losses** (§4, :func:`lprnet_tf.losses.mtgan_losses`): ``L_D = L_R + L_F`` (+ recognition),
  ``L_G = L_MSE - L_F`` (+ recognition of the super-resolved plate).
- :class:`MTGAN` holds both networks; ``model(lr)`` super-resolves then recognizes, giving slot logits
  ``(B, S, C)``; :meth:`MTGAN.super_resolve` gives the image. ``fit(lr, (hr, labels))`` runs the custom
  adversarial step of :mod:`lprnet_tf.gan_training` (TensorFlow backend). ``lprnet-train`` trains it with
  ``data.pairs: lowres`` (``configs/experiments/mtgan_cn.yaml``); its compile config holds both
  optimizers, so a saved MTGAN loads compiled with both optimizers' state (resume at the same step).

The poster gives neither K nor the discriminator's filters: K = 8 residual blocks of 64 filters by
default (model options ``residual_blocks``, ``gen_filters``, ``disc_convs``, ``disc_fc_units``).

Option ``input_skip: bilinear`` (ours, not in the poster; default ``none`` = the poster's generator):
the generator adds its output to the LR input upsampled bilinearly and clips to [0, 1], so it learns
only the correction to plain interpolation (the global residual of VDSR-style SR networks); its last
1x1 deconvolution starts at zero, so an untrained generator is exactly bilinear upsampling. Without it,
the generator trained 2,500 steps on the 900 BR crops enlarges the 12-px val pairs at 27.2 dB PSNR, below
bilinear (29.2) and bicubic (30.0) interpolation of the same input; with it, 29.8 dB
(``benchmarks/lowres.py``, README low-resolution section).

The HR size is the plate format's H x W (both even: one stride-2 deconvolution doubles the LR size).
"""

from __future__ import annotations

import keras
from keras import layers

from lprnet_tf.layers import ResidualBlock, SlotDense


INPUT_SKIPS = ("none", "bilinear")


def build_mtgan_generator(lr_height: int, lr_width: int, residual_blocks: int = 8, filters: int = 64,
                          input_skip: str = "none", name: str = "mtgan_generator") -> keras.Model:
    """The generator network; LR ``(B, h, w, 3)`` in [0, 1] -> SR ``(B, 2h, 2w, 3)`` in [0, 1].
    ``input_skip``: ``none`` (the poster) or ``bilinear`` (output = bilinear(LR) + correction)."""
    if input_skip not in INPUT_SKIPS:
        raise ValueError(f"input_skip must be one of {list(INPUT_SKIPS)}, got {input_skip!r}")
    inputs = keras.Input((lr_height, lr_width, 3), name="lr_image")  # (B, h, w, 3)
    x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(inputs)  # (B, h, w, 3) in [-1, 1]
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name="head")(x)  # (B, h, w, F)
    for i in range(residual_blocks):
        x = ResidualBlock(filters, name=f"res{i + 1}")(x)  # (B, h, w, F)
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu",
                               name="deconv_up")(x)  # (B, 2h, 2w, F)
    if input_skip == "none":
        sr = layers.Conv2DTranspose(3, 1, activation="sigmoid", name="deconv_rgb")(x)  # (B, 2h, 2w, 3)
        return keras.Model(inputs, sr, name=name)
    fix = layers.Conv2DTranspose(3, 1, kernel_initializer="zeros", name="deconv_rgb")(x)  # (B, 2h, 2w, 3)
    base = layers.UpSampling2D(2, interpolation="bilinear", name="upsample_lr")(inputs)  # (B, 2h, 2w, 3)
    sr = layers.Add(name="add_correction")([base, fix])  # (B, 2h, 2w, 3)
    sr = layers.ReLU(max_value=1.0, name="clip")(sr)  # (B, 2h, 2w, 3) in [0, 1]
    return keras.Model(inputs, sr, name=name)


def build_mtgan_discriminator(height: int, width: int, num_slots: int, num_classes: int, convs: int = 8,
                              fc_units: int = 1024, name: str = "mtgan_discriminator") -> keras.Model:
    """The multi-task discriminator; image ``(B, H, W, 3)`` in [0, 1] -> [real/fake logit ``(B, 1)``,
    recognition logits ``(B, S, C)``]."""
    inputs = keras.Input((height, width, 3), name="image")  # (B, H, W, 3)
    x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(inputs)
    for i in range(convs):
        filters = min(512, 64 * 2 ** (i // 2))
        stride = 2 if i % 2 else 1
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=i == 0, name=f"conv{i + 1}")(x)
        if i:
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=f"bn{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"lrelu{i + 1}")(x)
    # (B, H/16, W/16, 512) for M = 8 (24 x 94: (B, 2, 6, 512))
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(fc_units, name="fc")(x)  # (B, 1024)
    x = layers.LeakyReLU(0.2, name="fc_lrelu")(x)
    adv = layers.Dense(1, name="real_fake")(x)  # (B, 1) logit
    rec = SlotDense(num_slots, num_classes, name="recognition")(x)  # (B, S, C)
    return keras.Model(inputs, [adv, rec], name=name)


@keras.saving.register_keras_serializable(package="lprnet_tf")
class MTGAN(keras.Model):
    """Generator + multi-task discriminator with the adversarial training step; see the module docstring.

    ``compile(g_optimizer=..., d_optimizer=...)`` (Adam 1e-4 each by default), then
    ``fit(lr_images, (hr_images, labels))`` with LR ``(B, H/2, W/2, 3)``, HR ``(B, H, W, 3)`` in [0, 1]
    and labels ``(B, L)`` padded with class 0.
    """

    def __init__(self, num_classes: int, num_slots: int, height: int, width: int, residual_blocks: int = 8,
                 gen_filters: int = 64, disc_convs: int = 8, disc_fc_units: int = 1024, adv_weight: float = 1.0,
                 rec_weight: float = 1.0, input_skip: str = "none", **kwargs):
        super().__init__(**kwargs)
        if height % 2 or width % 2:
            raise ValueError(f"mtgan needs an even HR height and width (one stride-2 deconvolution), "
                             f"got {height}x{width}")
        self.num_classes, self.num_slots = int(num_classes), int(num_slots)
        self.height, self.width = int(height), int(width)
        self.residual_blocks, self.gen_filters = int(residual_blocks), int(gen_filters)
        self.disc_convs, self.disc_fc_units = int(disc_convs), int(disc_fc_units)
        self.adv_weight, self.rec_weight = float(adv_weight), float(rec_weight)
        self.input_skip = str(input_skip)
        self.generator = build_mtgan_generator(self.height // 2, self.width // 2, self.residual_blocks,
                                               self.gen_filters, self.input_skip)
        self.discriminator = build_mtgan_discriminator(self.height, self.width, self.num_slots, self.num_classes,
                                                       self.disc_convs, self.disc_fc_units)
        self.d_optimizer = None
        self.loss_trackers = [keras.metrics.Mean(name=k) for k in
                              ("d_loss", "g_loss", "mse", "l_real", "l_fake", "rec_hr", "rec_sr")]
        self.built = True  # both networks are functional models, built above

    @property
    def lr_shape(self) -> tuple:
        return (self.height // 2, self.width // 2, 3)

    def build(self, input_shape=None):
        self.built = True  # both networks are functional models, built in __init__

    def call(self, inputs, training=False):
        sr = self.generator(inputs, training=training)  # (B, H, W, 3)
        _, rec = self.discriminator(sr, training=training)  # (B, S, C)
        return rec

    def super_resolve(self, lr, training=False):
        """LR ``(B, H/2, W/2, 3)`` -> SR ``(B, H, W, 3)``."""
        return self.generator(lr, training=training)

    def get_compile_config(self):
        """Both optimizers (and the compile options): a saved compiled MTGAN loads compiled, and the
        ``.keras`` file's weights hold both optimizers' state (``optimizer`` = the generator's,
        ``d_optimizer``), so a resumed run continues at the same step with the same Adam moments."""
        if not self.compiled or self.d_optimizer is None:
            return None
        return {"g_optimizer": self.optimizer, "d_optimizer": self.d_optimizer, **self._compile_options}

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        super().compile(optimizer=g_optimizer or keras.optimizers.Adam(1e-4), **kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(1e-4)
        self._compile_options = {k: kwargs[k] for k in ("steps_per_execution", "jit_compile", "run_eagerly")
                                 if k in kwargs}
        self.optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return list(self.loss_trackers)

    def train_step(self, data):
        from lprnet_tf.gan_training import mtgan_train_step  # the gradient step is backend-specific

        return mtgan_train_step(self, data)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "num_slots": self.num_slots,
                "height": self.height, "width": self.width, "residual_blocks": self.residual_blocks,
                "gen_filters": self.gen_filters, "disc_convs": self.disc_convs,
                "disc_fc_units": self.disc_fc_units, "adv_weight": self.adv_weight, "rec_weight": self.rec_weight,
                "input_skip": self.input_skip}
