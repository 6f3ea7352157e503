"""Host runtime for exported recognizers: numpy + cv2 + LiteRT (or ONNX Runtime), no TensorFlow, no Keras.

This module is the reference that Android/embedded code mirrors (``docs/deployment.md`` spells the
steps out). Importing it never imports TensorFlow or Keras; only a SavedModel folder (or
:meth:`Recognizer.from_keras`) imports TensorFlow, lazily.

Steps, for each plate crop:

1. Read the file and decode it to 8-bit **RGB** (``cv2.imdecode`` gives BGR: convert; greyscale and
   RGBA are converted to RGB) -- :func:`lprnet_tf.data.readers.load_image`.
2. Resize to the model's W x H (94 x 24 for most formats) with ``cv2.resize``: ``INTER_AREA`` when
   the crop is larger than W x H on **both** sides, otherwise ``INTER_LINEAR`` -- :func:`resize_crop`.
   Two-row formats (``rows: 2``) first cut the crop at ``round(h * row_split)`` into top and bottom
   rows, resize each to H x W/2 with the same rule and place them side by side -- :func:`fit_crop`.
3. ``float32(pixel) * (1/255)`` -> values in [0, 1], layout NHWC. No mean/std: the model normalizes
   inside -- :func:`preprocess`.
4. Run the model (``.tflite`` with LiteRT, ``.onnx`` with ONNX Runtime when installed: ``pip install
   "lprnet_tf[onnx]"``) -> logits ``(B, T, C)``; class 0 is the CTC blank, class k is ``alphabet[k-1]``.
5. Decode with :mod:`lprnet_tf.decoding` (greedy: arg-max per step, collapse repeats, drop blanks;
   confidence = the smallest of the emitted characters' max softmax probabilities), then check the
   text against the plate format's templates (``matches_template``).

Test-time views (``--tta``; :func:`tta_view`, :meth:`Recognizer.recognize` with ``tta=True``): the crop is
read five times, as it is and in four fixed views (4 % of its height and width cut from each side; 4 %
added on each side by repeating the edge pixels; 8 % of its height cut from top and bottom; intensities
raised to the power 0.8), each through steps 2-5 (before the template check), and the plate most views
read wins (ties: the higher summed confidence; confidence = that sum / 5) --
:func:`lprnet_tf.decoding.vote`. Five times the inference for 0.4-5 points of exact match on the real
validation sets (README, Shipped models).

Multi-frame models (IQ-STAN, ``iq-stan.md``; sidecar ``frames`` = K): K crops of one plate, each
through steps 1-3 at the format's H x W, are tiled side by side (frame 0 left) into one
``(H, K*W, 3)`` input -- :func:`tile_frames`. The model outputs ``logits (B, S, C)`` (class 0 = end
of plate), ``frame_weights (B, K)`` (and ``quality``), read by name; the plate is the attention
decode (:func:`lprnet_tf.decoding.attention_decode`: arg-max per step up to the first end class) --
:meth:`Recognizer.recognize_frames`.

Slot models (the multi-task CNN, ``multitask-lowres-lpr.md``; sidecar ``model_kind`` / ``decoder.rule``
``slot``, SavedModel ``assets/model.json``): logits ``(B, S, C)``, one class per character slot, decoded
by :func:`lprnet_tf.decoding.slot_decode` (arg-max per slot, class 0 = no character dropped).

The MTGAN generator (``mtgan.md``; sidecar ``model_kind`` ``sr``): a low-resolution crop laid out at the
generator's input ``H/2 x W/2`` by steps 1-3 -> the super-resolved ``(H, W, 3)`` image in [0, 1] --
:class:`SuperResolver`; ``Recognizer(..., sr=SuperResolver(...))`` reads plates on the SR images (the
float SR image laid out for the recognizer by :func:`fit_crop`).

EQ-LPR quality networks (``eq-lpr.md``; sidecar ``model_kind`` ``quality``): a crop through steps 1-3 at the
format's H x W -> ``quality`` ``(B,)`` in [0, 1], the recognizer's predicted confidence on it --
:class:`QualityScorer`; Algorithm 1 (:mod:`lprnet_tf.stream`) runs the recognizer only when it beats the
track's best.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import cv2
import numpy as np

from lprnet_tf.decoding import DECODERS, LocalPrior, decode_views
from lprnet_tf.vocab import PlateFormat, load_plate_format, plate_format_from_dict


class RuntimeModelError(ValueError):
    """A model file or its sidecar is missing, unreadable or inconsistent."""


# ------------------------------------------------------------------------------------------------
# preprocessing: the one rule, also used by the training pipeline (a test checks they feed identical input)
def resize_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 RGB crop ``(h, w, 3)`` -> uint8 ``(height, width, 3)`` (INTER_AREA if shrinking both sides)."""
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if (h > height and w > width) else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def row_bounds(crop_height: int, fmt: PlateFormat) -> int:
    """Two-row plates: the crop row where the bottom row starts, ``round(h * row_split)`` clamped to
    ``[1, h - 1]`` (so each row keeps at least one pixel)."""
    return int(min(max(int(round(crop_height * fmt.row_split)), 1), max(crop_height - 1, 1)))


