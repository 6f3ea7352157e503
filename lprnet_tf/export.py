"""Export a trained recognizer for serving and for devices, and prove the exports agree with Keras.

Two targets, and ONNX as an optional third (``docs/deployment.md`` has the details and the commands):

- **SavedModel** in the TF Serving layout ``OUT/NAME/VERSION/`` (:func:`export_savedmodel`). Two
  signatures, both returning ``plate`` (string), ``confidence`` (float32) and ``logits``
  (float32 ``(B, T, C)``):

  * ``serving_default``: ``image_bytes`` string ``[None]`` (JPEG/PNG/BMP/GIF bytes of plate crops).
    Decoded to RGB (``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` for JPEG -- the same pixels
    as cv2 -- else ``tf.io.decode_image(channels=3, expand_animations=False)``), resized in the
    graph to the format's H x W with ``tf.image.resize`` -- ``area`` when the crop is larger than
    H x W on both sides, else ``bilinear`` (half-pixel centres, no antialias), the same rule as the
    cv2 pipeline (INTER_AREA / INTER_LINEAR) -- then rounded half-to-even to uint8. TF's resize
    kernels differ from cv2's by at most one grey level, so for this signature parity means "same
    plate", not bit-equal logits.
  * ``predict_images``: ``images`` uint8 ``[None, H, W, 3]`` RGB crops already resized (with the
    cv2 rule of :func:`lprnet_tf.runtime.preprocess`); logits equal the Keras model's.

  The greedy CTC decode runs in the graph with TF ops (argmax, collapse repeats, drop blanks, look
  the ids up in ``assets/alphabet.txt``); ``confidence`` is the smallest of the emitted characters'
  max softmax probabilities, as in :func:`lprnet_tf.decoding.greedy_ids`. ``assets/`` also holds
  the plate format (``plate_format.yaml``).

- **TFLite** (:func:`export_tflite`): float32, float16, dynamic-range and int8 files converted from a
  logits-only SavedModel; input float32 ``[1, H, W, 3]`` in [0, 1] (``*_batch.tflite``: ``[-1, H, W,
  3]``, set the batch with ``resize_tensor_input``), output logits ``[B, T, C]``. The graph stops at
  the logits (arg-max and CTC decoding would need Flex ops); :mod:`lprnet_tf.runtime` decodes on the
  host. Each file gets a JSON sidecar (:func:`tflite_sidecar`); a file holding a Flex or custom op is
  refused (:func:`check_builtin_ops`). int8 keeps the LocNet (its sampler turns pixel coordinates
  into gather indices, which 8 bits cannot hold) and the global-context normalization float32 and
  quantizes everything else (selective quantization, :data:`INT8_FLOAT_DEFAULT`).

- **ONNX** (:func:`export_onnx`, needs ``pip install "lprnet_tf[onnx]"``: onnx, onnxruntime, tf2onnx):
  ``OUT/onnx/NAME.onnx`` for single-crop CTC models, the Keras forward pass converted by Keras'
  ``model.export(format="onnx")`` (tf2onnx, opset :data:`ONNX_OPSET`); input ``image`` float32
  ``[batch, H, W, 3]`` in [0, 1] like the TFLite f32 file (dynamic batch), output ``logits``
  ``[batch, T, C]``, decoded on the host. A JSON sidecar like the TFLite files' (:func:`onnx_sidecar`).

:func:`verify_export` reloads what was written and compares it with the Keras model on real or
synthetic crops (the ONNX file run with ONNX Runtime, held to the TFLite f32 check); :func:`export_all`
runs everything and raises :class:`ExportParityError` with the figures when a check fails (a
``parity.json`` report is written either way).

**Multi-frame models** (IQ-STAN, ``papers/iq-stan.md``; ``model.frames`` = K > 0, model kind ``attn``)
read K crops of one plate, each laid out at the format's H x W and tiled side by side along the width
(frame 0 left) -> ``(B, H, K*W, 3)`` (:func:`lprnet_tf.runtime.tile_frames`). Their SavedModel takes
``image_bytes`` string ``[None, K]`` (``serving_default``: each frame decoded and resized in the graph
as above) or ``images`` uint8 ``[None, K, H, W, 3]`` (``predict_images``: frames already resized with
the cv2 rule), tiles them in the graph and returns ``plate``, ``confidence`` (the attention decode of
:func:`lprnet_tf.decoding.attention_decode`: arg-max per step up to the first end class 0, at most
``max_length`` characters; confidence = the product of the chosen steps' probabilities and of the end
class after the last character), ``logits (B, S, C)``,
``frame_weights (B, K)`` and ``quality (B, M)`` (with the IQ branch). Their TFLite file (f32 only)
takes the tiled float32 ``[1 or -1, H, K*W, 3]`` and outputs ``logits``, ``frame_weights`` (and
``quality``) by name; the encoder LSTM is traced unrolled (a ``while`` loop over a dynamic batch
needs TensorList ops TFLite lacks). Parity is checked on tracklets (synthetic by default).

**Slot models** (the multi-task CNN, ``papers/multitask-lowres-lpr.md`` §2.1; model kind ``slot``: logits
``(B, S, C)``, one class per character slot, class 0 = no character) export exactly as CTC models (same
signatures, TFLite variants, sidecars and checks); only the decode differs: :func:`slot_decode_tf` in the
graph and the sidecar's rule ``slot`` on the host (:func:`lprnet_tf.decoding.slot_decode`: arg-max per
slot, class 0 dropped; confidence = the smallest max softmax probability over all slots).

**The MTGAN generator** (``papers/mtgan.md`` §2; model kind ``gan``; export kind ``sr``): the
super-resolution network is exported, not the discriminator. SavedModel (:func:`export_sr_savedmodel`):
``serving_default`` on encoded low-resolution crops (string ``[None]``, decoded and laid out at the
generator's input ``H/2 x W/2`` in the graph as above) and ``predict_images`` on uint8 ``[None, H/2, W/2,
3]``, both returning ``sr_image`` (uint8 ``(B, H, W, 3)``) and ``sr`` (float32 in [0, 1]); with a
recognizer (``--recognizer``) also ``plate``, ``confidence`` and ``logits`` of that recognizer read on
the float SR image laid out at its input size (:func:`fit_float_tf`). TFLite f32 only
(:func:`export_tflite`): float32 ``[1 or -1, H/2, W/2, 3]`` -> ``sr``. Parity
(:func:`verify_sr_export`) on synthetic (or given) plates downscaled with
:func:`lprnet_tf.data.lowres.downscale_to_height`: SR within :data:`SR_ATOL` of Keras.

**EQ-LPR quality networks** (``papers/eq-lpr.md`` §2.2-2.3; model kind ``quality``; export kind
``quality``): one crop -> its predicted recognition quality ``quality`` (float32 ``(B,)`` in [0, 1]), the
score Algorithm 1 (:mod:`lprnet_tf.stream`) compares frame to frame. SavedModel: ``serving_default`` on
encoded crops and ``predict_images`` on uint8 ``[None, H, W, 3]`` (laid out as for the recognizer),
both returning ``quality``. TFLite f32 / f16 / dynamic (:data:`QUALITY_TFLITE_VARIANTS`; int8 is not
calibrated for them): float32 ``[1 or -1, H, W, 3]`` in [0, 1] -> ``quality``, with a sidecar
(:func:`quality_sidecar`). Parity (:func:`verify_quality_export`): float32 exports within
:data:`QUALITY_ATOL` of Keras; f16 / dynamic / the bytes signature within :data:`QUALITY_MAX_MAE` mean
absolute difference and rank correlation >= :data:`QUALITY_MIN_SROCC` (Algorithm 1 only compares
scores). :class:`lprnet_tf.runtime.QualityScorer` runs the files without TensorFlow.

Every SavedModel holds ``assets/model.json`` (:func:`model_info`): the export kind (``ctc``, ``slot``,
``attn``, ``sr``, ``quality``) and the decoding rule, which :class:`lprnet_tf.runtime.Recognizer` reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import warnings
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from lprnet_tf.decoding import decode
from lprnet_tf.vocab import BLANK, PlateFormat

TFLITE_VARIANTS = ("f32", "f16", "dynamic", "int8")
ALPHABET_FILE = "alphabet.txt"
FORMAT_FILE = "plate_format.yaml"
BLANK_TOKEN = "<blank>"
SIDECAR_VERSION = 1

# Parity thresholds (also written into parity.json).
LOGIT_ATOL = 1e-4  # float32 exports: max |logit diff| vs Keras <= LOGIT_ATOL + LOGIT_RTOL * max |Keras logit|
LOGIT_RTOL = 1e-5  # float32 rounding grows with the logits' size (untrained LPRNets reach |logit| ~ 1e3)
MIN_AGREEMENT = 0.99  # f16 / dynamic / int8 / bytes signature: share of crops with the Keras plate
MAX_ACCURACY_DROP = 0.005  # f16 / dynamic / int8: |exact-match accuracy difference| (0.5 points)
PARITY_TRACKLETS = 64  # multi-frame models: default number of synthetic tracklets (~50 ms each to render)
MULTIFRAME_TFLITE_VARIANTS = ("f32",)  # quantized IQ-STAN files are not supported (not calibrated/verified)
ONNX_OPSET = 15  # tf2onnx's default opset (ONNX Runtime >= 1.10 runs it)
ONNX_INPUT, ONNX_OUTPUT = "image", "logits"
ONNX_MODULES = ("onnx", "onnxruntime", "tf2onnx")
ONNX_INSTALL = 'pip install "lprnet_tf[onnx]"'
MODEL_INFO_FILE = "model.json"  # assets/model.json: export kind + decoding rule (read by lprnet_tf.runtime)
SR_TFLITE_VARIANTS = ("f32",)  # the MTGAN generator: quantized SR files are not calibrated or verified
# MTGAN generator parity: its output is a sigmoid in [0, 1]; float32 exports differ from Keras by ~1e-6 (the
# rounding of a few convolutions). 1e-4 is 1/39 of a grey level (1/255), so the uint8 SR images are equal
# except where a value lies within 1e-4 of a rounding boundary (then they differ by one level).
SR_ATOL = 1e-4
SR_BYTES_MEAN_ATOL = 1.0 / 255  # serving_default (in-graph decode + TF resize vs cv2): mean |SR diff| <= 1 level
PARITY_SR_CROPS = 64  # MTGAN generator: default number of synthetic plates for the parity check
QUALITY_TFLITE_VARIANTS = ("f32", "f16", "dynamic")  # EQ-LPR quality networks (int8: not calibrated for them)
QUALITY_ATOL = 1e-4  # quality networks, float32 exports: max |quality diff| vs Keras (a sigmoid in [0, 1])
QUALITY_MAX_MAE = 0.01  # f16 / dynamic / bytes signature: mean |quality diff| vs Keras
QUALITY_MIN_SROCC = 0.99  # ... and Spearman rank correlation with Keras' scores (Algorithm 1 compares scores)

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REAL_CROPS = {"cn": os.path.join(_REPO_ROOT, os.pardir, "shared", "data", "cn_ccpd_like_1000")}


class ExportError(ValueError):
    """An export cannot be written (bad arguments, Flex ops, existing version folder)."""


class ExportParityError(RuntimeError):
    """A reloaded export disagrees with the Keras model; the message lists the failing figures."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report


# ------------------------------------------------------------------------------------------------
# assets
def write_alphabet(fmt: PlateFormat, path: str) -> str:
    """``alphabet.txt``: line k is the character of class k; line 0 is ``<blank>`` (class 0)."""
    bad = [c for c in fmt.alphabet if c.isspace() or c in "\r\n"]
    if bad:
        raise ExportError(f"plate format '{fmt.name}': alphabet holds whitespace {bad!r}; it cannot be "
                          f"written one character per line")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join([BLANK_TOKEN] + list(fmt.alphabet)) + "\n")
    return path


def _first_char_shares(fmt: PlateFormat) -> dict:
    """The sidecar's ``first_char_shares`` and ``local_prior`` rule (README "Local province"), or {} for a
    format without a synthetic generator."""
    from lprnet_tf.decoding import PriorError, first_char_shares

    try:
        shares = first_char_shares(fmt)
    except PriorError:
        return {}
    return {"first_char_shares": shares,
            "local_prior": "optional, beam/template only: inside the prefix beam search, when a prefix reaches "
                           "len(local prefix) labels add log(share / base) if it equals the local prefix, else "
                           "log((1 - share) / (1 - base)) (beams ending shorter: the latter at the end); rank and "
                           "template-filter on these scores; base = first_char_shares[prefix] (docs/deployment.md "
                           "section 5)"}


def _format_dict(fmt: PlateFormat) -> dict:
    d = fmt.to_dict()
    d.pop("synth", None)  # rendering parameters: of no use to a deployed model
    return d


# ------------------------------------------------------------------------------------------------
# in-graph pieces (TF ops)
def resize_like_pipeline(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """uint8 ``(h, w, 3)`` -> uint8 ``(height, width, 3)``: ``area`` when shrinking both sides, else
    ``bilinear`` (half-pixel centres, no antialias), rounded half-to-even and clipped like cv2."""
    f = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    shrink = tf.logical_and(shape[0] > height, shape[1] > width)
    out = tf.cond(shrink,
                  lambda: tf.image.resize(f, (height, width), method="area"),
                  lambda: tf.image.resize(f, (height, width), method="bilinear"))
    return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)


