"""lprnet-data split: deterministic train/val/test split that keeps every plate and group on one side.

    lprnet-data split --data data/my_set/labels.csv --out data/my_set/labels_split.csv --val 0.1
    lprnet-data split --data labels.csv --out labels.csv --overwrite --val 0.1 --test 0.1 --seed 3

Writes every row of --data (all columns kept, image paths relative to --out) with a `split`
column (train/val/test; an existing one is replaced). With --by auto, rows sharing a `group`
value or a plate text are kept together, so no plate appears in two splits; --by near also keeps
plates one character apart together (one plate under a one-character label error). Units are dealt by a
hash of (--seed, unit): the same set and seed give the same split whatever the row order.
Fractions are of rows; a unit is never cut, so a split can overshoot its fraction by one unit.
--out must not exist (and is never the input) unless --overwrite; the file is replaced atomically.
Exit codes: 0 written, 2 usage or data error.
"""

from __future__ import annotations

from absl import flags

from lprnet_tf.cli.data._app import require, run
from lprnet_tf.data.readers import LAYOUTS
from lprnet_tf.datatools.split import MODES, split_file

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Label source to split: a labels.csv (or a folder holding one), an OpenVINO list "
                    "or a label-in-file-name folder (CCPD folders: convert them first).")
flags.DEFINE_enum("layout", "auto", LAYOUTS, "Layout of --data; auto detects it from the name and contents.")
flags.DEFINE_string("out", None, "CSV to write (the rows with a split column).")
flags.DEFINE_float("val", 0.1, "Fraction of the rows for the val split (0 <= val, val + test < 1).")
flags.DEFINE_float("test", 0.0, "Fraction of the rows for the test split.")
flags.DEFINE_integer("seed", 0, "Seed of the assignment; the same seed and set give the same split.")
flags.DEFINE_enum("by", "auto", MODES, "What stays together: auto = rows sharing a group or a plate text; near = "
                  "auto + plates one character apart (one plate under a one-character label error); group; "
                  "text (plate text); row (nothing: repeated plates may leak across splits).")
flags.DEFINE_bool("overwrite", False, "Allow --out to replace an existing file, including the input itself.")


def _main(argv):
    data = require(FLAGS.data, "data", "the labels.csv to split")
    out = require(FLAGS.out, "out", "the CSV to write, e.g. labels_split.csv (or --out=INPUT --overwrite)")
    summary = split_file(data, out, val=FLAGS.val, test=FLAGS.test, seed=FLAGS.seed, by=FLAGS.by,
                         layout=FLAGS.layout, overwrite=FLAGS.overwrite)
    total = sum(d["rows"] for d in summary.values())
    unit = {"auto": "plates/groups", "near": "plates/groups", "group": "groups", "text": "plates",
            "row": "rows"}[FLAGS.by]
    parts = ", ".join(f"{s} {d['rows']} rows ({100.0 * d['rows'] / max(total, 1):.1f}%, {d['units']} {unit})"
                      for s, d in summary.items())
    print(f"wrote {out}: {parts}; seed {FLAGS.seed}, by {FLAGS.by}")
    return 0


def main(argv=None):
    """``lprnet-data split``."""
    run(_main, argv)


if __name__ == "__main__":
    main()
