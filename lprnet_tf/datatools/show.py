"""Contact sheet of what the model will see: samples laid out at the plate format's input size by
the training pipeline's own code (:class:`lprnet_tf.data.pipeline.ExampleMaker`: read, crop CCPD
boxes, fit to H x W, two-row plates side by side, then the augmentation of ``augment``), with the
label under each cell.
"""

from __future__ import annotations

import os

import numpy as np

from lprnet_tf.config import UsageError
from lprnet_tf.data.augment import LEVELS
from lprnet_tf.data.pipeline import ExampleMaker, FileSource
from lprnet_tf.data.readers import DataError, load_image, read_samples
from lprnet_tf.datatools.common import require_png
from lprnet_tf.synth.contact import save_contact_sheet
from lprnet_tf.vocab import PlateFormat

PICKS = ("first", "random")


def pick_samples(samples: list, count: int, pick: str, seed: int, skip_bad: bool) -> list:
    """``count`` samples (first ones or a seeded random choice) whose images load."""
    if pick not in PICKS:
        raise UsageError(f"--pick must be one of {', '.join(PICKS)}, got '{pick}'")
    order = range(len(samples)) if pick == "first" else np.random.default_rng(seed).permutation(len(samples))
    chosen = []
    for i in order:
        s = samples[int(i)]
        try:
            load_image(s.path, s.box)
        except DataError as e:
            if not skip_bad:
                raise DataError(f"{s.where}: {e} (or pass --skip_bad to leave such rows out)") from None
            continue
        chosen.append(s)
        if len(chosen) == count:
            break
    return chosen


def show(source: str, fmt: PlateFormat, out: str, count: int = 32, augment: str = "none", seed: int = 0,
         pick: str = "first", split: str | None = None, layout: str = "auto", cols: int = 8, scale: float = 2.0,
         with_clean: bool = True, skip_bad: bool = False) -> tuple[str, int]:
    """Write the sheet to ``out`` (PNG); returns ``(out, samples shown)``.

    With ``augment`` other than ``none`` and ``with_clean``, each sample's un-augmented model input
    comes first and its augmented one (seeded by ``seed``) next to it.
    """
    if count < 1:
        raise UsageError(f"--count must be positive, got {count}")
    if augment not in LEVELS:
        raise UsageError(f"--augment must be one of {', '.join(LEVELS)}, got '{augment}'")
    if not 0.25 <= scale <= 16:
        raise UsageError(f"--scale must be in 0.25..16, got {scale}")
    if cols < 1:
        raise UsageError(f"--cols must be positive, got {cols}")
    require_png(out, "--out", "contact sheet")
    samples, _ = read_samples(source, fmt, skip_bad=skip_bad, verify_images=False, split=split, layout=layout)
    chosen = pick_samples(samples, count, pick, seed, skip_bad)
    if not chosen:
        raise DataError(f"{source}: no readable image to show")
    src = FileSource(chosen)
    x, _ = ExampleMaker(src, fmt, augment=augment, seed=seed).batch(0, len(chosen))
    names = [os.path.basename(s.path) for s in chosen]
    if augment != "none" and with_clean:
        clean, _ = ExampleMaker(src, fmt, augment="none").batch(0, len(chosen))
        images = [im for pair in zip(clean, x) for im in pair]
        labels = [f"{s.text}\n{tag}" for s, n in zip(chosen, names) for tag in (n, f"{augment} aug.")]
        cols = cols + cols % 2  # keep pairs on one row
    else:
        images = list(x)
        labels = [f"{s.text}\n{n}" for s, n in zip(chosen, names)]
    cell = (max(8, round(fmt.height * scale)), max(16, round(fmt.width * scale)))
    try:
        save_contact_sheet(out, images, labels, cols=cols, cell_hw=cell, stretch=True)
    except OSError as e:
        raise DataError(f"could not write {out} ({e}); check the folder") from None
    return out, len(chosen)