def fit_like_pipeline(image: tf.Tensor, fmt: PlateFormat) -> tf.Tensor:
    """In-graph :func:`lprnet_tf.runtime.fit_crop`: uint8 ``(h, w, 3)`` -> uint8 ``(H, W, 3)``; two-row
    formats are cut at ``round(h * row_split)`` and their rows placed side by side (top row left)."""
    height, width = int(fmt.height), int(fmt.width)
    if fmt.rows == 1:
        return resize_like_pipeline(image, height, width)
    h = tf.shape(image)[0]
    cut = tf.cast(tf.round(tf.cast(h, tf.float64) * fmt.row_split), tf.int32)
    cut = tf.clip_by_value(cut, 1, tf.maximum(h - 1, 1))
    left = width // 2
    top = resize_like_pipeline(image[:cut], height, left)
    bottom = resize_like_pipeline(image[cut:], height, width - left)
    return tf.concat([top, bottom], axis=1)  # (H, W, 3)


def greedy_decode_tf(logits: tf.Tensor, table) -> tuple[tf.Tensor, tf.Tensor]:
    """In-graph greedy CTC decode of ``(B, T, C)`` logits -> (plate string (B,), confidence (B,)).

    Same definition as :func:`lprnet_tf.decoding.greedy_ids`: arg-max per step, a character is
    emitted where the arg-max is not blank and differs from the previous step; its probability is
    the largest max-softmax over its run of steps; confidence is the smallest of those (0 if none).
    ``table`` maps class id (int64) -> character, anything else -> "".
    """
    best = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (B, T)
    bestp = tf.reduce_max(tf.nn.softmax(logits, axis=-1), axis=-1)  # (B, T)
    b, t = tf.shape(best)[0], tf.shape(best)[1]
    prev = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=BLANK)  # (B, T)
    nonblank = tf.not_equal(best, BLANK)
    start = tf.logical_and(nonblank, tf.not_equal(best, prev))  # (B, T) first step of each char
    run = tf.cumsum(tf.cast(start, tf.int32), axis=1) - 1  # (B, T) char index of each step
    count = tf.reduce_sum(tf.cast(start, tf.int32), axis=1)  # (B,)
    seg = tf.where(nonblank, run + tf.range(b)[:, None] * t, b * t)  # blanks -> a dump segment
    run_max = tf.math.unsorted_segment_max(tf.reshape(bestp, [-1]), tf.reshape(seg, [-1]), b * t + 1)
    run_max = tf.reshape(run_max[:-1], [b, t])  # (B, T): max prob of char k at [:, k]
    valid = tf.range(t)[None, :] < count[:, None]
    conf = tf.reduce_min(tf.where(valid, run_max, tf.fill(tf.shape(run_max), 2.0)), axis=1)
    conf = tf.where(count > 0, conf, tf.zeros_like(conf))
    ids = tf.cast(tf.where(start, best, -1), tf.int64)
    plate = tf.strings.reduce_join(table.lookup(ids), axis=1)  # (B,)
    return plate, conf


