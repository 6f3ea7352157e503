"""DGM, the deep generative model of ``papers/multitask-lowres-lpr.md`` §2.2 and Fig. 2.

A convolutional autoencoder that learns to turn a high-resolution plate crop into the low-resolution
crop the same plate gives "as if acquired farther away": "six convolution layers where the first
three are followed by a max pooling layer and the last three are followed by an upsampling layer";
"the first and last layers contain a single filter, all other layers contain 64 filters". It is
trained on pairs (HR input, LR target) of the same plate (the paper: close and far frames of a
tracked vehicle; here :class:`lprnet_tf.data.lowres.PairedSource` gives pairs made by a known
downsampling until real pairs exist) and then used to make extra low-resolution training images.

What the text leaves open, and our choice: 3x3 kernels, "same" padding, ReLU, a sigmoid on the last
convolution (the output is an image in [0, 1]), bilinear upsampling (``upsampling: nearest`` for the
Keras default). With a single filter in the last layer the output is one (grey) channel, as in the
paper; ``out_channels: 3`` gives colour output for RGB pipelines.

Input float32 ``(B, H, W, 3)`` in [0, 1] with H and W multiples of 8 (three 2x poolings, three 2x
upsamplings; the 40 x 120 variants qualify, 24 x 94 does not). Output ``(B, H, W, out_channels)``
in [0, 1].

Training: ``lprnet-train`` with ``data.pairs: lowres`` (``configs/experiments/dgm_cn.yaml``): x = the HR
crop, y = its low-resolution version brought back to H x W; loss :class:`lprnet_tf.losses.ImageMSE`
(pixel MSE, the paper names none; a one-channel output is compared with the grey target).
"""

from __future__ import annotations

import keras
from keras import layers


def build_dgm(height: int = 40, width: int = 120, filters: int = 64, out_channels: int = 1,
              kernel_size: int = 3, upsampling: str = "bilinear", name: str = "dgm") -> keras.Model:
    """Build the DGM autoencoder; see the module docstring."""
    if height % 8 or width % 8:
        raise ValueError(f"dgm needs an input height and width that are multiples of 8 (three 2x poolings), got "
                         f"{height}x{width}; use a plate-format variant such as configs/variants/br_120x40.yaml")
    if upsampling not in ("bilinear", "nearest"):
        raise ValueError(f"dgm upsampling must be 'bilinear' or 'nearest', got {upsampling!r}")
    inputs = keras.Input((height, width, 3), name="image")  # (B, H, W, 3) in [0, 1]
    x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(inputs)  # (B, H, W, 3) in [-1, 1]
    # encoder: conv -> 2x2 max-pool, three times; the first conv has a single filter (Fig. 2)
    for i, f in enumerate((1, filters, filters), start=1):
        x = layers.Conv2D(f, kernel_size, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    # (B, H/8, W/8, 64)
    # decoder: conv -> 2x upsampling, three times; the last conv has a single filter (Fig. 2)
    for i, f in enumerate((filters, filters), start=4):
        x = layers.Conv2D(f, kernel_size, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.UpSampling2D(2, interpolation=upsampling, name=f"up{i}")(x)
    # (B, H/2, W/2, 64)
    x = layers.Conv2D(out_channels, kernel_size, padding="same", activation="sigmoid", name="conv6")(x)
    out = layers.UpSampling2D(2, interpolation=upsampling, name="up6")(x)  # (B, H, W, out_channels)
    return keras.Model(inputs, out, name=name)
