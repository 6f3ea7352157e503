"""Training augmentation with albumentations: the paper's random affine jitter ("data augmentation
by random affine transformations, e.g. rotation, scaling and shift", ``lprnet.md`` §3.2; Table 5
"Data augm.") plus photometric changes (brightness, contrast, hue, colour cast, grey), low resolution, blur, noise
and JPEG.

Levels: ``none``, ``light`` (affine only), ``full`` (affine + photometric + blur/noise/JPEG).
Every call is seeded from the (seed, first global index) of its batch, so a batch's augmentation
depends only on those: a resumed run augments its data exactly as the uninterrupted run would.
"""

from __future__ import annotations

import threading

import albumentations as A
import cv2
import numpy as np

LEVELS = ("none", "light", "full")


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