def attention_decode_tf(logits: tf.Tensor, table, max_length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """In-graph :func:`lprnet_tf.decoding.attention_decode` of ``(B, S, C)`` attention-decoder logits
    (class 0 = end of plate) -> (plate string (B,), confidence (B,)): arg-max per step; the plate is
    the steps before the first end class, at most ``max_length`` characters; confidence = the product
    of those steps' probabilities and of the end class at the step after the last character (where
    the logits have that step). ``table``: class id (int64) -> character, anything else -> ""."""
    logp = tf.nn.log_softmax(logits, axis=-1)  # (B, S, C)
    best = tf.argmax(logp, axis=-1, output_type=tf.int32)  # (B, S)
    s = tf.shape(best)[1]
    is_end = tf.equal(best, 0)
    first_end = tf.argmax(tf.cast(is_end, tf.int32), axis=1, output_type=tf.int32)  # (B,) first 0 (or 0)
    n = tf.minimum(tf.where(tf.reduce_any(is_end, axis=1), first_end, s), int(max_length))  # (B,) characters
    steps = tf.range(s)[None, :]  # (1, S)
    chosen = tf.reduce_max(logp, axis=-1)  # (B, S) log-probability of the arg-max
    lp = tf.reduce_sum(tf.where(steps < n[:, None], chosen, tf.zeros_like(chosen)), axis=1)  # (B,)
    end_lp = tf.gather(logp[:, :, 0], tf.minimum(n, s - 1), batch_dims=1)  # (B,) end class at step n
    conf = tf.exp(lp + tf.where(n < s, end_lp, tf.zeros_like(end_lp)))
    ids = tf.cast(tf.where(steps < n[:, None], best, -1), tf.int64)
    plate = tf.strings.reduce_join(table.lookup(ids), axis=1)  # (B,)
    return plate, conf


def slot_decode_tf(logits: tf.Tensor, table) -> tuple[tf.Tensor, tf.Tensor]:
    """In-graph :func:`lprnet_tf.decoding.slot_decode` of ``(B, S, C)`` slot logits (class 0 = no character)
    -> (plate string (B,), confidence (B,)): arg-max per slot, pad slots dropped, the rest looked up in
    ``table`` (class id (int64) -> character, anything else -> ""); confidence = the smallest max softmax
    probability over all slots, pad decisions included (``multitask-lowres-lpr.md`` §2.1: one
    classifier per slot)."""
    best = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (B, S)
    conf = tf.reduce_min(tf.reduce_max(tf.nn.softmax(logits, axis=-1), axis=-1), axis=1)  # (B,)
    ids = tf.cast(tf.where(tf.not_equal(best, BLANK), best, -1), tf.int64)  # (B, S), pad -> -1 -> ""
    return tf.strings.reduce_join(table.lookup(ids), axis=1), conf


def decode_tf(logits: tf.Tensor, table, kind: str, max_length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The in-graph decode of a recognizer of kind ``kind`` (``ctc``: :func:`greedy_decode_tf`, ``slot``:
    :func:`slot_decode_tf`, ``attn``: :func:`attention_decode_tf`) -> (plate (B,), confidence (B,))."""
    if kind == "slot":
        return slot_decode_tf(logits, table)
    if kind == "attn":
        return attention_decode_tf(logits, table, max_length)
    return greedy_decode_tf(logits, table)


def _resize_float(x: tf.Tensor, height: int, width: int) -> tf.Tensor:
    h, w = int(x.shape[1]), int(x.shape[2])
    if (h, w) == (height, width):
        return x  # cv2.resize to the same size is the identity too
    method = "area" if h > height and w > width else "bilinear"  # the rule of lprnet_tf.runtime.resize_crop
    return tf.image.resize(x, (height, width), method=method)


def fit_float_tf(x: tf.Tensor, fmt: PlateFormat) -> tf.Tensor:
    """float32 images ``(B, h, w, 3)`` of a static size -> ``(B, H, W, 3)`` laid out for ``fmt`` as
    :func:`lprnet_tf.runtime.fit_crop` lays out a crop (the resize rule, the row layout of two-row
    formats), in float (no rounding): how a recognizer reads the MTGAN generator's output. The identity
    when the sizes already agree (one-row formats)."""
    from lprnet_tf.runtime import row_bounds

    height, width = int(fmt.height), int(fmt.width)
    if fmt.rows == 1:
        return _resize_float(x, height, width)
    cut = row_bounds(int(x.shape[1]), fmt)
    left = width // 2
    top = _resize_float(x[:, :cut], height, left)
    bottom = _resize_float(x[:, cut:], height, width - left)
    return tf.concat([top, bottom], axis=2)  # (B, H, W, 3)


def tile_frames_tf(frames: tf.Tensor) -> tf.Tensor:
    """In-graph :func:`lprnet_tf.runtime.tile_frames`: ``(B, K, H, W, C)`` -> ``(B, H, K*W, C)``, frame 0
    left (column ``k * W + w`` of the tiled image is column ``w`` of frame ``k``)."""
    shape = tf.shape(frames)
    x = tf.transpose(frames, [0, 2, 1, 3, 4])  # (B, H, K, W, C)
    return tf.reshape(x, [shape[0], shape[2], shape[1] * shape[3], shape[4]])  # (B, H, K*W, C)


def model_frames(model) -> int:
    """K for a multi-frame model (IQ-STAN: ``model.frames``, model kind ``attn``), 0 for a single-crop one."""
    k = int(getattr(model, "frames", 0) or 0)
    if not k:
        from lprnet_tf.models import model_kind

        if model_kind(model) == "attn":
            raise ExportError(f"model '{model.name}' is an attention-decoder model but has no 'frames' "
                              f"attribute (K); rebuild it with lprnet_tf.models.build_model")
    return k


EXPORT_KINDS = ("ctc", "slot", "attn", "sr", "quality")


def export_kind(model) -> str:
    """What an export of ``model`` is: ``ctc`` / ``slot`` / ``attn`` (multi-frame) recognizers, or ``sr``
    (the MTGAN generator, model kind ``gan``), ``quality`` (EQ-LPR quality networks). Other kinds (DGM
    images) raise ExportError."""
    from lprnet_tf.models import model_kind

    if model_frames(model):
        return "attn"
    kind = model_kind(model)
    if kind == "gan":
        if getattr(model, "generator", None) is None:
            raise ExportError(f"model '{model.name}' is a GAN without a 'generator' network; rebuild it with "
                              f"lprnet_tf.models.build_model")
        return "sr"
    if kind not in ("ctc", "slot", "quality"):
        raise ExportError(f"model '{model.name}' is a '{kind}' model; lprnet-export writes recognizers (ctc, slot, "
                          f"multi-frame attn), the MTGAN generator and EQ-LPR quality networks only")
    return kind


def model_info(model, kind: str | None = None, extra: dict | None = None) -> dict:
    """``assets/model.json`` of a SavedModel: the export kind and how to read its outputs."""
    kind = kind or export_kind(model)
    rules = {"ctc": "greedy CTC: argmax per step, collapse repeats, drop blank (0)",
             "slot": "slot: argmax per character slot, drop the pad class (0); confidence = min over slots of the "
                     "max softmax probability (lprnet_tf.decoding.slot_decode)",
             "attn": "attention: argmax per step up to the first end class (0) (lprnet_tf.decoding.attention_decode)",
             "sr": "none: the outputs are the super-resolved image (sr_image uint8, sr float32 in [0, 1])",
             "quality": "none: the output is the crop's predicted recognition quality (quality float32 in [0, 1], "
                        "EQ-LPR; higher = the recognizer reads it more surely)"}
    return {"model": model.name, "model_kind": kind, "decoder": rules[kind], **(extra or {})}


@contextlib.contextmanager
def unrolled_rnns(model):
    """Trace the model's Keras RNN layers (the IQ-STAN encoder LSTM) with ``unroll=True``.

    A Keras RNN runs a ``while`` loop that accumulates its steps in a TensorList; with a dynamic
    batch the TFLite converter cannot lower that list to builtin ops (it would need Flex). Unrolled,
    the steps are plain builtin ops (the sequence length is static). Restores the flags on exit.
    """
    import keras

    rnns = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.RNN)]
    saved = [layer.unroll for layer in rnns]
    try:
        for layer in rnns:
            layer.unroll = True
        yield rnns
    finally:
        for layer, flag in zip(rnns, saved):
            layer.unroll = flag


class _Untracked:
    """Holds the Keras model without making it a tracked child of the tf.Module.

    Only the model's variables are tracked (as Keras' own ``ExportArchive`` does). With the Keras
    model itself tracked, the TFLite converter keeps every weight as a resource variable
    (VAR_HANDLE/READ_VARIABLE ops, a weightless file that fails at invoke) instead of freezing it.
    """

    def __init__(self, obj):
        self._obj = obj

    def get(self):
        return self._obj


def _variables(model) -> list:
    return [getattr(v, "value", v) for v in model.variables]  # keras.Variable -> tf.Variable


class ServingModule(tf.Module):
    """The served graph: Keras model + preprocessing + greedy decode + assets (see module doc).

    Multi-frame models (``frames`` = K > 0): the signatures take K frames per plate and tile them in
    the graph; the attention decode replaces the CTC one and ``frame_weights`` (+ ``quality``) are
    returned too. Slot models: the slot decode (:func:`slot_decode_tf`) replaces the CTC one."""

    def __init__(self, model, fmt: PlateFormat, asset_dir: str):
        super().__init__(name="lprnet_serving")
        self._model = _Untracked(model)
        self.model_variables = _variables(model)
        self.height, self.width = int(fmt.height), int(fmt.width)
        self.frames = model_frames(model)
        self.kind = export_kind(model)
        self.fmt = fmt
        self.table, self.alphabet_file = _asset_table(asset_dir)
        self.format_file = tf.saved_model.Asset(os.path.join(asset_dir, FORMAT_FILE))
        self.info_file = tf.saved_model.Asset(os.path.join(asset_dir, MODEL_INFO_FILE))
        h, w, k = self.height, self.width, self.frames
        if k:  # K frames per plate
            self.predict_images = tf.function(
                self._predict_frames, input_signature=[tf.TensorSpec([None, k, h, w, 3], tf.uint8, name="images")])
            self.serve_bytes = tf.function(
                self._serve_frame_bytes, input_signature=[tf.TensorSpec([None, k], tf.string, name="image_bytes")])
        else:
            self.predict_images = tf.function(
                self._predict_images, input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
            self.serve_bytes = tf.function(
                self._serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])

    def _run(self, images):
        x = tf.cast(images, tf.float32) * (1.0 / 255.0)  # (B, H, W, 3) in [0, 1], as the pipeline
        out = self._model.get()(x, training=False)
        if self.kind == "quality":  # EQ-LPR quality network: no plate, one score per crop
            return {"quality": tf.cast(out["quality"], tf.float32)}  # (B,)
        if self.frames:  # IQ-STAN: dict of logits (B, S, C), frame_weights (B, K)[, quality (B, M)]
            logits = tf.cast(out["logits"], tf.float32)
            plate, conf = attention_decode_tf(logits, self.table, self.fmt.max_length)
            res = {"plate": plate, "confidence": conf, "logits": logits,
                   "frame_weights": tf.cast(out["frame_weights"], tf.float32)}
            if "quality" in out:
                res["quality"] = tf.cast(out["quality"], tf.float32)
            return res
        logits = tf.cast(out, tf.float32)  # (B, T, C) CTC or (B, S, C) slot logits
        plate, conf = decode_tf(logits, self.table, self.kind, self.fmt.max_length)
        return {"plate": plate, "confidence": conf, "logits": logits}

    def _predict_images(self, images):
        return self._run(images)

    def _predict_frames(self, images):
        return self._run(tile_frames_tf(images))  # (B, K, H, W, 3) -> (B, H, K*W, 3)

    def _decode_one(self, data):
        return decode_fit(data, self.fmt)

    def _serve_bytes(self, image_bytes):
        images = tf.map_fn(self._decode_one, image_bytes,
                           fn_output_signature=tf.TensorSpec([self.height, self.width, 3], tf.uint8))
        return self._run(images)

    def _serve_frame_bytes(self, image_bytes):  # (B, K) encoded frames
        flat = tf.reshape(image_bytes, [-1])  # (B*K,) plate-major
        images = tf.map_fn(self._decode_one, flat,
                           fn_output_signature=tf.TensorSpec([self.height, self.width, 3], tf.uint8))
        images = tf.reshape(images, [-1, self.frames, self.height, self.width, 3])  # (B, K, H, W, 3)
        return self._run(tile_frames_tf(images))


def decode_fit(data: tf.Tensor, fmt: PlateFormat) -> tf.Tensor:
    """One encoded image (JPEG/PNG/BMP/GIF bytes) -> uint8 RGB ``(H, W, 3)`` laid out for ``fmt``
    (:func:`fit_like_pipeline`)."""
    image = tf.cond(  # JPEG with the accurate IDCT: the same pixels as cv2/libjpeg's default
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False))
    image.set_shape([None, None, 3])
    return fit_like_pipeline(image, fmt)


def _asset_table(asset_dir: str):
    """(class id (int64) -> character table read from ``asset_dir/alphabet.txt``, that file as a tracked
    SavedModel asset)."""
    alphabet = tf.saved_model.Asset(os.path.join(asset_dir, ALPHABET_FILE))
    init = tf.lookup.TextFileInitializer(
        alphabet, key_dtype=tf.int64, key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE)
    return tf.lookup.StaticHashTable(init, default_value=""), alphabet


def _write_info(info: dict, path: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return path


class LogitsModule(tf.Module):
    """Logits only, float32 in [0, 1]: the graph the TFLite files are converted from. Multi-frame
    models: input the tiled ``(B, H, K*W, 3)``, outputs ``logits``, ``frame_weights`` (+ ``quality``)."""

    def __init__(self, model, fmt: PlateFormat):
        super().__init__(name="lprnet_logits")
        self._model = _Untracked(model)
        self.model_variables = _variables(model)
        self.frames = model_frames(model)
        self.quality = export_kind(model) == "quality"
        shape = (fmt.height, fmt.width * max(self.frames, 1), 3)
        self.batch1 = tf.function(self._logits, input_signature=[tf.TensorSpec((1, *shape), tf.float32, name="image")])
        self.batched = tf.function(self._logits,
                                   input_signature=[tf.TensorSpec((None, *shape), tf.float32, name="image")])

    def _logits(self, image):
        out = self._model.get()(image, training=False)
        if self.quality:  # EQ-LPR quality network
            return {"quality": tf.cast(out["quality"], tf.float32)}  # (B,)
        if self.frames:
            return {k: tf.cast(out[k], tf.float32) for k in ("logits", "frame_weights", "quality") if k in out}
        return {"logits": tf.cast(out, tf.float32)}


# ------------------------------------------------------------------------------------------------
# SavedModel
def export_savedmodel(model, fmt: PlateFormat, out_dir: str, name: str = "lpr", version: int = 1,
                      overwrite: bool = False) -> str:
    """Write ``out_dir/name/version/`` (TF Serving layout) and return that folder.

    The folder is written under a temporary name and renamed when complete, so a model server
    watching ``out_dir/name`` never loads half a model. An existing version is an error unless
    ``overwrite``.
    """
    if export_kind(model) == "sr":  # the MTGAN generator (no recognizer): see export_sr_savedmodel
        return export_sr_savedmodel(model, fmt, out_dir, name, version, overwrite=overwrite)
    final, tmp = _version_dirs(out_dir, name, version, overwrite)
    try:
        with tempfile.TemporaryDirectory() as assets:
            write_alphabet(fmt, os.path.join(assets, ALPHABET_FILE))
            fmt.save(os.path.join(assets, FORMAT_FILE))
            _write_info(model_info(model), os.path.join(assets, MODEL_INFO_FILE))
            module = ServingModule(model, fmt, assets)
            _save_module(module, os.path.join(tmp, "model"), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _version_dirs(out_dir: str, name: str, version: int, overwrite: bool) -> tuple[str, str]:
    """(final folder ``out_dir/name/version``, a temporary folder beside it) of a SavedModel export."""
    if int(version) < 1:
        raise ExportError(f"--version must be a positive integer (TF Serving versions), got {version}")
    base = os.path.join(out_dir, name)
    final = os.path.join(base, str(int(version)))
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(f"{final} exists; pick another --version or pass --overwrite")
    os.makedirs(base, exist_ok=True)
    return final, tempfile.mkdtemp(prefix=f".tmp-{int(version)}-", dir=base)  # not numeric: servers ignore it


def _save_module(module, export_dir: str, final: str) -> None:
    """Save ``module`` with its ``serving_default`` / ``predict_images`` signatures to ``export_dir``, then
    rename it to ``final`` (complete or not there at all)."""
    sigs = {"serving_default": module.serve_bytes.get_concrete_function(),
            "predict_images": module.predict_images.get_concrete_function()}
    tf.saved_model.save(module, export_dir, signatures=sigs)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(export_dir, final)


# ------------------------------------------------------------------------------------------------
# TFLite
def tflite_ops(path_or_bytes) -> list[str]:
    """Names of the operator codes used by a ``.tflite`` file (builtin names, or the custom code).

    Parses the flatbuffer with the schema shipped in ``ai_edge_litert`` (no interpreter, so files
    with unresolvable Flex ops can be inspected too). Flex ops appear as ``FlexXxx``.
    """
    from ai_edge_litert import schema_py_generated as schema

    data = path_or_bytes
    if isinstance(path_or_bytes, (str, os.PathLike)):
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    m = schema.Model.GetRootAs(bytearray(data), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    ops = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == schema.BuiltinOperator.CUSTOM:
            custom = oc.CustomCode()
            ops.append(custom.decode("utf-8", "replace") if custom else "CUSTOM")
        else:
            ops.append(names.get(code, f"BUILTIN_{code}"))
    return ops


def check_builtin_ops(path_or_bytes, where: str = "tflite model") -> list[str]:
    """Return the op names; raise ExportError if any is a Flex (select-TF) or custom op."""
    ops = tflite_ops(path_or_bytes)
    bad = [o for o in ops if o.startswith("Flex") or o == "CUSTOM" or o not in _builtin_names()]
    if bad:
        raise ExportError(f"{where}: uses non-builtin ops {sorted(set(bad))} (Flex/custom); the TFLite runtimes "
                          f"used here cannot run them. Keep arg-max/CTC and other TF-only ops out of the model")
    return ops


def _builtin_names() -> set:
    from ai_edge_litert import schema_py_generated as schema

    return {k for k, v in vars(schema.BuiltinOperator).items()
            if not k.startswith("_") and isinstance(v, int) and k != "CUSTOM"}


def _save_logits_model(model, fmt: PlateFormat, path: str) -> str:
    with unrolled_rnns(model) if model_frames(model) else contextlib.nullcontext():
        module = LogitsModule(model, fmt)
        tf.saved_model.save(module, path, signatures={"batch1": module.batch1.get_concrete_function(),
                                                      "batched": module.batched.get_concrete_function()})
    return path


def representative_batches(fmt: PlateFormat, representative: Iterable[np.ndarray] | None = None,
                           count: int = 200, seed: int = 0):
    """A representative-dataset callable for the int8 converter: float32 ``[1, H, W, 3]`` crops.

    ``representative``: uint8 RGB crops of any size (from the training source); default synthetic
    plates ``SynthSource(fmt, seed)``. Crops go through the same preprocessing as training.
    """
    from lprnet_tf.data.pipeline import SynthSource
    from lprnet_tf.runtime import preprocess

    if representative is None:
        src = SynthSource(fmt, seed)
        representative = (src.get(i)[0] for i in range(count))
    crops = []
    for img in representative:
        crops.append(preprocess(np.asarray(img), fmt)[None])
        if len(crops) >= count:
            break
    if not crops:
        raise ExportError("the representative data set for int8 calibration is empty")

    def gen():
        for c in crops:
            yield [c]

    return gen


# Layers kept float32 in the int8 files by default (measured, see docs/deployment.md):
# - LocNet: the sampler turns coordinates into gather indices; at 8 bits a coordinate step is
#   ~0.4 px, so the warp reads the wrong pixels (plate agreement with Keras fell to 0%).
# - GlobalContext: divides each map by its own mean of squares; the quotient's range does not fit
#   one int8 scale (agreement 55% -> 88% on real CN crops when kept float).
INT8_FLOAT_DEFAULT = ("locnet", "global_context")


def _layer_kinds():
    from lprnet_tf.layers import GlobalContext, LocNet

    return {"locnet": LocNet, "global_context": GlobalContext}


def int8_float_layer_names(model, spec: Sequence[str]) -> list[str]:
    """Resolve ``spec`` (kinds ``locnet``/``global_context`` or layer names) to the model's layer names."""
    kinds = _layer_kinds()
    names = []
    for item in spec:
        if item in kinds:
            names += [layer.name for layer in model.layers if isinstance(layer, kinds[item])]
        elif any(layer.name == item for layer in model.layers):
            names.append(item)
        else:
            raise ExportError(f"int8 float layers: '{item}' is neither a kind {sorted(kinds)} nor a layer of "
                              f"the model ({[layer.name for layer in model.layers]})")
    return sorted(set(names))


def layer_tensor_names(tflite_bytes: bytes, layer_names: Sequence[str]) -> list[str]:
    """Names of the tensors of a float TFLite graph produced inside the given Keras layers.

    TFLite tensor names are TF name scopes (``lprnet_basic_1/locnet_1/mul``; fused ops join several
    with ``;``); a tensor belongs to layer ``L`` when a path component is ``L`` or ``L_<n>``.
    """
    import re

    from ai_edge_litert.interpreter import Interpreter

    pats = [re.compile(rf"^{re.escape(n)}(_\d+)?$") for n in layer_names]
    out = set()
    for d in Interpreter(model_content=tflite_bytes).get_tensor_details():
        parts = [c for piece in d["name"].split(";") for c in piece.split("/")]
        if any(p.match(c) for p in pats for c in parts):
            out.add(d["name"])
    return sorted(out)


def _convert(saved_dir: str, signature: str, variant: str, rep=None, float_layers: Sequence[str] = (),
             converter_flags: dict | None = None) -> bytes:
    def converter():
        c = tf.lite.TFLiteConverter.from_saved_model(saved_dir, signature_keys=[signature])
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # never SELECT_TF_OPS (Flex)
        return c

    c = converter()
    for key, value in (converter_flags or {}).items():  # experiments (benchmarks/quantization.py)
        if not hasattr(c, key):
            raise ExportError(f"converter flag '{key}' is not an attribute of this TF's TFLiteConverter")
        setattr(c, key, value)
    if variant == "f32":
        return c.convert()
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "f16":
        c.target_spec.supported_types = [tf.float16]
        return c.convert()
    if variant == "dynamic":
        return c.convert()
    if variant != "int8":
        raise ExportError(f"unknown TFLite variant '{variant}'; choose from {TFLITE_VARIANTS}")
    if rep is None:
        raise ExportError("int8 export needs a representative data set")
    c.representative_dataset = rep
    if not float_layers:  # every op int8 (float32 only at the model's input and output)
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return c.convert()
    # Selective quantization: the ops of the float layers stay float32 (TF's quantization debugger
    # with a node denylist; it inserts QUANTIZE/DEQUANTIZE around them).
    names = layer_tensor_names(converter().convert(), float_layers)
    if not names:
        raise ExportError(f"int8: no TFLite tensors found for layers {list(float_layers)}")
    opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=c, debug_dataset=rep, debug_options=opts)
    return debugger.get_nondebug_quantized_model()


