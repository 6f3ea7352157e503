"""lprnet-synth: write a synthetic plate data set (images, labels.csv, contact sheet).

    lprnet-synth --format cn --count 1000 --out data/synth_cn --seed 0
    lprnet-synth --format br --count 200 --out /tmp/br --compare_real data/br_openalpr_crops
    lprnet-synth --format cn --count 500 --tracklets 5 --out data/synth_cn_tracks   # 500 tracks x 5 frames

With ``--compare_real DIR`` it also writes ``compare.png``: the first 32 crops of the real set
``DIR`` (read from ``DIR/labels.csv``) beside the first 32 synthetic ones, all resized to the
same size, for a visual check of the renderer against real data.

With ``--tracklets K`` it writes ``--count`` tracklets of K frames of one plate each
(:mod:`lprnet_tf.synth.tracklets`): ``labels.csv`` with ``track,frame,quality,degradation,…`` columns
(read back by :func:`lprnet_tf.data.tracklets.read_tracklets`) and a contact sheet with one row per track.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from absl import app, flags

from lprnet_tf.cli.common import check_output_dir, parse_flags, run_guarded
from lprnet_tf.config import UsageError
from lprnet_tf.data.readers import DataError, load_image, read_samples
from lprnet_tf.synth.contact import contact_sheet
from lprnet_tf.synth.generate import write_synthetic_set
from lprnet_tf.synth.render import sample
from lprnet_tf.synth.spec import synth_spec
from lprnet_tf.vocab import load_plate_format

FLAGS = flags.FLAGS
flags.DEFINE_string("format", None, "Plate format: a shipped name (cn, us, eu, br, uz, tw, ar) or a YAML path.")
flags.DEFINE_integer("count", 1000, "Number of samples (with --tracklets: of tracks) to write (positive).")
flags.DEFINE_string("out", None, "Output directory (images/, labels.csv and contact_sheet.png go there).")
flags.DEFINE_integer("seed", 0, "Run seed: sample i is numpy.random.default_rng([seed, i]).", lower_bound=0)
flags.DEFINE_bool("overwrite", False, "Write into an --out folder that is not empty (files of the same names are "
                  "replaced; default: refuse, so an existing data set is never overwritten).")
flags.DEFINE_bool("no_degrade", False, "Write clean, upright, sharp plates (no camera degradations).")
flags.DEFINE_string("style", None, "Only this style of the format's synth: section (e.g. blue for cn); "
                    "default: all styles by weight.")
flags.DEFINE_string("split", "train", "Value of the split column of labels.csv.")
flags.DEFINE_string("compare_real", None, "A real data set directory with labels.csv (path column): also write "
                    "compare.png with its first 32 crops beside 32 synthetic ones.")
flags.DEFINE_bool("progress", True, "Print progress to stderr about every 10%.")
flags.DEFINE_integer("tracklets", 0, "Write tracklets of this many frames (K) instead of single plates: "
                     "--count tracks, each K frames of one plate with smoothly varying pose, blur, exposure, "
                     "occlusion..., a no-reference quality score per frame (0 = single plates).")

COMPARE_COUNT = 32
_CELL_H = 48


def _read_real(directory: str, fmt, n: int) -> tuple:
    """The first ``n`` crops of a real set (any reader layout) and their texts."""
    samples, _ = read_samples(directory, fmt, skip_bad=True, verify_images=False)
    images, texts = [], []
    for s in samples:
        try:
            images.append(load_image(s.path, s.box))
            texts.append(s.text)
        except DataError:
            continue
        if len(images) == n:
            break
    if not images:
        raise UsageError(f"--compare_real: no readable image in {directory}")
    return images, texts


def write_comparison(fmt, real_dir: str, out_path: str, seed: int, style, degrade: bool) -> str:
    """compare.png: real crops (left) and synthetic ones (right), resized to one cell size."""
    real, texts = _read_real(real_dir, fmt, COMPARE_COUNT)
    aspect = float(np.median([im.shape[1] / im.shape[0] for im in real]))
    cell = (_CELL_H, max(_CELL_H, int(round(_CELL_H * aspect))))
    synth = [sample(fmt, seed, i, style=style, degrade=degrade) for i in range(COMPARE_COUNT)]
    left = contact_sheet(real, [f"real {t}" for t in texts], cols=4, cell_hw=cell, stretch=True)
    right = contact_sheet([s[0] for s in synth], [f"synth {s[1]}" for s in synth], cols=4, cell_hw=cell,
                          stretch=True)
    h = max(left.shape[0], right.shape[0])
    left, right = (np.pad(a, ((0, h - a.shape[0]), (0, 0), (0, 0)), constant_values=32) for a in (left, right))
    sheet = np.hstack([left, np.full((h, 8, 3), 255, np.uint8), right])
    if not cv2.imwrite(out_path, sheet[..., ::-1]):
        raise DataError(f"could not write {out_path}; check the --out folder")
    return out_path


def _main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}; every option is a --flag (see --help)")
    if not FLAGS.format or not FLAGS.out:
        raise UsageError("--format and --out are required")
    if FLAGS.count < 1:
        raise UsageError(f"--count must be positive, got {FLAGS.count}")
    check_output_dir(FLAGS.out, "--out")
    if os.path.isdir(FLAGS.out) and os.listdir(FLAGS.out) and not FLAGS.overwrite:
        raise UsageError(f"--out {FLAGS.out} is not empty (it may hold a data set); choose a new folder or pass "
                         f"--overwrite to write into it")
    if FLAGS.compare_real and not os.path.exists(FLAGS.compare_real):
        raise UsageError(f"--compare_real {FLAGS.compare_real}: no such folder; pass a real data set (labels.csv)")
    fmt = load_plate_format(FLAGS.format)
    spec = synth_spec(fmt)
    if FLAGS.style is not None:
        spec.style(FLAGS.style)
    degrade = not FLAGS.no_degrade
    if FLAGS.tracklets < 0:
        raise UsageError(f"--tracklets must be 0 (single plates) or a frame count K >= 1, got {FLAGS.tracklets}")
    if FLAGS.tracklets:
        if FLAGS.no_degrade or FLAGS.compare_real:
            raise UsageError("--tracklets cannot be combined with --no_degrade or --compare_real")
        from lprnet_tf.synth.tracklets import write_tracklet_set

        labels = write_tracklet_set(fmt, FLAGS.out, FLAGS.count, FLAGS.tracklets, FLAGS.seed,
                                    progress=FLAGS.progress, split=FLAGS.split, style=FLAGS.style)
        print(f"wrote {FLAGS.count} {fmt.name} tracklets x {FLAGS.tracklets} frames: {labels}")
        return
    labels = write_synthetic_set(fmt, FLAGS.out, FLAGS.count, FLAGS.seed, degrade=degrade,
                                 progress=FLAGS.progress, split=FLAGS.split, style=FLAGS.style)
    print(f"wrote {FLAGS.count} {fmt.name} samples: {labels}")
    if FLAGS.compare_real:
        path = write_comparison(fmt, FLAGS.compare_real, os.path.join(FLAGS.out, "compare.png"), FLAGS.seed,
                                FLAGS.style, degrade)
        print(f"wrote {path}")


def main():
    """Console entry point ``lprnet-synth``."""
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
