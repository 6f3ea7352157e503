"""Synthetic tracklets: K frames of one plate seen by a video camera, with known degradation.

For IQ-STAN (``iq-stan.md``: 5 frames of the same plate captured at different times) and EQ-LPR
(quality-aware stream recognition). A track is one clean plate (:func:`lprnet_tf.synth.render.draw_plate`:
the same text, style, font and colours in every frame) placed into K crops by
:func:`lprnet_tf.synth.degrade.place_and_degrade` with explicit per-frame ``controls``:

- **track constants**: the car body behind the plate, the camera's colour (gains, saturation, grey or
  infrared tint), the direction of the light and of the motion, the kind of blur (motion, Gaussian or
  defocus), the upscaling filter;
- **smooth walks**: a latent difficulty ``d_t`` (random walk, step ``difficulty_step``) scales blur,
  noise, JPEG and contrast loss; rotation, yaw, pitch and shear drift (the car turns or passes);
  the resolution scale drifts (the car approaches or recedes); exposure, brightness and the lighting
  gradient wander; a shadow edge slides across; the detector box (crop height and margins) jitters;
- **bad frames**: each frame, with probability ``bad_p``, suffers one sudden event: heavy motion blur,
  over-exposure with glare, an occluder across part of the plate, or strong defocus
  (``params["bad"]`` names it, "" otherwise).

Every frame carries the parameters applied, the synthetic ``degradation`` in [0, 1] and, with
``quality=True``, the no-reference score ``quality`` and its per-strip ``quality_map``
(:mod:`lprnet_tf.quality`). Track ``index`` of run ``seed`` depends only on ``(seed, index)``: its text
and clean plate are those of :func:`lprnet_tf.synth.render.sample` ``(fmt, seed, index)``, its
trajectory comes from ``default_rng([seed, index, 1])``, its bad-frame events from
``default_rng([seed, index, 3])`` and frame ``t``'s sensor noise from ``default_rng([seed, index, 2, t])``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os

import cv2
import numpy as np

from lprnet_tf.progress import Progress
from lprnet_tf.synth.contact import save_contact_sheet
from lprnet_tf.synth.degrade import DegradeConfig, place_and_degrade
from lprnet_tf.synth.render import draw_plate, random_text
from lprnet_tf.synth.spec import synth_spec
from lprnet_tf.vocab import PlateFormat, load_plate_format

BAD_KINDS = ("motion", "overexposure", "occlusion", "defocus")


@dataclasses.dataclass(frozen=True)
class TrackletConfig:
    """How much a track changes from frame to frame (the camera side ranges come from the format's
    :class:`~lprnet_tf.synth.degrade.DegradeConfig`)."""

    difficulty_step: float = 0.08  # std of the per-frame step of the latent difficulty
    rotate_drift: float = 1.0  # largest rotation drift per frame (degrees)
    rotate_step: float = 0.3  # std of the rotation jitter per frame (degrees)
    yaw_drift: float = 0.02  # largest yaw drift per frame
    approach: float = 0.08  # largest change of the resolution scale per frame
    out_h_step: float = 1.5  # std of the crop height jitter (pixels)
    margin_step: float = 0.015  # std of the crop margin jitter (plate heights)
    exposure_step: float = 0.06  # std of the per-frame step of the log exposure
    brightness_step: float = 3.0  # std of the per-frame step of the brightness (grey levels)
    light_step: float = 0.03  # std of the per-frame step of the lighting gradient amplitude
    bad_p: float = 0.15  # probability that a frame suffers a sudden bad event
    bad_kinds: tuple = BAD_KINDS


def _walk(rng: np.random.Generator, start: float, step: float, k: int, drift: float = 0.0,
          lo: float = -math.inf, hi: float = math.inf) -> np.ndarray:
    """``k`` values: ``start``, then steps of ``drift`` + N(0, ``step``), clipped to [lo, hi]."""
    v = [float(np.clip(start, lo, hi))]
    for _ in range(k - 1):
        v.append(float(np.clip(v[-1] + drift + rng.normal(0.0, step), lo, hi)))
    return np.asarray(v)


def _controls(rng: np.random.Generator, bad_rng: np.random.Generator, dc: DegradeConfig, cfg: TrackletConfig,
              k: int) -> list:
    """Per-frame ``(controls, bad)`` for :func:`place_and_degrade`. The bad-frame events come from their
    own generator, so a track with and without them has the same underlying trajectory."""
    d = _walk(rng, rng.beta(dc.difficulty_a, dc.difficulty_b), cfg.difficulty_step, k, lo=0.0, hi=1.0)
    d0 = d[0]
    const: dict = {"background_seed": int(rng.integers(2 ** 31)),
                   "upscale": ("linear", "cubic", "nearest")[int(rng.choice(3, p=[0.6, 0.3, 0.1]))]}
    # camera colour
    if rng.random() < dc.tint_p:
        const.update(colour="tint", tint=[0.55, 1.0, 0.6] if rng.random() < 0.6 else [1.0, 0.8, 0.55])
    elif rng.random() < dc.grayscale_p:
        const["colour"] = "gray"
    else:
        const.update(colour="rgb", gains=[float(g) for g in rng.normal(1.0, dc.gain_std * (0.5 + d0), 3)],
                     saturation=float(rng.uniform(*dc.saturation)))
    # pose: start like a single sample, then drift
    angle = _walk(rng, rng.normal(0, dc.rotate_std * (0.4 + d0)), cfg.rotate_step, k,
                  rng.uniform(-cfg.rotate_drift, cfg.rotate_drift), -dc.rotate_max, dc.rotate_max)
    yaw = _walk(rng, rng.normal(0, dc.perspective_std * (0.4 + d0)), 0.005, k,
                rng.uniform(-cfg.yaw_drift, cfg.yaw_drift), -0.3, 0.3)
    pitch = _walk(rng, rng.normal(0, dc.perspective_std * 0.6 * (0.4 + d0)), 0.004, k, 0.0, -0.2, 0.2)
    shear = _walk(rng, rng.normal(0, dc.shear_std * (0.4 + d0)), 0.004, k, 0.0, -0.15, 0.15)
    out_h = _walk(rng, rng.integers(dc.out_h[0], dc.out_h[1] + 1), cfg.out_h_step, k, 0.0, dc.out_h[0], dc.out_h[1])
    base_margins = (rng.uniform(*dc.margin_x), rng.uniform(*dc.margin_y), rng.uniform(*dc.margin_x),
                    rng.uniform(*dc.margin_y))
    # resolution: the car approaches (scale grows) or recedes
    res0 = rng.uniform(max(dc.lowres_min, 1.0 - 0.9 * d0), 1.0) if rng.random() < dc.lowres_p * (0.4 + 0.6 * d0) \
        else rng.uniform(0.85, 1.0)
    res = _walk(rng, res0, 0.02, k, rng.uniform(-cfg.approach, cfg.approach), dc.lowres_min, 1.0)
    # light
    light_dir = float(rng.uniform(0, 2 * math.pi))
    light = _walk(rng, rng.uniform(0, dc.light_max * (0.3 + d0)), cfg.light_step, k, 0.0, 0.0, 1.5 * dc.light_max)
    shadow = None
    if rng.random() < dc.shadow_p * (0.3 + d0):
        shadow = dict(s=float(rng.uniform(0.25, 0.7)), dir=float(rng.uniform(0, 2 * math.pi)),
                      soft=float(rng.uniform(0.02, 0.2)),
                      edge=_walk(rng, rng.uniform(-0.6, 0.6), 0.02, k, rng.uniform(-0.15, 0.15), -1.2, 1.2))
    exposure = np.exp(_walk(rng, 0.0, cfg.exposure_step, k, 0.0, -0.7, 0.7))
    brightness = _walk(rng, rng.normal(0, dc.brightness_std * (0.3 + d0)), cfg.brightness_step, k)
    # blur, noise, JPEG, contrast: strength = a per-track factor x the difficulty walk
    blur_kind = ("motion", "gaussian", "defocus")[int(rng.choice(3, p=[0.45, 0.35, 0.2]))]
    fb = rng.uniform(0.4, 1.3)
    motion_angle = float(rng.uniform(0, math.pi))
    noise_on = rng.random() < dc.noise_p * (0.4 + 0.6 * d0)
    fn, fj, fc = rng.uniform(0.2, 1.0), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)
    jpeg_on = rng.random() < dc.jpeg_p * (0.4 + 0.6 * d0)
    jpeg_jitter = rng.normal(0, 2.0, k)

    frames = []
    for t in range(k):
        c = dict(const)
        margins = [float(np.clip(m + rng.normal(0, cfg.margin_step), *(dc.margin_x if i % 2 == 0 else dc.margin_y)))
                   for i, m in enumerate(base_margins)]
        c.update(difficulty=float(d[t]), rotate_deg=float(angle[t]), yaw=float(yaw[t]), pitch=float(pitch[t]),
                 shear=float(shear[t]), out_h=int(round(out_h[t])),
                 margins=margins,
                 light=float(light[t]), light_dir=light_dir, exposure=float(exposure[t]),
                 contrast=float(np.clip(1.05 - (1.0 - dc.contrast_min) * fc * d[t], dc.contrast_min, dc.contrast_max)),
                 brightness=float(brightness[t]), lowres=float(res[t]), glare=None, occlusion=None)
        if shadow:
            c.update(shadow=shadow["s"], shadow_edge=float(shadow["edge"][t]), shadow_dir=shadow["dir"],
                     shadow_soft=shadow["soft"])
        else:
            c["shadow"] = None
        s = fb * d[t]
        if blur_kind == "motion":
            length = int(round(1 + (dc.motion_max - 1) * s))
            c.update(blur="motion" if length >= 2 else None, motion_len=length,
                     motion_angle=float((motion_angle + rng.normal(0, 0.05)) % math.pi))
        elif blur_kind == "gaussian":
            sigma = 0.3 + (dc.blur_sigma_max - 0.3) * s
            c.update(blur="gaussian" if sigma >= 0.35 else None, blur_sigma=float(sigma))
        else:
            c.update(blur="defocus", defocus_r=float(1.0 + (dc.defocus_max - 1.0) * min(s, 1.2)))
        c["noise"] = float(1.0 + (dc.noise_max - 1.0) * fn * d[t]) if noise_on else None
        c["jpeg"] = int(np.clip(round(95 - 75 * fj * d[t] + jpeg_jitter[t]), dc.jpeg_min, 95)) if jpeg_on else None
        bad = ""
        r = bad_rng.random(10)  # a fixed number of draws per frame: frame t's event never shifts t+1's
        if cfg.bad_kinds and r[0] < cfg.bad_p:
            bad = cfg.bad_kinds[int(r[1] * len(cfg.bad_kinds))]
            u = iter(r[2:])
            if bad == "motion":
                c.update(blur="motion", motion_len=9 + int(next(u) * 8),
                         motion_angle=float((motion_angle + 0.4 * (next(u) - 0.5)) % math.pi))
            elif bad == "defocus":
                c.update(blur="defocus", defocus_r=3.0 + 2.0 * float(next(u)))
            elif bad == "overexposure":
                c.update(exposure=float(exposure[t] * (2.0 + 1.5 * next(u))), glare=80.0 + 140.0 * float(next(u)),
                         glare_x=0.1 + 0.8 * float(next(u)), glare_y=0.2 + 0.6 * float(next(u)),
                         glare_r=(0.4 + 0.5 * float(next(u))) * c["out_h"])
            elif bad == "occlusion":
                grey = 10.0 + 190.0 * float(next(u))
                c["occlusion"] = dict(x=0.15 + 0.7 * float(next(u)), y=0.3 + 0.4 * float(next(u)),
                                      w=0.1 + 0.25 * float(next(u)), h=0.7 + 0.8 * float(next(u)),
                                      angle=24.0 * (float(next(u)) - 0.5), shape="rect" if next(u) < 0.5 else "ellipse",
                                      color=[grey, grey * 0.95, grey * 0.9])
            else:
                raise ValueError(f"unknown bad frame kind {bad!r}; use {BAD_KINDS}")
        frames.append((c, bad))
    return frames


def generate_tracklet(fmt: PlateFormat | str, seed: int, index: int, k: int = 5, style: str | None = None,
                      cfg: TrackletConfig = TrackletConfig(), quality: bool = True) -> tuple:
    """Track ``index`` of run ``seed``: ``(frames, text, params)``.

    ``frames``: ``k`` uint8 RGB crops (sizes may differ from frame to frame, like detector crops);
    ``params``: one JSON-able dict per frame with the plate's style/font/colours, every degradation
    parameter applied, ``degradation`` in [0, 1], ``frame``, ``bad`` (the sudden event or "") and,
    with ``quality=True``, ``quality`` (the no-reference score of :mod:`lprnet_tf.quality`) and
    ``quality_map`` (its per-strip scores).
    """
    fmt = load_plate_format(fmt)
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    spec = synth_spec(fmt)
    rng = np.random.default_rng([int(seed), int(index)])
    text, st = random_text(fmt, rng, style)
    rgba, plate_params = draw_plate(spec.style(st), text, rng)
    controls = _controls(np.random.default_rng([int(seed), int(index), 1]),
                         np.random.default_rng([int(seed), int(index), 3]), spec.degrade, cfg, k)
    if quality:
        from lprnet_tf.quality import quality_map
    frames, params = [], []
    for t, (c, bad) in enumerate(controls):
        img, dp = place_and_degrade(rgba, np.random.default_rng([int(seed), int(index), 2, t]), spec.degrade, c)
        p = dict(plate_params)
        p.update(dp)
        p.update(frame=t, bad=bad)
        if quality:
            qm = quality_map(img)
            p.update(quality=round(float(qm.mean()), 4), quality_map=[round(float(v), 4) for v in qm])
        frames.append(img)
        params.append(p)
    return frames, text, params


COLUMNS = ("path", "text", "split", "track", "frame", "quality", "degradation", "bad", "style", "quality_map",
           "params")
SHEET_TRACKS = 16


def write_tracklet_set(fmt: PlateFormat | str, out_dir: str, count: int, k: int, seed: int, progress: bool = True,
                       split: str = "train", style: str | None = None, cfg: TrackletConfig = TrackletConfig()) -> str:
    """Render ``count`` tracks of ``k`` frames into ``out_dir``; returns the path of labels.csv.

    ``out_dir/images/TTTTT_F.jpg`` (JPEG quality 95), ``labels.csv`` with :data:`COLUMNS` (``track`` =
    the track index, ``frame`` = 0..k-1, ``quality_map`` = the per-strip scores separated by spaces,
    ``params`` = JSON of everything else) and ``contact_sheet.png``, one row per track (first 16).
    """
    fmt = load_plate_format(fmt)
    if count < 1 or k < 1:
        raise ValueError(f"count and k must be positive, got {count} and {k}")
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    digits = max(5, len(str(count - 1)))
    labels_path = os.path.join(out_dir, "labels.csv")
    sheet, sheet_labels = [], []
    bar = Progress(count, f"lprnet-synth tracklets {fmt.name}", "tracks", enabled=progress)
    with open(labels_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(count):
            frames, text, params = generate_tracklet(fmt, seed, i, k, style=style, cfg=cfg)
            track = f"{i:0{digits}d}"
            for t, (img, p) in enumerate(zip(frames, params)):
                rel = f"images/{track}_{t}.jpg"
                if not cv2.imwrite(os.path.join(out_dir, rel), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]):
                    raise OSError(f"could not write {os.path.join(out_dir, rel)}")
                rest = {key: v for key, v in p.items() if key not in ("quality", "quality_map", "degradation", "bad",
                                                                       "frame", "style")}
                writer.writerow([rel, text, split, track, t, p["quality"], p["degradation"], p["bad"], p["style"],
                                 " ".join(f"{v:.4f}" for v in p["quality_map"]),
                                 json.dumps(rest, separators=(",", ":"), ensure_ascii=False)])
                if i < SHEET_TRACKS:
                    sheet.append(img)
                    sheet_labels.append(f"{text} #{t}{' ' + p['bad'] if p['bad'] else ''}\n"
                                        f"q {p['quality']:.2f} d {p['degradation']:.2f}")
            bar.update(1)
    bar.close()
    save_contact_sheet(os.path.join(out_dir, "contact_sheet.png"), sheet, sheet_labels, cols=k, cell_hw=(48, 150))
    return labels_path