def _tensor_info(d: dict) -> dict:
    scale, zero = d.get("quantization", (0.0, 0))
    return {"name": d["name"], "shape": [int(v) for v in d["shape_signature"]],
            "dtype": np.dtype(d["dtype"]).name, "quantization": {"scale": float(scale), "zero_point": int(zero)}}


def _crop_input(fmt: PlateFormat, inp: dict, dynamic: bool) -> dict:
    """The sidecar's ``input``: the tensor (``inp``) and how to lay a crop out for it (``fmt``'s size and rows)."""
    return {**inp, "height": fmt.height, "width": fmt.width, "channels": 3,
            "color": "RGB", "layout": "NHWC", "batch": "dynamic" if dynamic else 1,
            "range": [0.0, 1.0],
            "normalization": "pixel / 255 as float32 in [0, 1]; the model normalizes to [-1, 1] inside",
            "resize": "cv2.resize to (width, height): INTER_AREA when the crop is larger on both "
                      "sides, else INTER_LINEAR",
            "rows": fmt.rows,
            **({"row_layout": f"two-row plate: cut the crop at row round(h * {fmt.row_split}) (at least 1 "
                              "pixel each side); resize the top part to (width // 2, height) and the "
                              "bottom part to (width - width // 2, height), each with the resize rule; "
                              "place them side by side, top row left",
                "row_split": fmt.row_split} if fmt.rows == 2 else {})}


def _sidecar(fmt: PlateFormat, variant: str, model_name: str, inp: dict, out: dict, dynamic: bool,
             time_steps: int, ctc: bool = True) -> dict:
    """The sidecar keys shared by the ``.tflite`` and ``.onnx`` files of a single-crop model: the plate
    format, the classes, the input (``inp``: name/shape/dtype[/quantization] + how to prepare a crop),
    the output (``out``: name/shape/dtype[/quantization], CTC layout) and the decoding rule. ``ctc=False``
    (slot and multi-frame files, whose callers replace the decoding rule) leaves out the local-prior shares."""
    return {
        "sidecar_version": SIDECAR_VERSION,
        "model": model_name,
        "variant": variant,
        "model_kind": "ctc",
        "plate_format": fmt.name,
        "alphabet": fmt.alphabet,
        "blank_index": BLANK,
        "classes": ["<blank>"] + list(fmt.alphabet),
        "num_classes": fmt.num_classes,
        "input": _crop_input(fmt, inp, dynamic),
        "output": {**out, "layout": "(B, T, C) CTC logits, class 0 = blank",
                   "time_steps": int(time_steps)},
        "decoder": {"default": "greedy", "rule": "ctc", "greedy": "argmax per step, collapse repeats, drop blank "
                    "(0); confidence = min over emitted characters of their max softmax probability",
                    "template": "beam search, first of the top beams matching a template",
                    **(_first_char_shares(fmt) if ctc else {})},
        "max_length": fmt.max_length,
        "templates": list(fmt.templates),
        "format": _format_dict(fmt),
    }


def tflite_sidecar(tflite_path: str, fmt: PlateFormat, variant: str, model_name: str = "",
                   extra: dict | None = None, frames: int = 0, kind: str = "ctc") -> dict:
    """The JSON written next to a ``.tflite`` file: everything a host needs to feed and decode it.

    ``frames`` = K > 0 (multi-frame model): adds ``frames``, ``frame_size``, ``tiling``,
    ``outputs`` (every named output) and the attention decoding rule (see :func:`_multiframe_sidecar`).
    ``kind="slot"``: the slot layout and decoding rule (:func:`_slot_sidecar`).
    """
    from ai_edge_litert.interpreter import Interpreter

    from lprnet_tf.runtime import output_details_by_name

    interp = Interpreter(model_path=tflite_path)
    inp = interp.get_input_details()[0]
    outs = output_details_by_name(interp)
    out = outs.get("logits", interp.get_output_details()[0])
    side = _sidecar(fmt, variant, model_name, _tensor_info(inp), _tensor_info(out),
                    dynamic=inp["shape_signature"][0] < 0, time_steps=int(out["shape"][1]),
                    ctc=not frames and kind == "ctc")
    if frames:
        side.update(_multiframe_sidecar(fmt, frames, side["input"], out, outs))
    elif kind == "slot":
        side.update(_slot_sidecar(fmt, side["output"]))
    side.update(extra or {})
    return side


def _slot_sidecar(fmt: PlateFormat, out: dict) -> dict:
    """Sidecar keys of a slot model (multi-task CNN, ``multitask-lowres-lpr.md`` §2.1): class 0 is "no
    character in this slot" (not a CTC blank), the output has one row per character slot, and the
    decoding rule is ``slot`` (:func:`lprnet_tf.decoding.slot_decode`)."""
    slots = int(out["shape"][1])
    return {
        "model_kind": "slot",
        "blank_index": None,
        "pad_index": 0,
        "classes": ["<pad>"] + list(fmt.alphabet),
        "output": {**{k: v for k, v in out.items() if k != "time_steps"}, "slots": slots,
                   "layout": "(B, S, C) slot logits: one classifier per character slot (slot s = the s-th "
                             "character), class 0 = no character in this slot"},
        "decoder": {"default": "greedy", "rule": "slot",
                    "greedy": "slot decode: argmax per slot (the first maximum on ties); drop the slots whose "
                              "argmax is class 0; map the others, in slot order, to alphabet[k - 1]; confidence = "
                              "min over all slots (pad slots included) of the max softmax probability "
                              "(lprnet_tf.decoding.slot_decode). No collapsing of repeats, no beam search"},
    }


def _multiframe_sidecar(fmt: PlateFormat, frames: int, inp: dict, logits: dict, outs: dict) -> dict:
    """Sidecar keys of a multi-frame (IQ-STAN) file: K, the frame size, the tiling layout, every
    output and the attention decoding rule (:func:`lprnet_tf.decoding.attention_decode`)."""
    k, h, w = int(frames), int(fmt.height), int(fmt.width)
    return {
        "model_kind": "attn",
        "frames": k,
        "frame_size": {"height": h, "width": w},
        "tiling": {"layout": "K frames side by side along the width, frame 0 left: input[:, :, k*W:(k+1)*W] "
                             "is frame k (numpy: np.concatenate(frames, axis=1); lprnet_tf.runtime.tile_frames)",
                   "frames": k, "frame_height": h, "frame_width": w, "input_width": k * w,
                   "per_frame": "each frame decoded to RGB and laid out at the format's H x W by the input's "
                                "resize rule (two-row formats: the row layout), like a single crop"},
        "input": {**inp, "width": k * w, "frame_width": w, "frames": k},
        "blank_index": None,
        "end_index": 0,
        "classes": ["<end>"] + list(fmt.alphabet),
        "output": {**_tensor_info(logits), "layout": "(B, S, C) attention-decoder logits, S = max_length + 1 "
                   "steps, class 0 = end of plate", "time_steps": int(logits["shape"][1])},
        "outputs": {name: {**_tensor_info(d), "layout": {
            "logits": "(B, S, C) attention-decoder logits, class 0 = end of plate",
            "frame_weights": "(B, K) temporal attention per frame (sums to 1)",
            "quality": "(B, M) patch quality scores in [0, 1], M = K * patches per frame"}.get(name, "")}
            for name, d in sorted(outs.items())},
        "decoder": {"default": "greedy", "rule": "attn",
                    "greedy": "attention decode: argmax per step up to the first end class "
                    "(0), at most max_length characters; classes 1.. map to the alphabet; confidence = product of "
                    "the read steps' softmax probabilities times the end class probability at the step after the "
                    "last character (when there is one) (lprnet_tf.decoding.attention_decode)"},
    }


def check_variants(kind: str, variants: Sequence[str], frames: int = 0) -> str | None:
    """Why some of the TFLite ``variants`` are refused for an export of ``kind`` (``None`` when none is):
    multi-frame models and the MTGAN generator export ``f32`` only (their quantized files are neither
    calibrated nor verified), EQ-LPR quality networks all but ``int8``; CTC and slot models every variant."""
    allowed = {"attn": MULTIFRAME_TFLITE_VARIANTS, "sr": SR_TFLITE_VARIANTS,
               "quality": QUALITY_TFLITE_VARIANTS}.get(kind, TFLITE_VARIANTS)
    unknown = [v for v in variants if v not in TFLITE_VARIANTS]
    if unknown:
        return f"unknown TFLite variant(s) {unknown}: choose from {list(TFLITE_VARIANTS)} (or 'none')"
    bad = [v for v in variants if v not in allowed]
    if not bad:
        return None
    what = {"attn": f"a multi-frame model (IQ-STAN, K={frames})", "sr": "the MTGAN generator (super-resolution)",
            "quality": "an EQ-LPR quality network"}[kind]
    why = ("full-integer int8 is not calibrated for it" if kind == "quality" else
           "quantized files are not calibrated or verified for it")
    return f"TFLite variant(s) {bad}: {what} exports only {list(allowed)} ({why})"


def export_tflite(model, fmt: PlateFormat, out_dir: str, name: str = "lpr",
                  variants: Sequence[str] = TFLITE_VARIANTS, batch: Sequence[str] = ("1", "dynamic"),
                  representative: Iterable[np.ndarray] | None = None, calibration_count: int = 200,
                  int8_float: Sequence[str] = INT8_FLOAT_DEFAULT, seed: int = 0,
                  converter_flags: dict | None = None) -> list[str]:
    """Convert ``model`` to TFLite ``variants`` in ``out_dir``; returns the ``.tflite`` paths.

    Files: ``NAME_{variant}.tflite`` (input ``[1, H, W, 3]``) and ``NAME_{variant}_batch.tflite``
    (input ``[-1, H, W, 3]``), each with a ``.json`` sidecar. Conversion goes through a logits-only
    SavedModel. ``int8_float``: layers kept float32 in the int8 files (kinds ``locnet``,
    ``global_context`` or layer names; empty = every op int8). ``representative``: uint8 RGB crops
    for int8 calibration (default: ``calibration_count`` synthetic plates). ``converter_flags``: extra
    ``TFLiteConverter`` attributes set before converting (quantization experiments; none by default).

    Multi-frame models (IQ-STAN, K frames): input ``[1 or -1, H, K*W, 3]`` (the K frames tiled), named
    outputs ``logits``, ``frame_weights`` (+ ``quality``), ``f32`` only (others: ExportError); the
    sidecar records K, the frame size, the tiling and the attention decoding rule.

    Slot models: as CTC models (every variant); the sidecar's decoding rule is ``slot``. The MTGAN
    generator (export kind ``sr``): input ``[1 or -1, H/2, W/2, 3]``, output ``sr`` ``[B, H, W, 3]``,
    ``f32`` only; the sidecar is :func:`sr_sidecar`'s. EQ-LPR quality networks (``quality``): output
    ``quality`` ``[B]``, ``f32`` / ``f16`` / ``dynamic``; the sidecar is :func:`quality_sidecar`'s.
    """

    bad = [v for v in variants if v not in TFLITE_VARIANTS]
    if bad:
        raise ExportError(f"unknown TFLite variant(s) {bad}; choose from {list(TFLITE_VARIANTS)}")
    kind = export_kind(model)
    frames = model_frames(model)
    refused = check_variants(kind, variants, frames)
    if refused:
        raise ExportError(refused + "; pass --tflite f32")
    float_layers = int8_float_layer_names(model, int8_float) if "int8" in variants else []
    os.makedirs(out_dir, exist_ok=True)
    rep = representative_batches(fmt, representative, calibration_count, seed) if "int8" in variants else None
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sr":
            saved = _save_generator_model(model, os.path.join(tmp, "generator"))
        else:
            saved = _save_logits_model(model, fmt, os.path.join(tmp, "logits"))
        for variant in variants:
            for b in batch:
                sig = "batch1" if b == "1" else "batched"
                data = _convert(saved, sig, variant, rep, float_layers, converter_flags)
                stem = f"{name}_{variant}" + ("" if b == "1" else "_batch")
                path = os.path.join(out_dir, stem + ".tflite")
                ops = check_builtin_ops(data, where=path)
                with open(path + ".tmp", "wb") as f:
                    f.write(data)
                os.replace(path + ".tmp", path)
                extra = {"ops": sorted(set(ops))}
                if variant == "int8":
                    extra["int8"] = {"calibration": "representative crops, preprocessed like training",
                                     "float32_layers": float_layers,
                                     "io": "float32 input and output; int8 inside"}
                if kind == "sr":
                    side = sr_sidecar(path, model, fmt, variant, model_name=name, extra=extra)
                elif kind == "quality":
                    side = quality_sidecar(path, model, fmt, variant, model_name=name, extra=extra)
                else:
                    side = tflite_sidecar(path, fmt, variant, model_name=name, extra=extra, frames=frames, kind=kind)
                with open(os.path.join(out_dir, stem + ".json"), "w", encoding="utf-8") as f:
                    json.dump(side, f, indent=2, ensure_ascii=False)
                written.append(path)
    return written


