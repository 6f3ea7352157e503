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


def downscale_to_height(image: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    """uint8 crop -> (crop ``height`` pixels high with its aspect ratio kept, scale); a crop not taller
    than ``height`` comes back unchanged with scale 1.0 (never upsampled)."""
    h, w = image.shape[:2]
    if height < 1:
        raise ValueError(f"height must be >= 1, got {height}")
    if h <= height:
        return image.copy(), 1.0
    new_w = max(1, int(round(w * height / h)))
    return cv2.resize(image, (new_w, int(height)), interpolation=cv2.INTER_AREA), height / h


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
