"""Quality-gated recognition of plate streams: EQ-LPR, Algorithm 1 (``eq-lpr.md`` §2.1).

A plate seen by a camera gives a *stream* of crops (one per video frame, linked by a tracker). The
expensive recognizer need not read every crop: a cheap quality score is computed for each frame, and
the recognizer runs only on a frame whose quality is **strictly greater** than the best seen so far
on its track; every other frame carries the current best frame's plate. The track's answer is the
plate of its highest-quality frame, available online (no future frames needed).

:class:`StreamRecognizer` follows Algorithm 1 line by line (``i`` = track, ``j`` = frame of track ``i``):

- line 1 (obtain the i-th plate stream P_i): the frame sources below yield ``(track_id, crop)``; one
  stream is the frames sharing a track id. Streams may interleave (a video holds several plates at
  once), so the outer loop of lines 4/20 (``for i``) becomes a dict of per-track states keyed by
  track id, and the inner loop of lines 5/19 (``for j``) is one :meth:`StreamRecognizer.update` call
  per frame, in frame order within each track.
- lines 2-3 (ã_i, r̃_i^(j)): the per-track state holds ``best_quality`` (ã_i), the carried ``plate``
  and its ``confidence`` (r̃_i^(j)).
- lines 6-9 (j = 1): the first frame of a track is always scored (line 7) and recognized (line 8);
  ã_i and r̃_i^(1) are initialised from it (line 9).
- lines 10-11 (j > 1): every later frame is scored.
- lines 12-14: if its score a_i^(j) > ã_i (strictly: a tie keeps the earlier frame), the recognizer
  runs on it (line 13) and ã_i, r̃_i^(j) are updated (line 14).
- lines 15-16: otherwise r̃_i^(j) = r̃_i^(j-1): the best plate so far is carried, the recognizer does
  not run.
- line 21 / Output (ã and R): :meth:`StreamRecognizer.end` returns the track's final plate (the
  r̃ of its last frame = the plate of its best frame), ã_i, and how many frames the recognizer read;
  :meth:`StreamRecognizer.finish` ends every open track.

Whether the recognizer runs depends only on the quality scores, so :meth:`StreamRecognizer.update_many`
(and :meth:`StreamRecognizer.run_track`) score a batch of frames in one ``quality_fn`` call and read
all the frames Algorithm 1 selects in one ``recognize_fn`` call, with results identical to calling
:meth:`~StreamRecognizer.update` frame by frame. ``calls`` counts frames the recognizer read (the
quantity Algorithm 1 saves), not Python calls.

Frame sources (generators of ``(track_id, uint8 RGB crop)``; with ``ends=True`` they also yield
``(track_id, None)`` right after a track's last frame, so a consumer can end it at once):

- :func:`folder_frames`: a folder of crops of one plate (natural name order: ``2.png`` before
  ``10.png``; track id = folder name), or a folder of folders (one track per sub-folder that holds
  images). A single unreadable image inside a folder is skipped with a ``warning:`` line on stderr
  (a sub-folder with no readable image is skipped as a track); no readable image at all is an error.
- :func:`video_frames`: a video file whose frames are crops of one plate (one track, id = file stem).
- :func:`boxed_video_frames`: a full-frame video with plate boxes from a CSV ``frame,track,x,y,w,h``
  (frame numbers from 0, pixels; the header row is optional; a track ends after its last listed frame).
- :func:`detected_video_frames`: a full-frame video, plates found by OpenCV's bundled Russian plate
  Haar cascade (:class:`HaarPlateDetector`) and linked by a greedy IoU tracker (:class:`IoUTracker`);
  a track ends after ``max_missed`` consecutive frames without a detection.

Bad input raises :class:`lprnet_tf.data.readers.DataError` naming the file (and CSV row) and the fix.
This module imports numpy and cv2 only; TensorFlow is imported only when a Keras quality model is
loaded (:func:`keras_quality_fn`). The ``lprnet-recognize --stream`` command is :func:`run_cli`;
see ``docs/stream.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import sys
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from lprnet_tf.data.readers import IMAGE_EXTS, DataError, load_image

QualityFn = Callable[[Sequence[np.ndarray]], np.ndarray]  # N uint8 RGB crops -> (N,) scores
RecognizeFn = Callable[[Sequence[np.ndarray]], tuple]  # N uint8 RGB crops -> (N texts, (N,) confidences)
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm", ".wmv", ".flv", ".ts")
BOX_COLUMNS = ("frame", "track", "x", "y", "w", "h")


# ------------------------------------------------------------------------------------------------
# Algorithm 1
@dataclasses.dataclass
class FrameResult:
    """One frame of a track after Algorithm 1 (lines 6-16)."""

    track: str
    index: int  # 0-based frame number within the track (Algorithm 1's j - 1)
    quality: float  # a_i^(j)
    best_quality: float  # ã_i after this frame
    plate: str  # r̃_i^(j): this frame's recognition if it ran, else the carried best plate
    confidence: float  # the recognizer's confidence for ``plate``
    recognized: bool  # the recognizer ran on this frame
    calls: int  # frames the recognizer has read on this track so far (this one included)


@dataclasses.dataclass
class TrackResult:
    """A finished track (Algorithm 1, line 21): its final plate and quality."""

    track: str
    plate: str  # r̃_i of the last frame = the plate of the best-quality frame
    confidence: float
    best_quality: float  # ã_i
    frames: int  # δ(i)
    calls: int  # frames the recognizer read
    best_frame: int = 0  # index of the frame whose recognition is ``plate``


@dataclasses.dataclass
class _Track:
    """Per-track state (Algorithm 1, lines 2-3)."""

    best_quality: float = -np.inf  # ã_i
    plate: str = ""  # r̃_i
    confidence: float = 0.0
    best_frame: int = 0
    frames: int = 0
    calls: int = 0


class StreamRecognizer:
    """EQ-LPR's online loop (Algorithm 1) over any number of interleaved tracks.

    ``quality_fn(crops) -> (N,)`` scores (higher = better; any real scale), ``recognize_fn(crops) ->
    (texts, confidences)``. Both take a list of uint8 RGB crops. A non-finite quality score is a bug
    of the quality function and raises ``ValueError``.
    """

    def __init__(self, quality_fn: QualityFn, recognize_fn: RecognizeFn):
        self.quality_fn = quality_fn
        self.recognize_fn = recognize_fn
        self.tracks: dict = {}  # track id -> _Track

    # -- the two models ---------------------------------------------------------------------------
    def _scores(self, crops: list, where: list) -> np.ndarray:
        q = np.asarray(self.quality_fn(crops), dtype=np.float64).reshape(-1)
        if q.shape != (len(crops),):
            raise ValueError(f"quality_fn returned {q.size} scores for {len(crops)} crops; it must return one "
                             f"score per crop")
        bad = np.flatnonzero(~np.isfinite(q))
        if len(bad):
            t, j = where[bad[0]]
            raise ValueError(f"quality_fn returned {q[bad[0]]} for track {t!r} frame {j}; scores must be finite")
        return q

    def _read(self, crops: list) -> tuple:
        if not crops:
            return [], []
        texts, conf = self.recognize_fn(crops)
        texts, conf = list(texts), [float(c) for c in np.asarray(conf, dtype=np.float64).reshape(-1)]
        if len(texts) != len(crops) or len(conf) != len(crops):
            raise ValueError(f"recognize_fn returned {len(texts)} texts / {len(conf)} confidences for "
                             f"{len(crops)} crops")
        return texts, conf

    # -- Algorithm 1 --------------------------------------------------------------------------------
    def update(self, track_id, crop: np.ndarray) -> FrameResult:
        """Feed the next frame of ``track_id`` (a new id starts a track): lines 6-16 for one frame."""
        return self.update_many([(track_id, crop)])[0]

    def update_many(self, items: Iterable[tuple]) -> list[FrameResult]:
        """Feed several ``(track_id, crop)`` frames in stream order, with one ``quality_fn`` call for all
        of them and one ``recognize_fn`` call for the frames Algorithm 1 selects. The results equal
        :meth:`update` called on each item in turn."""
        items = [(str(t), c) for t, c in items]
        if not items:
            return []
        # lines 7 / 11: a quality score for every frame
        where = []
        for t, _ in items:
            n = self.tracks[t].frames if t in self.tracks else 0
            where.append((t, n + sum(1 for w in where if w[0] == t)))
        scores = self._scores([c for _, c in items], where)
        # lines 6, 12: which frames the recognizer reads (depends on the scores only)
        best = {t: s.best_quality for t, s in self.tracks.items()}
        selected = []
        for k, ((t, _), q) in enumerate(zip(items, scores)):
            if t not in best or q > best[t]:  # j = 1 (line 6) or a_i^(j) > ã_i (line 12, strict)
                best[t] = q
                selected.append(k)
        texts, conf = self._read([items[k][1] for k in selected])  # lines 8 / 13
        read = dict(zip(selected, zip(texts, conf)))
        # lines 9, 14, 16: update or carry, frame by frame
        out = []
        for k, ((t, _), q) in enumerate(zip(items, scores)):
            s = self.tracks.get(t)
            if s is None:
                s = self.tracks[t] = _Track()
            j = s.frames
            s.frames += 1
            if k in read:
                s.best_quality, s.best_frame = float(q), j
                s.plate, s.confidence = read[k]
                s.calls += 1
            out.append(FrameResult(t, j, float(q), s.best_quality, s.plate, s.confidence, k in read, s.calls))
        return out

    def end(self, track_id) -> TrackResult:
        """Close a track (line 21): its final plate and ã_i; its state is dropped."""
        t = str(track_id)
        if t not in self.tracks:
            raise KeyError(f"no open track {t!r}")
        s = self.tracks.pop(t)
        return TrackResult(t, s.plate, s.confidence, s.best_quality, s.frames, s.calls, s.best_frame)

    def finish(self) -> list[TrackResult]:
        """Close every open track (in the order they started)."""
        return [self.end(t) for t in list(self.tracks)]

    def run_track(self, crops: Sequence[np.ndarray], track_id="track") -> tuple:
        """A whole track at once -> ``(TrackResult, [FrameResult])`` (batched, same results as
        :meth:`update` per frame). ``track_id`` must not be open."""
        t = str(track_id)
        if t in self.tracks:
            raise ValueError(f"track {t!r} is open; end it first or use another id")
        if not len(crops):
            raise ValueError("run_track needs at least one crop")
        frames = self.update_many((t, c) for c in crops)
        return self.end(t), frames

    def process(self, stream: Iterable[tuple], batch: int = 1) -> Iterator:
        """Run a frame source: yields each :class:`FrameResult` and, when a track ends (a
        ``(track_id, None)`` item, or the end of the stream), its :class:`TrackResult`. Up to
        ``batch`` frames are scored (and recognized) together; a track end flushes the batch first."""
        pending: list = []
        for t, crop in stream:
            if crop is None:
                yield from self.update_many(pending)
                pending = []
                if str(t) in self.tracks:
                    yield self.end(t)
                continue
            pending.append((t, crop))
            if len(pending) >= batch:
                yield from self.update_many(pending)
                pending = []
        yield from self.update_many(pending)
        yield from self.finish()


# ------------------------------------------------------------------------------------------------
# quality functions
def pqs_quality_fn() -> QualityFn:
    """The default quality: the no-reference plate quality score PQS of each crop
    (:func:`lprnet_tf.quality.quality_score`, numpy/cv2 only, about 15 ms per crop)."""
    from lprnet_tf.quality import quality_score

    return lambda crops: np.array([quality_score(c) for c in crops], np.float64)


def resolve_quality_model(spec: str) -> str:
    """A quality model spec -> its ``.keras`` file (a file, a folder/run directory holding
    ``best.keras``, ``model.keras`` or ``last.keras``, or a shipped name such as ``cn_eq_lpr_e``)."""
    from lprnet_tf.modelio import model_file

    return model_file(spec)


def keras_quality_fn(model, batch_size: int = 64) -> QualityFn:
    """Wrap a Keras model mapping a crop to a quality (in [0, 1] by convention) as a quality_fn.

    Input: ``model.input_shape`` = ``(None, H, W, C)`` (:func:`lprnet_tf.modelio.input_shape_of`); each crop is resized to H x W with the
    runtime's rule (:func:`lprnet_tf.runtime.resize_crop`), converted to grey when C = 1, scaled to
    float32 [0, 1]. Output: ``(N,)`` or ``(N, 1)`` is the score; ``(N, M)`` (patch scores) is averaged
    over M; a dict output uses its ``"quality"`` entry (or its only entry).
    """
    import tensorflow as tf

    from lprnet_tf.modelio import ModelFileError, input_shape_of
    from lprnet_tf.runtime import resize_crop

    from lprnet_tf.models.registry import MODELS, model_kind

    name = getattr(model, "name", "model")
    kind = model_kind(model)
    try:
        out_shape = model.output_shape  # (N,), (N, 1) or (N, M) for a quality model; (N, T, C) for a recognizer
    except (AttributeError, ValueError, RuntimeError):
        out_shape = None
    if (name in MODELS and kind != "quality") or (isinstance(out_shape, tuple) and len(out_shape) > 2):
        what = {"ctc": "a recognizer", "slot": "a recognizer", "attn": "a multi-frame recognizer",
                "gan": "an MTGAN", "image": "a DGM"}.get(kind, "not a quality model")
        raise ModelFileError(f"quality model {name}: {what} (output {out_shape}), not a "
                             f"quality network; pass an EQ-LPR quality model (e.g. cn_eq_lpr_e) or leave the default "
                             f"(PQS), and the recognizer as --model")
    try:
        shape = (None, *input_shape_of(model))  # an EQ-LPR QualityNet: its functional net's input
    except (AttributeError, ValueError):
        shape = None
    if not isinstance(shape, tuple) or len(shape) != 4 or not all(isinstance(v, int) for v in shape[1:]) \
            or shape[3] not in (1, 3):
        raise ModelFileError(f"quality model {name}: input shape {shape} is not (None, H, W, 1 or 3) with a fixed "
                             f"H and W; a quality model takes one crop and returns its score")
    h, w, c = shape[1:]
    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec((None, h, w, c), tf.float32)])

    def prep(crop):
        x = resize_crop(np.asarray(crop, np.uint8), h, w)
        if c == 1:
            x = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
        return x.astype(np.float32) * (1.0 / 255.0)

    def score(crops):
        out = []
        for i in range(0, len(crops), batch_size):
            y = fn(np.stack([prep(c) for c in crops[i:i + batch_size]]))
            if isinstance(y, dict):
                if "quality" in y:
                    y = y["quality"]
                elif len(y) == 1:
                    y = next(iter(y.values()))
                else:
                    raise ModelFileError(f"quality model {name}: dict output {sorted(y)} has no 'quality' entry")
            y = np.asarray(y, np.float64)
            out.append(y.reshape(len(y), -1).mean(axis=1))  # (B,) / (B, 1) / (B, M) patch scores -> (B,)
        return np.concatenate(out)

    return score


def load_quality_fn(spec: str | None, batch_size: int = 64) -> QualityFn:
    """``None`` or ``"pqs"``: :func:`pqs_quality_fn`; an exported EQ-LPR quality network (a ``.tflite``
    file with its sidecar, or its SavedModel folder, from ``lprnet-export``): its
    :meth:`lprnet_tf.runtime.QualityScorer.score` (LiteRT, no TensorFlow for the ``.tflite``); else a
    Keras quality model file/folder or shipped name (:func:`keras_quality_fn`, loaded with
    :func:`lprnet_tf.modelio.load_model`, safe mode)."""
    if spec is None or spec == "pqs":
        return pqs_quality_fn()
    from lprnet_tf.runtime import QualityScorer, is_savedmodel

    if spec.endswith(".tflite") or is_savedmodel(spec):
        return QualityScorer(spec).score
    from lprnet_tf.modelio import load_model

    return keras_quality_fn(load_model(resolve_quality_model(spec)), batch_size)


# ------------------------------------------------------------------------------------------------
# frame sources
def natural_key(name: str) -> list:
    """Sort key putting ``2.png`` before ``10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _images_in(folder: str) -> list[str]:
    return sorted((f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS)
                   and os.path.isfile(os.path.join(folder, f))), key=natural_key)