# ------------------------------------------------------------------------------------------------
# ONNX (optional extra: pip install "lprnet_tf[onnx]")
def onnx_missing() -> str | None:
    """The first ONNX tool that cannot be imported, with the reason (``None`` when all can): ``onnx``
    (file format), ``onnxruntime`` (the parity check) and ``tf2onnx`` (the converter behind Keras'
    ``model.export(format="onnx")`` on the TensorFlow backend)."""
    import importlib

    for module in ONNX_MODULES:
        try:
            importlib.import_module(module)
        except Exception as e:  # ImportError, or a broken install failing at import time
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            return f"{module} ({reason})"
    return None


def require_onnx(what: str = "ONNX export") -> None:
    """Raise :class:`lprnet_tf.config.UsageError` naming the install command when the ONNX tools are missing."""
    missing = onnx_missing()
    if missing:
        from lprnet_tf.config import UsageError

        raise UsageError(f"{what} needs onnx, onnxruntime and tf2onnx, and {missing} cannot be imported; install "
                         f"them with: {ONNX_INSTALL}")


def onnx_unsupported(model) -> str | None:
    """Why ``model`` has no ONNX export (``None`` when it has): only single-crop CTC models are
    exported and checked (multi-frame IQ-STAN and slot/GAN/quality models are not)."""
    from lprnet_tf.models import model_kind

    frames = model_frames(model)
    kind = model_kind(model)
    if frames or kind != "ctc":
        what = f"a multi-frame model (K={frames})" if frames else f"a '{kind}' model"
        return (f"model '{model.name}' is {what}; the ONNX export covers single-crop CTC models only (use its "
                f"SavedModel or TFLite f32 file)")
    return None


def _onnx_dims(value_info) -> list[int]:
    return [int(d.dim_value) if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]


def _name_onnx_io(m) -> None:
    """Name the graph's output ``logits`` (tf2onnx names it after the TF tensor, ``Identity:0``) and
    the input's and output's first dimension ``batch`` (tf2onnx: ``unk__N``)."""
    g = m.graph
    old = g.output[0].name
    if old != ONNX_OUTPUT:
        for node in g.node:
            node.input[:] = [ONNX_OUTPUT if v == old else v for v in node.input]
            node.output[:] = [ONNX_OUTPUT if v == old else v for v in node.output]
        for vi in g.value_info:
            if vi.name == old:
                vi.name = ONNX_OUTPUT
        g.output[0].name = ONNX_OUTPUT
    for vi in (g.input[0], g.output[0]):
        dim = vi.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = "batch"


def onnx_sidecar(onnx_path: str, fmt: PlateFormat, model_name: str = "", extra: dict | None = None) -> dict:
    """The JSON written next to a ``.onnx`` file: the same keys as :func:`tflite_sidecar` (variant ``f32``,
    shapes with -1 for the dynamic batch, no quantization) plus ``onnx`` (opset, producer, I/O names)."""
    import onnx

    m = onnx.load(onnx_path)
    g = m.graph
    inp, out = ({"name": vi.name, "shape": _onnx_dims(vi),
                 "dtype": onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name}
                for vi in (g.input[0], g.output[0]))
    side = _sidecar(fmt, "f32", model_name, inp, out, dynamic=inp["shape"][0] < 0, time_steps=out["shape"][1])
    producer = f"{m.producer_name} {m.producer_version.split(' ')[0]}".strip()  # tf2onnx: "1.17.0 <git hash>"
    side["onnx"] = {"opset": max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
                    "ir_version": int(m.ir_version), "producer": producer,
                    "input_name": inp["name"], "output_name": out["name"],
                    "run": "onnxruntime.InferenceSession(path).run(None, {input_name: x})[0] -> logits"}
    side["ops"] = sorted({n.op_type for n in g.node})
    side.update(extra or {})
    return side


def export_onnx(model, fmt: PlateFormat, out_dir: str, name: str = "lpr", opset: int = ONNX_OPSET) -> str:
    """Write ``out_dir/NAME.onnx`` (+ ``NAME.json`` sidecar) for a single-crop CTC model; returns the path.

    The graph is the Keras model's forward pass (``model.export(format="onnx")``, tf2onnx on the
    TensorFlow backend; the LocNet sampler becomes plain Floor/Min/Max/Gather ops): input
    ``image`` float32 ``[batch, H, W, 3]`` in [0, 1] (as the TFLite f32 file, dynamic batch), output
    ``logits`` float32 ``[batch, T, C]`` (class 0 = CTC blank). Decoding stays on the host
    (:mod:`lprnet_tf.runtime`). Written under a temporary name and renamed when complete.
    """
    require_onnx()
    why = onnx_unsupported(model)
    if why:
        raise ExportError(why)
    import onnx

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.onnx")
    spec = [tf.TensorSpec((None, int(fmt.height), int(fmt.width), 3), tf.float32, name=ONNX_INPUT)]
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        with warnings.catch_warnings():  # Keras' numpy-2 patch of tf2onnx probes np.object
            warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
            model.export(raw, format="onnx", input_signature=spec, opset_version=int(opset), verbose=False)
        m = onnx.load(raw)
    _name_onnx_io(m)
    onnx.checker.check_model(m)
    with open(path + ".tmp", "wb") as f:
        f.write(m.SerializeToString())
    os.replace(path + ".tmp", path)
    side = onnx_sidecar(path, fmt, model_name=name)
    with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(side, f, indent=2, ensure_ascii=False)
    return path


# ------------------------------------------------------------------------------------------------
# MTGAN generator (super-resolution, mtgan.md §2)
def lr_format(model, fmt: PlateFormat) -> PlateFormat:
    """The plate format at the MTGAN generator's input size (``H/2 x W/2``; same rows and row split): how a
    low-resolution crop is laid out before the generator reads it, as
    :class:`lprnet_tf.data.lowres.PairedSource` lays out the training pairs."""
    h, w = (int(v) for v in model.generator.input_shape[1:3])
    return fmt if (h, w) == (fmt.height, fmt.width) else dataclasses.replace(fmt, height=h, width=w)


def _sr_size(model) -> tuple[int, int]:
    return tuple(int(v) for v in model.generator.output_shape[1:3])  # (H, W)


def _to_uint8_tf(sr: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(sr * 255.0), 0.0, 255.0), tf.uint8)  # half to even, as np.rint