def fit_crop(image: np.ndarray, fmt: PlateFormat) -> np.ndarray:
    """uint8 RGB crop -> uint8 ``(H, W, 3)`` laid out as the model reads it.

    One-row formats: :func:`resize_crop` to H x W. Two-row formats (``rows: 2``): the crop is cut at
    :func:`row_bounds` into its top and bottom rows; the top row is resized to H x ``W // 2`` and the
    bottom row to H x ``W - W // 2`` (each with :func:`resize_crop`'s rule) and they are placed side by
    side, top row left, so the CTC model reads the top row then the bottom row.
    """
    if fmt.rows == 1:
        return resize_crop(image, fmt.height, fmt.width)
    h = image.shape[0]
    if h < 2:
        raise ValueError(f"a two-row plate crop needs at least 2 pixel rows, got shape {image.shape}")
    cut = row_bounds(h, fmt)
    left = fmt.width // 2
    top = resize_crop(image[:cut], fmt.height, left)
    bottom = resize_crop(image[cut:], fmt.height, fmt.width - left)
    return np.concatenate([top, bottom], axis=1)  # (H, W, 3)


def tile_frames(frames: Sequence[np.ndarray], fmt: PlateFormat) -> np.ndarray:
    """K uint8 RGB crops of one plate -> uint8 ``(H, K * W, 3)``: each crop laid out by :func:`fit_crop`
    at the format's H x W, frame 0 left (the multi-frame input of IQ-STAN, ``iq-stan.md`` §2.1)."""
    if not len(frames):
        raise ValueError("tile_frames needs at least one frame")
    return np.concatenate([fit_crop(np.asarray(f), fmt) for f in frames], axis=1)


def preprocess(image: np.ndarray, fmt: PlateFormat) -> np.ndarray:
    """uint8 RGB crop -> float32 ``(H, W, 3)`` in [0, 1]: what every exported model takes."""
    return fit_crop(image, fmt).astype(np.float32) * (1.0 / 255.0)


def as_crop(image, index: int = 0) -> np.ndarray:
    """Check one crop handed to the runtime and bring it to uint8 RGB ``(h, w, 3)``: a grey ``(h, w)`` or
    ``(h, w, 1)`` crop is copied to R, G and B and an RGBA one loses its alpha (as
    :func:`lprnet_tf.data.readers.load_image` does for files). Anything else -- ``None``, a path string, a
    float or 16-bit array (its scale is ambiguous), an empty image, another channel count -- is a
    ``ValueError`` naming crop ``index`` and the fix."""
    if isinstance(image, (str, bytes, os.PathLike)):
        raise ValueError(f"crop {index}: got a path or bytes ({str(image)[:60]!r}); pass decoded uint8 RGB arrays, "
                         f"or read files with recognize_file / read_image")
    if image is None or not hasattr(image, "shape"):
        raise ValueError(f"crop {index}: got {type(image).__name__}, not an image array; pass uint8 RGB arrays "
                         f"(H, W, 3)")
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"crop {index}: dtype {image.dtype}; pass uint8 RGB (0-255), e.g. for a float image in "
                         f"[0, 1]: (x * 255).round().astype(np.uint8)")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"crop {index}: shape {image.shape}; pass one crop as (H, W, 3) RGB (grey (H, W) and RGBA "
                         f"are converted)")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"crop {index}: empty image, shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[..., :3]
    return image


def as_crops(images) -> list[np.ndarray]:
    """A batch of crops (a list, or an ``(N, H, W, 3)`` array) checked by :func:`as_crop`; a single
    ``(H, W, 3)`` array is refused (it would read as H crops of one pixel row)."""
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise ValueError(f"crops: an array of shape {images.shape}; pass a list of crops ([image]) or an "
                         f"(N, H, W, 3) array")
    if isinstance(images, (str, bytes)) or not hasattr(images, "__len__"):
        raise ValueError(f"crops: got {type(images).__name__}; pass a list of uint8 RGB crops")
    return [as_crop(im, i) for i, im in enumerate(images)]


def preprocess_batch(images: Sequence[np.ndarray], fmt: PlateFormat) -> np.ndarray:
    """List of uint8 RGB crops -> float32 ``(N, H, W, 3)``."""
    if not len(images):
        return np.zeros((0, fmt.height, fmt.width, 3), np.float32)
    return np.stack([preprocess(np.asarray(im), fmt) for im in images])


def read_image(path: str) -> np.ndarray:
    """Read an image file as uint8 RGB; raises ``lprnet_tf.data.readers.DataError`` naming the file."""
    from lprnet_tf.data.readers import load_image

    return load_image(path)


# ------------------------------------------------------------------------------------------------
# backends: float32 (N, H, W, 3) in [0, 1] -> float32 logits (N, T, C); ``outputs`` gives every named
# output (multi-frame models: ``logits``, ``frame_weights``, ``quality``; input (N, H, K*W, 3))
def output_details_by_name(interp) -> dict:
    """``{output name: tensor details}`` of a LiteRT interpreter, from its (single) signature: the
    exported dict keys (``logits``, ``frame_weights``, ``quality``). The output list order is not
    the signature's, so multi-output files are read by name. Without a signature: the first output,
    named ``logits``."""
    try:
        if len(interp.get_signature_list()) == 1:
            named = dict(interp.get_signature_runner().get_output_details())
            if named:
                return named
    except (ValueError, RuntimeError):
        pass
    return {"logits": interp.get_output_details()[0]}


