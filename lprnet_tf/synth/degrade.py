"""Place a rendered plate in a detector-like crop and degrade it like a real camera would.

:func:`place_and_degrade` takes the clean plate (RGBA at its canonical resolution) and returns
the final uint8 RGB crop and a JSON-serializable record of every parameter it applied. One
difficulty ``difficulty`` ~ Beta(``difficulty_a``, ``difficulty_b``) per sample scales the
probability and strength of every effect, so a data set spans clean to hard plates with
correlated effects (a blurred plate is also more often noisy and dark), as real ones are.

Order, following the physics: geometry (rotation, perspective, crop margins) -> background
clutter -> lighting gradient, shadow, glare -> colour (grey / IR tint, channel gains,
saturation) -> brightness/contrast -> optical blur (Gaussian, motion or defocus) -> sensor
resolution (downscale) -> sensor noise -> JPEG -> upscale back to the crop size.

The scalar ``degradation`` in [0, 1] is ``1 - prod(1 - s_i)`` over per-effect severities
``s_i`` in [0, 1] (blur, low resolution, noise, JPEG, contrast, exposure, tilt, shadow, glare, and
occlusion for tracklet frames); 0 is a clean, upright, sharp plate, values near 1 are barely legible.
Any parameter can be fixed by the caller (``controls``), which tracklets use to vary them smoothly
from frame to frame; without ``controls`` the random draws are exactly those of earlier versions.

Every field of :class:`DegradeConfig` can be overridden per plate format with the ``degrade:``
mapping of its ``synth:`` section (e.g. ``grayscale_p: 0.5`` for a format whose real crops are
mostly infrared).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class DegradeConfig:
    """Ranges of the degradations; probabilities are at full difficulty unless noted."""

    difficulty_a: float = 1.4  # difficulty ~ Beta(a, b): mean a / (a + b)
    difficulty_b: float = 2.6
    out_h: tuple = (48, 72)  # crop height in pixels (uniform)
    margin_x: tuple = (-0.04, 0.16)  # crop margin per side, in plate heights (negative cuts the plate)
    margin_y: tuple = (-0.04, 0.18)
    rotate_std: float = 4.0  # degrees (normal, clipped to rotate_max)
    rotate_max: float = 15.0
    perspective_std: float = 0.06  # relative shrink of one side (yaw and pitch)
    shear_std: float = 0.03  # horizontal shear (x shift per unit height)
    light_max: float = 0.45  # lighting gradient amplitude (relative)
    shadow_p: float = 0.35
    glare_p: float = 0.15
    grayscale_p: float = 0.05  # independent of difficulty
    tint_p: float = 0.0  # infrared-like monochrome tint (green or amber), independent of difficulty
    gain_std: float = 0.06  # per-channel gain
    saturation: tuple = (0.75, 1.3)
    contrast_min: float = 0.35  # contrast factor at full difficulty
    contrast_max: float = 1.1  # highest contrast factor (drawn up to it at every difficulty)
    brightness_std: float = 30.0  # grey levels at full difficulty
    blur_p: float = 0.95
    blur_sigma_max: float = 1.8  # Gaussian blur sigma in crop pixels
    motion_max: int = 11  # motion-blur kernel length
    defocus_max: float = 3.0  # defocus disk radius
    lowres_p: float = 0.85
    lowres_min: float = 0.3  # smallest downscale factor
    noise_p: float = 0.8
    noise_max: float = 16.0  # Gaussian noise sigma (grey levels)
    jpeg_p: float = 0.8
    jpeg_min: int = 20  # lowest JPEG quality


def degrade_config(overrides: dict) -> DegradeConfig:
    """DegradeConfig with the ``synth.degrade`` overrides of a format applied; ValueError if invalid."""
    fields = {f.name: f for f in dataclasses.fields(DegradeConfig)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"synth.degrade: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kw = {}
    for k, v in overrides.items():
        default = fields[k].default
        if isinstance(default, tuple):
            if not (isinstance(v, (list, tuple)) and len(v) == 2):
                raise ValueError(f"synth.degrade.{k}: expected [low, high], got {v!r}")
            v = tuple(type(default[0])(x) for x in v)
        elif not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ValueError(f"synth.degrade.{k}: expected a number, got {v!r}")
        kw[k] = type(default)(v)
    return DegradeConfig(**kw)


# ---- geometry ----------------------------------------------------------------------------------
def _plate_quad(w: float, h: float, angle: float, yaw: float, pitch: float, shear: float) -> np.ndarray:
    """Corners (TL, TR, BR, BL) of a w x h plate after perspective, shear and rotation."""
    x0, x1, y0, y1 = -w / 2, w / 2, -h / 2, h / 2
    # yaw: the left edge shrinks (yaw > 0) or grows vertically; pitch: the top edge shrinks.
    ly, ry = 1 - yaw, 1 + yaw
    tx, bx = 1 - pitch, 1 + pitch
    quad = np.array([[x0 * tx, y0 * ly], [x1 * tx, y0 * ry], [x1 * bx, y1 * ry], [x0 * bx, y1 * ly]], np.float64)
    quad[:, 0] += shear * quad[:, 1]
    a = math.radians(angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return quad @ rot.T


def _warp_into_crop(rgba: np.ndarray, quad: np.ndarray, out_h: int, margins: tuple) -> tuple:
    """Scale ``quad`` so its bounding box plus margins is ``out_h`` high; warp the plate there.

    ``margins`` (left, top, right, bottom) are in units of the quad's height. Returns the warped
    premultiplied RGBA crop and the plate height in crop pixels.
    """
    ml, mt, mr, mb = margins
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    plate_h = hi[1] - lo[1]
    box_lo = lo - np.array([ml, mt]) * plate_h
    box_hi = hi + np.array([mr, mb]) * plate_h
    scale = out_h / (box_hi[1] - box_lo[1])
    out_w = max(8, int(round((box_hi[0] - box_lo[0]) * scale)))
    dst = ((quad - box_lo) * scale).astype(np.float32)
    h, w = rgba.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(rgba, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, plate_h * scale


# ---- backgrounds -------------------------------------------------------------------------------
_CAR_COLOURS = np.array([[235, 235, 235], [20, 20, 22], [120, 122, 126], [180, 182, 186], [150, 20, 24],
                         [25, 45, 110], [70, 70, 60], [200, 190, 170], [40, 60, 45]], np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> tuple:
    """Clutter around the plate: car-body colour, low-frequency texture and grille-like lines."""
    base = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * rng.uniform(0.6, 1.15)
    gh, gw = int(rng.integers(2, 6)), int(rng.integers(2, 10))
    # mostly brightness variation (shading, reflections), a little colour
    texture = rng.normal(0.0, rng.uniform(10, 60), (gh, gw, 1)) + rng.normal(0.0, 8.0, (gh, gw, 3))
    bg = base + cv2.resize(texture.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    kind = "texture"
    if rng.random() < 0.35:  # bumper / grille edges: a few horizontal dark or bright bands
        kind = "lines"
        for _ in range(int(rng.integers(1, 5))):
            y = int(rng.integers(0, h))
            t = int(rng.integers(1, max(2, h // 8)))
            bg[y:y + t] += rng.uniform(-90, 60)
    return np.clip(bg, 0, 255), kind


# ---- photometric helpers -------------------------------------------------------------------------
def _ramp(h: int, w: int, angle: float) -> np.ndarray:
    """A linear ramp in [-1, 1] across the image along ``angle`` (radians), shape (h, w, 1)."""
    ys, xs = np.linspace(-1, 1, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32)
    r = math.cos(angle) * xs[None, :] + math.sin(angle) * ys[:, None]
    return r[..., None]


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def _disk_kernel(radius: float) -> np.ndarray:
    r = int(math.ceil(radius))
    k = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    cv2.circle(k, (r, r), r, 1.0, -1, cv2.LINE_AA)
    return k / k.sum()


_LUMA = np.array([0.299, 0.587, 0.114])


def _r(x: float) -> float:
    return round(float(x), 4)


# ---- the pipeline ------------------------------------------------------------------------------
def place_clean(rgba: np.ndarray, out_h: int = 64) -> tuple:
    """The plate upright with a 6 % margin on a plain grey background (``degrade=False``)."""
    quad = _plate_quad(rgba.shape[1], rgba.shape[0], 0.0, 0.0, 0.0, 0.0)
    warped, _ = _warp_into_crop(rgba, quad, out_h, (0.06, 0.06, 0.06, 0.06))
    grey = cv2.merge([255 - warped[..., 3]] * 3)
    img = cv2.add(warped[..., :3], cv2.multiply(grey, (128.0 / 255.0,) * 3 + (0.0,)))
    return img, {"degradation": 0.0}


_UPSCALE = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}


def _occlude(img: np.ndarray, alpha: np.ndarray, occ: dict) -> float:
    """Paint an occluder (pole, mud, another car's edge...) into the float RGB ``img`` in place.

    ``occ``: ``x``, ``y`` centre and ``w``, ``h`` size as fractions of the crop, ``angle`` (degrees),
    ``color`` (RGB grey levels), ``shape`` ``rect`` or ``ellipse``. Returns the fraction of the
    plate (``alpha`` > 0.5) it covers.
    """
    h, w = img.shape[:2]
    centre = (float(occ["x"]) * w, float(occ["y"]) * h)
    size = (max(1.0, float(occ["w"]) * w), max(1.0, float(occ["h"]) * h))
    mask = np.zeros((h, w), np.float32)
    if occ.get("shape", "rect") == "ellipse":
        cv2.ellipse(mask, (centre, size, float(occ.get("angle", 0.0))), 1.0, -1, cv2.LINE_AA)
    else:
        pts = cv2.boxPoints((centre, size, float(occ.get("angle", 0.0))))
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    colour = np.asarray(occ.get("color", (40, 40, 40)), np.float32)
    img *= 1.0 - mask[..., None]
    img += mask[..., None] * colour
    plate = alpha > 127
    return float(mask[plate].mean()) if plate.any() else 0.0


def place_and_degrade(rgba: np.ndarray, rng: np.random.Generator, cfg: DegradeConfig,
                      controls: dict | None = None) -> tuple:
    """Geometry, background and camera effects; returns (uint8 RGB crop, params).

    ``controls`` (optional) fixes parameters instead of drawing them from ``rng``; tracklets
    (:mod:`lprnet_tf.synth.tracklets`) use it to vary them smoothly along a track. Its keys are the
    keys of the returned params, with the same meaning: ``difficulty``, ``rotate_deg``, ``yaw``,
    ``pitch``, ``shear``, ``out_h``, ``margins``; ``light``, ``light_dir``; ``shadow`` (strength, or
    None for no shadow), ``shadow_edge``, ``shadow_dir``; ``glare`` (amplitude or None), ``glare_r``
    (pixels); ``colour`` (rgb, gray or tint), ``gains``, ``saturation``; ``contrast``, ``brightness``;
    ``blur`` (gaussian, motion, defocus or None), ``blur_sigma``, ``motion_len``, ``motion_angle``,
    ``defocus_r``; ``lowres`` (1.0 = none); ``noise`` (sigma or None); ``jpeg`` (quality or None);
    ``upscale`` (linear, cubic, nearest). Control-only keys: ``background_seed`` (the same car body
    behind every frame of a track), ``shadow_soft``, ``glare_x``/``glare_y`` (fractions of the crop),
    ``tint`` (3 channel factors), ``exposure`` (a gain on the scene light before the camera; > 1
    over-exposes) and ``occlusion`` (a dict for :func:`_occlude`; adds an ``occlusion`` severity =
    2 x the fraction of the plate covered). A key left out is drawn as usual; without
    ``controls`` the draws, and so every sample, are exactly those of earlier versions.
    """
    c = controls or {}
    d = float(c["difficulty"]) if "difficulty" in c else float(rng.beta(cfg.difficulty_a, cfg.difficulty_b))
    p: dict = {"difficulty": _r(d)}
    sev: dict = {}

    # -- geometry: one homography does perspective, shear, rotation, scale and crop margins
    angle = float(c["rotate_deg"]) if "rotate_deg" in c else \
        float(np.clip(rng.normal(0, cfg.rotate_std * (0.4 + d)), -cfg.rotate_max, cfg.rotate_max))
    yaw = float(c["yaw"]) if "yaw" in c else float(np.clip(rng.normal(0, cfg.perspective_std * (0.4 + d)), -0.3, 0.3))
    pitch = float(c["pitch"]) if "pitch" in c else \
        float(np.clip(rng.normal(0, cfg.perspective_std * 0.6 * (0.4 + d)), -0.2, 0.2))
    shear = float(c["shear"]) if "shear" in c else float(np.clip(rng.normal(0, cfg.shear_std * (0.4 + d)), -0.15, 0.15))
    out_h = int(c["out_h"]) if "out_h" in c else int(rng.integers(cfg.out_h[0], cfg.out_h[1] + 1))
    if "margins" in c:
        margins = tuple(float(m) for m in c["margins"])
    else:
        margins = (rng.uniform(*cfg.margin_x), rng.uniform(*cfg.margin_y),
                   rng.uniform(*cfg.margin_x), rng.uniform(*cfg.margin_y))
    quad = _plate_quad(rgba.shape[1], rgba.shape[0], angle, yaw, pitch, shear)
    warped, plate_px = _warp_into_crop(rgba, quad, out_h, margins)
    h, w = warped.shape[:2]
    p.update(rotate_deg=_r(angle), yaw=_r(yaw), pitch=_r(pitch), shear=_r(shear), out_h=h, out_w=w,
             margins=[_r(m) for m in margins], plate_px=_r(plate_px))
    sev["tilt"] = min(1.0, abs(angle) / 40 + (abs(yaw) + abs(pitch) + abs(shear)) / 1.5)

    # -- background clutter, then the plate over it (warped RGB is premultiplied by alpha)
    bg, kind = _background(np.random.default_rng(c["background_seed"]) if "background_seed" in c else rng, h, w)
    img = warped[..., :3].astype(np.float32)
    img += bg * (1.0 - warped[..., 3:4].astype(np.float32) * (1.0 / 255.0))
    p["background"] = kind

    # -- lighting: a gradient across the crop, maybe a hard-edged shadow and a glare spot
    light = float(c["light"]) if "light" in c else rng.uniform(0, cfg.light_max * (0.3 + d))
    light_dir = float(c["light_dir"]) if "light_dir" in c else rng.uniform(0, 2 * math.pi)
    gain = 1.0 + light * _ramp(h, w, light_dir)
    p.update(light=_r(light), light_dir=_r(light_dir))
    if bool(c["shadow"]) if "shadow" in c else rng.random() < cfg.shadow_p * (0.3 + d):
        strength = float(c["shadow"]) if "shadow" in c else rng.uniform(0.25, 0.7)
        edge = float(c["shadow_edge"]) if "shadow_edge" in c else rng.uniform(-0.6, 0.6)
        sdir = float(c["shadow_dir"]) if "shadow_dir" in c else rng.uniform(0, 2 * math.pi)
        soft = float(c["shadow_soft"]) if "shadow_soft" in c else rng.uniform(0.02, 0.2)
        mask = np.clip((_ramp(h, w, sdir) - edge) / soft + 0.5, 0, 1)
        gain *= 1.0 - strength * mask
        p.update(shadow=_r(strength), shadow_edge=_r(edge), shadow_dir=_r(sdir))
        sev["shadow"] = strength * 0.5
    if "exposure" in c:
        gain = gain * np.float32(c["exposure"])
        p["exposure"] = _r(c["exposure"])
    img *= gain
    if bool(c["glare"]) if "glare" in c else rng.random() < cfg.glare_p * (0.3 + d):
        cx = float(c["glare_x"]) * w if "glare_x" in c else rng.uniform(0, w)
        cy = float(c["glare_y"]) * h if "glare_y" in c else rng.uniform(0, h)
        rad = float(c["glare_r"]) if "glare_r" in c else rng.uniform(0.2, 0.7) * h
        amp = float(c["glare"]) if "glare" in c else rng.uniform(40, 160)
        ys, xs = np.ogrid[:h, :w]
        blob = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * rad * rad)).astype(np.float32)
        img += amp * blob[..., None]
        p.update(glare=_r(amp), glare_r=_r(rad))
        sev["glare"] = amp / 400

    # -- colour, contrast and brightness: one affine colour transform out = M @ [r, g, b, 1].
    # Colour is an infrared-like monochrome tint, greyscale, or channel gains with saturation.
    if "colour" in c:
        ckind = c["colour"]
    elif rng.random() < cfg.tint_p:
        ckind = "tint"
    elif rng.random() < cfg.grayscale_p:
        ckind = "gray"
    else:
        ckind = "rgb"
    if ckind == "tint":
        if "tint" in c:
            tint = np.asarray(c["tint"], np.float64)
        else:
            tint = np.array([0.55, 1.0, 0.6] if rng.random() < 0.6 else [1.0, 0.8, 0.55])
        colour = np.outer(tint, _LUMA)
        p["colour"] = "tint"
    elif ckind == "gray":
        colour = np.outer(np.ones(3), _LUMA)
        p["colour"] = "gray"
    elif ckind == "rgb":
        gains = np.asarray(c["gains"], np.float64) if "gains" in c else rng.normal(1.0, cfg.gain_std * (0.5 + d), 3)
        sat = float(c["saturation"]) if "saturation" in c else rng.uniform(*cfg.saturation)
        colour = np.diag(gains) @ (sat * np.eye(3) + (1.0 - sat) * np.outer(np.ones(3), _LUMA))
        p.update(colour="rgb", gains=[_r(g) for g in gains], saturation=_r(sat))
    else:
        raise ValueError(f"controls['colour'] must be rgb, gray or tint, got {ckind!r}")
    contrast = float(c["contrast"]) if "contrast" in c else \
        rng.uniform(1.0 - (1.0 - cfg.contrast_min) * d, cfg.contrast_max)
    brightness = float(c["brightness"]) if "brightness" in c else rng.normal(0, cfg.brightness_std * (0.3 + d))
    m = np.hstack([contrast * colour, np.full((3, 1), 128.0 * (1.0 - contrast) + brightness)])
    img = cv2.transform(img, m.astype(np.float32))
    np.clip(img, 0, 255, out=img)
    p.update(contrast=_r(contrast), brightness=_r(brightness))
    sev["contrast"] = max(0.0, (1.0 - contrast) / 0.8)
    if c.get("occlusion"):
        covered = _occlude(img, warped[..., 3], c["occlusion"])
        p["occlusion"] = _r(covered)
        sev["occlusion"] = min(1.0, 2.0 * covered)
    mean = float(img.mean())
    sev["exposure"] = max(0.0, (70 - mean) / 100, (mean - 215) / 60)

    # -- optical blur: one of Gaussian, motion and defocus
    if "blur" in c:
        kind = c["blur"]
    elif rng.random() < cfg.blur_p * (0.35 + 0.65 * d):
        kind = ("gaussian", "motion", "defocus")[int(rng.choice(3, p=[0.6, 0.25, 0.15]))]
    else:
        kind = None
    if kind == "gaussian":
        sigma = float(c["blur_sigma"]) if "blur_sigma" in c else rng.uniform(0.3, 0.4 + (cfg.blur_sigma_max - 0.4) * d)
        img = cv2.GaussianBlur(img, (0, 0), sigma)
        p.update(blur="gaussian", blur_sigma=_r(sigma))
        sev["blur"] = sigma / 3.0
    elif kind == "motion":
        length = int(c["motion_len"]) if "motion_len" in c else int(rng.integers(3, 4 + int((cfg.motion_max - 3) * d)))
        mangle = float(c["motion_angle"]) if "motion_angle" in c else rng.uniform(0, math.pi)
        img = cv2.filter2D(img, -1, _motion_kernel(length, mangle))
        p.update(blur="motion", motion_len=length, motion_angle=_r(mangle))
        sev["blur"] = (length - 1) / 16
    elif kind == "defocus":
        radius = float(c["defocus_r"]) if "defocus_r" in c else rng.uniform(1.0, 1.0 + (cfg.defocus_max - 1.0) * d)
        img = cv2.filter2D(img, -1, _disk_kernel(radius))
        p.update(blur="defocus", defocus_r=_r(radius))
        sev["blur"] = radius / 4.5
    elif kind is not None:
        raise ValueError(f"controls['blur'] must be gaussian, motion, defocus or None, got {kind!r}")

    # -- sensor resolution: everything below happens at the camera's resolution
    if "lowres" in c:
        scale = float(c["lowres"])
    else:
        scale = 1.0
        if rng.random() < cfg.lowres_p * (0.4 + 0.6 * d):
            scale = rng.uniform(max(cfg.lowres_min, 1.0 - 0.9 * d), 1.0)
    small_w, small_h = max(8, int(round(w * scale))), max(6, int(round(h * scale)))
    if scale < 1.0:
        img = cv2.resize(img, (small_w, small_h), interpolation=cv2.INTER_AREA)
    p["lowres"] = _r(scale)
    sev["lowres"] = float(np.clip((30.0 - plate_px * scale) / 20.0, 0, 1))

    if bool(c["noise"]) if "noise" in c else rng.random() < cfg.noise_p * (0.4 + 0.6 * d):
        sigma = float(c["noise"]) if "noise" in c else rng.uniform(1.0, 2.0 + (cfg.noise_max - 2.0) * d)
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
        p["noise"] = _r(sigma)
        sev["noise"] = sigma / 40
    img = np.clip(img + 0.5, 0, 255).astype(np.uint8)

    if bool(c["jpeg"]) if "jpeg" in c else rng.random() < cfg.jpeg_p * (0.4 + 0.6 * d):
        q = int(c["jpeg"]) if "jpeg" in c else int(rng.integers(max(cfg.jpeg_min, int(95 - 75 * d)), 96))
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        p["jpeg"] = q
        sev["jpeg"] = max(0.0, (85 - q) / 110)

    if scale < 1.0:
        if "upscale" in c:
            interp = _UPSCALE[c["upscale"]]
        else:
            interp = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)[int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
        img = cv2.resize(img, (w, h), interpolation=interp)
        p["upscale"] = {cv2.INTER_LINEAR: "linear", cv2.INTER_CUBIC: "cubic", cv2.INTER_NEAREST: "nearest"}[interp]

    survive = 1.0
    for v in sev.values():
        survive *= 1.0 - min(1.0, max(0.0, v))
    p["severity"] = {k: _r(min(1.0, max(0.0, v))) for k, v in sev.items()}
    p["degradation"] = _r(1.0 - survive)
    return np.ascontiguousarray(img), p