def _to_uint8(sr: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(sr, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _check_recognizer(recognizer, rec_fmt) -> str:
    """The export kind of a recognizer composed with the generator (``ctc`` or ``slot``); ExportError
    for anything else or a missing plate format."""
    if rec_fmt is None:
        raise ExportError("a recognizer composed with the MTGAN generator needs its plate format")
    kind = export_kind(recognizer)
    if kind not in ("ctc", "slot"):
        raise ExportError(f"recognizer '{recognizer.name}' is a '{kind}' model; the SR + recognize export composes "
                          f"single-crop recognizers (ctc, slot) only")
    return kind


def sr_info(model, fmt: PlateFormat, recognizer=None, rec_fmt: PlateFormat | None = None) -> dict:
    """``assets/model.json`` of an MTGAN generator SavedModel (export kind ``sr``): sizes, the layout of
    the low-resolution input, the outputs and the composed recognizer (or ``null``)."""
    lr = lr_format(model, fmt)
    hr = _sr_size(model)
    rec = None
    if recognizer is not None:
        kind = _check_recognizer(recognizer, rec_fmt)
        rec = {"model": recognizer.name, "model_kind": kind, "plate_format": rec_fmt.name,
               "input_size": [int(rec_fmt.height), int(rec_fmt.width)], "decoder": model_info(recognizer)["decoder"],
               "reads": "the float SR image (sr, not the rounded sr_image) laid out at input_size with the resize "
                        "rule (the identity when the sizes agree and the format has one row)"}
    return {"scale": hr[0] // lr.height, "lr_size": [lr.height, lr.width], "hr_size": list(hr),
            "sr_format": _format_dict(fmt),
            "input": "low-resolution RGB crop laid out at lr_size by the resize rule (cv2.resize: INTER_AREA when "
                     "the crop is larger on both sides, else INTER_LINEAR; two-row formats: the row layout)",
            "outputs": {"sr_image": "uint8 (B, H, W, 3): round(sr * 255), half to even",
                        "sr": "float32 (B, H, W, 3) in [0, 1]: the generator's output",
                        **({"plate": "string (B,)", "confidence": "float32 (B,)",
                            "logits": "float32 (B, T, C): the recognizer's"} if rec else {})},
            "recognizer": rec}


class GeneratorModule(tf.Module):
    """The MTGAN generator alone, float32 LR ``(B, H/2, W/2, 3)`` in [0, 1] -> ``sr`` ``(B, H, W, 3)``: the
    graph its TFLite files are converted from."""

    def __init__(self, model):
        super().__init__(name="lprnet_sr")
        gen = model.generator
        self._model = _Untracked(gen)
        self.model_variables = _variables(gen)
        shape = tuple(int(v) for v in gen.input_shape[1:])  # (H/2, W/2, 3)
        self.batch1 = tf.function(self._sr, input_signature=[tf.TensorSpec((1, *shape), tf.float32, name="image")])
        self.batched = tf.function(self._sr, input_signature=[tf.TensorSpec((None, *shape), tf.float32, name="image")])

    def _sr(self, image):
        return {"sr": tf.cast(self._model.get()(image, training=False), tf.float32)}  # (B, H, W, 3)


def _save_generator_model(model, path: str) -> str:
    module = GeneratorModule(model)
    tf.saved_model.save(module, path, signatures={"batch1": module.batch1.get_concrete_function(),
                                                  "batched": module.batched.get_concrete_function()})
    return path


class SRServingModule(tf.Module):
    """The served MTGAN generator (``mtgan.md`` §2) [+ a recognizer reading its output]: low-resolution
    crops -> ``sr_image`` (uint8), ``sr`` (float32 in [0, 1]) [+ ``plate``, ``confidence``, ``logits``].

    ``predict_images``: uint8 ``[None, H/2, W/2, 3]`` crops already laid out at the generator's input
    with the cv2 rule; ``serving_default``: encoded crops ``[None]`` decoded and laid out in the graph
    (:func:`decode_fit`). The recognizer reads the float SR image laid out at its own input
    (:func:`fit_float_tf`) and its plates are decoded in the graph (:func:`decode_tf`)."""

    def __init__(self, model, fmt: PlateFormat, asset_dir: str, recognizer=None, rec_fmt: PlateFormat | None = None):
        super().__init__(name="lprnet_sr_serving")
        gen = model.generator
        self._gen = _Untracked(gen)
        self.model_variables = _variables(gen)
        self.lr_fmt = lr_format(model, fmt)
        self.format_file = tf.saved_model.Asset(os.path.join(asset_dir, FORMAT_FILE))
        self.info_file = tf.saved_model.Asset(os.path.join(asset_dir, MODEL_INFO_FILE))
        self._rec = None
        if recognizer is not None:
            self.rec_kind = _check_recognizer(recognizer, rec_fmt)
            self._rec = _Untracked(recognizer)
            self.recognizer_variables = _variables(recognizer)
            self.rec_fmt = rec_fmt
            self.table, self.alphabet_file = _asset_table(asset_dir)
        h, w = int(self.lr_fmt.height), int(self.lr_fmt.width)
        self.predict_images = tf.function(
            self._run, input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
        self.serve_bytes = tf.function(
            self._serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])

    def _run(self, images):
        x = tf.cast(images, tf.float32) * (1.0 / 255.0)  # (B, H/2, W/2, 3) in [0, 1]
        sr = tf.cast(self._gen.get()(x, training=False), tf.float32)  # (B, H, W, 3) in [0, 1]
        out = {"sr": sr, "sr_image": _to_uint8_tf(sr)}
        if self._rec is not None:
            logits = tf.cast(self._rec.get()(fit_float_tf(sr, self.rec_fmt), training=False), tf.float32)
            plate, conf = decode_tf(logits, self.table, self.rec_kind, self.rec_fmt.max_length)
            out.update(plate=plate, confidence=conf, logits=logits)
        return out

    def _serve_bytes(self, image_bytes):
        images = tf.map_fn(lambda d: decode_fit(d, self.lr_fmt), image_bytes,
                           fn_output_signature=tf.TensorSpec([self.lr_fmt.height, self.lr_fmt.width, 3], tf.uint8))
        return self._run(images)


def export_sr_savedmodel(model, fmt: PlateFormat, out_dir: str, name: str = "lpr", version: int = 1,
                         overwrite: bool = False, recognizer=None, recognizer_format: PlateFormat | None = None) -> str:
    """Write the MTGAN generator's SavedModel ``out_dir/name/version/`` (TF Serving layout, written like
    :func:`export_savedmodel`) and return that folder; with ``recognizer`` (a ctc or slot Keras model and
    its plate format) the signatures also return its plates (SR + recognize in one graph).

    Assets: ``plate_format.yaml`` (the recognizer's format, else the MTGAN's), ``model.json``
    (:func:`sr_info`) and, with a recognizer, its ``alphabet.txt``."""
    if export_kind(model) != "sr":
        raise ExportError(f"model '{model.name}' is not an MTGAN (no generator to export); use export_savedmodel")
    if recognizer is not None:
        _check_recognizer(recognizer, recognizer_format)
    final, tmp = _version_dirs(out_dir, name, version, overwrite)
    try:
        with tempfile.TemporaryDirectory() as assets:
            (recognizer_format if recognizer is not None else fmt).save(os.path.join(assets, FORMAT_FILE))
            if recognizer is not None:
                write_alphabet(recognizer_format, os.path.join(assets, ALPHABET_FILE))
            _write_info(model_info(model, "sr", sr_info(model, fmt, recognizer, recognizer_format)),
                        os.path.join(assets, MODEL_INFO_FILE))
            module = SRServingModule(model, fmt, assets, recognizer, recognizer_format)
            _save_module(module, os.path.join(tmp, "model"), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def sr_sidecar(tflite_path: str, model, fmt: PlateFormat, variant: str, model_name: str = "",
               extra: dict | None = None) -> dict:
    """The JSON written next to an MTGAN generator ``.tflite`` file: the low-resolution input (size and
    layout rule), the ``sr`` output and how to turn it into an image or read its plate."""
    from ai_edge_litert.interpreter import Interpreter

    from lprnet_tf.runtime import output_details_by_name

    interp = Interpreter(model_path=tflite_path)
    inp = interp.get_input_details()[0]
    out = output_details_by_name(interp)
    out = out.get("sr", interp.get_output_details()[0])
    lr = lr_format(model, fmt)
    hr = _sr_size(model)
    side = {
        "sidecar_version": SIDECAR_VERSION,
        "model": model_name,
        "variant": variant,
        "model_kind": "sr",
        "plate_format": fmt.name,
        "scale": hr[0] // lr.height,
        "input": {**_crop_input(lr, _tensor_info(inp), dynamic=inp["shape_signature"][0] < 0),
                  "what": "a low-resolution plate crop (any size), laid out at the generator's input like a crop"},
        "output": {**_tensor_info(out), "height": hr[0], "width": hr[1], "channels": 3, "color": "RGB",
                   "layout": "(B, H, W, 3) super-resolved plate, NHWC", "range": [0.0, 1.0],
                   "to_uint8": "round(sr * 255) (half to even), clipped to [0, 255]"},
        "decoder": {"default": None, "rule": "none",
                    "note": "an image-to-image model: no plate text. To read the plate, lay the float SR image out "
                            "for a recognizer (lprnet_tf.runtime.fit_crop) and run it: lprnet-recognize --sr FILE "
                            "--model RECOGNIZER"},
        "format": _format_dict(fmt),
    }
    side.update(extra or {})
    return side


# ------------------------------------------------------------------------------------------------
# parity
def crops_from_spec(spec: str, fmt: PlateFormat, count: int, with_path: bool = True,
                    skip_bad: bool = False, split: str | None = None) -> list:
    """The first ``count`` crops of a data spec (any reader layout or ``synth:SEED``; ``split``: only the
    rows of that split of a CSV with a split column): uint8 RGB images, or ``(image, text, file path or
    None)`` tuples with ``with_path`` (the path only when the file is the crop itself, so the bytes
    signature can be fed the original encoded file)."""
    from lprnet_tf.data.pipeline import FileSource, open_source

    src = open_source(spec, fmt, split=split, skip_bad=skip_bad)
    n = min(len(src), count)
    out = []
    for i in range(n):
        image, text = src.get(i)
        path = None
        if isinstance(src, FileSource) and src.samples[i].box is None:
            path = src.samples[i].path
        out.append((image, text, path) if with_path else image)
    return out


def default_parity_crops(fmt: PlateFormat, count: int = 1000, seed: int = 12345) -> tuple[list, str]:
    """Crops to check parity on: ``(image uint8 RGB, text, file path or None)`` + a description.

    Real crops from ``../shared/data/<set>`` when the format has one and the folder exists (the
    first ``count`` rows), else synthetic plates ``SynthSource(fmt, seed)``.
    """
    real = DEFAULT_REAL_CROPS.get(fmt.name)
    if real and os.path.isfile(os.path.join(real, "labels.csv")):
        crops = crops_from_spec(real, fmt, count, skip_bad=True)
        return crops, f"real crops: {os.path.basename(os.path.normpath(real))} (first {len(crops)})"
    return crops_from_spec(f"synth:{seed}", fmt, count), f"synthetic plates (seed {seed}, {count})"


def tracklets_from_spec(spec: str, fmt: PlateFormat, frames: int, count: int,
                        track_policy: str = "error", split: str | None = None) -> list:
    """The first ``count`` tracklets of K = ``frames`` frames of a data spec (any layout of
    :func:`lprnet_tf.data.tracklets.read_tracklets`, or ``synth:SEED[:COUNT]``, rendered on the fly;
    ``split``: only that split's rows):
    ``(list of K uint8 RGB frames, text, list of K frame paths or None)`` (the paths let the bytes
    signature be fed the original encoded files)."""
    from lprnet_tf.data.pipeline import open_source

    parts = spec.split(":")
    if parts[0] == "synth" and (len(parts) < 3 or not parts[2]):
        spec = f"synth:{parts[1] if len(parts) > 1 and parts[1] else 0}:{int(count)}"
    src = open_source(spec, fmt, split=split, frames=frames, track_policy=track_policy)
    tracks = getattr(src, "tracklets", None) or []
    out = []
    for i in range(min(len(src), count)):
        images, text = src.get(i)[:2]
        paths = None
        if i < len(tracks) and all(isinstance(f, str) for f in tracks[i].frames):
            paths = list(tracks[i].frames)
        out.append((images, text, paths))
    return out


def default_parity_tracklets(fmt: PlateFormat, frames: int, count: int = PARITY_TRACKLETS,
                             seed: int = 12345) -> tuple[list, str]:
    """Tracklets to check a multi-frame model's parity on: ``count`` synthetic tracklets of K frames
    (``synth:SEED:COUNT``) + a description."""
    tracks = tracklets_from_spec(f"synth:{seed}:{count}", fmt, frames, count)
    return tracks, f"synthetic tracklets (seed {seed}, {count} x {frames} frames)"


def _accuracy(plates, texts, fmt):
    return float(np.mean([p == fmt.normalize(t) for p, t in zip(plates, texts)])) if texts else 0.0


def _changed_split(plates, ref_plates, texts, fmt) -> dict:
    """Where an export's plates differ from Keras's: ``changed_where_keras_right`` / ``_wrong`` =
    [changed, crops] over the crops Keras reads right / misreads (empty without labels)."""
    if not texts:
        return {}
    right = [p == fmt.normalize(t) for p, t in zip(ref_plates, texts)]
    same = [a == b for a, b in zip(plates, ref_plates)]
    return {f"changed_where_{name}": [sum(1 for k, s in zip(right, same) if k == want and not s),
                                      sum(1 for k in right if k == want)]
            for name, want in (("keras_right", True), ("keras_wrong", False))}


def _changed_why(r: dict) -> str:
    """The failure message's tail for :func:`_changed_split`'s figures ('' without them)."""
    if "changed_where_keras_right" not in r:
        return ""
    (cr, nr), (cw, nw) = r["changed_where_keras_right"], r["changed_where_keras_wrong"]
    return f"; changed plates: {cr} of the {nr} crops Keras reads right, {cw} of the {nw} it misreads"


def _run_tflite(path: str, x: np.ndarray) -> dict:
    """``{output name: array}`` of a ``.tflite`` file on float32 ``x`` (``logits`` always)."""
    from lprnet_tf.runtime import TFLiteBackend

    return TFLiteBackend(path).outputs(x)


def _variant_of(path: str) -> str:
    side = path[: -len(".tflite")] + ".json"
    if os.path.isfile(side):
        with open(side, encoding="utf-8") as f:
            return json.load(f).get("variant", "")
    stem = os.path.basename(path)[: -len(".tflite")].removesuffix("_batch")
    return stem.rsplit("_", 1)[-1]


def _encoded(image: np.ndarray, path: str | None) -> bytes:
    """The original file's bytes when it is an image the bytes signature reads, else a PNG of ``image``."""
    if path and path.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".gif")):
        with open(path, "rb") as f:
            return f.read()
    import cv2

    return cv2.imencode(".png", np.ascontiguousarray(np.asarray(image)[..., ::-1]))[1].tobytes()


def _frame_paths(item) -> list | None:
    p = item[2] if len(item) > 2 else None  # (frames, text, paths); TrackletSource.get gives a quality map
    return list(p) if isinstance(p, (list, tuple)) and all(isinstance(v, str) for v in p) else None


def _record(report: dict, key: str, result: dict, ok: bool, why: str) -> None:
    """Add one export's ``result`` to a parity report, and ``why`` to its failures unless ``ok``."""
    result["passed"] = bool(ok)
    if not ok:
        report["failures"].append(f"{key}: {why}")
    report["exports"][key] = result


def finish_report(report: dict, report_path: str | None, raise_on_fail: bool) -> dict:
    """Close a parity report: ``passed``, written to ``report_path`` (JSON) if given, and an
    :class:`ExportParityError` listing the failures when ``raise_on_fail``."""
    report["passed"] = not report["failures"]
    if report_path:
        with open(report_path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
    if report["failures"] and raise_on_fail:
        raise ExportParityError("export parity check failed:\n  " + "\n  ".join(report["failures"])
                                + (f"\n(full report: {report_path})" if report_path else ""), report)
    return report


def verify_export(model, fmt: PlateFormat, saved_model_dir: str | None = None,
                  tflite_files: Sequence[str] = (), crops=None, batch_size: int = 64,
                  raise_on_fail: bool = True, report_path: str | None = None,
                  crops_source: str = "given crops", onnx_files: Sequence[str] = ()) -> dict:
    """Reload exports and compare them with the Keras ``model``; returns the report dict.

    ``crops``: list of ``(uint8 RGB image, text)`` or ``(image, text, path)``; default
    :func:`default_parity_crops`. Checks: SavedModel ``predict_images``, TFLite f32 (``*_f32*``) and
    ONNX (``onnx_files``, run with ONNX Runtime) logits within ``LOGIT_ATOL`` and identical greedy
    plates; SavedModel ``serving_default`` (encoded bytes, in-graph resize) and TFLite
    f16/dynamic/int8 plate agreement >= ``MIN_AGREEMENT`` and exact-match accuracy within
    ``MAX_ACCURACY_DROP`` of Keras. Raises ExportParityError listing the
    failures (after writing ``report_path``) unless ``raise_on_fail`` is False.

    Multi-frame models (``model.frames`` = K): ``crops`` are tracklets ``(list of K uint8 RGB frames,
    text[, list of K frame paths])`` (default :func:`default_parity_tracklets`), tiled as
    :func:`lprnet_tf.runtime.tile_frames` does; ``predict_images`` gets the frames ``(N, K, H, W, 3)``,
    ``serving_default`` the encoded frames ``[N, K]``; plates are attention-decoded, and the exact
    checks also need ``frame_weights`` within ``LOGIT_ATOL``.

    Slot models: plates are slot-decoded (:func:`lprnet_tf.decoding.slot_decode`), the checks are the
    CTC ones. The MTGAN generator: :func:`verify_sr_export` (``crops`` are then high-resolution crops).
    EQ-LPR quality networks: :func:`verify_quality_export`.
    """
    from lprnet_tf.runtime import fit_crop, tile_frames

    kind = export_kind(model)
    if kind == "sr":
        return verify_sr_export(model, fmt, saved_model_dir, tflite_files, crops=crops, batch_size=batch_size,
                                raise_on_fail=raise_on_fail, report_path=report_path, crops_source=crops_source)
    if kind == "quality":
        return verify_quality_export(model, fmt, saved_model_dir, tflite_files, crops=crops, batch_size=batch_size,
                                     raise_on_fail=raise_on_fail, report_path=report_path, crops_source=crops_source)
    frames = model_frames(model)
    what = "tracklet" if frames else "crop"
    source = crops_source
    if crops is None:
        crops, source = default_parity_tracklets(fmt, frames) if frames else default_parity_crops(fmt)
    if frames:
        crops = [(c[0], c[1], _frame_paths(c)) for c in crops]
    else:
        crops = [(c[0], c[1], c[2] if len(c) > 2 else None) for c in crops]
    if not crops:
        raise ExportError(f"parity check needs at least one {what}")
    images = [c[0] for c in crops]
    texts = [c[1] for c in crops]
    if frames:
        short = [i for i, t in enumerate(images) if len(t) != frames]
        if short:
            raise ExportError(f"parity tracklet {short[0]} has {len(images[short[0]])} frames but the model "
                              f"reads K={frames}; give tracklets of {frames} frames")
        u8 = np.stack([np.stack([fit_crop(np.asarray(f), fmt) for f in t]) for t in images])  # (N, K, H, W, 3)
        tiled = np.stack([tile_frames(t, fmt) for t in images])  # (N, H, K*W, 3) uint8
    else:
        u8 = tiled = np.stack([fit_crop(img, fmt) for img in images])  # (N, H, W, 3) uint8
    x = tiled.astype(np.float32) * (1.0 / 255.0)  # in [0, 1], as lprnet_tf.runtime.preprocess

    def keras_run(xb):
        out = model(xb, training=False)
        if frames:
            return np.asarray(out["logits"], np.float32), np.asarray(out["frame_weights"], np.float32)
        return np.asarray(out, np.float32), None

    runs = [keras_run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    ref = np.concatenate([r[0] for r in runs])
    ref_weights = np.concatenate([r[1] for r in runs]) if frames else None
    ref_plates, ref_conf = decode(ref, fmt, "greedy", kind=kind)
    report = {"crops": {"source": source, "count": len(crops), **({"frames": frames, "unit": "tracklets"}
                                                                   if frames else {})},
              "thresholds": {"logit_atol": LOGIT_ATOL, "logit_rtol": LOGIT_RTOL, "min_agreement": MIN_AGREEMENT,
                             "max_accuracy_drop": MAX_ACCURACY_DROP},
              "keras": {"accuracy": _accuracy(ref_plates, texts, fmt)}, "exports": {}, "failures": []}
    if frames:
        report["decoder"] = "attention (lprnet_tf.decoding.attention_decode)"
    elif kind == "slot":
        report["decoder"] = "slot (lprnet_tf.decoding.slot_decode)"

    def compare(key, logits=None, plates=None, exact=False, conf=None, weights=None):
        if plates is None:
            plates, conf = decode(logits, fmt, "greedy", kind=kind)
        agree = float(np.mean([a == b for a, b in zip(plates, ref_plates)]))
        acc = _accuracy(plates, texts, fmt)
        r = {"plate_agreement": agree, "accuracy": acc, "accuracy_diff": acc - report["keras"]["accuracy"],
             "check": "logits within atol + identical plates" if exact else "plate agreement + accuracy"}
        r.update(_changed_split(plates, ref_plates, texts, fmt))
        if logits is not None:
            r["max_abs_logit_diff"] = float(np.max(np.abs(logits - ref)))
            r["max_abs_keras_logit"] = float(np.max(np.abs(ref)))
        if conf is not None:
            r["max_abs_confidence_diff"] = float(np.max(np.abs(np.asarray(conf) - ref_conf)))
        if weights is not None:
            r["max_abs_frame_weight_diff"] = float(np.max(np.abs(np.asarray(weights) - ref_weights)))
        if exact:
            limit = LOGIT_ATOL + LOGIT_RTOL * r["max_abs_keras_logit"]
            r["logit_diff_limit"] = limit
            ok = r["max_abs_logit_diff"] <= limit and agree == 1.0
            why = f"max |logit diff| {r['max_abs_logit_diff']:.3g} (limit {limit:.3g}), plates {agree:.2%} identical"
            if weights is not None:
                r["check"] += " + frame weights within atol"
                ok = ok and r["max_abs_frame_weight_diff"] <= LOGIT_ATOL
                why += f", max |frame weight diff| {r['max_abs_frame_weight_diff']:.3g} (limit {LOGIT_ATOL:g})"
        else:
            ok = agree >= MIN_AGREEMENT and abs(r["accuracy_diff"]) <= MAX_ACCURACY_DROP + 1e-9
            why = (f"plate agreement {agree:.2%} (need >= {MIN_AGREEMENT:.0%}), accuracy {acc:.2%} vs Keras "
                   f"{report['keras']['accuracy']:.2%} (limit ±{MAX_ACCURACY_DROP * 100:.1f} points)")
            why += _changed_why(r)
        _record(report, key, r, ok, why)

    if saved_model_dir:
        loaded = tf.saved_model.load(saved_model_dir)
        sig = loaded.signatures["predict_images"]
        outs = [sig(images=tf.constant(u8[i:i + batch_size])) for i in range(0, len(u8), batch_size)]
        logits = np.concatenate([o["logits"].numpy() for o in outs])
        plates = [p.decode("utf-8") for o in outs for p in o["plate"].numpy()]
        conf = np.concatenate([o["confidence"].numpy() for o in outs])
        weights = np.concatenate([o["frame_weights"].numpy() for o in outs]) if frames else None
        compare("savedmodel:predict_images", logits=logits, exact=True, weights=weights)
        r = report["exports"]["savedmodel:predict_images"]
        r["in_graph_plates_identical"] = plates == list(ref_plates)
        r["max_abs_in_graph_confidence_diff"] = float(np.max(np.abs(conf - ref_conf)))
        if not r["in_graph_plates_identical"] or r["max_abs_in_graph_confidence_diff"] > 1e-4:
            r["passed"] = False
            report["failures"].append(f"savedmodel:predict_images: in-graph {kind} decode differs from "
                                      "lprnet_tf.decoding (plates or confidence)")
        if frames:
            encoded = [[_encoded(f, p) for f, p in zip(t, paths or [None] * len(t))] for t, _, paths in crops]
        else:
            encoded = [_encoded(img, path) for img, _, path in crops]
        sig = loaded.signatures["serving_default"]
        outs = [sig(image_bytes=tf.constant(encoded[i:i + batch_size])) for i in range(0, len(encoded), batch_size)]
        plates = [p.decode("utf-8") for o in outs for p in o["plate"].numpy()]
        conf = np.concatenate([o["confidence"].numpy() for o in outs])
        compare("savedmodel:serving_default", plates=plates, conf=conf)
        report["exports"]["savedmodel:serving_default"]["note"] = (
            "encoded files decoded and resized in the graph (tf.io.decode_image + tf.image.resize) vs "
            "cv2 in the Keras path: plates compared, not logits")
    for path in tflite_files:
        res = _run_tflite(path, x)
        exact = _variant_of(path) == "f32"
        compare(f"tflite:{os.path.basename(path)}", logits=res["logits"], exact=exact,
                weights=res.get("frame_weights") if frames else None)
        report["exports"][f"tflite:{os.path.basename(path)}"]["bytes"] = os.path.getsize(path)
    for path in onnx_files:  # float32 like TFLite f32: the exact check
        from lprnet_tf.runtime import OnnxBackend

        backend = OnnxBackend(path, max_batch=batch_size)
        key = f"onnx:{os.path.basename(path)}"
        compare(key, logits=backend.logits(x), exact=True)
        report["exports"][key].update(bytes=os.path.getsize(path), runtime=backend.runtime)
    return finish_report(report, report_path, raise_on_fail)


def lowres_crops(crops, heights: Sequence[int] | None = None) -> list:
    """High-resolution crops ``(image, text[, path])`` -> low-resolution ones ``(small uint8 RGB, text, height)``:
    crop i downscaled to ``heights[i % len(heights)]`` pixels high with its aspect ratio kept
    (:func:`lprnet_tf.data.lowres.downscale_to_height`, area averaging; default heights
    :data:`lprnet_tf.data.lowres.DEFAULT_HEIGHTS`), the rule of the low-resolution test sets and pairs."""
    from lprnet_tf.data.lowres import DEFAULT_HEIGHTS, downscale_to_height

    heights = tuple(int(h) for h in (heights or DEFAULT_HEIGHTS))
    out = []
    for i, c in enumerate(crops):
        h = heights[i % len(heights)]
        out.append((downscale_to_height(np.asarray(c[0]), h)[0], c[1], h))
    return out


def verify_sr_export(model, fmt: PlateFormat, saved_model_dir: str | None = None, tflite_files: Sequence[str] = (),
                     crops=None, recognizer=None, recognizer_format: PlateFormat | None = None,
                     heights: Sequence[int] | None = None, batch_size: int = 64, raise_on_fail: bool = True,
                     report_path: str | None = None, crops_source: str = "given crops") -> dict:
    """Reload an MTGAN generator export and compare it with the Keras generator; returns the report dict.

    ``crops``: high-resolution crops ``(uint8 RGB image, text[, path])`` of the MTGAN's plate format
    (default :data:`PARITY_SR_CROPS` synthetic plates), made low-resolution by :func:`lowres_crops` and
    laid out at the generator's input (:func:`lr_format`, :func:`lprnet_tf.runtime.fit_crop`) as
    :class:`lprnet_tf.data.lowres.PairedSource` does. Checks:

    - SavedModel ``predict_images`` (uint8 LR) and TFLite f32: ``max |SR - Keras SR| <= SR_ATOL`` on
      [0, 1] floats (and ``sr_image`` = the rounded ``sr``, so at most one grey level from Keras');
    - SavedModel ``serving_default`` (the small crops PNG-encoded, decoded and laid out in the graph with
      TF's resize instead of cv2's): mean |SR diff| <= SR_BYTES_MEAN_ATOL (one grey level);
    - with ``recognizer`` (composed SavedModel): the recognizer's plates on the SR images vs Keras (the
      Keras generator, its float SR laid out by ``fit_crop`` for the recognizer, the Keras recognizer):
      logits within the f32 tolerance and identical plates when no resize is needed (SR size = the
      recognizer's one-row input), else plate agreement >= MIN_AGREEMENT; in-graph plates and
      confidences equal to :mod:`lprnet_tf.decoding` on the returned logits.

    Raises ExportParityError listing the failures (after writing ``report_path``) unless
    ``raise_on_fail`` is False.
    """
    from lprnet_tf.runtime import fit_crop

    lr = lr_format(model, fmt)
    hr = _sr_size(model)
    source = crops_source
    if crops is None:
        crops = crops_from_spec("synth:12345", fmt, PARITY_SR_CROPS)
        source = f"synthetic plates (seed 12345, {len(crops)})"
    if not crops:
        raise ExportError("parity check needs at least one crop")
    small = lowres_crops(crops, heights)
    texts = [c[1] for c in small]
    u8 = np.stack([fit_crop(c[0], lr) for c in small])  # (N, H/2, W/2, 3) uint8
    x = u8.astype(np.float32) * (1.0 / 255.0)
    gen = model.generator
    ref = np.concatenate([np.asarray(gen(x[i:i + batch_size], training=False), np.float32)
                          for i in range(0, len(x), batch_size)])  # (N, H, W, 3)
    ref_u8 = _to_uint8(ref)
    report = {"crops": {"source": source, "count": len(small), "unit": "low-resolution crops",
                        "heights": sorted({c[2] for c in small}), "lr_size": [lr.height, lr.width],
                        "hr_size": list(hr), "downscale": "lprnet_tf.data.lowres.downscale_to_height (INTER_AREA, "
                        "aspect kept), then laid out at lr_size with the runtime's rule"},
              "thresholds": {"sr_atol": SR_ATOL, "sr_bytes_mean_atol": SR_BYTES_MEAN_ATOL},
              "keras": {}, "exports": {}, "failures": []}
    rec_kind = exact_rec = ref_logits = ref_plates = None
    if recognizer is not None:
        rec_kind = _check_recognizer(recognizer, recognizer_format)
        rin = np.stack([fit_crop(im, recognizer_format) for im in ref]).astype(np.float32)
        ref_logits = np.concatenate([np.asarray(recognizer(rin[i:i + batch_size], training=False), np.float32)
                                     for i in range(0, len(rin), batch_size)])
        ref_plates, _ = decode(ref_logits, recognizer_format, "greedy", kind=rec_kind)
        exact_rec = tuple(hr) == (recognizer_format.height, recognizer_format.width) and recognizer_format.rows == 1
        report["keras"]["accuracy"] = _accuracy(ref_plates, texts, recognizer_format)
        report["recognizer"] = {"model": recognizer.name, "model_kind": rec_kind,
                                "plate_format": recognizer_format.name, "resize": not exact_rec}
        report["thresholds"].update(logit_atol=LOGIT_ATOL, logit_rtol=LOGIT_RTOL, min_agreement=MIN_AGREEMENT,
                                    max_accuracy_drop=MAX_ACCURACY_DROP)

    def compare(key, sr, exact, sr_u8=None, out=None):
        d = np.abs(np.asarray(sr, np.float32) - ref)
        sr_u8 = _to_uint8(sr) if sr_u8 is None else np.asarray(sr_u8)
        r = {"max_abs_sr_diff": float(d.max()), "mean_abs_sr_diff": float(d.mean()),
             "max_uint8_diff": int(np.abs(sr_u8.astype(np.int16) - ref_u8).max()),
             "uint8_identical": float(np.mean(sr_u8 == ref_u8))}
        if exact:
            r["check"] = f"max |SR diff| <= {SR_ATOL:g}"
            ok = r["max_abs_sr_diff"] <= SR_ATOL
            why = [f"max |SR diff| {r['max_abs_sr_diff']:.3g} (limit {SR_ATOL:g})"]
        else:
            r["check"] = f"mean |SR diff| <= {SR_BYTES_MEAN_ATOL:.3g} (one grey level)"
            ok = r["mean_abs_sr_diff"] <= SR_BYTES_MEAN_ATOL
            why = [f"mean |SR diff| {r['mean_abs_sr_diff']:.3g} (limit {SR_BYTES_MEAN_ATOL:.3g})"]
        if out is not None and "logits" in out:  # the composed recognizer
            logits = np.asarray(out["logits"], np.float32)
            plates, conf = decode(logits, recognizer_format, "greedy", kind=rec_kind)
            agree = float(np.mean([a == b for a, b in zip(plates, ref_plates)]))
            acc = _accuracy(plates, texts, recognizer_format)
            r.update(plate_agreement=agree, accuracy=acc, accuracy_diff=acc - report["keras"]["accuracy"],
                     max_abs_logit_diff=float(np.max(np.abs(logits - ref_logits))),
                     max_abs_keras_logit=float(np.max(np.abs(ref_logits))),
                     **_changed_split(plates, ref_plates, texts, recognizer_format))
            if exact and exact_rec:
                limit = LOGIT_ATOL + LOGIT_RTOL * r["max_abs_keras_logit"]
                r["logit_diff_limit"] = limit
                r["check"] += " + logits within atol + identical plates"
                ok = ok and r["max_abs_logit_diff"] <= limit and agree == 1.0
                why.append(f"max |logit diff| {r['max_abs_logit_diff']:.3g} (limit {limit:.3g}), plates "
                           f"{agree:.2%} identical")
            else:
                r["check"] += " + plate agreement + accuracy"
                ok = ok and agree >= MIN_AGREEMENT and abs(r["accuracy_diff"]) <= MAX_ACCURACY_DROP + 1e-9
                why.append(f"plate agreement {agree:.2%} (need >= {MIN_AGREEMENT:.0%}), accuracy {acc:.2%} vs "
                           f"Keras {report['keras']['accuracy']:.2%} (limit ±{MAX_ACCURACY_DROP * 100:.1f} points)"
                           + _changed_why(r))
            graph = [p.decode("utf-8") for p in np.asarray(out["plate"])]
            r["in_graph_plates_identical"] = graph == list(plates)
            r["max_abs_in_graph_confidence_diff"] = float(np.max(np.abs(np.asarray(out["confidence"]) - conf)))
            if not r["in_graph_plates_identical"] or r["max_abs_in_graph_confidence_diff"] > 1e-4:
                ok = False
                why.append(f"in-graph {rec_kind} decode differs from lprnet_tf.decoding (plates or confidence)")
        _record(report, key, r, ok, ", ".join(why))

    if saved_model_dir:
        loaded = tf.saved_model.load(saved_model_dir)
        for sig_name, inputs in (("predict_images", u8), ("serving_default", None)):
            sig = loaded.signatures[sig_name]
            arg = "images"
            if inputs is None:  # the small crops as PNG files: decoded and laid out in the graph
                inputs, arg = [_encoded(c[0], None) for c in small], "image_bytes"
            outs = [sig(**{arg: tf.constant(inputs[i:i + batch_size])}) for i in range(0, len(inputs), batch_size)]
            out = {k: np.concatenate([o[k].numpy() for o in outs]) for k in outs[0]}
            key = f"savedmodel:{sig_name}"
            compare(key, out["sr"], exact=sig_name == "predict_images", sr_u8=out["sr_image"], out=out)
            r = report["exports"][key]
            r["sr_image_is_rounded_sr"] = bool(np.array_equal(out["sr_image"], _to_uint8(out["sr"])))
            if not r["sr_image_is_rounded_sr"]:
                r["passed"] = False
                report["failures"].append(f"{key}: sr_image is not round(sr * 255)")
            if sig_name == "serving_default":
                r["note"] = ("small crops PNG-encoded, decoded and laid out in the graph (tf.image.resize) vs cv2 in "
                             "the Keras path: TF's resize differs from cv2's by up to one grey level")
    for path in tflite_files:
        from lprnet_tf.runtime import TFLiteBackend

        key = f"tflite:{os.path.basename(path)}"
        compare(key, TFLiteBackend(path, max_batch=batch_size).outputs(x)["sr"], exact=True)
        report["exports"][key]["bytes"] = os.path.getsize(path)
    return finish_report(report, report_path, raise_on_fail)


# ------------------------------------------------------------------------------------------------
# EQ-LPR quality networks
def quality_sidecar(tflite_path: str, model, fmt: PlateFormat, variant: str, model_name: str = "",
                    extra: dict | None = None) -> dict:
    """The JSON beside a quality network's ``.tflite``: the crop layout (as a recognizer's of ``fmt``),
    the ``quality`` output and what it means, and the recognizer whose quality it predicts."""
    from ai_edge_litert.interpreter import Interpreter

    from lprnet_tf.runtime import output_details_by_name

    interp = Interpreter(model_path=tflite_path)
    inp = interp.get_input_details()[0]
    out = output_details_by_name(interp)["quality"]
    side = {
        "sidecar_version": SIDECAR_VERSION,
        "model": model_name,
        "variant": variant,
        "model_kind": "quality",
        "network": model.name,
        "recognizer": getattr(model, "recognizer", None),
        "plate_format": fmt.name,
        "input": _crop_input(fmt, _tensor_info(inp), dynamic=inp["shape_signature"][0] < 0),
        "output": {**_tensor_info(out), "signature_name": "quality", "layout": "(B,) predicted recognition quality in [0, 1] (EQ-LPR eq. 3: "
                   "the smallest per-character softmax probability the recognizer would give the crop)"},
        "decoder": {"default": "none", "rule": "quality",
                    "use": "Algorithm 1 (lprnet_tf.stream): run the recognizer on a frame only when its quality "
                           "beats the track's best so far"},
        "format": _format_dict(fmt),
    }
    side.update(extra or {})
    return side


def verify_quality_export(model, fmt: PlateFormat, saved_model_dir: str | None = None,
                          tflite_files: Sequence[str] = (), crops=None, batch_size: int = 64,
                          raise_on_fail: bool = True, report_path: str | None = None,
                          crops_source: str = "given crops") -> dict:
    """Reload an EQ-LPR quality network's exports and compare their scores with Keras'; returns the report.

    ``crops``: ``(uint8 RGB image, text[, path])`` (default :func:`default_parity_crops`: the real CN crops
    for ``cn``, else synthetic plates), laid out with :func:`lprnet_tf.runtime.fit_crop`. Checks: SavedModel
    ``predict_images`` and TFLite f32: ``max |quality - Keras| <= QUALITY_ATOL``; ``serving_default`` (encoded
    files decoded and resized in the graph) and TFLite f16 / dynamic: mean |diff| <= ``QUALITY_MAX_MAE`` and
    Spearman correlation with Keras >= ``QUALITY_MIN_SROCC``. Raises ExportParityError listing the failures
    (after writing ``report_path``) unless ``raise_on_fail`` is False."""
    from lprnet_tf.metrics import srocc
    from lprnet_tf.runtime import TFLiteBackend, fit_crop

    source = crops_source
    if crops is None:
        crops, source = default_parity_crops(fmt)
    crops = [(c[0], c[1], c[2] if len(c) > 2 else None) for c in crops]
    if not crops:
        raise ExportError("parity check needs at least one crop")
    u8 = np.stack([fit_crop(c[0], fmt) for c in crops])  # (N, H, W, 3) uint8
    x = u8.astype(np.float32) * (1.0 / 255.0)
    ref = np.concatenate([np.asarray(model(x[i:i + batch_size], training=False)["quality"], np.float32)
                          for i in range(0, len(x), batch_size)])  # (N,)
    report = {"crops": {"source": source, "count": len(crops)},
              "thresholds": {"quality_atol": QUALITY_ATOL, "quality_max_mae": QUALITY_MAX_MAE,
                             "quality_min_srocc": QUALITY_MIN_SROCC},
              "keras": {"mean_quality": float(ref.mean())}, "exports": {}, "failures": []}

    def compare(key, q, exact):
        d = np.abs(np.asarray(q, np.float32).reshape(-1) - ref)
        r = {"max_abs_quality_diff": float(d.max()), "mean_abs_quality_diff": float(d.mean()),
             "srocc_vs_keras": float(srocc(np.asarray(q, np.float64).reshape(-1), ref.astype(np.float64)))
             if len(ref) > 1 else 1.0}
        if exact:
            r["check"] = f"max |quality diff| <= {QUALITY_ATOL:g}"
            ok = r["max_abs_quality_diff"] <= QUALITY_ATOL
            why = f"max |quality diff| {r['max_abs_quality_diff']:.3g} (limit {QUALITY_ATOL:g})"
        else:
            r["check"] = f"mean |quality diff| <= {QUALITY_MAX_MAE:g} and SROCC vs Keras >= {QUALITY_MIN_SROCC:g}"
            ok = r["mean_abs_quality_diff"] <= QUALITY_MAX_MAE and r["srocc_vs_keras"] >= QUALITY_MIN_SROCC
            why = (f"mean |quality diff| {r['mean_abs_quality_diff']:.3g} (limit {QUALITY_MAX_MAE:g}), SROCC vs Keras "
                   f"{r['srocc_vs_keras']:.4f} (need >= {QUALITY_MIN_SROCC:g})")
        _record(report, key, r, ok, why)

    if saved_model_dir:
        loaded = tf.saved_model.load(saved_model_dir)
        for sig_name in ("predict_images", "serving_default"):
            sig = loaded.signatures[sig_name]
            if sig_name == "predict_images":
                inputs, arg = u8, "images"
            else:  # the original files (or PNGs): decoded and resized in the graph
                inputs, arg = [_encoded(c[0], c[2]) for c in crops], "image_bytes"
            q = np.concatenate([sig(**{arg: tf.constant(inputs[i:i + batch_size])})["quality"].numpy()
                                for i in range(0, len(inputs), batch_size)])
            compare(f"savedmodel:{sig_name}", q, exact=sig_name == "predict_images")
    for path in tflite_files:
        key = f"tflite:{os.path.basename(path)}"
        compare(key, TFLiteBackend(path, max_batch=batch_size).outputs(x)["quality"], exact=_variant_of(path) == "f32")
        report["exports"][key]["bytes"] = os.path.getsize(path)
    return finish_report(report, report_path, raise_on_fail)


# ------------------------------------------------------------------------------------------------
def export_all(model, fmt: PlateFormat, out_dir: str, name: str = "lpr", version: int = 1,
               tflite: Sequence[str] = TFLITE_VARIANTS, verify: bool = True, crops=None,
               overwrite: bool = False, representative=None, calibration_count: int = 200,
               int8_float: Sequence[str] = INT8_FLOAT_DEFAULT, batch: Sequence[str] = ("1", "dynamic"),
               crops_source: str = "given crops", onnx: bool = False, recognizer=None,
               recognizer_format: PlateFormat | None = None) -> dict:
    """SavedModel + TFLite variants (+ ``out_dir/onnx/NAME.onnx`` with ``onnx``) + parity report
    ``out_dir/parity.json``; returns a summary.

    The MTGAN generator (export kind ``sr``): :func:`export_sr_savedmodel` (with ``recognizer`` and its
    ``recognizer_format``: SR + recognize in one SavedModel), TFLite f32 of the generator and
    :func:`verify_sr_export` (``crops``: high-resolution crops)."""
    kind = export_kind(model)
    frames = model_frames(model)
    if recognizer is not None and kind != "sr":
        raise ExportError(f"a recognizer is composed only with the MTGAN generator (super-resolution); model "
                          f"'{model.name}' is a '{kind}' model")
    if recognizer is not None:
        _check_recognizer(recognizer, recognizer_format)
    if onnx:  # refused before anything is written
        require_onnx()
        why = onnx_unsupported(model)
        if why:
            raise ExportError(why)
    refused = check_variants(kind, tflite, frames)
    if refused:  # refused before anything is written
        raise ExportError(refused + "; pass --tflite f32")
    if kind == "sr":
        saved = export_sr_savedmodel(model, fmt, out_dir, name, version, overwrite=overwrite, recognizer=recognizer,
                                     recognizer_format=recognizer_format)
    else:
        saved = export_savedmodel(model, fmt, out_dir, name, version, overwrite=overwrite)
    files = []
    if tflite:
        files = export_tflite(model, fmt, os.path.join(out_dir, "tflite"), name, tflite, batch=batch,
                              representative=representative, calibration_count=calibration_count,
                              int8_float=int8_float)
    onnx_files = [export_onnx(model, fmt, os.path.join(out_dir, "onnx"), name)] if onnx else []
    summary = {"savedmodel": saved, "tflite": files, "onnx": onnx_files, "parity": None}
    if verify:
        path = os.path.join(out_dir, "parity.json")
        if kind == "sr":
            summary["parity"] = verify_sr_export(model, fmt, saved, files, crops=crops, recognizer=recognizer,
                                                 recognizer_format=recognizer_format, report_path=path,
                                                 crops_source=crops_source)
        else:
            summary["parity"] = verify_export(model, fmt, saved, files, crops=crops, report_path=path,
                                              crops_source=crops_source, onnx_files=onnx_files)
        summary["parity_path"] = path
    return summary