class _BatchedBackend:
    """A file backend that runs at most ``max_batch`` inputs per call (``_run(x) -> {name: array}``)."""

    path: str
    input_shape: tuple
    max_batch: int
    _outs: dict

    def outputs(self, x: np.ndarray) -> dict:
        """float32 ``(N, *input_shape)`` -> ``{output name: float32 array (N, ...)}``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise RuntimeModelError(f"{self.path}: expected input (N, {', '.join(map(str, self.input_shape))}), "
                                    f"got {x.shape}")
        if not len(x):
            return {name: np.zeros((0,), np.float32) for name in self._outs}
        runs = [self._run(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        return {name: np.concatenate([r[name] for r in runs]) for name in runs[0]}

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.outputs(x)["logits"]


class TFLiteBackend(_BatchedBackend):
    """A ``.tflite`` file run with ``ai_edge_litert``. Batch-1 files run crop by crop; files with a
    dynamic batch (``*_batch.tflite``) are resized to the batch with ``resize_tensor_input``.
    Quantized (int8/uint8) inputs/outputs are (de)quantized with the tensors' scale/zero point.
    Outputs are read by their signature names (:func:`output_details_by_name`)."""

    def __init__(self, path: str, num_threads: int | None = None, max_batch: int = 64):
        from ai_edge_litert.interpreter import Interpreter

        if not os.path.isfile(path):
            raise RuntimeModelError(f"{path}: TFLite model not found")
        try:
            self.interp = Interpreter(model_path=path, num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise RuntimeModelError(f"{path}: cannot load TFLite model ({str(e).splitlines()[0]})") from None
        self.path = path
        inp = self.interp.get_input_details()[0]
        self.dynamic = int(inp["shape_signature"][0]) < 0
        self.input_shape = tuple(int(v) for v in inp["shape"][1:])  # (H, W, 3)
        self.max_batch = int(max_batch) if self.dynamic else 1
        self._batch = None
        self._allocate(1)

    def _allocate(self, n: int):
        if n == self._batch:
            return
        if self.dynamic:
            self.interp.resize_tensor_input(self.interp.get_input_details()[0]["index"], [n, *self.input_shape])
        self.interp.allocate_tensors()
        self._in = self.interp.get_input_details()[0]
        self._outs = output_details_by_name(self.interp)
        self._batch = n

    def _get(self, d: dict) -> np.ndarray:
        y = self.interp.get_tensor(d["index"])
        if y.dtype != np.float32:
            scale, zero = d["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return np.array(y, dtype=np.float32)

    def _run(self, x: np.ndarray) -> dict:
        self._allocate(len(x))
        dtype = self._in["dtype"]
        if dtype != np.float32:  # quantized input: q = x / scale + zero_point
            scale, zero = self._in["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        self.interp.set_tensor(self._in["index"], x)
        self.interp.invoke()
        return {name: self._get(d) for name, d in self._outs.items()}


ONNX_INSTALL = 'pip install "lprnet_tf[onnx]"'


class OnnxBackend(_BatchedBackend):
    """A ``.onnx`` file (``lprnet-export --onnx``) run with ONNX Runtime on the CPU: input float32
    ``(N, H, W, 3)`` in [0, 1], output ``logits``. Needs ``onnxruntime`` (``pip install
    "lprnet_tf[onnx]"``); imports no TensorFlow. A dynamic batch runs ``max_batch`` crops per call."""

    def __init__(self, path: str, num_threads: int | None = None, max_batch: int = 64):
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeModelError(f"{path}: running an ONNX file needs onnxruntime; install it with "
                                    f"{ONNX_INSTALL}") from None
        if not os.path.isfile(path):
            raise RuntimeModelError(f"{path}: ONNX model not found")
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = int(num_threads)
        try:
            self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            raise RuntimeModelError(f"{path}: cannot load ONNX model ({str(e).splitlines()[0]})") from None
        self.path = path
        self.runtime = f"onnxruntime {ort.__version__}"
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.dynamic = not isinstance(inp.shape[0], int)
        self.input_shape = tuple(int(v) for v in inp.shape[1:])  # (H, W, 3)
        self.max_batch = int(max_batch) if self.dynamic else 1
        names = [o.name for o in self.session.get_outputs()]
        self._outs = {name: name for name in names} if "logits" in names else {"logits": names[0]}

    def _run(self, x: np.ndarray) -> dict:
        names = list(self._outs)
        out = self.session.run([self._outs[n] for n in names], {self.input_name: x})
        return {n: np.asarray(v, np.float32) for n, v in zip(names, out)}


class SavedModelBackend:
    """A SavedModel folder written by :func:`lprnet_tf.export.export_savedmodel` (imports TF).

    Multi-frame SavedModels (``predict_images`` takes ``(N, K, H, W, 3)``): ``frames`` = K; the tiled
    input ``(N, H, K*W, 3)`` is cut back into its K frames."""

    def __init__(self, path: str, batch_size: int = 64):
        import tensorflow as tf

        self._tf = tf
        self.path = path
        self.fn = tf.saved_model.load(path).signatures["predict_images"]
        (spec,) = self.fn.structured_input_signature[1].values()
        shape = spec.shape.as_list()
        self.frames = int(shape[1]) if len(shape) == 5 else 0
        self.input_shape = ((shape[2], shape[1] * shape[3], shape[4]) if self.frames else tuple(shape[1:]))
        self.batch_size = batch_size

    def outputs(self, x: np.ndarray) -> dict:
        u8 = np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8)  # exact inverse of * (1/255)
        if self.frames:  # (N, H, K*W, 3) -> (N, K, H, W, 3)
            n, h, kw, c = u8.shape
            u8 = u8.reshape(n, h, self.frames, kw // self.frames, c).transpose(0, 2, 1, 3, 4)
        outs = [self.fn(images=self._tf.constant(u8[i:i + self.batch_size]))
                for i in range(0, len(u8), self.batch_size)]
        keys = [k for k in outs[0] if k not in ("plate", "confidence")]
        return {k: np.concatenate([o[k].numpy() for o in outs]) for k in keys}

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.outputs(x)["logits"]


class KerasBackend:
    """A Keras model called through one compiled ``tf.function`` (never ``model.predict`` per image).
    A single-output model's output is named ``output`` (``logits``; ``sr`` for the MTGAN generator)."""

    def __init__(self, model, batch_size: int = 64, output: str = "logits"):
        import tensorflow as tf

        self.frames = int(getattr(model, "frames", 0) or 0)  # multi-frame (IQ-STAN): dict outputs
        if self.frames:
            shape = (model.frame_height, self.frames * model.frame_width, 3)
        else:  # a model wrapping a functional ``net`` (EQ-LPR quality networks) reads that net's input
            shape = tuple(getattr(model, "net", model).input_shape[1:])
        self.input_shape = shape if self.frames else None  # (checked by Recognizer for multi-frame models)
        self.fn = tf.function(lambda x: model(x, training=False),
                              input_signature=[tf.TensorSpec((None,) + shape, tf.float32)])
        self.batch_size = batch_size
        self.output = output

    def outputs(self, x: np.ndarray) -> dict:
        x = np.asarray(x, np.float32)
        runs = [self.fn(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        if not isinstance(runs[0], dict):
            return {self.output: np.concatenate([np.asarray(r) for r in runs])}
        return {k: np.concatenate([np.asarray(r[k], np.float32) for r in runs]) for k in runs[0]}

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.outputs(x)["logits"]


# Test-time views of a crop (read by Recognizer.recognize(tta=True) and lprnet-evaluate --tta, then voted)
TTA_VIEWS = ("full", "trim", "pad", "trim_rows", "gamma")
_TTA_MARGIN, _TTA_ROWS, _TTA_GAMMA = 0.04, 0.08, 0.8
_GAMMA_LUT = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** _TTA_GAMMA), 0, 255).astype(np.uint8)


