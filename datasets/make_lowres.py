#!/usr/bin/env python
"""Build low-resolution test sets: every crop downscaled to a crop height of H pixels (area averaging,
aspect ratio kept, not upsampled back), for several H at once. What "low resolution" means and why:
``datasets/README.md`` (section "Low-resolution test sets") and ``lprnet_tf/data/lowres.py``.

The issue-8 sets (CN and BR validation crops of ../shared/data, held-out synthetic CN and BR plates;
heights 8, 12 and 16), from the repository root:

  python datasets/make_lowres.py --standard ../shared/data --out data/lowres

One set of your own:

  python datasets/make_lowres.py --data DIR_OR_CSV --format br --split val --name br_val \
      --heights 8,12,16 --out data/lowres

Writes OUT/<name>_h<H>/images/*.png, labels.csv (the source's columns + scale, source_path) and
lowres.json. The same input gives byte-identical files.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, ROOT)

from lprnet_tf.cli.common import run_guarded  # noqa: E402
from lprnet_tf.config import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output folder; each set goes to OUT/<name>_h<H>/.")
flags.DEFINE_list("heights", ["8", "12", "16"], "Crop heights in pixels, comma-separated.")
flags.DEFINE_string("standard", None, "Build the issue-8 sets from this data root (../shared/data): cn_val "
                    "(cn_ccpd_like_1000, split test), br_val (br_openalpr_crops, split val), synth_cn and "
                    "synth_br (held-out synthetic plates, --synth_count each). Sets whose folder is missing are "
                    "skipped with a message.")
flags.DEFINE_integer("synth_count", 1000, "Number of synthetic plates per synthetic set of --standard.")
flags.DEFINE_string("data", None, "One source set: labels.csv, a folder, a list file, or synth:SEED:COUNT.")
flags.DEFINE_string("format", None, "Plate format of --data (name or YAML).")
flags.DEFINE_string("split", None, "Only rows of this split of --data (CSV with a split column).")
flags.DEFINE_string("name", None, "Set name for --data (default: the folder name, or 'synth').")
flags.DEFINE_bool("overwrite", False, "Replace existing OUT/<name>_h<H> folders.")
flags.DEFINE_bool("quiet", False, "No progress bars.")


def _main(argv):
    del argv
    from lprnet_tf.data.lowres import standard_sets, write_lowres_sets

    if not FLAGS.out or bool(FLAGS.standard) == bool(FLAGS.data):
        raise UsageError("pass --out and exactly one of --standard DATA_ROOT or --data SPEC (see --help)")
    try:
        heights = [int(h) for h in FLAGS.heights]
    except ValueError:
        raise UsageError(f"--heights must be integers, e.g. 8,12,16; got {','.join(FLAGS.heights)}") from None
    if not heights or min(heights) < 1:
        raise UsageError(f"--heights must be positive, got {heights}")
    if FLAGS.standard:
        jobs = standard_sets(FLAGS.standard, FLAGS.synth_count)
    else:
        if not FLAGS.format:
            raise UsageError("--data needs --format (the plate format of its labels)")
        spec = FLAGS.data
        folder = spec if os.path.isdir(spec) else (os.path.dirname(spec) or ".")
        name = FLAGS.name or ("synth" if spec.startswith("synth") else os.path.basename(os.path.abspath(folder)))
        jobs = [(name, spec, FLAGS.format, FLAGS.split)]
    for name, spec, fmt, split in jobs:
        if not spec.startswith("synth") and not os.path.exists(spec):
            if FLAGS.standard:
                print(f"skipped {name}: {spec} not found", file=sys.stderr)
                continue
        for m in write_lowres_sets(spec, fmt, FLAGS.out, name, heights, split=split, overwrite=FLAGS.overwrite,
                                   progress=not FLAGS.quiet):
            print(f"wrote {os.path.join(FLAGS.out, m['name'])}: {m['count']} crops at height {m['height']}"
                  + (f" ({m['kept_size']} already that small, kept)" if m["kept_size"] else ""))


def main():
    app.run(lambda argv: run_guarded(_main, argv))


if __name__ == "__main__":
    main()
