"""Accuracy table: every shipped model on every relevant real set plus a held-apart synthetic set.

  python benchmarks/accuracy.py [--models cn_lprnet_basic,…] [--data_root ../shared/data]
                                [--synth_count 1000] [--out benchmarks/results/accuracy.md]

For each model, the real sets of its plate format (validation/test rows only: the `val` split where a
set has one, else `test`) and `synth:<seed>:<count>` with a seed no training run uses. Each set is
scored with the greedy decoder and with beam search + template post-filter, through the same
evaluation code as `lprnet-evaluate`. Real sets whose plate format lists scoring merges (US: O/0, I/1;
the US labels write the letter O as the digit 0) get a second row with the merges applied.
Single-crop models are also scored with test-time views (decoder `greedy+tta`, `template+tta`: each
crop read as it is and in four fixed views, the plate most views read kept; `lprnet-evaluate --tta`,
`lprnet_tf.runtime.tta_view`); `--notta` leaves those rows out.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FIELDS = ["model", "set", "decoder", "merges", "count", "accuracy", "acc1", "char_accuracy", "accuracy_no_first"]


RECOGNIZERS = ("ctc", "slot", "attn")  # model kinds that read plates (not quality networks)
SYNTH_TRACKS = 200


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="", help="comma-separated model specs (default: every shipped model)")
    ap.add_argument("--data_root", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    ap.add_argument("--synth_count", type=int, default=1000)
    ap.add_argument("--synth_tracks", type=int, default=SYNTH_TRACKS, help="held-apart synthetic tracklets "
                    "for multi-frame models (rendered on the fly, ~20/s)")
    ap.add_argument("--decoders", default="greedy,template")
    ap.add_argument("--notta", dest="tta", action="store_false", help="no test-time-view rows")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "accuracy.md"))
    a = ap.parse_args()

    from lprnet_tf.evaluation import predict_logits, predict_views, reference_sets, score
    from lprnet_tf.modelio import load_for_inference, pretrained_names

    from lprnet_tf.models import model_kind

    models = [m for m in a.models.split(",") if m] or pretrained_names(kinds=RECOGNIZERS)
    if not models:
        sys.exit("no models: ship one under lprnet_tf/pretrained/ or pass --models")
    rows = []
    for spec in models:
        model, fmt, path = load_for_inference(spec)
        kind, frames = model_kind(model), getattr(model, "frames", 0)
        sets = reference_sets(fmt, a.data_root, a.synth_tracks if frames else a.synth_count, frames=frames)
        decoders = [d for d in a.decoders.split(",") if kind == "ctc" or d == "greedy"]  # beam/template: CTC only
        for set_name, src, merges in sets:
            t0 = time.time()
            texts = src.texts()
            logits = predict_logits(model, src, fmt, batch_size=128)
            readings = [(dec, dec, logits) for dec in decoders]  # (row label, decoder, logits)
            if a.tta and not frames:  # test-time views: single-crop models
                views = predict_views(model, src, fmt, batch_size=128, full=logits)
                readings += [(f"{dec}+tta", dec, views) for dec in decoders]
            for label, dec, lg in readings:
                for mg in ([[]] + ([merges] if merges else [])):
                    m, _, _ = score(lg, texts, fmt, dec, mg, kind=kind)
                    rows.append({"model": spec, "set": set_name, "decoder": label, "merges": ",".join(mg) or "-",
                                 **{k: m[k] for k in FIELDS[4:]}})
                    print(f"{spec:18s} {set_name:34s} {label:12s} merges={','.join(mg) or '-':5s} "
                          f"acc={m['accuracy']:.4f} acc1={m['acc1']:.4f} char={m['char_accuracy']:.4f} "
                          f"no_first={m['accuracy_no_first']:.4f} n={m['count']} ({time.time() - t0:.0f}s)", flush=True)
    csv_path = os.path.splitext(a.out)[0] + ".csv"
    if a.models and os.path.isfile(csv_path):  # keep the other models' rows of the last full run
        with open(csv_path, encoding="utf-8", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["model"] not in models] + rows
    rows.sort(key=lambda r: r["model"])
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(f"Accuracy of the shipped models, `python benchmarks/accuracy.py`, {time.strftime('%Y-%m-%d')}. "
                f"Exact = exact match; acc-1 = edit distance <= 1; char = 1 - CER; no-first = exact match "
                f"ignoring the first character (the CN province). Template = beam search (width 10) + "
                f"template post-filter; +tta = test-time views (each crop read as it is and in four fixed views, the "
                f"plate most views read kept; single-crop models).\n\n")
        f.write("| model | set | decoder | merges | n | exact | acc-1 | char | no-first |\n")
        f.write("|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['model']} | {r['set']} | {r['decoder']} | {r['merges']} | {r['count']} | "
                    + " | ".join(f"{float(r[k]):.3f}" for k in FIELDS[5:]) + " |\n")
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
