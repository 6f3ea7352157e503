"""Multi-task CNN for low-resolution plates, ``papers/multitask-lowres-lpr.md`` §2.1, Table 1, Fig. 1.

One task per character slot: shared convolutions and a shared fully-connected layer find and
describe the characters; each slot then has two fully-connected layers of its own, the last one
giving the class of the character at that position. There is no explicit segmentation and no CTC.

Table 1 (trainable layers), top to bottom:

=========== ========== ===========
layer       # filters  filter size
=========== ========== ===========
Conv1       128        5 x 5
Conv2       128        3 x 3
Conv3       192        3 x 3
Conv4       256        3 x 3
Shared FC   512
Non-shared  512        (per slot)
Output      36         (per slot)
=========== ========== ===========

plus three 2x2 max-pooling layers with stride 2 and the input layer ``120 x 40`` (W x H).

Our reading of what the text leaves open (Fig. 1 is not in the text we have):

- the three poolings follow Conv1, Conv2 and Conv3 (4 convolutions, 3 poolings); "same" padding,
  ReLU; batch normalization after each convolution (``batch_norm: false`` drops it) because the
  network trains from scratch here and BN makes that far less sensitive to the learning rate;
- dropout (``dropout``, 0.5) after the shared FC and between the two per-slot FCs ("dropout layers
  in between fully-connected layers");
- **slots and classes come from the plate format**: ``max_length`` slots (7 for BR as in the paper;
  8 for CN, whose blue plates have 7 characters) and ``num_classes`` outputs per slot, class 0 being
  the **pad** class "no character in this slot" (it is the CTC blank of the other models and the
  label padding of the pipeline, so labels need no change). The paper's 36 outputs are the BR
  alphabet without a pad class (all its plates have 7 characters);
- the input size comes from the plate format too: the experiments use the 40 x 120 variants
  ``configs/variants/{br,cn}_120x40.yaml`` (``base: br`` + ``height: 40, width: 120``), so the
  pipeline, evaluation and the model-format checks all see one size.

Input float32 ``(B, H, W, 3)`` in [0, 1]; normalization to [-1, 1] is the first layer.
Output: per-slot logits ``(B, S, C)`` (softmax in the loss and the decoder).
"""

from __future__ import annotations

import keras
from keras import layers

from lprnet_tf.layers import SlotDense, conv_bn_relu

FILTERS = ((128, 5), (128, 3), (192, 3), (256, 3))  # Table 1: Conv1..Conv4 (filters, kernel)


def build_multitask_cnn(num_classes: int, num_slots: int, height: int = 40, width: int = 120,
                        fc_units: int = 512, dropout: float = 0.5, batch_norm: bool = True,
                        name: str = "multitask_cnn") -> keras.Model:
    """Build the multi-task CNN; see the module docstring. Returns a functional ``keras.Model``."""
    if height < 8 or width < 8:
        raise ValueError(f"multitask_cnn needs an input of at least 8 x 8 (three 2x2 poolings), got {height}x{width}")
    inputs = keras.Input((height, width, 3), name="image")  # (B, 40, 120, 3) in [0, 1]
    x = layers.Rescaling(2.0, offset=-1.0, name="normalize")(inputs)  # (B, 40, 120, 3) in [-1, 1]
    for i, (filters, k) in enumerate(FILTERS, start=1):
        if batch_norm:
            x = conv_bn_relu(filters, k, name=f"conv{i}")(x)
        else:
            x = layers.Conv2D(filters, k, padding="same", activation="relu", name=f"conv{i}")(x)
        if i <= 3:
            x = layers.MaxPooling2D(2, strides=2, name=f"pool{i}")(x)
    # shapes for 40 x 120: conv1 (B, 40, 120, 128) pool1 (B, 20, 60, 128) conv2 pool2 (B, 10, 30, 128)
    # conv3 pool3 (B, 5, 15, 192) conv4 (B, 5, 15, 256)
    x = layers.Flatten(name="flatten")(x)  # (B, 19200)
    x = layers.Dense(fc_units, activation="relu", name="shared_fc")(x)  # (B, 512)
    x = layers.Dropout(dropout, name="drop_shared")(x)
    x = SlotDense(num_slots, fc_units, activation="relu", name="slot_fc")(x)  # (B, S, 512)
    x = layers.Dropout(dropout, name="drop_slot")(x)
    logits = SlotDense(num_slots, num_classes, name="slot_logits")(x)  # (B, S, C)
    return keras.Model(inputs, logits, name=name)
