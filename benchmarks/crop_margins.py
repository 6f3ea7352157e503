"""Crop margins: how a recognizer reads plates cropped tighter or looser than it was trained on.

  python benchmarks/crop_margins.py [--models cn_lprnet_basic,RUN_OR_FILE,...] [--count 1000] [--real DIR]

Detectors box plates differently: the CCPD-style crops of ``cn_ccpd_like_1000`` often end at the plate frame or
cut into the first or last character, other detectors leave background around the plate. For each model this
scores held-apart synthetic plates of the model's own format rendered with three fixed horizontal crop margins
(:data:`MARGINS`, per side, in plate heights, set as ``degrade.margin_x`` of the format's ``synth:`` section,
everything else unchanged) -- *tight* (cut into the frame, sometimes into the outer characters), *standard*
(the frame or a little background) and *loose* (background on both sides) -- and, with ``--real``, the real
crops (greedy and beam + template). The synthetic sets use the same texts and styles for every margin, and
are the same sets for every model of one format (one seed); the table also lists the margins each model's
format trains on. Writes a Markdown table to stdout and, with ``--out``, a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# per side, in plate heights; "standard" is the range of the shipped `cn` format before 2026-12-03
MARGINS = {"tight": (-0.16, -0.10), "standard": (-0.04, 0.06), "loose": (0.08, 0.14)}


def with_margin_x(fmt, margin_x):
    """``fmt`` with its synthetic crop margin ``degrade.margin_x`` set to ``margin_x`` (None: unchanged)."""
    from lprnet_tf.vocab import with_synth_update

    return fmt if margin_x is None else with_synth_update(fmt, {"degrade": {"margin_x": list(margin_x)}})


def exact(model, fmt, spec: str, decoders=("greedy",)) -> list[float]:
    """Exact-match accuracy of ``model`` on the data ``spec`` with each of ``decoders`` (one prediction pass)."""
    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.evaluation import predict_logits, score

    source = open_source(spec, fmt)
    logits, texts = predict_logits(model, source, fmt, progress=False), source.texts()
    return [float(score(logits, texts, fmt, d)[0]["accuracy"]) for d in decoders]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="cn_lprnet_basic", help="comma-separated shipped names, .keras files or runs")
    ap.add_argument("--count", type=int, default=1000, help="synthetic plates per margin")
    ap.add_argument("--seed", type=int, default=424242, help="seed of the synthetic sets (not a training seed)")
    ap.add_argument("--real", default="", help="also score this real set (labels.csv folder), greedy and template")
    ap.add_argument("--out", default="", help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    if a.count < 1:
        ap.error("--count must be >= 1")
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    if not models:
        ap.error("--models: give at least one model")

    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.synth.spec import synth_spec

    cols = [f"synthetic {k}" for k in MARGINS] + (["real greedy", "real beam + template"] if a.real else [])
    print(f"{a.count} synthetic plates per margin (seed {a.seed}); exact match, greedy unless stated\n")
    print("| model | format margin_x | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    report = {"count": a.count, "seed": a.seed, "real": a.real, "margins": dict(MARGINS),
              "rows": []}
    for name in models:
        model, fmt, path = load_for_inference(name)
        trained = synth_spec(fmt).degrade.margin_x
        row = {"model": name, "file": os.path.relpath(os.path.abspath(path), REPO), "margin_x": list(trained)}
        for key, margin in MARGINS.items():
            row[f"synthetic {key}"], = exact(model, with_margin_x(fmt, margin), f"synth:{a.seed}:{a.count}")
        if a.real:
            row["real greedy"], row["real beam + template"] = exact(model, fmt, a.real, ("greedy", "template"))
        report["rows"].append(row)
        print(f"| {name} | [{trained[0]:g}, {trained[1]:g}] | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |",
              flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