def tta_view(image: np.ndarray, view: str) -> np.ndarray:
    """One test-time view of a uint8 RGB crop (any size), before the usual layout (steps 2-3):

    - ``full``: the crop as it is;
    - ``trim``: ``round(0.04 h)`` rows and ``round(0.04 w)`` columns cut from each side (a tighter crop);
    - ``pad``: the same amounts added on each side, repeating the edge pixels (a looser crop);
    - ``trim_rows``: ``int(0.08 h)`` rows cut from the top and from the bottom;
    - ``gamma``: every intensity ``v`` -> ``round(255 (v / 255) ** 0.8)`` (mid-tones brighter).

    On small crops the cuts round to nothing: under 13 pixels high ``trim``/``pad`` change no rows and
    ``trim_rows`` is the crop itself (so ``full`` counts twice in the vote); under 13 wide no columns."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    if view == "full":
        return image
    if view in ("trim", "pad"):
        dy, dx = int(round(_TTA_MARGIN * h)), int(round(_TTA_MARGIN * w))
        if view == "pad":
            return cv2.copyMakeBorder(image, dy, dy, dx, dx, cv2.BORDER_REPLICATE)
        return image[dy:h - dy, dx:w - dx]  # dy < h / 2 and dx < w / 2 always: never empty
    if view == "trim_rows":
        dy = int(_TTA_ROWS * h)
        return image[dy:h - dy]
    if view == "gamma":
        return _GAMMA_LUT[image]
    raise ValueError(f"unknown test-time view '{view}'; choose from {TTA_VIEWS}")


# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Plate:
    """One recognition result."""

    text: str
    confidence: float
    matches_template: bool
    frame_weights: list | None = None  # multi-frame models: the attention weight of each frame (sums to 1)


def sidecar_path(tflite_path: str) -> str:
    return os.path.splitext(tflite_path)[0] + ".json"


def _read_json(path: str, error: str) -> dict:
    """A JSON file written by lprnet-export; ``error`` (with ``{e}``) describes an unreadable one."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise RuntimeModelError(f"{path}: " + error.format(e=e)) from None


