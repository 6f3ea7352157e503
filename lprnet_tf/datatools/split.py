"""Deterministic train/val/test split that never puts one plate on two sides.

Rows are joined into units that must stay together (``by``):

- ``auto`` (default): rows sharing a ``group`` value *or* a plate text (normalized) are one unit,
  transitively; so neither a physical plate (group) nor a plate number appears in two splits;
- ``group``: rows sharing a ``group`` value (a row without one is a unit of its own);
- ``text``: rows with the same plate text;
- ``near``: as ``auto``, and plates one character apart are one unit too (a one-character label error
  gives one physical plate two texts; ``lprnet-data stats`` lists such pairs);
- ``row``: every row alone (leaks repeated plates; only for sets of unrelated images).

Units are ordered by a hash of (seed, unit key) and dealt to ``val`` until it holds ``val`` of
the rows, then to ``test``, the rest to ``train``. The result depends only on the seed and the
set's content, not on the row order; a unit larger than what is left of a target overshoots it
by at most that unit.
"""

from __future__ import annotations

import collections
import hashlib
import os

from lprnet_tf.config import UsageError
from lprnet_tf.data.readers import DataError, scan_rows
from lprnet_tf.datatools.common import check_output_file, normalize, one_apart, rel_path, write_csv

MODES = ("auto", "near", "group", "text", "row")
SPLITS = ("train", "val", "test")


class _Union:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def units(texts: list, groups: list, by: str = "auto") -> list:
    """A unit key per row: rows with the same key must land in the same split."""
    if by not in MODES:
        raise UsageError(f"--by must be one of {', '.join(MODES)}, got '{by}'")
    n = len(texts)
    if by == "row":
        return [f"row:{i}:{t}" for i, t in enumerate(texts)]
    if by == "text":
        return [f"text:{t}" for t in texts]
    if by == "group":
        return [f"group:{g}" if g else f"row:{i}:{t}" for i, (t, g) in enumerate(zip(texts, groups))]
    u = _Union(n)
    first: dict = {}
    for i, (t, g) in enumerate(zip(texts, groups)):
        for k in (f"text:{t}",) + ((f"group:{g}",) if g else ()):
            if k in first:
                u.join(first[k], i)
            else:
                first[k] = i
    if by == "near":
        for a, b in one_apart(texts):
            u.join(first[f"text:{a}"], first[f"text:{b}"])
    # name each unit by its smallest member key, so the name does not depend on the row order
    members = collections.defaultdict(set)
    for i, (t, g) in enumerate(zip(texts, groups)):
        members[u.find(i)].add(f"group:{g}" if g else f"text:{t}")
    name = {r: min(keys) for r, keys in members.items()}
    return [name[u.find(i)] for i in range(n)]


def assign(keys: list, val: float, test: float, seed: int) -> list:
    """A split name per row (``keys``: unit per row, :func:`units`)."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise UsageError(f"--val and --test are fractions of the rows with val + test < 1; got val={val}, test={test}")
    size = collections.Counter(keys)
    if (val > 0 or test > 0) and len(size) < 2:
        raise UsageError(f"all {len(keys)} rows are one plate/group; there is nothing to split")
    order = sorted(size, key=lambda k: hashlib.sha256(f"{seed}\0{k}".encode("utf-8")).hexdigest())
    n = len(keys)
    target = {"val": round(val * n), "test": round(test * n)}
    if val > 0:
        target["val"] = max(target["val"], 1)
    if test > 0:
        target["test"] = max(target["test"], 1)
    got = {"val": 0, "test": 0}
    side = {}
    for k in order:
        for s in ("val", "test"):
            if got[s] < target[s]:
                side[k] = s
                got[s] += size[k]
                break
        else:
            side[k] = "train"
    return [side[k] for k in keys]


def _assign_rows(scan, val: float, test: float, seed: int, by: str) -> tuple:
    """(unit key, split) per scanned row; malformed rows and CCPD boxes are errors."""
    bad = [r for r in scan.rows if r.sample is None]
    if bad:
        raise DataError(f"{bad[0].where}: {bad[0].problem} ({len(bad)} malformed row(s) in all; "
                        f"`lprnet-data validate --fix_out` drops them)")
    if any(r.sample.box is not None for r in scan.rows):
        raise UsageError(f"{scan.source}: CCPD plates are boxes in file names; run `lprnet-data convert` first and "
                         f"split its labels.csv")
    texts = [normalize(r.sample.text) for r in scan.rows]
    groups = [r.sample.group for r in scan.rows]
    keys = units(texts, groups, by)
    return keys, assign(keys, val, test, seed)


def split_of_paths(data: str, val: float = 0.1, test: float = 0.0, seed: int = 0, by: str = "auto",
                   layout: str = "auto") -> dict:
    """``{absolute image path: split}`` exactly as :func:`split_file` would write it (for code that
    needs a derived split without writing a file, e.g. reporting a model on the val side)."""
    scan = scan_rows(data, layout)
    _, sides = _assign_rows(scan, val, test, seed, by)
    return {os.path.abspath(r.sample.path): side for r, side in zip(scan.rows, sides)}


def split_file(data: str, out: str, val: float = 0.1, test: float = 0.0, seed: int = 0, by: str = "auto",
               layout: str = "auto", overwrite: bool = False) -> dict:
    """Write ``data``'s rows with a ``split`` column to ``out`` (all other columns kept, image paths
    relative to ``out``). Returns ``{split: {"rows": n, "units": n}}``."""
    scan = scan_rows(data, layout)
    check_output_file(out, "--out", overwrite, inputs=(scan.source,))
    keys, sides = _assign_rows(scan, val, test, seed, by)
    folder = os.path.dirname(os.path.abspath(out))
    rows = []
    for r, s in zip(scan.rows, sides):
        f = dict(r.fields)
        f["path"] = rel_path(r.sample.path, folder)
        f["split"] = s
        rows.append(f)
    cols = list(scan.columns) + ([] if "split" in scan.columns else ["split"])
    write_csv(out, cols, rows)
    summary = {}
    for s in SPLITS:
        ks = [k for k, side in zip(keys, sides) if side == s]
        if ks or s == "train":
            summary[s] = {"rows": len(ks), "units": len(set(ks))}
    return summary
