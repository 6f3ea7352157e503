"""No-reference image quality (NR-IQA) of plate crops: per-frame scores and per-patch score maps.

IQ-STAN (``iq-stan.md`` §3.1, Fig. 3) takes its quality ground truth from a trained no-reference
IQA model (Kang et al. 2014, a CNN scoring 32x32 patches whose mean is the image score), normalised
to [0, 1]. We have no such trained model and no human opinion scores, so this module implements a
documented, cv2/numpy-only stand-in in the same shape: **patch scores averaged into a frame score**.

The score, ``PQS`` (plate quality score), in [0, 1] (1 = clean, sharp, well exposed):

1. The crop is converted to luma and resized to ``FRAME_H`` = 48 pixels high, keeping its aspect
   ratio (width clipped to 2-8 heights), so crops of any size are scored at one scale and a narrow
   crop is not blurred by stretching it.
2. It is cut into ``PATCHES`` = 7 vertical strips along the width (one per character of a 7-character
   plate; 5 frames x 7 patches = the paper's M = 35).
3. Each strip gets 43 features:
   - BRISQUE (Mittal et al. 2012) statistics of the MSCN coefficients (local mean subtracted, divided
     by the local standard deviation, 7x7 Gaussian window, sigma 7/6) at two scales: the shape and
     variance of a generalized Gaussian fitted to the coefficients, and the shape, mean and left/right
     variances of asymmetric generalized Gaussians fitted to their products with the horizontal,
     vertical and two diagonal neighbours (18 per scale, moment matching);
   - plate cues: log gradient energy (sharpness), the ratio of fine to coarse gradient energy (blur
     independent of contrast), the Immerkaer noise estimate, RMS contrast, mean level, and the
     fractions of clipped bright and dark pixels.
4. A ridge regression (``QUALITY_MODEL``: weights, feature means and scales) maps the features to
   ``1 - degradation``, clipped to [0, 1]. It was fitted by :func:`fit_quality_model` on synthetic
   plates (every strip inherits its image's target, as in Kang et al.), whose ``degradation``
   (:mod:`lprnet_tf.synth.degrade`: 1 - prod(1 - severity) over blur, resolution, noise, JPEG, contrast,
   exposure, tilt, shadow, glare, occlusion) is known. Refit with
   ``python benchmarks/quality.py --fit`` (it prints the new ``QUALITY_MODEL``); the benchmark reports
   LCC/SROCC on tracklets rendered from seeds the fit never saw.

The score therefore measures what the renderer calls degradation, as far as it is visible in the
pixels (tilt, for one, is not an image-quality defect and is mostly invisible to it). On real crops it
is a relative measure: compare frames of one plate, not sets from different cameras.

Correlation helpers (LCC, SROCC) are in :mod:`lprnet_tf.metrics`.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap

import cv2
import numpy as np

FRAME_H = 48  # every crop is resized to this height (aspect kept) before scoring
PATCHES = 7  # strips per frame (IQ-STAN: 7 characters per frame, 5 frames -> M = 35)
_C = 1.0  # MSCN stabilising constant (grey levels)


# ---- BRISQUE statistics -------------------------------------------------------------------------
def _gamma_ratio_table():
    alphas = np.arange(0.2, 10.001, 0.001)
    lg = np.vectorize(math.lgamma)
    ggd = np.exp(lg(1.0 / alphas) + lg(3.0 / alphas) - 2.0 * lg(2.0 / alphas))  # E[x^2] / E[|x|]^2
    return alphas, ggd


_ALPHAS, _RATIO = _gamma_ratio_table()


def _shape_from_ratio(r: float) -> float:
    """GGD shape alpha whose Gamma ratio is nearest to ``r`` (moment matching)."""
    return float(_ALPHAS[int(np.argmin(np.abs(_RATIO - r)))])


def _ggd_fit(x: np.ndarray) -> tuple:
    """(shape, variance) of a zero-mean generalized Gaussian fitted to ``x``."""
    var = float(np.mean(x * x))
    mabs = float(np.mean(np.abs(x)))
    if var < 1e-12 or mabs < 1e-12:
        return 10.0, 0.0
    return _shape_from_ratio(var / (mabs * mabs)), var


def _aggd_fit(x: np.ndarray) -> tuple:
    """(shape, mean, left variance, right variance) of an asymmetric generalized Gaussian."""
    left, right = x[x < 0], x[x >= 0]
    sl = math.sqrt(float(np.mean(left * left))) if left.size else 0.0
    sr = math.sqrt(float(np.mean(right * right))) if right.size else 0.0
    if sl < 1e-9 or sr < 1e-9:
        return 10.0, 0.0, sl * sl, sr * sr
    gamma = sl / sr
    mabs = float(np.mean(np.abs(x)))
    rhat = mabs * mabs / float(np.mean(x * x))
    rnorm = rhat * (gamma ** 3 + 1) * (gamma + 1) / (gamma * gamma + 1) ** 2
    alpha = _shape_from_ratio(1.0 / max(rnorm, 1e-6))
    lg = math.lgamma
    beta_l = sl * math.sqrt(math.exp(lg(1 / alpha) - lg(3 / alpha)))
    beta_r = sr * math.sqrt(math.exp(lg(1 / alpha) - lg(3 / alpha)))
    mean = (beta_r - beta_l) * math.exp(lg(2 / alpha) - lg(1 / alpha))
    return alpha, mean, sl * sl, sr * sr


def mscn(gray: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a float32 grey image (grey levels)."""
    mu = cv2.GaussianBlur(gray, (7, 7), 7.0 / 6.0, borderType=cv2.BORDER_REFLECT)
    var = cv2.GaussianBlur(gray * gray, (7, 7), 7.0 / 6.0, borderType=cv2.BORDER_REFLECT) - mu * mu
    return (gray - mu) / (np.sqrt(np.abs(var)) + _C)


