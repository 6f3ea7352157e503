"""No-reference quality score vs the synthetic degradation level, on synthetic tracklets.

  python benchmarks/quality.py [--tracks 200] [--k 5] [--seed 0] [--formats cn,br,us,eu,tw,uz,ar]
                               [--real ../shared/data/br_openalpr_crops]
  python benchmarks/quality.py --fit          # refit lprnet_tf.quality.QUALITY_MODEL and print it

Renders ``--tracks`` tracklets of ``--k`` frames (:func:`lprnet_tf.synth.tracklets.generate_tracklet`,
formats taken in turn), scores every frame with :func:`lprnet_tf.quality.quality_score` (the mean of
the 7 strip scores) and reports the linear (LCC) and Spearman rank (SROCC) correlation with the
quality the renderer knows, ``1 - degradation``: over all frames, per format, clean vs bad frames,
and within each track (does the score rank the K frames of one plate the way their degradation
does? the ordering IQ-STAN's temporal attention and EQ-LPR's frame choice rely on). Two one-feature
baselines (variance of the Laplacian; log gradient energy) show what the regression adds. With
``--real DIR`` it also prints the score distribution of a real labels.csv set (no ground truth
there: a sanity check that real crops land inside the synthetic range). Writes
``benchmarks/results/quality.md``.

``--fit`` fits the ridge regression of :mod:`lprnet_tf.quality` on ``--fit_singles`` single synthetic
plates (seed 1000, all formats in turn) plus ``--fit_tracks`` tracklets (seed 1001) and prints the
``QUALITY_MODEL = ...`` source to paste into ``lprnet_tf/quality.py``; the benchmark's default seed
(0) is never used for fitting.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

FIT_SINGLE_SEED, FIT_TRACK_SEED = 1000, 1001
FORMATS = "cn,br,us,eu,tw,uz,ar"


def _fit(a) -> None:
    from lprnet_tf.progress import Progress
    from lprnet_tf.quality import fit_quality_model, patch_features
    from lprnet_tf.synth.render import sample
    from lprnet_tf.synth.tracklets import generate_tracklet
    from lprnet_tf.vocab import load_plate_format

    fmts = [load_plate_format(f) for f in a.formats.split(",")]
    feats, targets = [], []
    bar = Progress(a.fit_singles + a.fit_tracks, "fit data", "items")
    for i in range(a.fit_singles):
        img, _, p = sample(fmts[i % len(fmts)], FIT_SINGLE_SEED, i)
        f = patch_features(img)
        feats.append(f)
        targets += [1.0 - p["degradation"]] * len(f)
        bar.update(1)
    for i in range(a.fit_tracks):
        frames, _, ps = generate_tracklet(fmts[i % len(fmts)], FIT_TRACK_SEED, i, a.k, quality=False)
        for img, p in zip(frames, ps):
            f = patch_features(img)
            feats.append(f)
            targets += [1.0 - p["degradation"]] * len(f)
        bar.update(1)
    bar.close()
    note = (f"ridge l2={a.l2} on {a.fit_singles} single plates (seed {FIT_SINGLE_SEED}) + {a.fit_tracks} "
            f"tracklets x {a.k} (seed {FIT_TRACK_SEED}), formats {a.formats}, target 1 - degradation")
    model = fit_quality_model(np.concatenate(feats), np.asarray(targets), l2=a.l2, note=note)
    print(model.to_source())


def _laplacian_var(img: np.ndarray) -> float:
    from lprnet_tf.quality import _to_gray

    return float(np.log1p(cv2.Laplacian(_to_gray(img), cv2.CV_32F).var()))


def _grad_energy(img: np.ndarray) -> float:
    from lprnet_tf.quality import FEATURE_NAMES, patch_features

    return float(patch_features(img)[:, FEATURE_NAMES.index("log_grad_energy")].mean())


def _real(directory: str, limit: int) -> dict:
    from lprnet_tf.data.readers import load_image, scan_rows
    from lprnet_tf.quality import quality_score

    scores = []
    for row in scan_rows(directory).rows[:limit]:
        if row.sample is not None:
            scores.append(quality_score(load_image(row.sample.path, row.sample.box)))
    return {"n": len(scores), "quantiles": np.quantile(scores, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=200, help="synthetic tracklets to score")
    ap.add_argument("--k", type=int, default=5, help="frames per tracklet")
    ap.add_argument("--seed", type=int, default=0, help="tracklet seed (not a fitting seed)")
    ap.add_argument("--formats", default=FORMATS, help="plate formats, used in turn")
    ap.add_argument("--real", default=None, help="a real labels.csv set to print the score distribution of")
    ap.add_argument("--real_limit", type=int, default=2000, help="at most this many real crops")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "quality.md"))
    ap.add_argument("--fit", action="store_true", help="refit QUALITY_MODEL and print it instead")
    ap.add_argument("--fit_singles", type=int, default=1400, help="--fit: single synthetic plates")
    ap.add_argument("--fit_tracks", type=int, default=300, help="--fit: synthetic tracklets")
    ap.add_argument("--l2", type=float, default=1.0, help="--fit: ridge penalty")
    a = ap.parse_args()
    if a.fit:
        return _fit(a)
    if a.seed in (FIT_SINGLE_SEED, FIT_TRACK_SEED):
        ap.error(f"--seed {a.seed} is a fitting seed; pick another")

    from lprnet_tf.metrics import lcc, srocc
    from lprnet_tf.progress import Progress
    from lprnet_tf.quality import QUALITY_MODEL
    from lprnet_tf.synth.tracklets import generate_tracklet

    fmts = a.formats.split(",")
    rows = []  # (track, format, frame, bad, truth, score, laplacian, grad energy)
    t0 = time.time()
    bar = Progress(a.tracks, "quality benchmark", "tracks")
    for i in range(a.tracks):
        frames, _, ps = generate_tracklet(fmts[i % len(fmts)], a.seed, i, a.k)
        for img, p in zip(frames, ps):
            rows.append((i, fmts[i % len(fmts)], p["frame"], p["bad"], 1.0 - p["degradation"], p["quality"],
                         _laplacian_var(img), _grad_energy(img)))
        bar.update(1)
    bar.close()
    secs = time.time() - t0
    track = np.array([r[0] for r in rows])
    fmt_of = np.array([r[1] for r in rows])
    bad = np.array([r[3] for r in rows])
    truth, score, lap, ge = (np.array([r[j] for r in rows], np.float64) for j in (4, 5, 6, 7))

    def corr(mask, s=score):
        return lcc(s[mask], truth[mask]), srocc(s[mask], truth[mask]), int(mask.sum())

    everything = np.ones(len(rows), bool)
    table = [("all frames", *corr(everything))]
    table += [(f"format {f}", *corr(fmt_of == f)) for f in fmts]
    table += [("clean frames (no bad event)", *corr(bad == ""))]
    table += [(f"bad: {b}", *corr(bad == b)) for b in sorted(set(bad) - {""})]
    baselines = [("PQS (lprnet_tf.quality)", *corr(everything)),
                 ("log variance of the Laplacian", *corr(everything, lap)),
                 ("log gradient energy", *corr(everything, ge))]
    within = []  # per-track SROCC: does the score order the K frames as the degradation does?
    best_hit = []
    for t in np.unique(track):
        m = track == t
        if np.ptp(truth[m]) > 0 and np.ptp(score[m]) > 0:
            within.append(srocc(score[m], truth[m]))
        best_hit.append(truth[m][np.argmax(score[m])] >= truth[m].max() - 0.05)
    real = _real(a.real, a.real_limit) if a.real and os.path.isdir(a.real) else None

    for name, l_, s_, n in table + baselines:
        print(f"{name:34s} n={n:5d} LCC {l_:.3f} SROCC {s_:.3f}")
    print(f"within-track SROCC: mean {np.mean(within):.3f} over {len(within)} tracks; best-frame pick within 0.05 of "
          f"the best: {np.mean(best_hit):.1%}")

    cmd = "python benchmarks/quality.py" + "".join(f" {x}" for x in sys.argv[1:])
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(f"# No-reference quality score vs synthetic degradation\n\n`{cmd}` — {time.strftime('%Y-%m-%d')}, "
                f"{platform.machine()} {platform.system()} ({os.cpu_count()} cores), numpy/cv2 only, "
                f"{secs:.0f} s for {len(rows)} frames (render + score).\n\n")
        f.write(f"{a.tracks} synthetic tracklets x {a.k} frames (seed {a.seed}; formats {a.formats} in turn). "
                f"Truth: the renderer's `1 - degradation`. Score: PQS, the mean of 7 strip scores "
                f"(`lprnet_tf.quality`; model: {QUALITY_MODEL.note}). LCC = Pearson, SROCC = Spearman "
                f"(`lprnet_tf.metrics`). IQ-STAN Table 2 reports LCC 0.830-0.847 / SROCC 0.805-0.819 for its "
                f"learned scorer against its NR-IQA labels, a different comparison.\n\n")
        f.write("| frames | n | LCC | SROCC |\n|---|---|---|---|\n")
        for name, l_, s_, n in table:
            f.write(f"| {name} | {n} | {l_:.3f} | {s_:.3f} |\n")
        f.write("\n| score (all frames) | LCC | SROCC |\n|---|---|---|\n")
        for name, l_, s_, _ in baselines:
            f.write(f"| {name} | {l_:.3f} | {s_:.3f} |\n")
        f.write(f"\nWithin one track (ordering the {a.k} frames of one plate): mean SROCC {np.mean(within):.3f} over "
                f"{len(within)} tracks; the highest-scored frame is within 0.05 of the best frame's quality in "
                f"{np.mean(best_hit):.1%} of tracks.\n")
        if real:
            q = real["quantiles"]
            f.write(f"\nReal crops `{os.path.relpath(a.real, REPO)}` (no ground truth): {real['n']} crops, "
                    f"PQS quantiles "
                    f"5/25/50/75/95 % = {' / '.join(f'{v:.2f}' for v in q)}. Synthetic frames above: "
                    f"{' / '.join(f'{v:.2f}' for v in np.quantile(score, [0.05, 0.25, 0.5, 0.75, 0.95]))}.\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
