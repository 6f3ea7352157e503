"""Two-row plates: the row layout (rows: 2) against the one-row baseline on the same held-apart
synthetic two-row plates.

  python benchmarks/two_row.py [--tworow runs/cn2_tworow] [--onerow runs/cn2_onerow] [--count 1000]

The two models come from configs/experiments/lprnet_cn2_tworow.yaml and lprnet_cn2_onerow.yaml (same
data, steps and seed; they differ only in the plate format's ``rows``). Both are scored on
``synth:777000777:COUNT`` rendered from the cn2 format (a seed no training run uses), each through its
own format's preprocessing (two rows side by side vs. the whole crop squashed to 24x94), with the
greedy decoder and with beam search + template post-filter. Writes benchmarks/results/two_row.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tworow", default="runs/cn2_tworow", help="model of lprnet_cn2_tworow (run dir or .keras)")
    ap.add_argument("--onerow", default="runs/cn2_onerow", help="model of lprnet_cn2_onerow (run dir or .keras)")
    ap.add_argument("--count", type=int, default=1000, help="held-apart synthetic plates")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "two_row.md"))
    a = ap.parse_args()

    from lprnet_tf.data.pipeline import SynthSource
    from lprnet_tf.evaluation import HELD_OUT_SYNTH_SEED, predict_logits, score
    from lprnet_tf.modelio import load_for_inference

    rows = []
    for layout, spec in (("two rows side by side (rows: 2)", a.tworow), ("one row, crop squashed (rows: 1)", a.onerow)):
        model, fmt, path = load_for_inference(spec)
        src = SynthSource(fmt, HELD_OUT_SYNTH_SEED, a.count)  # same plates for both: same synth section
        logits = predict_logits(model, src, fmt, batch_size=128)
        for dec in ("greedy", "template"):
            m, _, _ = score(logits, src.texts(), fmt, dec, [])
            rows.append((layout, fmt.name, dec, m))
            print(f"{layout:34s} {dec:8s} exact={m['accuracy']:.4f} char={m['char_accuracy']:.4f}", flush=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(f"Two-row layout vs one-row baseline, `python benchmarks/two_row.py`, {time.strftime('%Y-%m-%d')}: "
                f"LPRNet basic + LocNet fine-tuned from cn_lprnet_basic for 1,500 steps on synthetic cn2 plates "
                f"(configs/experiments/lprnet_cn2_{{tworow,onerow}}.yaml), scored on {a.count} held-apart synthetic "
                f"cn2 plates (seed {HELD_OUT_SYNTH_SEED}).\n\n")
        f.write("| layout | format | decoder | n | exact | acc-1 | char | no-first |\n|---|---|---|---|---|---|---|---|\n")
        for layout, name, dec, m in rows:
            f.write(f"| {layout} | {name} | {dec} | {m['count']} | {m['accuracy']:.3f} | {m['acc1']:.3f} | "
                    f"{m['char_accuracy']:.3f} | {m['accuracy_no_first']:.3f} |\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
