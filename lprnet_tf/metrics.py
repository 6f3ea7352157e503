"""Recognition metrics: the one code path for every model, decoder and export format.

``plate_metrics(truths, preds, merges)``: exact-match accuracy, acc-1 (edit distance <= 1),
character accuracy (1 - CER, CER = total edit distance / total truth length), length accuracy,
accuracy without the first character (the Chinese province), per-position accuracy, and the
number-of-correct-characters histogram. Class merges (e.g. ``O0``) map characters to one class
before comparing and are reported with the figures.
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
    return {
        "count": n,
        "accuracy": float(exact.mean()),
        "acc1": float(np.mean([d <= 1 for d in dists])),
        "char_accuracy": float(max(0.0, 1.0 - sum(dists) / max(total_chars, 1))),
        "length_accuracy": float(np.mean([len(a) == len(b) for a, b in zip(t, p)])),
        "accuracy_no_first": float(np.mean([a[1:] == b[1:] for a, b in zip(t, p)])),
        "per_position_accuracy": [float(c / k) if k else None for c, k in zip(pos_correct, pos_count)],
        "correct_chars_histogram": {str(i): int(v) for i, v in enumerate(hist)},
        "merges": list(merges or []),
    }
