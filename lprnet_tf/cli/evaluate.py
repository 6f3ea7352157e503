"""lprnet-evaluate: score a model on a labelled set.

  lprnet-evaluate --model runs/cn_basic --data ../shared/data/cn_ccpd_like_1000 --out eval/cn \
      [--decoder greedy|beam|template] [--merge O0,I1] [--split val] [--tta] [--local_prefix 皖] [--corrupt dark:2]

Writes OUT/metrics.json, OUT/errors.csv and OUT/error_gallery.png.
"""

from __future__ import annotations

import json

from absl import app, flags

from lprnet_tf.cli.common import (check_output_dir, define_local_prior_flags, local_prior_from_flags, parse_flags,
                                  run_guarded)
from lprnet_tf.config import UsageError
from lprnet_tf.data.corrupt import CORRUPTIONS

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .keras file, a run directory (its best.keras) or a shipped model name "
                    "(e.g. cn_lprnet_basic).")
flags.DEFINE_string("data", None, "labels.csv, a list file, an image folder (CCPD or label-in-file-name), or "
                    "synth:SEED:COUNT for synthetic plates rendered on the fly.")
flags.DEFINE_string("out", None, "Output folder for metrics.json, errors.csv, error_gallery.png.")
flags.DEFINE_enum("decoder", "greedy", ["greedy", "beam", "template"], "CTC decoder: greedy, beam search, or "
                  "beam search + template post-filter.")
flags.DEFINE_list("merge", [], "Class merges for scoring, e.g. O0,I1 (O and 0 count as one character).")
flags.DEFINE_string("split", None, "Only rows of this split (CSV with a split column).")
flags.DEFINE_string("format", None, "Plate format name or YAML (default: the one saved with the model).")
flags.DEFINE_integer("batch_size", 64, "Batch size for inference.", lower_bound=1)
flags.DEFINE_enum("track_policy", "error", ["error", "skip", "repeat", "pad_last"], "Multi-frame models: what to "
                  "do with a track shorter than the model's K frames (error, skip it, cycle its frames, repeat its "
                  "last frame).")
flags.DEFINE_bool("tta", False, "Test-time views: read every crop as it is and in 4 fixed views (tighter, looser, "
                  "rows trimmed, brighter) and keep the plate most views read (5x the inference).")
flags.DEFINE_bool("skip_bad", False, "Count and skip bad rows/images instead of stopping at the first.")
flags.DEFINE_string("corrupt", None, "Read every crop changed by one fixed corruption, NAME:SEVERITY (severity 1-3; "
                    f"names: {', '.join(CORRUPTIONS)}; "
                    "lprnet_tf/data/corrupt.py), e.g. dark:2: how the model holds up on images unlike the set "
                    "(benchmarks/robustness.py runs them all). Single-crop models.")
define_local_prior_flags(__name__)


def _corruption(spec: str | None) -> tuple | None:
    """``--corrupt NAME:SEVERITY`` -> (name, severity), checked before any data is read."""
    if not spec:
        return None
    from lprnet_tf.data.corrupt import corruption_param

    name, _, sev = spec.partition(":")
    try:
        severity = int(sev)
    except ValueError:
        severity, detail = None, "the severity is a number 1-3"
    if severity is not None:
        try:
            corruption_param(name, severity)
            return name, severity
        except ValueError as e:
            detail = str(e)
    raise UsageError(f"--corrupt {spec}: {detail} (give NAME:SEVERITY, e.g. --corrupt dark:2)")


def _main(argv):
    del argv
    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.evaluation import evaluate_model
    from lprnet_tf.modelio import load_for_inference

    if not FLAGS.model or not FLAGS.data or not FLAGS.out:
        raise UsageError("--model, --data and --out are required (see --help)")
    corruption = _corruption(FLAGS.corrupt)
    check_output_dir(FLAGS.out, "--out")
    model, fmt, path = load_for_inference(FLAGS.model, FLAGS.format)
    from lprnet_tf.vocab import bad_merges

    bad = bad_merges(FLAGS.merge, fmt.alphabet)
    if bad:
        raise UsageError(f"--merge {','.join(bad)}: each merge lists >= 2 characters of the '{fmt.name}' alphabet "
                         f"that count as one, e.g. --merge O0,I1")
    prior = local_prior_from_flags(fmt, FLAGS.decoder)
    frames = getattr(model, "frames", 0)  # a multi-frame model (IQ-STAN) reads tracklets of K frames
    if corruption and frames:
        raise UsageError("--corrupt is for single-crop models; this model reads tracklets of frames")
    source = open_source(FLAGS.data, fmt, split=FLAGS.split, skip_bad=FLAGS.skip_bad, frames=frames,
                         track_policy=FLAGS.track_policy)
    extra = {"model": path, "data": FLAGS.data, "split": FLAGS.split}
    if corruption:
        from lprnet_tf.evaluation import corrupted_source

        source = corrupted_source(source, *corruption)
        extra["corrupt"] = f"{corruption[0]}:{corruption[1]}"
    m = evaluate_model(model, source, fmt, FLAGS.out, decoder=FLAGS.decoder, merges=FLAGS.merge,
                       batch_size=FLAGS.batch_size, extra=extra, tta=FLAGS.tta, prior=prior)
    keys = ("count", "tta", "accuracy", "acc1", "char_accuracy", "length_accuracy", "accuracy_no_first",
            "quality_lcc_frame", "quality_srocc_frame", "frame_weights_mean")
    print(json.dumps({k: m[k] for k in keys if k in m}, indent=2, ensure_ascii=False))
    for r in m.get("confidence_thresholds", []):  # what a confidence threshold would flag for review
        right = "-" if r["accuracy_accepted"] is None else f"{r['accuracy_accepted']:.1%}"
        print(f"confidence >= {r['threshold']:.1f}: {r['coverage']:6.1%} of crops accepted, {right} of them right; "
              f"flags {r['errors_rejected']} of the {r['errors_accepted'] + r['errors_rejected']} misreads and "
              f"{r['correct_rejected']} correct reads")
    print(f"wrote {FLAGS.out}/metrics.json, errors.csv" + (", error_gallery.png" if m["accuracy"] < 1 else ""))


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
