"""Confidence thresholds: what a deployment gets if it accepts a read only above a confidence and flags the rest.

  python benchmarks/confidence.py [--models cn_lprnet_basic,…] [--decoder template] [--data_root ../shared/data]

For every shipped single-crop CTC recognizer (or ``--models``), on each real validation set of its plate format
(the sets of ``benchmarks/accuracy.py``, with their scoring merges; no synthetic set): the share of crops whose
confidence reaches each threshold, the exact-match accuracy among them, and how many misreads and correct reads
the threshold sends to review (:func:`lprnet_tf.metrics.confidence_operating_points`, the figures
``lprnet-evaluate`` prints and writes to ``metrics.json``). Confidence is the decoder's (beam + template: the
share of the beam mass held by the plate read). Writes benchmarks/results/confidence.md and .json.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="", help="comma-separated model specs (default: every shipped "
                    "single-crop CTC recognizer)")
    ap.add_argument("--decoder", default="template", choices=["greedy", "beam", "template"])
    ap.add_argument("--data_root", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "confidence"))
    args = ap.parse_args(argv)

    from results_io import run_meta, write_report

    from lprnet_tf.evaluation import predict_logits, reference_sets, score
    from lprnet_tf.metrics import confidence_operating_points
    from lprnet_tf.modelio import load_for_inference, pretrained_names
    from lprnet_tf.models import model_kind

    models = [m for m in args.models.split(",") if m] or pretrained_names(kinds=("ctc",))
    rows = []
    for spec in models:
        model, fmt, _ = load_for_inference(spec)
        if model_kind(model) != "ctc" or getattr(model, "frames", 0):
            ap.error(f"--models {spec}: a single-crop CTC recognizer is needed ({model_kind(model)} model)")
        for set_name, src, merges in reference_sets(fmt, args.data_root, synth_count=1):
            if set_name.startswith("synthetic"):
                continue
            texts = src.texts()
            m, preds, conf = score(predict_logits(model, src, fmt, batch_size=128), texts, fmt, args.decoder, merges)
            points = confidence_operating_points(texts, preds, conf, merges)
            rows.append({"model": spec, "set": set_name, "merges": merges, "count": m["count"],
                         "accuracy": m["accuracy"], "points": points})
            print(f"{spec:18s} {set_name:40s} exact {m['accuracy']:.3f}  " + "  ".join(
                f">={p['threshold']:.1f}: {p['coverage']:.3f} / {p['accuracy_accepted'] or 0:.3f}" for p in points),
                flush=True)
    if not rows:
        sys.exit(f"no real validation set found under {args.data_root} for {models}")

    meta = {**run_meta("confidence.py", argv), "decoder": args.decoder}
    thresholds = [p["threshold"] for p in rows[0]["points"]]
    lines = [f"# Confidence thresholds ({args.decoder} decoder)", "",
             f"`{meta['command'].strip()}` on {meta['date']} ({meta['machine']}). A read is accepted when its "
             f"confidence is at least the threshold; each cell: share of crops accepted / exact-match accuracy among "
             f"them / misreads flagged of all misreads (correct reads flagged).", "",
             "| model | set | n | exact (all) | " + " | ".join(f"conf >= {t:.1f}" for t in thresholds) + " |",
             "|---|---|---|---|" + "---|" * len(thresholds)]
    for r in rows:
        cells = []
        for p in r["points"]:
            acc = "-" if p["accuracy_accepted"] is None else f"{p['accuracy_accepted']:.3f}"
            cells.append(f"{p['coverage']:.3f} / {acc} / {p['errors_rejected']} of "
                         f"{p['errors_accepted'] + p['errors_rejected']} "
                         f"({p['correct_rejected']})")
        merges = f", merges {','.join(r['merges'])}" if r["merges"] else ""
        lines.append(f"| `{r['model']}` | {r['set']}{merges} | {r['count']} | {r['accuracy']:.3f} | "
                     + " | ".join(cells) + " |")
    write_report(args.out, {"meta": meta, "rows": rows}, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
