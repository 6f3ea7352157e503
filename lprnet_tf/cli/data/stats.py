"""lprnet-data stats: counts, label lengths, characters, image sizes and overlap between splits.

    lprnet-data stats --data ../shared/data/br_openalpr_crops
    lprnet-data stats --data labels.csv --format br --json stats.json --fail_on_overlap
    lprnet-data stats --data ../shared/data/br_openalpr_crops --pairs_sheet pairs.png

Reads any layout (labels.csv or a folder holding one, an OpenVINO list, a CCPD or label-in-file-name
folder). Image sizes come from file headers. For every pair of splits it counts the plate texts,
groups and identical image files found in both and flags them as DUPLICATES ACROSS SPLITS, and lists
the plate pairs one character apart with one plate in each (--pairs_sheet draws them side by side).
With --format it also counts labels the plate format rejects or whose text matches no template.
Exit codes: 0 done (1 with --fail_on_overlap when splits share plates, groups or images), 2 usage or
data error.
"""

from __future__ import annotations

import json
from absl import flags

from lprnet_tf.cli.data._app import require, run
from lprnet_tf.data.readers import LAYOUTS, DataError, detect_layout
from lprnet_tf.datatools.common import check_output_file, require_png
from lprnet_tf.datatools.stats import compute_stats, pairs_sheet, render_stats
from lprnet_tf.vocab import load_plate_format

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Label source: a labels.csv, a folder holding one, an OpenVINO list file, or a "
                    "CCPD / label-in-file-name image folder.")
flags.DEFINE_enum("layout", "auto", LAYOUTS, "Layout of --data; auto detects it from the name and contents.")
flags.DEFINE_string("format", None, "Optional plate format (shipped name such as cn, br, us, or a YAML path): also "
                    "count labels outside its alphabet/max_length and labels matching none of its templates.")
flags.DEFINE_string("json", None, "Also write the statistics as JSON to this file (an existing file only with "
                    "--overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --json file.")
flags.DEFINE_bool("hash_images", True, "Hash image files to find identical images across splits and rows "
                  "(--nohash_images skips it on very large sets).")
flags.DEFINE_integer("max_chars", 0, "Characters to list in the histogram, most frequent first (0 = all).")
flags.DEFINE_bool("fail_on_overlap", False, "Exit with code 1 when two splits share a plate, group or image (for CI).")
flags.DEFINE_string("pairs_sheet", None, "Also write a PNG with the plate pairs one character apart across splits "
                    "side by side (one crop of each), to check by eye whether they are one plate under two labels "
                    "(an existing file only with --overwrite).")
flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.")


def _main(argv):
    data = require(FLAGS.data, "data", "the label source to describe (labels.csv, list file or image folder)")
    fmt = load_plate_format(FLAGS.format) if FLAGS.format else None
    if FLAGS.pairs_sheet:
        require_png(FLAGS.pairs_sheet, "--pairs_sheet", "sheet")
    for flag in ("json", "pairs_sheet"):  # before the (long) scan
        if getattr(FLAGS, flag):
            check_output_file(getattr(FLAGS, flag), f"--{flag}", FLAGS.overwrite,
                              inputs=(detect_layout(data, FLAGS.layout)[0],))
    st = compute_stats(data, FLAGS.layout, fmt, hash_images=FLAGS.hash_images, progress=FLAGS.progress)
    print(render_stats(st, max_chars=FLAGS.max_chars))
    if FLAGS.json:
        try:
            with open(FLAGS.json, "w", encoding="utf-8") as f:
                json.dump(st, f, ensure_ascii=False, indent=1)
        except OSError as e:
            raise DataError(f"--json {FLAGS.json}: cannot write ({e.strerror}); choose another path") from None
        print(f"wrote {FLAGS.json}")
    if FLAGS.pairs_sheet:
        n = pairs_sheet(st, FLAGS.pairs_sheet)
        print(f"wrote {FLAGS.pairs_sheet}: {n} pairs" if n else
              f"no plate pairs one character apart across splits: {FLAGS.pairs_sheet} not written")
    return 1 if FLAGS.fail_on_overlap and st["leaks"] else 0


def main(argv=None):
    """``lprnet-data stats``."""
    run(_main, argv)


if __name__ == "__main__":
    main()
