"""Low-resolution plates: test sets at fixed plate heights and HR/LR training pairs
(``papers/multitask-lowres-lpr.md``, ``papers/mtgan.md``).

**What "low resolution" means here.** A low-resolution crop is what a camera farther away (or with
fewer pixels) records: the same plate covered by fewer sensor pixels. We make it from a
higher-resolution crop by **area averaging** (``cv2.INTER_AREA``: each output pixel is the mean of
the input pixels it covers, as a coarser sensor integrates light) down to a crop **height of H
pixels, keeping the aspect ratio**, and we keep it at that size: a low-resolution set holds small
images (e.g. 8 x 31 for a 24 x 94 crop at H = 8), **not** images upsampled back. Each recognizer
then enlarges them to its own input with its own rule (:func:`lprnet_tf.runtime.fit_crop`: bilinear
when enlarging), exactly as it would a small real crop. No blur, noise or JPEG is added on top (the
images are written as PNG), so the sets isolate resolution; the DGM is the paper's answer to "real
low-resolution images are also noisy". Crops already at most H pixels high are kept as they are
(``scale`` 1.0, counted as ``kept_size`` in the manifest). H is the height of the **crop**; for the
tight CN crops that is the plate height, the BR crops have a little margin.

- :func:`downscale_to_height`: the one downsampling rule (test sets and training pairs share it).
- :func:`write_lowres_sets`: ``OUT/<name>_h<H>/images/*.png`` + ``labels.csv`` (the source's columns
  + ``scale`` (H / source height) and ``source_path``) + ``lowres.json`` (manifest), for several H at
  once, deterministic (same input -> byte-identical files). ``datasets/make_lowres.py`` is the script.
- :class:`PairedSource`: (HR, LR, text) pairs of one plate made with that rule, at the sizes a model
  takes (the DGM's HR -> LR training pairs, the MTGAN's LR -> HR pairs) until real close/far pairs
  of the same plate exist. The training pipeline makes its pairs with it (``data.pairs: lowres``:
  :class:`lprnet_tf.data.pipeline.ExampleMaker` with ``pairs``, LR heights from ``data.lr_heights``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import threading
from typing import Sequence

import cv2
import numpy as np

from lprnet_tf.data.pipeline import SampleSource, SynthSource, open_source
from lprnet_tf.data.readers import DataError, scan_rows
from lprnet_tf.progress import Progress
from lprnet_tf.runtime import fit_crop
from lprnet_tf.vocab import PlateFormat, load_plate_format

DEFAULT_HEIGHTS = (8, 12, 16)
METHOD = ("cv2.resize INTER_AREA to height H, width round(w * H / h) (aspect kept), no upsampling back, "
          "no added noise/blur/JPEG; written as PNG; crops at most H pixels high are kept as they are")
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 6]


INTERPOLATIONS = {"area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR}


def downscale_to_height(image: np.ndarray, height: int, method: str = "area") -> tuple[np.ndarray, float]:
    """uint8 crop -> (crop ``height`` pixels high with its aspect ratio kept, scale); a crop not taller
    than ``height`` comes back unchanged with scale 1.0 (never upsampled). ``method``: a key of
    :data:`INTERPOLATIONS` (the test sets use ``area``)."""
    h, w = image.shape[:2]
    if height < 1:
        raise ValueError(f"height must be >= 1, got {height}")
    if method not in INTERPOLATIONS:
        raise ValueError(f"downscaling method must be one of {sorted(INTERPOLATIONS)}, got {method!r}")
    if h <= height:
        return image.copy(), 1.0
    new_w = max(1, int(round(w * height / h)))
    return cv2.resize(image, (new_w, int(height)), interpolation=INTERPOLATIONS[method]), height / h


# ---- test sets ---------------------------------------------------------------------------------------
def source_rows(spec: str, source: SampleSource) -> tuple[list[str], list[dict]]:
    """(columns, one dict per sample) describing ``source`` as its labels.csv does; ``source_path`` is the
    image path relative to the set's folder (``synth:SEED:COUNT#i`` for synthetic samples)."""
    if isinstance(source, SynthSource):
        return ["path", "text"], [{"text": t, "source_path": f"{spec}#{i}"} for i, t in enumerate(source.texts())]
    scan = scan_rows(spec)  # the header as written (["path", "text"] for layouts without one) and the root
    cols, root = scan.columns, scan.root
    rows = []
    for s in source.samples:
        row = {"text": s.text, "split": s.split, "group": s.group, **s.extra}
        row["source_path"] = os.path.relpath(s.path, root).replace(os.sep, "/")
        rows.append(row)
    return cols, rows