_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical, main and anti diagonal neighbours


def _brisque_stats(m: np.ndarray) -> list:
    """18 statistics of one MSCN patch."""
    out = list(_ggd_fit(m))
    h, w = m.shape
    for dy, dx in _SHIFTS:
        a = m[0:h - dy, max(0, -dx):w - max(0, dx)]
        b = m[dy:h, max(0, dx):w - max(0, -dx)]
        out += list(_aggd_fit((a * b).ravel()))
    return out


# ---- plate cues ----------------------------------------------------------------------------------
_NOISE_K = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def _plate_stats(g: np.ndarray, gx: np.ndarray, gy: np.ndarray, g2x: np.ndarray, g2y: np.ndarray,
                 lap: np.ndarray) -> list:
    """7 cues of the grey strip ``g`` (its gradients at full and half resolution are given)."""
    energy = float(np.mean(gx * gx + gy * gy))
    coarse = float(np.mean(g2x * g2x + g2y * g2y))
    sharp = math.log1p(energy)
    fine_ratio = energy / (coarse + 1e-3)  # a blurred strip loses the fine gradients first
    noise = math.sqrt(math.pi / 2) * float(np.mean(np.abs(lap))) / 6.0  # Immerkaer 1996
    contrast = float(g.std()) / 255.0
    level = float(g.mean()) / 255.0
    bright = float(np.mean(g >= 250))
    dark = float(np.mean(g <= 5))
    return [sharp, math.log(fine_ratio + 1e-3), math.log1p(noise), contrast, level, bright, dark]


FEATURE_NAMES = tuple(
    [f"s{s}_{n}" for s in (1, 2) for n in ("ggd_shape", "ggd_var") +
     tuple(f"{o}_{k}" for o in ("h", "v", "d1", "d2") for k in ("shape", "mean", "lvar", "rvar"))] +
    ["log_grad_energy", "log_fine_ratio", "log_noise", "rms_contrast", "mean_level", "clip_bright",
     "clip_dark"])