def _folder_gen(tracks: list, ends: bool, root: str):
    total = 0
    for track, folder, files in tracks:
        read = 0
        for f in files:
            try:
                crop = load_image(os.path.join(folder, f))
            except DataError as e:
                print(f"warning: {e}; frame skipped", file=sys.stderr)
                continue
            read += 1
            yield track, crop
        total += read
        if read == 0 and len(tracks) > 1:
            print(f"warning: {folder}: none of its {len(files)} image(s) could be read; track skipped", file=sys.stderr)
        elif ends:
            yield track, None
    if total == 0:
        raise DataError(f"{root}: none of its image(s) could be read; replace or remove them")


def folder_frames(path: str, ends: bool = False) -> Iterator[tuple]:
    """Frames from a folder of crops (one track, id = folder name) or a folder of folders (one
    track per sub-folder holding images, natural order). A folder holding image files is one track
    (its sub-folders are then ignored). Unreadable images are skipped with a warning (a sub-folder
    with no readable image is skipped as a track); DataError if no image at all can be read."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such folder; pass a folder of plate crops, a video or an image")
    if not os.path.isdir(path):
        raise DataError(f"{path}: not a folder")
    files = _images_in(path)
    if files:
        tracks = [(os.path.basename(os.path.normpath(path)) or "track", path, files)]
    else:
        tracks = []
        for d in sorted((d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))), key=natural_key):
            sub = _images_in(os.path.join(path, d))
            if sub:
                tracks.append((d, os.path.join(path, d), sub))
        if not tracks:
            raise DataError(f"{path}: folder holds no image files ({', '.join(IMAGE_EXTS)}) and no sub-folder "
                            f"with images; put the crops of one plate in it, or one sub-folder per plate")
    return _folder_gen(tracks, ends, path)


def open_video(path: str) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` of a video file, or DataError if it is missing or cannot be decoded."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such video file; check the path")
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a file")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open video (corrupt, empty, or a codec this OpenCV build lacks); "
                        f"re-encode it (e.g. MJPG .avi or mp4v .mp4) or pass a folder of frames")
    return cap


def _video_gen(cap: cv2.VideoCapture, path: str):
    """Yield ``(frame number, uint8 RGB frame)``; DataError if not one frame decodes."""
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            else:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield n, frame
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{path}: video has no decodable frame (corrupt or empty); re-encode it or pass a folder "
                        f"of frames")


def video_frames(path: str, ends: bool = False, track: str | None = None) -> Iterator[tuple]:
    """Frames of a video whose every frame is a crop of one plate: one track (id = file stem)."""
    cap = open_video(path)
    track = track or os.path.splitext(os.path.basename(path))[0]

    def gen():
        for _, frame in _video_gen(cap, path):
            yield track, frame
        if ends:
            yield track, None

    return gen()


def _crop_box(frame: np.ndarray, x: float, y: float, w: float, h: float):
    """The part of ``frame`` inside box (x, y, w, h), clipped; None if less than 2 x 2 pixels remain."""
    fh, fw = frame.shape[:2]
    x1, y1 = max(0, int(round(x))), max(0, int(round(y)))
    x2, y2 = min(fw, int(round(x + w))), min(fh, int(round(y + h)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return np.ascontiguousarray(frame[y1:y2, x1:x2])


@dataclasses.dataclass
class Box:
    """One row of a box CSV."""

    frame: int
    track: str
    x: float
    y: float
    w: float
    h: float
    where: str  # "file:row"


def read_boxes(path: str) -> list[Box]:
    """Read a box CSV: rows ``frame,track,x,y,w,h`` (frame from 0; x, y = top-left pixel; w, h > 0).

    An optional header names the columns (any order, extra columns ignored). Each bad row raises
    DataError ``file:row: problem; fix``; so does a track with two boxes in one frame.
    """
    if not os.path.exists(path):
        raise DataError(f"{path}: no such box file; pass a CSV with rows frame,track,x,y,w,h")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [(i + 1, r) for i, r in enumerate(csv.reader(f)) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read box CSV ({e}); save it as UTF-8 text with rows frame,track,x,y,w,h") \
            from None
    cols = list(range(len(BOX_COLUMNS)))
    if rows and any(c.strip().lower() in BOX_COLUMNS for c in rows[0][1]):  # a header row
        n, head = rows.pop(0)
        names = [c.strip().lower() for c in head]
        missing = [c for c in BOX_COLUMNS if c not in names]
        if missing:
            raise DataError(f"{path}:{n}: header {','.join(head)} lacks column(s) {', '.join(missing)}; the header "
                            f"must name {','.join(BOX_COLUMNS)} (or leave the header out)")
        cols = [names.index(c) for c in BOX_COLUMNS]
    if not rows:
        raise DataError(f"{path}: no box rows; add one row frame,track,x,y,w,h per plate box")
    boxes, seen = [], {}
    for n, r in rows:
        where = f"{path}:{n}"
        if len(r) <= max(cols):
            raise DataError(f"{where}: {len(r)} column(s), expected {len(BOX_COLUMNS)} ({','.join(BOX_COLUMNS)}); "
                            f"fix the row")
        frame, track, *xywh = (r[c].strip() for c in cols)
        if not re.fullmatch(r"[0-9]+", frame):
            raise DataError(f"{where}: frame {frame!r} is not a frame number (0, 1, 2, ...); fix the row")
        if not track:
            raise DataError(f"{where}: empty track id; give every box the id of its plate's track")
        try:
            x, y, w, h = (float(v) for v in xywh)
        except ValueError:
            raise DataError(f"{where}: x,y,w,h {','.join(xywh)} are not numbers; give the box in pixels") from None
        if not all(np.isfinite([x, y, w, h])) or w <= 0 or h <= 0:
            raise DataError(f"{where}: box x={x:g} y={y:g} w={w:g} h={h:g} needs finite values and w, h > 0; "
                            f"fix the row")
        key = (int(frame), track)
        if key in seen:
            raise DataError(f"{where}: track {track!r} already has a box in frame {frame} (row {seen[key]}); keep "
                            f"one box per track and frame")
        seen[key] = n
        boxes.append(Box(int(frame), track, x, y, w, h, where))
    return boxes


def boxed_video_frames(path: str, boxes_csv: str, ends: bool = False) -> Iterator[tuple]:
    """Crops of the boxes listed in ``boxes_csv`` (:func:`read_boxes`) from a full-frame video, in
    frame order (within a frame: CSV row order). A track ends after the last frame that lists it.
    Boxes on frames past the end of the video are ignored with a warning; a box lying entirely
    outside its frame raises DataError naming the row."""
    boxes = read_boxes(boxes_csv)
    cap = open_video(path)
    by_frame: dict = {}
    last: dict = {}
    for b in boxes:
        by_frame.setdefault(b.frame, []).append(b)
        last[b.track] = max(last.get(b.track, -1), b.frame)
    final = max(by_frame)

    def gen():
        n = -1
        open_tracks = set()
        for n, frame in _video_gen(cap, path):
            for b in by_frame.get(n, ()):
                crop = _crop_box(frame, b.x, b.y, b.w, b.h)
                if crop is None:
                    fh, fw = frame.shape[:2]
                    raise DataError(f"{b.where}: box x={b.x:g} y={b.y:g} w={b.w:g} h={b.h:g} lies outside the "
                                    f"{fw}x{fh} frame {n}; fix the box (pixels, top-left origin)")
                open_tracks.add(b.track)
                yield b.track, crop
            if ends:
                for b in by_frame.get(n, ()):
                    if last[b.track] == n:
                        open_tracks.discard(b.track)
                        yield b.track, None
            if n >= final:
                return
        late = [b for b in boxes if b.frame > n]
        print(f"warning: {boxes_csv}: {len(late)} box row(s) name frames past the video's last frame {n} (first: "
              f"{late[0].where}); they were ignored", file=sys.stderr)
        if ends:
            for t in sorted(open_tracks, key=natural_key):
                yield t, None

    return gen()


def plate_cascade_path() -> str | None:
    """OpenCV's bundled Russian plate Haar cascade, or None if this OpenCV build lacks it."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not folder:
        return None
    for name in ("haarcascade_russian_plate_number.xml", "haarcascade_license_plate_rus_16stages.xml"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


class HaarPlateDetector:
    """Plate boxes ``(x, y, w, h)`` in a full RGB frame from OpenCV's Russian plate Haar cascade
    (``haarcascade_russian_plate_number.xml``, shipped with opencv-python in ``cv2.data.haarcascades``).
    A simple, fast detector that finds wide one-row plates seen roughly head-on; for anything else
    give the boxes from your own detector as a CSV (:func:`boxed_video_frames`)."""

    def __init__(self, path: str | None = None, scale: float = 1.1, neighbors: int = 4, min_size=(40, 12)):
        from lprnet_tf.config import UsageError

        path = path or plate_cascade_path()
        if path is None:
            raise UsageError("this OpenCV build has no plate Haar cascade (cv2.data.haarcascades lacks "
                             "haarcascade_russian_plate_number.xml); install opencv-python(-headless) or give the "
                             "plate boxes as a CSV (--boxes FILE.csv)")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise UsageError(f"{path}: cannot load the Haar cascade; reinstall opencv or give boxes as a CSV")
        self.scale, self.neighbors, self.min_size = scale, neighbors, tuple(min_size)

    def __call__(self, frame: np.ndarray) -> list[tuple]:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        found = self.cascade.detectMultiScale(gray, scaleFactor=self.scale, minNeighbors=self.neighbors,
                                              minSize=self.min_size)
        return [tuple(int(v) for v in b) for b in (found if len(found) else [])]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


class IoUTracker:
    """Greedy IoU tracker: each frame's boxes are matched to the open tracks' last boxes by IoU
    (highest pairs first, at least ``min_iou``); an unmatched box starts a new track (ids ``"1"``,
    ``"2"``, ...). A track survives up to ``max_missed`` consecutive frames without a match and ends
    at the next one."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5):
        if max_missed < 0 or not 0.0 < min_iou <= 1.0:
            raise ValueError("IoUTracker needs max_missed >= 0 and 0 < min_iou <= 1")
        self.min_iou, self.max_missed = float(min_iou), int(max_missed)
        self.tracks: dict = {}  # id -> [last box, consecutive missed frames]
        self.next_id = 1

    def step(self, boxes: Sequence[tuple]) -> tuple:
        """One frame's boxes -> ``([(track_id, box)], [ended track ids])``."""
        pairs = sorted(((iou(t[0], b), tid, k) for tid, t in self.tracks.items() for k, b in enumerate(boxes)),
                       key=lambda p: -p[0])
        used_t, used_b, assigned = set(), set(), {}
        for v, tid, k in pairs:
            if v < self.min_iou:
                break
            if tid in used_t or k in used_b:
                continue
            used_t.add(tid)
            used_b.add(k)
            assigned[k] = tid
        out = []
        for k, b in enumerate(boxes):
            tid = assigned.get(k)
            if tid is None:
                tid = str(self.next_id)
                self.next_id += 1
            self.tracks[tid] = [tuple(b), 0]
            out.append((tid, tuple(b)))
        ended, seen = [], {t for t, _ in out}
        for tid in list(self.tracks):
            if tid not in seen:
                self.tracks[tid][1] += 1
                if self.tracks[tid][1] > self.max_missed:
                    del self.tracks[tid]
                    ended.append(tid)
        return out, ended

    def finish(self) -> list[str]:
        """End every open track."""
        ended = list(self.tracks)
        self.tracks.clear()
        return ended


def detected_video_frames(path: str, ends: bool = False, detector: Callable | None = None,
                          max_missed: int = 5, min_iou: float = 0.3) -> Iterator[tuple]:
    """Plate crops found in a full-frame video by ``detector`` (default :class:`HaarPlateDetector`:
    RGB frame -> list of ``(x, y, w, h)``), linked into tracks by :class:`IoUTracker`."""
    detector = detector or HaarPlateDetector()
    tracker = IoUTracker(min_iou, max_missed)
    cap = open_video(path)

    def gen():
        for _, frame in _video_gen(cap, path):
            found, ended = tracker.step([tuple(b) for b in detector(frame)])
            for tid, b in found:
                crop = _crop_box(frame, *b)
                if crop is not None:
                    yield tid, crop
            if ends:
                for tid in ended:
                    yield tid, None
        if ends:
            for tid in tracker.finish():
                yield tid, None

    return gen()


def open_stream(source: str, boxes: str | None = None, ends: bool = False, max_missed: int = 5) -> Iterator[tuple]:
    """The frame source for ``source``: a folder (:func:`folder_frames`), an image (a one-frame track),
    or a video: crops (:func:`video_frames`), with ``boxes`` = a CSV (:func:`boxed_video_frames`) or
    ``"detect"`` (:func:`detected_video_frames`)."""
    from lprnet_tf.config import UsageError

    if not os.path.exists(source):
        raise DataError(f"{source}: no such file or folder; pass a folder of plate crops or a video")
    if os.path.isdir(source):
        if boxes:
            raise UsageError(f"--boxes applies to a full-frame video, but {source} is a folder; drop --boxes")
        return folder_frames(source, ends)
    if source.lower().endswith(IMAGE_EXTS):
        if boxes:
            raise UsageError(f"--boxes applies to a full-frame video, but {source} is an image; drop --boxes")
        track = os.path.splitext(os.path.basename(source))[0]
        return iter([(track, load_image(source))] + ([(track, None)] if ends else []))
    if boxes == "detect":
        return detected_video_frames(source, ends, max_missed=max_missed)
    if boxes:
        return boxed_video_frames(source, boxes, ends)
    return video_frames(source, ends)


# ------------------------------------------------------------------------------------------------
# lprnet-recognize --stream
def recognizer_fn(recognizer, decoder: str = "greedy", prior=None) -> RecognizeFn:
    """A :class:`lprnet_tf.runtime.Recognizer` as a recognize_fn (one batched model call per list); ``prior``: a
    :class:`lprnet_tf.decoding.LocalPrior` for the beam / template decoder."""

    def read(crops):
        plates = (recognizer.recognize(list(crops), decoder) if prior is None  # (duck-typed recognizers too)
                  else recognizer.recognize(list(crops), decoder, prior=prior))
        return [p.text for p in plates], [p.confidence for p in plates]

    return read


def format_result(r, as_json: bool = False) -> str:
    """One output line: a frame ``track, frame, quality, recognized (0/1), plate, confidence`` or a
    track end ``track, END, plate, confidence, calls/frames`` (tab-separated, or a JSON object)."""
    import json

    if isinstance(r, FrameResult):
        if as_json:
            return json.dumps({"event": "frame", "track": r.track, "frame": r.index, "quality": round(r.quality, 6),
                               "best_quality": round(r.best_quality, 6), "recognized": r.recognized,
                               "plate": r.plate, "confidence": round(r.confidence, 6), "calls": r.calls},
                              ensure_ascii=False)
        return f"{r.track}\t{r.index}\t{r.quality:.4f}\t{int(r.recognized)}\t{r.plate}\t{r.confidence:.4f}"
    if as_json:
        return json.dumps({"event": "end", "track": r.track, "plate": r.plate, "confidence": round(r.confidence, 6),
                           "best_quality": round(r.best_quality, 6), "best_frame": r.best_frame,
                           "frames": r.frames, "calls": r.calls}, ensure_ascii=False)
    return f"{r.track}\tEND\t{r.plate}\t{r.confidence:.4f}\t{r.calls}/{r.frames}"


def run_cli(source: str, recognizer, quality: str | None = None, boxes: str | None = None,
            decoder: str = "greedy", as_json: bool = False, batch: int = 32, out=None, prior_for=None) -> int:
    """``lprnet-recognize --stream SOURCE``: run :class:`StreamRecognizer` over a frame source and
    print one line per frame and per track end (:func:`format_result`). ``recognizer``: a
    :class:`lprnet_tf.runtime.Recognizer`, or a function returning one (called after the source is
    checked, so a wrong path fails before a model loads). ``prior_for(recognizer)``: the
    :class:`lprnet_tf.decoding.LocalPrior` to decode with, or None. Returns the exit code."""
    out = out or sys.stdout
    frames = open_stream(source, boxes, ends=True)
    if callable(recognizer) and not hasattr(recognizer, "recognize"):
        recognizer = recognizer()
    if getattr(recognizer, "frames", 0):  # a multi-frame model (IQ-STAN) reads K crops at once
        from lprnet_tf.config import UsageError

        raise UsageError(f"--stream runs a single-crop recognizer on selected frames, but the model reads "
                         f"K={recognizer.frames} frames of a plate; use lprnet-recognize --frames "
                         f"{recognizer.frames} FOLDER, or a single-crop --model")
    prior = prior_for(recognizer) if prior_for is not None else None
    sr = StreamRecognizer(load_quality_fn(quality, batch), recognizer_fn(recognizer, decoder, prior))
    for r in sr.process(frames, batch=batch):
        print(format_result(r, as_json), file=out)
        if isinstance(r, TrackResult):
            out.flush()
    out.flush()
    return 0
