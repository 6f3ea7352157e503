"""Fixed, deterministic corruptions of plate crops: how a recognizer holds up on images unlike its validation set.

The real validation crops of ``../shared/data`` come from a few sources each; the plates a deployed model meets
come from other cameras, at night, through haze, tilted, blurred, recompressed. Each corruption here changes a crop
in one such way at three severities (1 = mild, 3 = strong), with parameters fixed in :data:`CORRUPTIONS` so that
every model and every run sees exactly the same images. Spatial sizes are fractions of the crop: blur widths of its
width (a plate's characters span about the same share of the width in every set), padding of its height; so a
small and a large crop of one plate are changed alike.
``benchmarks/robustness.py`` scores the shipped models on every corruption of their real sets, and its ``--sheet``
draws what each corruption does to a few crops.
"""

from __future__ import annotations

import cv2
import numpy as np

SEVERITIES = (1, 2, 3)

# name -> (what it models, the parameter at severities 1, 2, 3)
CORRUPTIONS = {
    "dark": ("night / under-exposure: every intensity times f", (0.5, 0.3, 0.15)),
    "bright": ("over-exposure / glare: the distance to white times f", (0.5, 0.3, 0.15)),
    "contrast": ("haze / low contrast: the distance to the crop's mean grey times f", (0.5, 0.3, 0.2)),
    "blur": ("defocus: Gaussian blur, sigma in crop widths", (0.008, 0.015, 0.025)),
    "motion": ("horizontal motion blur, length in crop widths", (0.025, 0.04, 0.055)),
    "noise": ("sensor noise: Gaussian, std in [0, 1] units", (0.04, 0.08, 0.12)),
    "jpeg": ("recompression: JPEG quality", (30, 15, 8)),
    "rotate": ("in-plane rotation in degrees (sign alternates crop by crop), edges repeated", (5, 10, 15)),
    "shear": ("horizontal shear (a plate seen from the side), x shift per row in row units", (0.1, 0.2, 0.3)),
    "pad": ("a looser crop: edges repeated around it, per side in crop heights", (0.1, 0.25, 0.5)),
    "clutter": ("a looser crop among clutter: a smooth random texture in the crop's own colours around it (neither "
                "border data.loose_crops trains with), per side in crop heights", (0.1, 0.25, 0.5)),
    "grey": ("a greyscale camera (the same at every severity)", (1, 1, 1)),
}


def corruption_param(name: str, severity: int):
    """The parameter of corruption ``name`` at ``severity``; a clear error for an unknown name or severity."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption '{name}'; choose from {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"corruption severity must be one of {SEVERITIES}, got {severity!r}")
    return CORRUPTIONS[name][1][severity - 1]


def _affine(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def corrupt(image: np.ndarray, name: str, severity: int, index: int = 0) -> np.ndarray:
    """Crop ``image`` (uint8 RGB, any size) changed by corruption ``name`` at ``severity`` (1-3) -> uint8 RGB.

    ``index`` (the crop's position in its set) seeds the noise and picks the rotation's sign, so a set's
    corrupted images depend only on the set, the corruption and the severity."""
    p = corruption_param(name, severity)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"corrupt: expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    x = image.astype(np.float32)
    if name == "dark":
        out = x * p
    elif name == "bright":
        out = 255.0 - (255.0 - x) * p
    elif name == "contrast":
        grey = x.mean()
        out = grey + (x - grey) * p
    elif name == "blur":
        return cv2.GaussianBlur(image, (0, 0), sigmaX=max(p * w, 0.3), borderType=cv2.BORDER_REPLICATE)
    elif name == "motion":
        n = max(int(round(p * w)), 2)
        kernel = np.full((1, n), 1.0 / n, np.float32)
        return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    elif name == "noise":
        rng = np.random.default_rng(1_000_003 + index)
        out = x + rng.normal(0.0, p * 255.0, x.shape)
    elif name == "jpeg":
        ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(p)])
        if not ok:
            raise RuntimeError("corrupt: OpenCV could not JPEG-encode the crop")
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    elif name == "rotate":
        angle = p if index % 2 == 0 else -p
        return _affine(image, cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0))
    elif name == "shear":
        s = p if index % 2 == 0 else -p
        return _affine(image, np.float32([[1.0, s, -s * h / 2.0], [0.0, 1.0, 0.0]]))
    elif name == "pad":
        d = max(int(round(p * h)), 1)
        return cv2.copyMakeBorder(image, d, d, d, d, cv2.BORDER_REPLICATE)
    elif name == "clutter":
        d = max(int(round(p * h)), 1)
        rng = np.random.default_rng(2_000_003 + index)
        big_h, big_w = h + 2 * d, w + 2 * d
        # random values per d x d cell, smoothly interpolated (blobs as wide as the border): mostly light and shade
        # (one texture for all channels, the crop's grey spread), a quarter of it colour (the crop's colour spread)
        cells = rng.normal(size=(big_h // d + 2, big_w // d + 2, 4)).astype(np.float32)
        texture = cv2.resize(cells, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
        pixels = x.reshape(-1, 3)
        spread = max(float(pixels.mean(axis=1).std()), 1.0)
        out = (pixels.mean(axis=0) + texture[:, :, :1] * spread
               + 0.25 * texture[:, :, 1:] * np.maximum(pixels.std(axis=0), 1.0))
        out[d:d + h, d:d + w] = x
    else:  # grey
        g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return np.repeat(g[:, :, None], 3, axis=2)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
