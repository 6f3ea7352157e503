"""Local province: what the beam + template decoder reads with a local prior (``--local_prefix``) at several shares.

  python benchmarks/local_prior.py [--model cn_lprnet_basic] [--prefix 皖] [--shares 0.3,0.5,0.8]
      [--real ../shared/data/cn_ccpd_like_1000] [--synth synth:777000777:1000] [--tta]
      [--out benchmarks/results/local_prior]

A camera sees mostly the plates of its own province; a model trained on a country-wide mix does not know that.
:class:`lprnet_tf.decoding.LocalPrior` re-ranks the beam search's candidates by Bayes' rule for a change of prior
(``share``: the expected fraction of local plates at the site; ``base``: that fraction among the training plates,
drawn from the model's synthetic generator). This scores the model once per set (one prediction pass) and decodes
the same logits without a prior and with each ``--shares`` value: exact match on all plates, on the plates that
start with the prefix and on the others, and how many plates the prior changed. The real set is the operator's
case (its share of the prefix is printed); the synthetic set, whose plates follow the generator's province mix,
shows what a prior costs where the stated share is wrong. Writes Markdown to stdout and ``OUT.md`` / ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def split_accuracy(texts, preds, prefix: str) -> dict:
    """Exact match on all plates, on those whose truth starts with ``prefix`` and on the others."""
    groups = {"all": range(len(texts)),
              "local": [i for i, t in enumerate(texts) if t.startswith(prefix)],
              "other": [i for i, t in enumerate(texts) if not t.startswith(prefix)]}
    return {k: {"count": len(idx), "exact": (sum(texts[i] == preds[i] for i in idx) / len(idx)) if idx else None}
            for k, idx in groups.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cn_lprnet_basic", help="shipped name, .keras file or run directory")
    ap.add_argument("--prefix", default="皖", help="the local province (or plate prefix)")
    ap.add_argument("--shares", default="0.3,0.5,0.8", help="comma-separated local shares to score")
    ap.add_argument("--real", default=os.path.join("..", "shared", "data", "cn_ccpd_like_1000"),
                    help="real labelled set ('' to skip)")
    ap.add_argument("--synth", default="synth:777000777:1000", help="held-apart synthetic set ('' to skip)")
    ap.add_argument("--tta", action="store_true", help="read every crop in the test-time views too and vote")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "local_prior"),
                    help="write OUT.md and OUT.json ('' to skip)")
    a = ap.parse_args(argv)
    try:
        shares = [float(s) for s in a.shares.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--shares {a.shares!r}: give fractions such as 0.3,0.5,0.8")
    if not shares or any(not 0.0 < s < 1.0 for s in shares):
        ap.error(f"--shares {a.shares!r}: each share must lie strictly between 0 and 1")
    sets = [(name, spec) for name, spec in (("real", a.real), ("synthetic", a.synth)) if spec]
    if not sets:
        ap.error("--real and --synth are both empty: nothing to score")

    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.decoding import local_prior
    from lprnet_tf.evaluation import predict_logits, predict_views, score
    from lprnet_tf.modelio import load_for_inference

    model, fmt, path = load_for_inference(a.model)
    priors = [None] + [local_prior(fmt, a.prefix, s) for s in shares]
    base = priors[1].base
    cmd = "python benchmarks/local_prior.py" + "".join(f" {x}" for x in (argv if argv is not None else sys.argv[1:]))
    from results_io import today

    lines = [f"# Local prior: `{a.model}`, prefix {a.prefix} ({today()}, {platform.machine()})", "",
             f"`{cmd.strip()}`", "",
             f"Beam + template decoder{' with the test-time views (--tta)' if a.tta else ''}; exact match. The "
             f"training share of {a.prefix} (the model's synthetic generator, `base`): {base:.4f}. `changed`: plates "
             f"read differently from the decoder without a prior.", ""]
    report = {"model": a.model, "file": os.path.relpath(os.path.abspath(path), REPO), "prefix": a.prefix,
              "base": round(base, 4), "tta": a.tta, "date": today(), "sets": []}
    for name, spec in sets:
        source = open_source(spec, fmt)
        texts = source.texts()
        logits = predict_views(model, source, fmt) if a.tta else predict_logits(model, source, fmt)
        true_share = sum(t.startswith(a.prefix) for t in texts) / len(texts)
        lines += [f"## {name}: `{spec}` ({len(texts)} plates, {true_share:.1%} start with {a.prefix})", "",
                  f"| local share | all | {a.prefix} plates | other plates | changed |", "|---|---|---|---|---|"]
        rows, plain = [], None
        for prior in priors:
            m, preds, _ = score(logits, texts, fmt, "template", prior=prior)
            acc = split_accuracy(texts, preds, a.prefix)
            plain = plain or preds
            changed = sum(p != q for p, q in zip(preds, plain))
            rows.append({"share": prior.share if prior else None, "accuracy": m["accuracy"], **acc,
                         "changed": changed})
            fmt_acc = lambda k: f"{acc[k]['exact']:.3f} ({acc[k]['count']})" if acc[k]["count"] else "-"  # noqa: E731
            lines.append(f"| {'none' if prior is None else f'{prior.share:g}'} | {m['accuracy']:.3f} | "
                         f"{fmt_acc('local')} | {fmt_acc('other')} | {changed} |")
            print(lines[-1], flush=True)
        lines.append("")
        report["sets"].append({"set": name, "data": spec, "count": len(texts), "true_share": round(true_share, 4),
                               "rows": rows})
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out + ".md", "w", encoding="utf-8") as f:
            f.write(text)
        with open(a.out + ".json", "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