def write_lowres_sets(spec: str, fmt: PlateFormat | str, out_root: str, name: str,
                      heights=DEFAULT_HEIGHTS, split: str | None = None, overwrite: bool = False,
                      progress: bool = True) -> list[dict]:
    """Write ``out_root/<name>_h<H>`` for each H of ``heights`` from the data ``spec`` (any reader layout
    or ``synth:SEED:COUNT``); returns the manifests. Refuses to write into an existing set folder
    unless ``overwrite`` (which replaces it)."""
    fmt = load_plate_format(fmt)
    heights = sorted({int(h) for h in heights})
    if not heights or heights[0] < 1:
        raise ValueError(f"heights must be positive integers, got {heights}")
    source = open_source(spec, fmt, split=split)
    if isinstance(source, SynthSource) and source.size is None:
        raise DataError(f"{spec}: a synthetic low-resolution set needs a count, e.g. synth:777000777:1000")
    cols, rows = source_rows(spec, source)
    out_cols = [c for c in cols if c not in ("scale", "source_path")] + ["scale", "source_path"]
    dirs = {h: os.path.join(out_root, f"{name}_h{h}") for h in heights}
    for d in dirs.values():
        if os.path.exists(d) and os.listdir(d):
            if not overwrite:
                raise FileExistsError(f"{d} already exists; pass --overwrite to replace it or choose another --out")
            shutil.rmtree(d)
        os.makedirs(os.path.join(d, "images"), exist_ok=True)
    n = len(source)
    digits = max(5, len(str(n)))
    out_rows = {h: [] for h in heights}
    kept = {h: 0 for h in heights}
    bar = Progress(n, f"lowres {name}", "img", enabled=progress)
    for i in range(n):
        image, _ = source.get(i)
        rel = f"images/{i + 1:0{digits}d}.png"
        for h in heights:
            small, scale = downscale_to_height(image, h)
            kept[h] += scale == 1.0
            ok, buf = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), _PNG)
            if not ok:
                raise DataError(f"{rows[i]['source_path']}: could not encode the {h}-pixel crop as PNG")
            buf.tofile(os.path.join(dirs[h], rel))
            out_rows[h].append({**rows[i], "path": rel, "scale": f"{scale:.4f}"})
        bar.update(1)
    bar.close()
    manifests = []
    for h in heights:
        with open(os.path.join(dirs[h], "labels.csv"), "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, out_cols, extrasaction="ignore", lineterminator="\n")
            w.writeheader()
            w.writerows(out_rows[h])
        manifest = {"name": f"{name}_h{h}", "source": spec, "split": split or "", "plate_format": fmt.name,
                    "height": h, "count": n, "kept_size": kept[h], "method": METHOD}
        with open(os.path.join(dirs[h], "lowres.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
        manifests.append(manifest)
    return manifests


def standard_sets(data_root: str, synth_count: int = 1000) -> list[tuple[str, str, str, str | None]]:
    """The issue-8 low-resolution test sets: ``(name, data spec, plate format, split)`` for the CN and BR
    validation sets of ``data_root`` (``../shared/data``; the splits of
    :data:`lprnet_tf.evaluation.REFERENCE_SETS`) and the held-out synthetic CN and BR plates."""
    from lprnet_tf.evaluation import HELD_OUT_SYNTH_SEED, REFERENCE_SETS

    sets = []
    for folder, name in (("cn_ccpd_like_1000", "cn_val"), ("br_openalpr_crops", "br_val")):
        fmt_name, split, _ = REFERENCE_SETS[folder]
        sets.append((name, os.path.join(data_root, folder), fmt_name, split))
    for fmt_name in ("cn", "br"):
        sets.append((f"synth_{fmt_name}", f"synth:{HELD_OUT_SYNTH_SEED}:{synth_count}", fmt_name, None))
    return sets


# ---- training pairs ----------------------------------------------------------------------------------
class PairedSource:
    """(HR, LR, text) pairs of the same plate, the LR one made by :func:`downscale_to_height`.

    Sample ``i``: the crop of ``source`` laid out at the format's H x W (HR), and the same crop
    downscaled to a height drawn from ``heights`` (by (seed, i) only) and then brought to ``lr_size``
    (default: the format's H x W, as the DGM takes it; ``(H/2, W/2)`` for the MTGAN generator) with the
    runtime's rule, i.e. what a model is fed when it reads a crop of that height.
    """

    def __init__(self, source: SampleSource, fmt: PlateFormat, heights=DEFAULT_HEIGHTS,
                 lr_size: tuple[int, int] | None = None, seed: int = 0):
        self.source, self.fmt, self.seed = source, fmt, int(seed)
        self.heights = tuple(int(h) for h in heights)
        lh, lw = lr_size or (fmt.height, fmt.width)
        same = (lh, lw) == (fmt.height, fmt.width)
        self.lr_fmt = fmt if same else dataclasses.replace(fmt, height=int(lh), width=int(lw))

    def __len__(self):
        return len(self.source)

    def lr_height(self, key: int) -> int:
        """The LR crop height of sample ``key``, drawn from ``heights`` by (seed, key) only."""
        return self.heights[int(np.random.default_rng([self.seed, 0x4C52, int(key)]).integers(len(self.heights)))]

    def pair(self, image: np.ndarray, key: int) -> tuple[np.ndarray, np.ndarray, int]:
        """One uint8 crop -> (HR uint8 (H, W, 3), LR uint8 (h, w, 3), the LR crop height used); the height
        is :meth:`lr_height` of ``key``. The pipeline's pair mode (:class:`lprnet_tf.data.pipeline.ExampleMaker`
        with ``pairs``) calls this on its (augmented) crops with the global sample index as ``key``."""
        height = self.lr_height(key)
        small, _ = downscale_to_height(image, height)
        return fit_crop(image, self.fmt), fit_crop(small, self.lr_fmt), height

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray, str, int]:
        """-> (HR uint8 (H, W, 3), LR uint8 (h, w, 3), text, the LR crop height used)."""
        image, text = self.source.get(i)
        hr, lr, height = self.pair(image, i)
        return hr, lr, text, height

    def batch(self, start: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples ``start .. start+size-1`` -> (HR float32 (n, H, W, 3), LR float32 (n, h, w, 3) in [0, 1],
        labels int32 (n, max_length) padded with 0)."""
        hr, lr, labels = [], [], []
        for i in range(int(start), int(start) + int(size)):
            a, b, text, _ = self.get(i % len(self))
            hr.append(a)
            lr.append(b)
            labels.append(self.fmt.pad(self.fmt.encode(text)))
        scale = np.float32(1.0 / 255.0)
        return (np.stack(hr).astype(np.float32) * scale, np.stack(lr).astype(np.float32) * scale,
                np.asarray(labels, np.int32))


def mtgan_super_resolver(spec: str, fmt: PlateFormat | None = None, what: str = "super-resolver",
                         batch_size: int = 64):
    """The :class:`lprnet_tf.runtime.SuperResolver` of a trained MTGAN (``.keras`` file, run directory or
    shipped name) whose output feeds a recognizer of plate format ``fmt`` (``None``: not checked here; a
    :class:`lprnet_tf.runtime.Recognizer` checks it); DataError naming ``what`` and the fix when ``spec`` is
    not an MTGAN or its output size is not ``fmt``'s input size."""
    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.runtime import RuntimeModelError, SuperResolver

    model, gan_fmt, path = load_for_inference(spec)
    try:
        sr = SuperResolver.from_keras(model, gan_fmt, batch_size=batch_size)
    except RuntimeModelError as e:
        raise DataError(f"{what} {spec}: {e}; give an MTGAN (lprnet-train with "
                        f"configs/experiments/mtgan_*.yaml); a recognizer goes in --model / model:") from None
    if fmt is not None and (gan_fmt.height, gan_fmt.width) != (fmt.height, fmt.width):
        raise DataError(f"{what} {spec}: the generator in {path} makes {gan_fmt.height}x{gan_fmt.width} images, "
                        f"the recognizer's plate format '{fmt.name}' takes {fmt.height}x{fmt.width}; use an MTGAN "
                        f"trained for this format")
    return sr


# ---- low-resolution training images for recognizers ----------------------------------------------------
class Degrader:
    """Replace a fraction of a recognizer's training crops by low-resolution versions of themselves
    (``papers/multitask-lowres-lpr.md`` §2.2 and Table 3: the multi-task CNN trained with and without the
    DGM's images; ``data.lowres`` / ``data.degrader`` of the experiment YAML).

    Sample ``g`` is degraded with probability ``fraction``, decided by (seed, g) only, as is its LR crop
    height (one of ``heights``). ``method``:

    - ``area`` / ``bicubic`` / ``bilinear``: plain downsampling, :func:`downscale_to_height` of the crop
      to that height with this interpolation, then enlarged to the model input by the runtime's rule
      (:func:`lprnet_tf.runtime.fit_crop`), i.e. what the model is fed for a real crop that small. ``area``
      is the rule the test sets are made with; ``bicubic`` is the plain baseline the paper compares with.
    - anything else: a trained DGM (``.keras`` file, run directory or shipped name; ``lprnet-train`` with
      ``configs/experiments/dgm_*.yaml``): the crop at the format's H x W goes through the DGM, whose output
      (at H x W; a grey one-channel output is repeated to RGB) is the training image. The DGM is
      deterministic and has no height input: it renders the mean degradation of the pairs it was trained on.

    ``super_resolve`` (``data.super_resolve``: an MTGAN ``.keras`` file, run directory or shipped name):
    every crop, degraded or not, is then super-resolved by the MTGAN's generator exactly as
    ``lprnet-recognize --sr`` and ``benchmarks/lowres.py`` do at inference
    (:class:`lprnet_tf.runtime.SuperResolver`: the crop laid out at the generator's ``H/2 x W/2`` input),
    so a recognizer fine-tuned this way learns to read the generator's output (``mtgan.md`` §2: SR, then
    recognition). The generator's output size must be the recognizer's input size.

    The DGM and the generator are loaded on first use in the process that makes the batches (not
    pickled with the pipeline) and called under a lock (the tf.data map runs batches in parallel threads).
    """

    def __init__(self, fmt: PlateFormat, fraction: float, heights=DEFAULT_HEIGHTS, method: str = "bicubic",
                 seed: int = 0, super_resolve: str = ""):
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError(f"the low-resolution fraction is a probability in [0, 1], got {fraction}")
        self.fmt, self.fraction, self.seed, self.method = fmt, float(fraction), int(seed), str(method)
        self.heights = tuple(int(h) for h in heights)
        self.super_resolve = str(super_resolve or "")
        self._model = None
        self._sr = None
        self._lock = threading.Lock()

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_model"], state["_sr"], state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._model, self._sr, self._lock = None, None, threading.Lock()

    @property
    def uses_model(self) -> bool:
        return self.method not in INTERPOLATIONS

    def height(self, g: int) -> int:
        """The LR crop height of global sample ``g``, or 0 when it stays at full resolution."""
        rng = np.random.default_rng([self.seed, 0x4447, int(g)])
        if rng.random() >= self.fraction:
            return 0
        return self.heights[int(rng.integers(len(self.heights)))]

    def _dgm(self):
        if self._model is None:
            from lprnet_tf.modelio import load_model, model_file

            path = model_file(self.method)
            model = load_model(path)
            shape = tuple(model.inputs[0].shape[1:])
            want = (self.fmt.height, self.fmt.width, 3)
            if shape != want:
                raise DataError(f"data.degrader {self.method}: the DGM in {path} takes {shape[:2]} images, the "
                                f"plate format '{self.fmt.name}' gives {want[:2]}; train the DGM with the same "
                                f"plate-format variant (e.g. configs/variants/br_120x40.yaml)")
            self._model = model
        return self._model

    def _super_resolver(self):
        if self._sr is None:
            self._sr = mtgan_super_resolver(self.super_resolve, self.fmt, "data.super_resolve")
        return self._sr

    def apply(self, crops: Sequence[np.ndarray], gs: Sequence[int]) -> list[np.ndarray]:
        """uint8 crops of global samples ``gs`` -> uint8 model inputs (H, W, 3), degraded where drawn
        (and all super-resolved with ``super_resolve``)."""
        out = [None] * len(crops)
        small = list(crops)  # what a super-resolver is given: the crop at its (possibly reduced) size
        via_model = []
        for j, (crop, g) in enumerate(zip(crops, gs)):
            h = self.height(g)
            if h and not self.uses_model:
                small[j] = downscale_to_height(crop, h, self.method)[0]
                out[j] = fit_crop(small[j], self.fmt)
            else:
                out[j] = fit_crop(crop, self.fmt)
                if h:
                    via_model.append(j)
        if via_model:
            import keras

            x = np.stack([out[j] for j in via_model]).astype(np.float32) * np.float32(1.0 / 255.0)
            with self._lock:
                y = keras.ops.convert_to_numpy(self._dgm()(x, training=False))
            if y.shape[-1] == 1:
                y = np.repeat(y, 3, axis=-1)
            y = np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)
            for k, j in enumerate(via_model):
                out[j] = small[j] = y[k]
        if self.super_resolve:
            with self._lock:
                out = list(self._super_resolver().super_resolve(small))
        return out
