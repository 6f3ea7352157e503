"""lprnet-data validate: check every row against a plate format; optionally write a cleaned CSV.

    lprnet-data validate --data ../shared/data/br_openalpr_crops --format br
    lprnet-data validate --data raw/labels.csv --format cn --fix-out clean/labels.csv

Each row is checked for: a parsable row; a label that is non-empty, uses only the format's alphabet,
is at most max_length long and matches one of its templates (--templates warn|off relaxes this);
an image that exists, decodes (as training reads it; CCPD boxes inside the photo) and is at least
--min_width x --min_height pixels; no second row for the same image (duplicate or conflicting label).
Every bad row is listed with its file:line and the fix.

--fix-out writes the good rows (labels normalized, image paths relative to the new file) and
--rejects_out (default: FIX_OUT with .rejects.csv) the bad rows with a `reason` column.
Exit codes: 0 every row is good, 1 some rows are bad (also when --fix-out wrote a clean copy),
2 usage error or unreadable label file.
"""

from __future__ import annotations

import os

from absl import flags

from lprnet_tf.cli.data._app import require, run
from lprnet_tf.config import UsageError
from lprnet_tf.data.readers import LAYOUTS, detect_layout
from lprnet_tf.datatools.common import check_output_file
from lprnet_tf.datatools.validate import (TEMPLATE_MODES, check_fixable, default_rejects_path, render_report, validate,
                                          write_fixed)
from lprnet_tf.vocab import load_plate_format

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Label source to check: a labels.csv, a folder holding one, an OpenVINO list "
                    "file, or a CCPD / label-in-file-name image folder.")
flags.DEFINE_string("format", None, "Plate format the labels must follow: a shipped name (cn, us, eu, br, uz, tw, "
                    "ar) or a YAML path.")
flags.DEFINE_enum("layout", "auto", LAYOUTS, "Layout of --data; auto detects it from the name and contents.")
flags.DEFINE_enum("templates", "error", TEMPLATE_MODES, "A label matching none of the format's templates is an "
                  "error (bad row), a warning (row kept) or not checked (off).")
flags.DEFINE_integer("min_height", 8, "Images (crops) lower than this many pixels are bad rows.")
flags.DEFINE_integer("min_width", 16, "Images (crops) narrower than this many pixels are bad rows.")
flags.DEFINE_string("fix_out", None, "Write the good rows to this CSV (labels normalized, paths relative to it); "
                    "also writes the rejects CSV. Spelled --fix-out or --fix_out.")
flags.DEFINE_string("rejects_out", None, "Where --fix_out writes the bad rows with a `reason` column "
                    "(default: the --fix_out name with .rejects.csv).")
flags.DEFINE_bool("overwrite", False, "Allow --fix_out/--rejects_out to replace existing files (even the input).")
flags.DEFINE_integer("max_listed", 20, "Bad rows to list on stdout (0 = all).", lower_bound=0)
flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.")


def _main(argv):
    data = require(FLAGS.data, "data", "the label source to check (labels.csv, list file or image folder)")
    fmt = load_plate_format(require(FLAGS.format, "format", "the plate format the labels follow, e.g. cn, br, us"))
    rejects = None
    if FLAGS.fix_out:
        rejects = FLAGS.rejects_out or default_rejects_path(FLAGS.fix_out)
        src, layout = detect_layout(data, FLAGS.layout)
        check_fixable(src, layout)
        check_output_file(FLAGS.fix_out, "--fix_out", FLAGS.overwrite, inputs=(src,))
        check_output_file(rejects, "--rejects_out", FLAGS.overwrite, inputs=(src,))
        if os.path.abspath(rejects) == os.path.abspath(FLAGS.fix_out):
            raise UsageError(f"--rejects_out {rejects} is the --fix_out file; give the rejects another name")
    elif FLAGS.rejects_out:
        require(None, "fix_out", "--rejects_out only goes with --fix_out (the cleaned CSV)")
    v = validate(data, fmt, FLAGS.layout, templates=FLAGS.templates, min_height=FLAGS.min_height,
                 min_width=FLAGS.min_width, progress=FLAGS.progress)
    print(render_report(v, max_listed=FLAGS.max_listed))
    if FLAGS.fix_out:
        good, bad = write_fixed(v, FLAGS.fix_out, rejects)
        print(f"wrote {good} ({len(v.checks) - len(v.bad)} good rows) and {bad} ({len(v.bad)} rejected rows)")
    return 1 if v.bad else 0


def main(argv=None):
    """``lprnet-data validate``."""
    run(_main, argv)


if __name__ == "__main__":
    main()