def _to_gray(image: np.ndarray) -> np.ndarray:
    """float32 luma, FRAME_H high (aspect kept, width 2-8 heights), from a uint8 RGB (or grey) crop."""
    a = np.asarray(image)
    if a.ndim != 2 and not (a.ndim == 3 and a.shape[2] in (1, 3, 4)):
        raise ValueError(f"expected an H x W (x 1/3/4) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a.astype(np.float32) * (255.0 if a.size and float(a.max()) <= 1.0 else 1.0), 0, 255)
        a = (a + 0.5).astype(np.uint8)
    if a.ndim == 3:
        a = a[..., 0] if a.shape[2] == 1 else cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"image of {a.shape[1]}x{a.shape[0]} pixels is too small to score")
    h = FRAME_H
    w = int(np.clip(round(h * a.shape[1] / a.shape[0]), 2 * h, 8 * h))
    interp = cv2.INTER_AREA if a.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(a, (w, h), interpolation=interp).astype(np.float32)


def patch_features(image: np.ndarray, patches: int = PATCHES) -> np.ndarray:
    """``(patches, len(FEATURE_NAMES))`` float64 features of the strips of one crop."""
    g = _to_gray(image)
    h, w = g.shape
    if not 1 <= patches <= w // 4:
        raise ValueError(f"patches must be between 1 and {w // 4}, got {patches}")
    m1 = mscn(g)
    g2 = cv2.resize(g, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    m2 = mscn(g2)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    up = cv2.resize(g2, (w, h), interpolation=cv2.INTER_LINEAR)
    g2x, g2y = cv2.Sobel(up, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(up, cv2.CV_32F, 0, 1, ksize=3)
    lap = cv2.filter2D(g, cv2.CV_32F, _NOISE_K)
    edges = np.linspace(0, w, patches + 1).round().astype(int)
    rows = []
    for a, b in zip(edges[:-1], edges[1:]):
        a2, b2 = a // 2, max(a // 2 + 2, b // 2)
        f = _brisque_stats(m1[:, a:b]) + _brisque_stats(m2[:, a2:b2])
        f += _plate_stats(g[:, a:b], gx[:, a:b], gy[:, a:b], g2x[:, a:b], g2y[:, a:b], lap[1:-1, a:b])
        rows.append(f)
    return np.asarray(rows, np.float64)


# ---- the regressor ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class QualityModel:
    """Ridge regression from standardised features to quality: clip(bias + w . (f - mean) / scale, 0, 1)."""

    bias: float
    weights: tuple
    mean: tuple
    scale: tuple
    note: str = ""

    def predict(self, features: np.ndarray) -> np.ndarray:
        f = np.asarray(features, np.float64)
        if f.shape[-1] != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} features, got {f.shape[-1]}")
        z = (f - np.asarray(self.mean)) / np.asarray(self.scale)
        z = np.clip(z, -8.0, 8.0)  # a wild feature on an unusual crop must not dominate
        return np.clip(self.bias + z @ np.asarray(self.weights), 0.0, 1.0)

    def to_source(self) -> str:
        """Python source of this model, to paste over ``QUALITY_MODEL``."""
        def fmt(v):
            body = textwrap.fill(", ".join(f"{x:.6g}" for x in v) + ",", 100, initial_indent=" " * 8,
                                 subsequent_indent=" " * 8)
            return f"(\n{body}\n    )"

        note = "\n".join(" " * 8 + repr(part) for part in textwrap.wrap(self.note, 90, drop_whitespace=False)) \
            or " " * 8 + "''"
        return (f"QUALITY_MODEL = QualityModel(\n    bias={self.bias:.6g},\n    weights={fmt(self.weights)},\n"
                f"    mean={fmt(self.mean)},\n    scale={fmt(self.scale)},\n    note=(\n{note}\n    ),\n)\n")


def fit_quality_model(features: np.ndarray, targets: np.ndarray, l2: float = 1.0, note: str = "") -> QualityModel:
    """Fit the ridge regression on ``(N, F)`` features and ``(N,)`` targets in [0, 1] (closed form)."""
    x = np.asarray(features, np.float64)
    y = np.asarray(targets, np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"features must be (N, F) and targets (N,), got {x.shape} and {y.shape}")
    if x.shape[0] < 2:
        raise ValueError("need at least 2 samples to fit")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.clip((x - mean) / scale, -8.0, 8.0)
    bias = float(y.mean())
    w = np.linalg.solve(z.T @ z + l2 * np.eye(z.shape[1]), z.T @ (y - bias))
    return QualityModel(bias, tuple(float(v) for v in w), tuple(float(v) for v in mean),
                        tuple(float(v) for v in scale), note)


# fitted by `python benchmarks/quality.py --fit` (see its docstring for the data); the model is data:
# refit it whenever the features or the renderer's degradation model change
QUALITY_MODEL = QualityModel(
    bias=0.507457,
    weights=(
        0.0123556, -0.167446, 0.0201614, -0.0232019, -0.039501, 0.0199848, 0.0135497, -0.0179865,
        -0.0303967, 0.0457903, -0.0108259, -0.0203079, 0.0129851, -0.0113878, 0.0114548, -0.0424252,
        0.0315124, 0.0269029, 0.0177392, 0.0527042, 0.00514198, -0.0872523, -0.0663547, 0.0431934,
        0.00488798, -0.0986871, -0.0509581, 0.0754809, -0.000930994, -0.0340067, -0.0332582,
        0.0151759, -0.00171705, -0.0164605, -0.0343708, -0.00628338, 0.13217, 0.0632642,
        -0.00454171, 0.001541, -0.00139336, -0.00523878, -0.0131448,
    ),
    mean=(
        4.48953, 0.196934, 0.982514, 0.0924804, 0.0236954, 0.0735403, 0.956212, 0.0914327,
        0.0235628, 0.0750662, 1.09056, 0.0354006, 0.0359147, 0.049155, 1.08526, 0.0373398,
        0.0355747, 0.0497785, 6.51096, 0.343978, 1.27809, 0.0606339, 0.123327, 0.175198, 1.17377,
        0.0986866, 0.0957486, 0.191424, 1.48945, -0.0477243, 0.162284, 0.105602, 1.47956,
        -0.0449859, 0.161157, 0.106448, 10.3995, 0.623393, 0.778342, 0.212267, 0.511217, 0.0452653,
        0.0190485,
    ),
    scale=(
        2.77502, 0.0557871, 0.368066, 0.0505219, 0.0317889, 0.0357604, 0.338152, 0.0528769,
        0.0282083, 0.0404799, 0.41664, 0.0533454, 0.0378284, 0.0211329, 0.406252, 0.0532631,
        0.0382018, 0.0209672, 3.21351, 0.0920714, 0.694976, 0.0985171, 0.100366, 0.0873382,
        0.555107, 0.0805878, 0.0724483, 0.0898294, 0.967499, 0.0805776, 0.102109, 0.0487731,
        0.96372, 0.0811208, 0.102882, 0.0480548, 1.07077, 0.23921, 0.380867, 0.0767147, 0.163876,
        0.110598, 0.0620882,
    ),
    note=(
        'ridge l2=1.0 on 1400 single plates (seed 1000) + 300 tracklets x 5 (seed 1001), formats '
        'cn,br,us,eu,tw,uz,ar, target 1 - degradation'
    ),
)


def quality_map(image: np.ndarray, patches: int = PATCHES, model: QualityModel | None = None) -> np.ndarray:
    """``(patches,)`` float32 quality scores in [0, 1] of the vertical strips of one crop, left to right."""
    model = model or QUALITY_MODEL
    return model.predict(patch_features(image, patches)).astype(np.float32)


def quality_score(image: np.ndarray, patches: int = PATCHES, model: QualityModel | None = None) -> float:
    """The frame score: the mean of its :func:`quality_map` (as Kang et al. average patch scores)."""
    return float(np.mean(quality_map(image, patches, model)))


def tracklet_quality_map(frames, patches: int = PATCHES, model: QualityModel | None = None) -> np.ndarray:
    """``(K, patches)`` scores of the K frames of a tracklet; ``.ravel()`` is IQ-STAN's M = K x patches
    score-map target (M = 35 for 5 frames of 7 patches), ``.mean(axis=1)`` the per-frame scores s_i."""
    return np.stack([quality_map(f, patches, model) for f in frames])
