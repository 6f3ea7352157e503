"""lprnet-data show: contact sheet PNG of samples as the model sees them, optionally augmented.

    lprnet-data show --data ../shared/data/br_openalpr_crops --format br --out br.png
    lprnet-data show --data labels.csv --format cn --augment full --pick random --count 24 --out aug.png

Each cell is a sample laid out at the plate format's input size (HxW) by the training pipeline
itself (CCPD box crop, two-row plates side by side, then the --augment level's augmentation), with
its label and file name below. With --augment light|full each sample appears twice: plain, then
augmented (--nowith_clean shows only the augmented one).
Exit codes: 0 written, 2 usage or data error.
"""

from __future__ import annotations

from absl import flags

from lprnet_tf.cli.data._app import require, run
from lprnet_tf.data.augment import LEVELS
from lprnet_tf.data.readers import LAYOUTS, detect_layout
from lprnet_tf.datatools.common import check_output_file
from lprnet_tf.datatools.show import PICKS, show
from lprnet_tf.vocab import load_plate_format

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Label source: a labels.csv, a folder holding one, an OpenVINO list file, or a "
                    "CCPD / label-in-file-name image folder.")
flags.DEFINE_string("format", None, "Plate format (sets the model input size and checks labels): a shipped name "
                    "(cn, us, eu, br, uz, tw, ar) or a YAML path.")
flags.DEFINE_string("out", None, "PNG file to write (an existing file only with --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --out file.")
flags.DEFINE_enum("layout", "auto", LAYOUTS, "Layout of --data; auto detects it from the name and contents.")
flags.DEFINE_string("split", None, "Only rows of this split (labels.csv with a split column).")
flags.DEFINE_integer("count", 32, "Number of samples to show.")
flags.DEFINE_enum("pick", "first", PICKS, "Which samples: the first ones, or a random choice seeded by --seed.")
flags.DEFINE_enum("augment", "none", LEVELS, "Training augmentation level to apply (as data.augment in an "
                  "experiment YAML).")
flags.DEFINE_integer("seed", 0, "Seed for --pick random and for the augmentation.", lower_bound=0)
flags.DEFINE_bool("with_clean", True, "With --augment, put each sample's plain model input before its augmented one.")
flags.DEFINE_integer("cols", 8, "Cells per row of the sheet.")
flags.DEFINE_float("scale", 2.0, "Cell size as a multiple of the model input size.")
flags.DEFINE_bool("skip_bad", False, "Leave out rows with bad labels or unreadable images instead of stopping.")


def _main(argv):
    data = require(FLAGS.data, "data", "the label source to show (labels.csv, list file or image folder)")
    fmt = load_plate_format(require(FLAGS.format, "format", "the plate format, e.g. cn, br, us"))
    out = require(FLAGS.out, "out", "the PNG file to write, e.g. sheet.png")
    check_output_file(out, "--out", FLAGS.overwrite, inputs=(detect_layout(data, FLAGS.layout)[0],))
    path, n = show(data, fmt, out, count=FLAGS.count, augment=FLAGS.augment, seed=FLAGS.seed, pick=FLAGS.pick,
                   split=FLAGS.split, layout=FLAGS.layout, cols=FLAGS.cols, scale=FLAGS.scale,
                   with_clean=FLAGS.with_clean, skip_bad=FLAGS.skip_bad)
    aug = f", augment {FLAGS.augment} (seed {FLAGS.seed})" if FLAGS.augment != "none" else ""
    print(f"wrote {path}: {n} samples at {fmt.height}x{fmt.width}{aug}")
    return 0


def main(argv=None):
    """``lprnet-data show``."""
    run(_main, argv)


if __name__ == "__main__":
    main()
