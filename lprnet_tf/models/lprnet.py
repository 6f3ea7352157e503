"""The LPRNet family, ``papers/lprnet.md`` Tables 1-4.

- ``basic``: backbone of Table 3 (pooling strides (h=1, w=2)), global context, CTC head.
- ``reduced``: the same with 2x2 pooling strides ("LPRNet reduced", Table 4, ~0.16 GFLOPs). The
  first pooling of Table 3 has stride 1 and keeps it; the two strided poolings halve the height too,
  so the output keeps T=18 positions (a CTC model needs T > plate length).
- ``baseline``: the backbone followed by a bidirectional LSTM decoder (Table 4's "baseline").

Input: float32 ``(B, H, W, 3)`` in [0, 1] (H x W from the plate format, 24 x 94 by default);
normalization to [-1, 1] is the first layer. Output: CTC logits ``(B, T, num_classes)`` with
class 0 the blank; T = 18 for a 94-wide input.
"""

from __future__ import annotations

import keras
from keras import layers

from lprnet_tf.layers import ChannelMaxPool, GlobalContext, LocNet, SmallBasicBlock, conv_bn_relu

VARIANTS = ("basic", "reduced", "baseline")


def _collapse_height(x, name):
    """Average over the height axis: (B, H, T, C) -> (B, T, C), with builtin layers only."""
    h, t, c = x.shape[1], x.shape[2], x.shape[3]
    x = layers.AveragePooling2D((h, 1), padding="valid", name=f"{name}_pool")(x)  # (B, 1, T, C)
    return layers.Reshape((t, c), name=name)(x)  # (B, T, C)


BACKBONE_OUTPUT = "drop2"  # the layer whose output is the backbone's feature map (EQ-LPR's F_r)


def lprnet_backbone(x, strided=(1, 2), dropout: float = 0.5):
    """Table 3 of ``lprnet.md`` up to the wide 4x1 convolution: ``(B, H, W, ch)`` -> ``(B, H-8, T, 256)``
    (shapes for the 24x94 basic model; ``strided`` = the (h, w) stride of the 2nd and 3rd pooling)."""
    x = conv_bn_relu(64, 3, padding="valid", name="conv1")(x)  # (B, 22, 92, 64)
    x = layers.MaxPooling2D(3, strides=1, name="pool1")(x)  # (B, 20, 90, 64)
    x = SmallBasicBlock(128, name="sbb1")(x)  # (B, 20, 90, 128)
    x = layers.MaxPooling2D(3, strides=strided, name="pool2")(x)  # (B, 18, 44, 128)
    x = ChannelMaxPool(64, name="pool2_depth")(x)  # (B, 18, 44, 64)
    x = SmallBasicBlock(256, name="sbb2")(x)  # (B, 18, 44, 256)
    x = SmallBasicBlock(256, name="sbb3")(x)  # (B, 18, 44, 256)
    x = layers.MaxPooling2D(3, strides=strided, name="pool3")(x)  # (B, 16, 21, 256)
    x = ChannelMaxPool(64, name="pool3_depth")(x)  # (B, 16, 21, 64)
    x = layers.Dropout(dropout, name="drop1")(x)
    x = conv_bn_relu(256, (1, 4), padding="valid", name="conv_wide4")(x)  # (B, 16, 18, 256)  "4x1" is WxH
    x = layers.Dropout(dropout, name=BACKBONE_OUTPUT)(x)  # (B, 16, 18, 256)
    return x


def build_lprnet(num_classes: int, height: int = 24, width: int = 94, variant: str = "basic",
                 locnet: bool = False, dropout: float = 0.5, context_units: int = 128,
                 lstm_units: int = 128, name: str | None = None) -> keras.Model:
    """Build an LPRNet; see the module docstring. Returns a functional ``keras.Model``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown LPRNet variant '{variant}'; choose one of {VARIANTS}")
    strided = (2, 2) if variant == "reduced" else (1, 2)  # (h, w) stride of the 2nd and 3rd pooling

    inputs = keras.Input((height, width, 3), name="image")  # (B, 24, 94, 3) in [0, 1]
    x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(inputs)  # (B, 24, 94, 3) in [-1, 1]
    if locnet:
        x = LocNet(name="locnet")(x)  # (B, 24, 94, 3), identity until switched on
    x = lprnet_backbone(x, strided, dropout)  # (B, 16, 18, 256)

    if variant == "baseline":
        seq = _collapse_height(x, "collapse_h")  # (B, 18, 256)
        seq = layers.Bidirectional(layers.LSTM(lstm_units, return_sequences=True), name="bilstm")(seq)  # (B, 18, 2*lstm)
        logits = layers.Dense(num_classes, name="logits")(seq)  # (B, 18, C)
    else:
        kh = min(13, x.shape[1])
        x = conv_bn_relu(num_classes, (kh, 1), padding="valid", name="conv_tall13")(x)  # (B, 4, 18, C) "1x13" is WxH
        x = GlobalContext(context_units, name="global_context")(x)  # (B, 4, 18, C + 128)
        x = layers.Conv2D(num_classes, 1, name="classifier")(x)  # (B, 4, 18, C)
        logits = _collapse_height(x, "logits")  # (B, 18, C)
    return keras.Model(inputs, logits, name=name or f"lprnet_{variant}")

