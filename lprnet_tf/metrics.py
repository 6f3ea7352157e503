"""Recognition metrics: the one code path for every model, decoder and export format.

``plate_metrics(truths, preds, merges)``: exact-match accuracy, acc-1 (edit distance <= 1),
character accuracy (1 - CER, CER = total edit distance / total truth length), length accuracy,
accuracy without the first character (the Chinese province), per-position accuracy, the
number-of-correct-characters histogram and, from it, the share of plates read with at most k wrong
characters (``multitask-lowres-lpr.md`` Fig. 4: "the entire license plate in 70.4% of the cases and
all but one character in 88.7%"). Class merges (e.g. ``O0``) map characters to one class
before comparing and are reported with the figures.

``lcc(a, b)`` and ``srocc(a, b)``: linear and Spearman rank correlation of paired quality scores
(IQ-STAN Table 2), numpy only. ``psnr(mse)``: the super-resolution / degradation image figure.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def apply_merges(text: str, merge_map: dict) -> str:
    return "".join(merge_map.get(c, c) for c in text) if merge_map else text


def merge_map_from(merges: Sequence[str] | None) -> dict:
    """``['O0', 'I1']`` -> {'0': 'O', '1': 'I'}."""
    out = {}
    for m in merges or ():
        for c in m[1:]:
            out[c] = m[0]
    return out


def plate_metrics(truths: Sequence[str], preds: Sequence[str], merges: Sequence[str] | None = None,
                  max_positions: int | None = None) -> dict:
    """Metrics dict (JSON-serializable) for paired truth/prediction strings."""
    if len(truths) != len(preds):
        raise ValueError(f"{len(truths)} truths but {len(preds)} predictions")
    n = len(truths)
    if n == 0:
        raise ValueError("no samples to score")
    mm = merge_map_from(merges)
    t = [apply_merges(x, mm) for x in truths]
    p = [apply_merges(x, mm) for x in preds]
    dists = [edit_distance(a, b) for a, b in zip(t, p)]
    total_chars = sum(len(a) for a in t)
    exact = np.array([a == b for a, b in zip(t, p)])
    max_positions = max_positions or max(len(a) for a in t)
    pos_correct = np.zeros(max_positions)
    pos_count = np.zeros(max_positions)
    correct_chars = []
    for a, b in zip(t, p):
        k = 0
        for i, ch in enumerate(a[:max_positions]):
            pos_count[i] += 1
            ok = i < len(b) and b[i] == ch
            pos_correct[i] += ok
            k += ok
        correct_chars.append(k)
    hist = np.bincount(correct_chars, minlength=max_positions + 1)
    wrong = np.array([max(len(a), len(b)) - k for a, b, k in zip(t, p, correct_chars)])  # 0 <=> exact match
    return {
        "count": n,
        "accuracy": float(exact.mean()),
        "acc1": float(np.mean([d <= 1 for d in dists])),
        "char_accuracy": float(max(0.0, 1.0 - sum(dists) / max(total_chars, 1))),
        "length_accuracy": float(np.mean([len(a) == len(b) for a, b in zip(t, p)])),
        "accuracy_no_first": float(np.mean([a[1:] == b[1:] for a, b in zip(t, p)])),
        "per_position_accuracy": [float(c / k) if k else None for c, k in zip(pos_correct, pos_count)],
        "correct_chars_histogram": {str(i): int(v) for i, v in enumerate(hist)},
        "accuracy_at_most_wrong": {str(k): float(np.mean(wrong <= k)) for k in range(max_positions + 1)},
        "merges": list(merges or []),
    }


CONFIDENCE_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def confidence_operating_points(truths: Sequence[str], preds: Sequence[str], confidences,
                                merges: Sequence[str] | None = None,
                                thresholds: Sequence[float] = CONFIDENCE_THRESHOLDS) -> list[dict]:
    """What a deployment gets if it accepts a read only when its confidence is at least ``t`` (and sends the
    rest to review), for each ``t``: ``accepted`` crops and their share (``coverage``), exact-match accuracy
    among them (``accuracy_accepted``; None when none is accepted), and how the misreads and correct reads
    split (``errors_accepted``, ``errors_rejected``, ``correct_rejected``). Merges as :func:`plate_metrics`."""
    conf = np.asarray(confidences, np.float64).ravel()
    if not (len(truths) == len(preds) == len(conf)):
        raise ValueError(f"{len(truths)} truths, {len(preds)} predictions and {len(conf)} confidences")
    mm = merge_map_from(merges)
    right = np.array([apply_merges(a, mm) == apply_merges(b, mm) for a, b in zip(truths, preds)], bool)
    out = []
    for t in thresholds:
        keep = conf >= float(t)
        n = int(keep.sum())
        out.append({"threshold": float(t), "accepted": n, "coverage": float(n / max(len(conf), 1)),
                    "accuracy_accepted": float(right[keep].mean()) if n else None,
                    "errors_accepted": int((keep & ~right).sum()), "errors_rejected": int((~keep & ~right).sum()),
                    "correct_rejected": int((~keep & right).sum())})
    return out


# ---- quality-score agreement (IQ-STAN Table 2, from Kang et al. 2014) ----------------------------
def _paired(a, b) -> tuple:
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{x.size} values against {y.size}; pass paired scores")
    if x.size < 2:
        raise ValueError("need at least 2 paired values")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("scores must be finite numbers")
    return x, y


def lcc(a, b) -> float:
    """Linear (Pearson) correlation coefficient of paired scores; 0.0 when either side is constant."""
    x, y = _paired(a, b)
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else 0.0


def rankdata(a) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks (scipy.stats.rankdata's 'average')."""
    x = np.asarray(a, np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    ranks = np.empty(x.size, np.float64)
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0  # mean of ranks s+1 .. e
    return ranks


def srocc(a, b) -> float:
    """Spearman rank-order correlation coefficient (the LCC of the tie-averaged ranks)."""
    x, y = _paired(a, b)
    return lcc(rankdata(x), rankdata(y))


def psnr(mse) -> np.ndarray:
    """Per-image PSNR in dB of images in [0, 1] from their mean squared errors: ``10 log10(1 / MSE)``
    (MSE floored at 1e-10, so an exact copy reads 100 dB instead of infinity)."""
    return 10.0 * np.log10(1.0 / np.maximum(np.asarray(mse, np.float64), 1e-10))


def correct_chars_table(m: dict) -> str:
    """A markdown table of the number-of-correct-characters view of a :func:`plate_metrics` dict:
    per k, how many plates had exactly k characters right (position by position) and the share read
    with at most k wrong characters (paper Fig. 4)."""
    hist, at_most = m["correct_chars_histogram"], m["accuracy_at_most_wrong"]
    n = max(int(k) for k in hist)
    rows = ["| correct chars | plates | wrong chars <= | share of plates |", "|---|---|---|---|"]
    for k in range(n, -1, -1):
        rows.append(f"| {k} | {hist[str(k)]} | {n - k} | {at_most[str(n - k)]:.3f} |")
    return "\n".join(rows)
