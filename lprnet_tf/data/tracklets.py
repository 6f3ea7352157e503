"""Tracklets: K views of one plate, for multi-frame recognizers (IQ-STAN, EQ-LPR).

Layouts (``datasets/README.md``, section Tracklets):

- **tracks**: a ``labels.csv`` with ``track`` and ``frame`` columns (``path,text,track,frame[,quality,…]``);
  rows with the same ``track`` are the frames of one track, ordered by the integer ``frame``. This is
  what ``lprnet-synth --tracklets K`` writes.
- **groups**: a ``labels.csv`` without a ``track`` column; rows with the same ``group`` (or, where
  ``group`` is empty or absent, the same plate text) are unordered views of one physical plate, e.g.
  the repeated real captures of ``../shared/data/br_openalpr_crops``.
- **folders**: one sub-folder per track, ``ROOT/<text>[_<n>]/<frames>.jpg``: the text is the folder name
  up to the first ``_`` (``皖A12345_2/`` is a second track of plate 皖A12345, as in label-in-file-name
  folders), the frames are the images in natural name order (``2.jpg`` before ``10.jpg``).

The text of every frame of a track must be the same after normalisation (a DataError names the rows
otherwise). With ``k`` set, every track yields exactly K frames:

- a longer track gives K of its frames, chosen by ``pick``: ``spread`` (evenly spaced, first and last
  included: keeps the temporal span; the default for tracks and folders), ``random`` (K distinct
  frames drawn with ``numpy.random.default_rng([seed, crc32(track id)])`` from the frames sorted by
  path, then kept in their order: the default for groups, so the same ``seed`` gives the same views
  whatever the row order or the other groups) or ``first``;
- a shorter track follows ``policy``: ``error`` (DataError naming the track, its length and K),
  ``skip`` (left out, counted in the report), ``repeat`` (its frames cycled: 0,1,2,0,1) or
  ``pad_last`` (its last frame repeated: 0,1,2,2,2); repeated frames are flagged in
  ``Tracklet.padded``.

Missing frames (a gap in a track's ``frame`` numbers) are errors under ``policy='error'``; under
``skip`` the track is skipped, under ``repeat``/``pad_last`` the gap is tolerated (the frames present
are used in order) and reported. A frame number used twice in a track, or frames of one track with
different texts, are errors whatever the policy (with ``skip_bad=True`` the track is skipped and
counted). With ``k=None`` tracks are returned whole, and ``policy='error'`` also requires them all to
have the same length.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import sys
import zlib

import numpy as np

from lprnet_tf.data.readers import IMAGE_EXTS, DataError, Sample, _Collector, load_image, read_csv
from lprnet_tf.vocab import PlateFormat

LAYOUTS = ("auto", "tracks", "groups", "folders")
POLICIES = ("error", "skip", "repeat", "pad_last")
PICKS = ("auto", "spread", "random", "first")
_OWN_COLUMNS = ("track", "frame", "quality", "_quality")  # kept in Tracklet fields, not in params


@dataclasses.dataclass
class Tracklet:
    """K views of one plate.

    ``frames``: image paths (``str``) or uint8 RGB arrays; ``quality``: per frame score in [0, 1] or
    None where unknown; ``params``: per frame dict (the CSV's other columns, or synthetic parameters);
    ``where``: per frame ``file:row`` (or path) for messages; ``frame_ids``: the frame numbers
    (tracks), positions in the group (groups) or in the folder (folders) of the frames used;
    ``padded``: True for a frame that repeats an earlier one to reach K.
    """

    track: str
    text: str
    frames: list
    quality: list
    params: list = dataclasses.field(default_factory=list)
    where: list = dataclasses.field(default_factory=list)
    frame_ids: list = dataclasses.field(default_factory=list)
    padded: list = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    def images(self) -> list:
        """The frames as uint8 RGB arrays (paths are read with :func:`load_image`)."""
        return [load_image(f) if isinstance(f, str) else np.asarray(f) for f in self.frames]


@dataclasses.dataclass
class TrackReport:
    """What :func:`read_tracklets` kept, skipped, padded and found missing."""

    source: str
    layout: str
    k: int | None
    policy: str
    tracks: int = 0
    frames: int = 0
    skipped: list = dataclasses.field(default_factory=list)  # (track, reason)
    padded: list = dataclasses.field(default_factory=list)  # (track, frames it had, K)
    gaps: list = dataclasses.field(default_factory=list)  # (track, missing frame numbers)

    def summary(self) -> str:
        s = f"{self.source}: {self.tracks} tracks ({self.layout}), {self.frames} frames"
        if self.k:
            s += f", K={self.k}"
        if self.padded:
            s += f", {len(self.padded)} padded to K by '{self.policy}'"
        if self.gaps:
            s += f", {len(self.gaps)} with missing frames (first: track {self.gaps[0][0]!r} lacks {self.gaps[0][1]})"
        if self.skipped:
            s += f", {len(self.skipped)} skipped (first: track {self.skipped[0][0]!r}: {self.skipped[0][1]})"
        return s


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _rows(samples: list) -> str:
    return ", ".join(s.where.rsplit(":", 1)[-1] for s in samples)


class _Builder:
    """Turns the frames of each track into a Tracklet under the k / policy / pick rules."""

    def __init__(self, report: TrackReport, k, policy: str, pick: str, seed: int, skip_bad: bool):
        self.report, self.k, self.policy, self.pick, self.seed, self.skip_bad = report, k, policy, pick, seed, skip_bad
        self.out: list[Tracklet] = []

    def fail(self, track: str, reason: str, fix: str, by_policy: bool = False) -> None:
        """Problem with a whole track: an error, or a counted skip (with skip_bad, or policy 'skip' for
        problems the policy governs)."""
        if self.skip_bad or (by_policy and self.policy == "skip"):
            self.report.skipped.append((track, reason))
            return
        raise DataError(f"{self.report.source}: track {track!r}: {reason}; {fix}")

    def add(self, track: str, samples: list, ids: list, ordered: bool) -> None:
        texts = collections.OrderedDict()
        for s in samples:
            texts.setdefault(s.text, []).append(s)
        if len(texts) > 1:
            parts = [f"{t!r} (row{'s' if len(v) > 1 else ''} {_rows(v)})" for t, v in texts.items()]
            return self.fail(track, f"frames have different texts: {' and '.join(parts)}",
                             "a track is one plate: fix the labels or give the rows different track/group ids")
        if ordered:
            dup = [f for f, c in collections.Counter(ids).items() if c > 1]
            if dup:
                rows = [s for s, i in zip(samples, ids) if i == dup[0]]
                return self.fail(track, f"frame {dup[0]} appears more than once (rows {_rows(rows)})",
                                 "number the frames of a track 0, 1, 2, ... once each")
            missing = sorted(set(range(min(ids), max(ids) + 1)) - set(ids))
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
                if self.policy in ("error", "skip"):
                    return self.fail(track, f"missing frame(s) {shown} (frames {min(ids)}..{max(ids)})",
                                     "add the missing rows, renumber the frames, or pass policy 'repeat' or "
                                     "'pad_last' to use the frames present", by_policy=True)
                self.report.gaps.append((track, missing))
        n, k = len(samples), self.k
        padded = [False] * n
        if k is None:
            idx = list(range(n))
        elif n >= k:
            pick = self.pick if self.pick != "auto" else ("spread" if ordered else "random")
            if pick == "first":
                idx = list(range(k))
            elif pick == "spread":
                idx = [int(v) for v in np.floor(np.linspace(0, n - 1, k) + 0.5)]
            else:
                # drawn from the views sorted by path, so the row order does not change the pick
                by_path = sorted(range(n), key=lambda i: (samples[i].path, i))
                rng = np.random.default_rng([int(self.seed), zlib.crc32(track.encode("utf-8"))])
                idx = sorted(by_path[int(v)] for v in rng.choice(n, k, replace=False))
            padded = [False] * k
        else:
            if self.policy == "error":
                raise DataError(f"{self.report.source}: track {track!r} has {n} frame(s) but K={k} "
                                f"(rows {_rows(samples)}); pass a smaller K, or policy 'skip', 'repeat' or 'pad_last'")
            if self.policy == "skip":
                self.report.skipped.append((track, f"{n} frame(s) < K={k}"))
                return None
            idx = [i % n for i in range(k)] if self.policy == "repeat" else list(range(n)) + [n - 1] * (k - n)
            padded = [i >= n for i in range(k)]
            self.report.padded.append((track, n, k))
        chosen = [samples[i] for i in idx]
        self.out.append(Tracklet(
            track=track, text=chosen[0].text, frames=[s.path for s in chosen],
            quality=[s.extra.get("_quality") for s in chosen],
            params=[{key: v for key, v in s.extra.items() if key not in _OWN_COLUMNS} for s in chosen],
            where=[s.where for s in chosen], frame_ids=[ids[i] for i in idx], padded=padded))
        self.report.tracks += 1
        self.report.frames += len(chosen)
        return None

    def finish(self) -> tuple:
        r = self.report
        if r.skipped or r.padded or r.gaps:
            print(f"warning: {r.summary()}", file=sys.stderr)
        if not self.out:
            why = (f" ({len(r.skipped)} skipped, first: track {r.skipped[0][0]!r}: {r.skipped[0][1]})"
                   if r.skipped else "")
            raise DataError(f"{r.source}: no usable tracks{why}")
        if self.k is None and self.policy == "error":
            n0 = len(self.out[0])
            for t in self.out[1:]:
                if len(t) != n0:
                    raise DataError(f"{r.source}: track {t.track!r} has {len(t)} frames but track "
                                    f"{self.out[0].track!r} has {n0}; tracks of unequal length need a K "
                                    f"(k=..., with policy 'skip', 'repeat' or 'pad_last' for the short ones)")
        return self.out, r


def _parse_quality(s: Sample) -> None:
    q = str(s.extra.get("quality", "") or "").strip()
    if not q:
        s.extra["_quality"] = None
        return
    try:
        s.extra["_quality"] = float(q)
    except ValueError:
        raise DataError(f"{s.where}: quality {q!r} is not a number; write a score in [0, 1] or leave it "
                        f"empty") from None


def _from_csv(path: str, fmt: PlateFormat, layout: str, b: _Builder, skip_bad, verify_images, split) -> None:
    samples, _ = read_csv(path, fmt, skip_bad=skip_bad, verify_images=verify_images, split=split)
    has_track = "track" in samples[0].extra
    if layout == "auto":
        layout = "tracks" if has_track else "groups"
    b.report.layout = layout
    if layout == "tracks" and not has_track:
        raise DataError(f"{path}: layout 'tracks' needs 'track' and 'frame' columns; add them (or read it as "
                        f"'groups', by the group column)")
    tracks: dict = collections.OrderedDict()
    for s in samples:
        _parse_quality(s)
        if layout == "tracks":
            t = str(s.extra.get("track") or "").strip()
            if not t:
                raise DataError(f"{s.where}: empty track; every row of a tracklet CSV needs a track id")
            if "frame" not in s.extra:
                raise DataError(f"{path}: has a 'track' column but no 'frame' column; add the frame number "
                                f"(0, 1, 2, ...) of every row")
            f = str(s.extra.get("frame") or "").strip()
            try:
                fid = int(f)
            except ValueError:
                raise DataError(f"{s.where}: frame {f!r} is not an integer; number the frames of a track "
                                f"0, 1, 2, ...") from None
        else:
            t = s.group.strip() or s.text
            fid = None
        tracks.setdefault(t, []).append((fid, s))
    for t, items in tracks.items():
        if layout == "tracks":
            items = sorted(items, key=lambda x: x[0])  # stable: duplicates keep their row order
            b.add(t, [s for _, s in items], [f for f, _ in items], ordered=True)
        else:
            b.add(t, [s for _, s in items], list(range(len(items))), ordered=False)


def _from_folders(root: str, fmt: PlateFormat, b: _Builder, skip_bad, verify_images) -> None:
    dirs = sorted((d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))), key=_natural_key)
    col = _Collector(root, fmt, skip_bad, verify_images)
    order = []
    for d in dirs:
        files = sorted((f for f in os.listdir(os.path.join(root, d)) if f.lower().endswith(IMAGE_EXTS)),
                       key=_natural_key)
        for f in files:
            p = os.path.join(root, d, f)
            col.add(Sample(path=p, text=d.split("_")[0], group=d, where=p, extra={"_quality": None}))
        if files:
            order.append(d)
    if not order:
        raise DataError(f"{root}: no sub-folder holds images; a tracklet folder has one sub-folder of frames per "
                        f"track (named by the plate text), or a labels.csv with track,frame columns")
    samples, _ = col.finish()
    by_dir: dict = collections.defaultdict(list)
    for s in samples:
        by_dir[s.group].append(s)
    for d in order:
        if by_dir.get(d):
            b.add(d, by_dir[d], list(range(len(by_dir[d]))), ordered=False)


def read_tracklets(source: str, fmt: PlateFormat, k: int | None = None, layout: str = "auto", policy: str = "error",
                   pick: str = "auto", seed: int = 0, split: str | None = None, skip_bad: bool = False,
                   verify_images: bool = True) -> tuple:
    """Read tracklets from a labels.csv (tracks or groups) or a folder of track folders.

    Returns ``(tracklets, report)``; see the module docstring for ``layout``, ``k``, ``policy``
    (error, skip, repeat, pad_last), ``pick`` (auto, spread, random, first) and ``seed``. ``split``
    keeps the rows of one ``split`` value; ``skip_bad`` skips bad rows (as :func:`read_csv`) and
    tracks whose frames disagree, counting them, instead of raising.
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown tracklet layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if policy not in POLICIES:
        raise DataError(f"unknown policy {policy!r} for short tracks; use one of {', '.join(POLICIES)}")
    if pick not in PICKS:
        raise DataError(f"unknown pick {pick!r}; use one of {', '.join(PICKS)}")
    if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
        raise DataError(f"K must be a positive integer, got {k!r}")
    if not os.path.exists(source):
        raise DataError(f"{source}: no such file or folder; pass a labels.csv or a folder of track folders")
    csv_path = source
    if os.path.isdir(source):
        csv_path = os.path.join(source, "labels.csv")
        if not os.path.isfile(csv_path):
            csv_path = None
    if layout == "folders" or (layout == "auto" and csv_path is None):
        if not os.path.isdir(source):
            raise DataError(f"{source}: layout 'folders' needs a folder with one sub-folder per track")
        b = _Builder(TrackReport(source, "folders", k, policy), k, policy, pick, seed, skip_bad)
        _from_folders(source, fmt, b, skip_bad, verify_images)
        return b.finish()
    if csv_path is None:
        raise DataError(f"{source}: no labels.csv here; layout {layout!r} needs one")
    b = _Builder(TrackReport(csv_path, layout, k, policy), k, policy, pick, seed, skip_bad)
    _from_csv(csv_path, fmt, layout, b, skip_bad, verify_images, split)
    return b.finish()


def synthetic_tracklets(fmt: PlateFormat | str, seed: int, count: int, k: int = 5, start: int = 0,
                        style: str | None = None) -> list:
    """``count`` rendered tracklets (frames as arrays, quality = the no-reference score of each frame,
    params = the synthetic parameters): tracks ``start .. start+count-1`` of
    :func:`lprnet_tf.synth.tracklets.generate_tracklet` run ``seed``."""
    from lprnet_tf.synth.tracklets import generate_tracklet

    out = []
    for i in range(start, start + count):
        frames, text, params = generate_tracklet(fmt, seed, i, k, style=style)
        out.append(Tracklet(track=f"synth:{seed}:{i}", text=text, frames=frames, quality=[p["quality"] for p in params],
                            params=params, where=[f"synth:{seed}:{i}#{t}" for t in range(k)], frame_ids=list(range(k)),
                            padded=[False] * k))
    return out