def load_sidecar(tflite_path: str) -> dict:
    path = sidecar_path(tflite_path)
    if not os.path.isfile(path):
        raise RuntimeModelError(f"{tflite_path}: no sidecar {os.path.basename(path)} beside it; re-export with "
                                f"lprnet-export or pass the plate format")
    side = _read_json(path, "unreadable sidecar ({e})")
    if not isinstance(side, dict) or not isinstance(side.get("format"), dict):
        raise RuntimeModelError(f"{path}: sidecar without its plate format (a 'format' object); re-export with "
                                f"lprnet-export or pass the plate format")
    return side


def is_savedmodel(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def load_model_info(saved_model_dir: str) -> dict:
    """``assets/model.json`` of a SavedModel written by lprnet-export (export kind, decoding rule, the MTGAN
    generator's sizes); ``{"model_kind": "ctc"}`` for exports older than that file."""
    path = os.path.join(saved_model_dir, "assets", "model.json")
    if not os.path.isfile(path):
        return {"model_kind": "ctc"}
    return _read_json(path, "unreadable model info ({e}); re-export with lprnet-export")


def _kind_of(side: dict) -> str:
    """The export kind a sidecar declares (``model_kind``, else ``decoder.rule``); ``ctc`` when absent."""
    return str(side.get("model_kind") or (side.get("decoder") or {}).get("rule") or "ctc")


def _sr_refused(path: str) -> RuntimeModelError:
    return RuntimeModelError(f"{path}: an MTGAN generator (super-resolution, no plate text); read plates with a "
                             f"recognizer on its output: Recognizer(RECOGNIZER, sr=SuperResolver(path)) "
                             f"(lprnet-recognize --sr {path} --model RECOGNIZER)")


def _quality_refused(path: str) -> RuntimeModelError:
    return RuntimeModelError(f"{path}: an EQ-LPR quality network (a score per crop, no plate text); score crops "
                             f"with QualityScorer(path), or use it to gate a recognizer on a stream: "
                             f"lprnet-recognize --stream SOURCE --quality {path} --model RECOGNIZER")


def _sized(fmt: PlateFormat, size) -> PlateFormat:
    h, w = (int(v) for v in size)
    return fmt if (h, w) == (fmt.height, fmt.width) else dataclasses.replace(fmt, height=h, width=w)


class SuperResolver:
    """Super-resolve low-resolution plate crops with an exported MTGAN generator (``mtgan.md`` §2).

    ``SuperResolver("export_sr/tflite/lpr_f32.tflite")`` (LiteRT; sizes and layout from its sidecar, no
    TensorFlow), ``SuperResolver("export_sr/lpr/1")`` (its SavedModel; imports TF) or :meth:`from_keras`
    (an MTGAN Keras model). Each crop (any size) is laid out at the generator's input ``H/2 x W/2`` by
    :func:`fit_crop` with the MTGAN's plate format at that size (:attr:`lr_fmt`), scaled to [0, 1] and
    run; the output is the super-resolved ``(H, W, 3)`` image.
    """

    def __init__(self, path: str | None = None, num_threads: int | None = None, backend=None,
                 fmt: PlateFormat | None = None, lr_size: tuple | None = None):
        self.path = path
        if backend is None:
            if path is None:
                raise RuntimeModelError("SuperResolver needs a .tflite file or a SavedModel folder")
            if is_savedmodel(path):
                info = load_model_info(path)
                if info.get("model_kind") != "sr":
                    raise RuntimeModelError(f"{path}: a '{info.get('model_kind')}' SavedModel, not an MTGAN generator "
                                            f"export (assets/model.json model_kind 'sr')")
                fmt, lr_size = plate_format_from_dict(info["sr_format"], source=path), info["lr_size"]
                backend = SavedModelBackend(path)
            elif path.endswith(".tflite"):
                side = load_sidecar(path)
                if _kind_of(side) != "sr":
                    raise RuntimeModelError(f"{path}: a '{_kind_of(side)}' model, not an MTGAN generator (sidecar "
                                            f"model_kind 'sr'); pass it as the recognizer (--model)")
                fmt = plate_format_from_dict(side["format"], source=sidecar_path(path))
                lr_size = (side["input"]["height"], side["input"]["width"])
                backend = TFLiteBackend(path, num_threads=num_threads)
            else:
                raise RuntimeModelError(f"{path}: not a .tflite file or a SavedModel folder of an MTGAN generator")
        if fmt is None or lr_size is None:
            raise RuntimeModelError("SuperResolver needs the plate format and the generator's input size")
        self.backend = backend
        self.fmt = load_plate_format(fmt)  # the MTGAN's (high-resolution) format
        self.lr_fmt = _sized(self.fmt, lr_size)
        shape = getattr(backend, "input_shape", None)
        if shape is not None and tuple(shape[:2]) != (self.lr_fmt.height, self.lr_fmt.width):
            raise RuntimeModelError(f"{path}: generator input {tuple(shape[:2])} does not match its recorded "
                                    f"low-resolution size {(self.lr_fmt.height, self.lr_fmt.width)}")

    @classmethod
    def from_keras(cls, model, fmt: PlateFormat, batch_size: int = 64) -> "SuperResolver":
        """An MTGAN Keras model (its ``generator``) for plate format ``fmt``."""
        gen = getattr(model, "generator", None)
        if gen is None:
            raise RuntimeModelError(f"model '{model.name}' has no generator: not an MTGAN (super-resolution) model")
        return cls(backend=KerasBackend(gen, batch_size, output="sr"), fmt=fmt, lr_size=tuple(gen.input_shape[1:3]))

    def super_resolve_float(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB low-resolution crops (any size) -> float32 ``(N, H, W, 3)`` in [0, 1]."""
        x = preprocess_batch(images, self.lr_fmt)  # (N, H/2, W/2, 3)
        if not len(x):
            return np.zeros((0, 2 * self.lr_fmt.height, 2 * self.lr_fmt.width, 3), np.float32)
        return np.asarray(self.backend.outputs(x)["sr"], np.float32)

    def super_resolve(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB low-resolution crops (any size) -> uint8 ``(N, H, W, 3)``: ``round(sr * 255)``."""
        return np.clip(np.rint(self.super_resolve_float(images) * 255.0), 0, 255).astype(np.uint8)


class QualityScorer:
    """Score plate crops with an exported EQ-LPR quality network (``eq-lpr.md`` §2.2-2.3).

    ``QualityScorer("export_q/tflite/q_f32.tflite")`` (LiteRT; plate format from its sidecar, no
    TensorFlow), ``QualityScorer("export_q/q/1")`` (its SavedModel; imports TF) or :meth:`from_keras`.
    Each crop goes through steps 1-3 of the module docstring at the format's H x W; :meth:`score`
    returns float64 ``(N,)`` in [0, 1] (higher = the recognizer reads the crop more surely).
    """

    def __init__(self, path: str | None = None, num_threads: int | None = None, backend=None,
                 fmt: PlateFormat | str | None = None):
        self.path = path
        if backend is None:
            if path is None:
                raise RuntimeModelError("QualityScorer needs a .tflite file or a SavedModel folder")
            if is_savedmodel(path):
                kind = str(load_model_info(path).get("model_kind"))
                if fmt is None:
                    fmt = os.path.join(path, "assets", "plate_format.yaml")
                backend = SavedModelBackend(path) if kind == "quality" else None
            elif path.endswith(".tflite"):
                side = load_sidecar(path)
                kind = _kind_of(side)
                if fmt is None:
                    fmt = plate_format_from_dict(side["format"], source=sidecar_path(path))
                backend = TFLiteBackend(path, num_threads=num_threads) if kind == "quality" else None
            else:
                raise RuntimeModelError(f"{path}: not a .tflite file or a SavedModel folder of a quality network")
            if backend is None:
                raise RuntimeModelError(f"{path}: a '{kind}' model, not an EQ-LPR quality network (model_kind "
                                        f"'quality'); export one with lprnet-export --model cn_eq_lpr_e")
        if fmt is None:
            raise RuntimeModelError("QualityScorer needs the plate format")
        self.backend = backend
        self.fmt = load_plate_format(fmt)
        shape = getattr(backend, "input_shape", None)
        if shape is not None and tuple(shape[:2]) != (self.fmt.height, self.fmt.width):
            raise RuntimeModelError(f"{path}: model input {tuple(shape[:2])} does not match plate format "
                                    f"'{self.fmt.name}' ({self.fmt.height}, {self.fmt.width})")

    @classmethod
    def from_keras(cls, model, fmt: PlateFormat, batch_size: int = 64) -> "QualityScorer":
        """An EQ-LPR quality network (Keras model kind ``quality``) for plate format ``fmt``."""
        from lprnet_tf.models.registry import model_kind  # light: no keras import

        if model_kind(model) != "quality":
            raise RuntimeModelError(f"model '{model.name}' is a '{model_kind(model)}' model, not an EQ-LPR quality "
                                    f"network")
        return cls(backend=KerasBackend(model, batch_size, output="quality"), fmt=fmt)

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB crops (any size) -> float64 ``(N,)`` quality scores."""
        x = preprocess_batch(images, self.fmt)
        if not len(x):
            return np.zeros((0,), np.float64)
        return np.asarray(self.backend.outputs(x)["quality"], np.float64).reshape(len(x))


class Recognizer:
    """Recognize plate crops with an exported model.

    ``Recognizer("export/tflite/lpr_int8.tflite")`` or ``Recognizer("export/onnx/lpr.onnx")`` (plate
    format from the JSON sidecar; ONNX needs onnxruntime) or
    ``Recognizer("export/lpr/1")`` (a SavedModel folder, format from its assets; imports TF).
    ``fmt`` overrides the plate format. :meth:`from_keras` wraps an in-memory Keras model.

    Multi-frame models (``frames`` = K > 0, from the sidecar, the SavedModel signature or the Keras
    model): :meth:`recognize_frames` takes the K frames of each plate.

    The decoding rule (``kind``: ``ctc``, ``slot`` or ``attn``) comes from the sidecar (``model_kind`` /
    ``decoder.rule``), the SavedModel's ``assets/model.json`` or the Keras model. ``sr``: a
    :class:`SuperResolver` (MTGAN generator) run on every crop first; the recognizer reads its float SR
    images laid out by :func:`fit_crop`. A SavedModel that composes the generator with a recognizer
    (``lprnet-export --recognizer``) takes the low-resolution crops itself (laid out at ``H/2 x W/2``).
    """

    def __init__(self, path: str | None = None, fmt: PlateFormat | str | None = None,
                 num_threads: int | None = None, backend=None, kind: str = "ctc", sr: SuperResolver | None = None):
        self.path = path
        self.sidecar: dict = {}
        self.kind = kind  # "ctc" (sequence logits), "slot" (one class per character slot) or "attn"
        self.sr = sr
        input_fmt = None  # the layout of the model's input when it is not the plate format's (SR SavedModel)
        if backend is not None:
            self.backend = backend
        elif path is None:
            raise RuntimeModelError("Recognizer needs a .tflite file or a SavedModel folder")
        elif not os.path.exists(path):
            raise RuntimeModelError(f"{path}: no such file or folder; pass an exported .tflite / .onnx file or "
                                    f"SavedModel folder (lprnet-export)")
        elif path.endswith(".keras"):
            raise RuntimeModelError(f"{path}: a Keras model file; load it with Recognizer.from_keras("
                                    f"lprnet_tf.modelio.load_model(path), fmt), or export it with lprnet-export")
        elif is_savedmodel(path):
            info = load_model_info(path)
            self.kind = str(info.get("model_kind") or "ctc")
            if self.kind == "quality":
                raise _quality_refused(path)
            if self.kind == "sr":  # the MTGAN generator, maybe composed with a recognizer
                rec = info.get("recognizer")
                if not rec:
                    raise _sr_refused(path)
                if sr is not None:
                    raise RuntimeModelError(f"{path}: already super-resolves its input (generator + recognizer); "
                                            f"drop the separate super-resolution model (--sr)")
                self.kind = str(rec.get("model_kind") or "ctc")
                input_fmt = _sized(plate_format_from_dict(info["sr_format"], source=path), info["lr_size"])
            if fmt is None:
                fpath = os.path.join(path, "assets", "plate_format.yaml")
                if not os.path.isfile(fpath):
                    raise RuntimeModelError(f"{path}: SavedModel without assets/plate_format.yaml; pass the format")
                fmt = fpath
            self.backend = SavedModelBackend(path)
        elif path.endswith((".tflite", ".onnx")):
            if fmt is None or os.path.isfile(sidecar_path(path)):
                self.sidecar = load_sidecar(path)
            if self.sidecar:
                self.kind = _kind_of(self.sidecar)
                if self.kind == "sr":
                    raise _sr_refused(path)
                if self.kind == "quality":
                    raise _quality_refused(path)
            if fmt is None:
                fmt = plate_format_from_dict(self.sidecar["format"], source=sidecar_path(path))
            backend = TFLiteBackend if path.endswith(".tflite") else OnnxBackend
            self.backend = backend(path, num_threads=num_threads)
        else:
            raise RuntimeModelError(f"{path}: not a .tflite or .onnx file or a SavedModel folder (saved_model.pb)")
        if fmt is None:
            raise RuntimeModelError("no plate format given")
        self.fmt = load_plate_format(fmt)
        self.input_fmt = input_fmt or self.fmt
        self.frames = int(self.sidecar.get("frames") or getattr(self.backend, "frames", 0) or 0)
        shape = getattr(self.backend, "input_shape", None)
        outs = getattr(self.backend, "_outs", {})
        if not self.frames and shape is not None and "frame_weights" in outs and self.fmt.width:
            self.frames = int(shape[1]) // self.fmt.width  # a multi-frame file without its sidecar
        if self.frames:
            self.kind = "attn"  # multi-frame models (IQ-STAN) have an attention decoder
        width = self.input_fmt.width * max(self.frames, 1)
        if shape is not None and tuple(shape[:2]) != (self.input_fmt.height, width):
            k = f" ({self.frames} frames side by side)" if self.frames else ""
            raise RuntimeModelError(f"{path}: model input {tuple(shape[:2])} does not match plate format "
                                    f"'{self.input_fmt.name}' ({self.input_fmt.height}, {width}){k}")
        if self.sr is not None and self.frames:
            raise RuntimeModelError(f"{path or 'model'}: super-resolution (sr) is for single-crop recognizers, not a "
                                    f"multi-frame model")

    @classmethod
    def from_keras(cls, model, fmt: PlateFormat, batch_size: int = 64,
                   sr: SuperResolver | None = None) -> "Recognizer":
        from lprnet_tf.models.registry import model_kind  # light: no keras import

        kind = model_kind(model)
        if kind == "gan":
            raise RuntimeModelError(f"model '{model.name}' is an MTGAN (super-resolution, no plate text): pass it as "
                                    f"sr=SuperResolver.from_keras(...) with a recognizer (lprnet-recognize --sr MTGAN "
                                    f"--model RECOGNIZER)")
        if kind not in ("ctc", "slot", "attn"):
            raise RuntimeModelError(f"model '{model.name}' is a '{kind}' model, not a recognizer")
        return cls(fmt=fmt, backend=KerasBackend(model, batch_size), kind=kind, sr=sr)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return preprocess(image, self.input_fmt)

    def _single_crop(self):
        if self.frames:
            raise RuntimeModelError(f"{self.path or 'model'}: a multi-frame model (K={self.frames} frames of one "
                                    f"plate): use recognize_frames (lprnet-recognize --frames {self.frames})")

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB crops (any size) -> logits ``(N, T, C)``. With ``sr``: the crops are super-resolved
        first and the float SR images laid out for the recognizer (:func:`fit_crop`, no rounding)."""
        self._single_crop()
        images = as_crops(images)
        if self.sr is not None and len(images):
            x = np.stack([fit_crop(im, self.fmt) for im in self.sr.super_resolve_float(images)]).astype(np.float32)
        else:
            x = preprocess_batch(images, self.input_fmt)
        if not len(x):
            return np.zeros((0, 0, self.fmt.num_classes), np.float32)
        return self.backend.logits(x)

    def decode(self, logits: np.ndarray | Sequence[np.ndarray], decoder: str = "greedy",
               prior: LocalPrior | None = None) -> list[Plate]:
        """Logits ``(N, T, C)`` -> one :class:`Plate` each; a list of such arrays (one per test-time view of
        the same crops) -> the plates the views vote for (:func:`lprnet_tf.decoding.vote`). ``prior``: a
        :class:`lprnet_tf.decoding.LocalPrior` (:func:`lprnet_tf.decoding.local_prior` with ``self.fmt``)
        re-ranking the beams of the ``beam`` / ``template`` decoder."""
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder '{decoder}'; choose one of {DECODERS}")
        if self.kind == "attn" and decoder != "greedy":
            raise RuntimeModelError(f"an attention-decoder model (IQ-STAN) reads its own greedy steps: use the "
                                    f"greedy decoder, not {decoder}")
        if self.kind == "slot" and decoder != "greedy":
            raise RuntimeModelError(f"a slot model (one class per character position) decodes by arg-max per "
                                    f"slot: use the greedy decoder, not {decoder}")
        if prior is not None and decoder == "greedy":
            raise RuntimeModelError("a local prior re-ranks the beam search's candidates: use the template (or beam) "
                                    "decoder, not greedy")
        views = list(logits) if isinstance(logits, (list, tuple)) else [logits]
        if not views or not len(views[0]):
            return []
        texts, conf = decode_views(views, self.fmt, decoder, kind=self.kind, prior=prior)
        return [Plate(t, float(c), self.fmt.matches_template(t)) for t, c in zip(texts, conf)]

    def recognize(self, images: Sequence[np.ndarray], decoder: str = "greedy", tta: bool = False,
                  prior: LocalPrior | None = None) -> list[Plate]:
        """uint8 RGB crops -> one :class:`Plate` each; ``tta``: each crop read in the :data:`TTA_VIEWS`
        (:func:`tta_view`) and the plates voted (five times the inference). Crops are checked and grey /
        RGBA ones converted by :func:`as_crop`. ``prior``: as in :meth:`decode`."""
        images = as_crops(images)
        if not tta:
            return self.decode(self.logits(images), decoder, prior)
        return self.decode([self.logits([tta_view(im, v) for im in images]) for v in TTA_VIEWS], decoder, prior)

    def recognize_file(self, path: str, decoder: str = "greedy", tta: bool = False,
                       prior: LocalPrior | None = None) -> Plate:
        return self.recognize([read_image(path)], decoder, tta, prior)[0]

    def frame_outputs(self, tracks: Sequence[Sequence[np.ndarray]]) -> dict:
        """Multi-frame models: K uint8 RGB crops (any size) of each plate -> ``{output name: array}``
        (``logits (N, S, C)``, ``frame_weights (N, K)`` [, ``quality``]); each plate's frames are
        tiled by :func:`tile_frames`."""
        if not self.frames:
            raise RuntimeModelError(f"{self.path or 'model'}: not a multi-frame model; read single crops with "
                                    f"recognize (lprnet-recognize without --frames)")
        for i, t in enumerate(tracks):
            if len(t) != self.frames:
                raise RuntimeModelError(f"plate {i}: {len(t)} frame(s) given, the model reads K={self.frames}")
        tracks = [as_crops(list(t)) for t in tracks]
        if not len(tracks):
            return {"logits": np.zeros((0, 0, self.fmt.num_classes), np.float32),
                    "frame_weights": np.zeros((0, self.frames), np.float32)}
        x = np.stack([tile_frames(t, self.fmt) for t in tracks]).astype(np.float32) * (1.0 / 255.0)
        if hasattr(self.backend, "outputs"):
            return self.backend.outputs(x)
        return {"logits": self.backend.logits(x)}

    def recognize_frames(self, tracks: Sequence[Sequence[np.ndarray]], decoder: str = "greedy") -> list[Plate]:
        """Multi-frame models: the K uint8 RGB crops of each plate -> one :class:`Plate` each, with the
        model's ``frame_weights``."""
        out = self.frame_outputs(tracks)
        plates = self.decode(out["logits"], decoder)
        weights = out.get("frame_weights")
        if weights is not None:
            for p, w in zip(plates, weights):
                p.frame_weights = [float(v) for v in w]
        return plates
