"""Training augmentation with albumentations: the paper's random affine jitter ("data augmentation
by random affine transformations, e.g. rotation, scaling and shift", ``lprnet.md`` §3.2; Table 5
"Data augm.") plus photometric changes (brightness, contrast, hue, colour cast, grey), low resolution, blur, noise
and JPEG.

Levels: ``none``, ``light`` (affine only), ``full`` (affine + photometric + blur/noise/JPEG).
Separately, :func:`loosen` makes a crop looser than its box (``data.loose_crops``): the pipeline applies it to the
source crop, before the crop is laid out at the model's size.
Every call is seeded from the (seed, first global index) of its batch, so a batch's augmentation
depends only on those: a resumed run augments its data exactly as the uninterrupted run would.
"""

from __future__ import annotations

import threading

import albumentations as A
import cv2
import numpy as np

LEVELS = ("none", "light", "full")
LOOSE_P = 0.5  # share of the crops loosened when data.loose_crops > 0
_BORDERS = (cv2.BORDER_REPLICATE, cv2.BORDER_REFLECT_101)


def build_augmenter(level: str = "full") -> A.Compose | None:
    """The albumentations pipeline for ``level`` (None for ``none``)."""
    if level not in LEVELS:
        raise ValueError(f"unknown augmentation level '{level}'; choose one of {LEVELS}")
    if level == "none":
        return None
    affine = A.Affine(scale=(0.88, 1.08), translate_percent={"x": (-0.04, 0.04), "y": (-0.08, 0.08)},
                      rotate=(-6, 6), shear={"x": (-8, 8), "y": (-3, 3)}, border_mode=cv2.BORDER_REPLICATE, p=0.9)
    steps = [affine]
    if level == "full":
        steps += [
            A.RandomBrightnessContrast(brightness_limit=0.35, contrast_limit=0.35, p=0.7),
            A.HueSaturationValue(hue_shift_limit=12, sat_shift_limit=30, val_shift_limit=25, p=0.5),
            A.RGBShift(r_shift_limit=15, g_shift_limit=15, b_shift_limit=15, p=0.3),
            A.ToGray(p=0.08),
            A.Downscale(scale_range=(0.5, 0.9), p=0.15),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 5))], p=0.3),
            A.GaussNoise(std_range=(0.01, 0.06), p=0.3),
            A.ImageCompression(quality_range=(35, 95), p=0.4),
        ]
    return A.Compose(steps)


def loosen(image: np.ndarray, max_margin: float, rng: np.random.Generator) -> np.ndarray:
    """A looser crop of ``image`` (a detector whose boxes keep background around the plate): with probability
    :data:`LOOSE_P`, each side is extended by its own uniform draw from [0, ``max_margin``] crop heights, the new
    border repeating the crop's edge or mirroring the crop (one of the two per crop, so the model sees both smooth
    and textured surroundings, and mirrored character pieces beside the plate that it must not read). Otherwise the
    crop is returned as it is. The result is larger than ``image``; the pipeline then lays it out at the model's size.
    Only ``rng`` decides (the pipeline seeds it by (seed, global index)).
    """
    if max_margin <= 0 or rng.random() >= LOOSE_P:
        return image
    h, w = image.shape[:2]
    top, bottom, left, right = (int(round(m)) for m in rng.uniform(0.0, max_margin, 4) * h)
    border = _BORDERS[int(rng.integers(len(_BORDERS)))]
    if border == cv2.BORDER_REFLECT_101:  # a reflection is at most one crop wide/high
        top, bottom = min(top, h - 1), min(bottom, h - 1)
        left, right = min(left, w - 1), min(right, w - 1)
    return cv2.copyMakeBorder(image, top, bottom, left, right, border)


class Augmenter:
    """Thread-safe, per-call seeded wrapper (tf.data maps in several threads)."""

    def __init__(self, level: str = "full"):
        self.level = level
        build_augmenter(level)  # validate now, not inside a worker thread
        self._local = threading.local()

    # Picklable for worker processes: a threading.local cannot be pickled, and the per-thread
    # pipelines are rebuilt on first use anyway.
    def __getstate__(self):
        return {"level": self.level}

    def __setstate__(self, state):
        self.level = state["level"]
        self._local = threading.local()

    def __call__(self, images: list[np.ndarray], seed: int) -> list[np.ndarray]:
        """Augment a list of images; the result depends only on (images, seed).

        Seeding once per list (a batch) instead of once per image keeps albumentations' reseeding
        cost off the per-sample path.
        """
        if self.level == "none":
            return images
        aug = getattr(self._local, "aug", None)
        if aug is None:
            aug = self._local.aug = build_augmenter(self.level)
        aug.set_random_seed(int(seed) % (2**32))
        return [aug(image=im)["image"] for im in images]
