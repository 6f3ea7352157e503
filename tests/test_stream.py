"""EQ-LPR stream recognition (``eq-lpr.md`` Algorithm 1): the decision logic, the frame sources,
their errors, and ``lprnet-recognize --stream``."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO

ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


# ------------------------------------------------------------------------------------------------
# Algorithm 1 with fake models: a crop carries its quality (x 1000) in pixel (0, 0)
def crop_of(q: float) -> np.ndarray:
    c = np.zeros((4, 6, 3), np.uint16)
    c[0, 0, 0] = int(round(q * 1000))
    return c


class Fakes:
    """quality_fn / recognize_fn that record every call."""

    def __init__(self):
        self.quality_calls, self.recognize_calls = [], []

    def quality(self, crops):
        self.quality_calls.append(len(crops))
        return np.array([c[0, 0, 0] / 1000.0 for c in crops])

    def recognize(self, crops):
        self.recognize_calls.append([int(c[0, 0, 0]) for c in crops])
        return [f"P{int(c[0, 0, 0])}" for c in crops], [c[0, 0, 0] / 2000.0 for c in crops]


@pytest.fixture
def fakes():
    return Fakes()


def _run(sr, track, qs):
    return [sr.update(track, crop_of(q)) for q in qs]


def test_algorithm1_recognizes_only_strict_improvements(fakes):
    from lprnet_tf.stream import StreamRecognizer

    sr = StreamRecognizer(fakes.quality, fakes.recognize)
    res = _run(sr, "a", [0.2, 0.1, 0.5, 0.5, 0.9])
    assert [r.index for r in res if r.recognized] == [0, 2, 4]
    assert [r.plate for r in res] == ["P200", "P200", "P500", "P500", "P900"]  # line 16: carried
    assert [r.best_quality for r in res] == [0.2, 0.2, 0.5, 0.5, 0.9]
    assert [r.quality for r in res] == [0.2, 0.1, 0.5, 0.5, 0.9]
    assert [r.calls for r in res] == [1, 1, 2, 2, 3]
    assert res[3].confidence == pytest.approx(0.25) and not res[3].recognized
    assert fakes.quality_calls == [1] * 5  # every frame scored (lines 7, 11)
    assert fakes.recognize_calls == [[200], [500], [900]]  # the recognizer read 3 frames (lines 8, 13)
    end = sr.end("a")
    assert (end.track, end.plate, end.best_quality, end.frames, end.calls, end.best_frame) == \
        ("a", "P900", 0.9, 5, 3, 4)
    assert sr.tracks == {}


@pytest.mark.parametrize("qs, want", [([0.4] * 6, [0]), ([0.9, 0.8, 0.3], [0]), ([0.1, 0.2, 0.3], [0, 1, 2]),
                                      ([0.0], [0])])
def test_algorithm1_sequences(fakes, qs, want):
    from lprnet_tf.stream import StreamRecognizer

    res = _run(StreamRecognizer(fakes.quality, fakes.recognize), "t", qs)
    assert [r.index for r in res if r.recognized] == want


def test_interleaved_tracks_keep_separate_state(fakes):
    from lprnet_tf.stream import StreamRecognizer

    sr = StreamRecognizer(fakes.quality, fakes.recognize)
    seq = [("a", 0.5), ("b", 0.1), ("a", 0.4), ("b", 0.3), ("a", 0.6), ("b", 0.3), ("c", 0.05)]
    res = [sr.update(t, crop_of(q)) for t, q in seq]
    assert [(r.track, r.index, r.recognized) for r in res] == [
        ("a", 0, True), ("b", 0, True), ("a", 1, False), ("b", 1, True), ("a", 2, True), ("b", 2, False),
        ("c", 0, True)]
    assert res[5].plate == "P300" and res[4].plate == "P600"
    b = sr.end("b")
    assert (b.plate, b.frames, b.calls, b.best_quality) == ("P300", 3, 2, 0.3)
    done = sr.finish()
    assert [(r.track, r.plate, r.calls, r.frames) for r in done] == [("a", "P600", 2, 3), ("c", "P50", 1, 1)]
    assert sr.tracks == {} and sr.finish() == []
    with pytest.raises(KeyError, match="no open track 'a'"):
        sr.end("a")
    again = sr.update("a", crop_of(0.01))  # an ended id starts a new track
    assert again.index == 0 and again.recognized


def test_batched_paths_equal_frame_by_frame(fakes):
    """update_many / run_track / process(batch=...) make the decisions update() makes, in fewer calls."""
    from lprnet_tf.stream import FrameResult, StreamRecognizer, TrackResult

    rng = np.random.default_rng(0)
    for _ in range(20):
        qs = list(rng.integers(0, 5, rng.integers(1, 12)) / 4.0)  # few values: many ties
        want = _run(StreamRecognizer(fakes.quality, fakes.recognize), "t", qs)
        f = Fakes()
        end, got = StreamRecognizer(f.quality, f.recognize).run_track([crop_of(q) for q in qs], "t")
        assert got == want
        assert f.quality_calls == [len(qs)] and len(f.recognize_calls) == 1  # one call each
        assert end.plate == want[-1].plate and end.calls == want[-1].calls and end.frames == len(qs)
    # interleaved tracks with end markers, batched
    seq = [("a", 0.5), ("b", 0.1), ("a", 0.7), ("b", None), ("a", 0.6), ("c", 0.2)]
    items = [(t, None if q is None else crop_of(q)) for t, q in seq]
    one = list(StreamRecognizer(fakes.quality, fakes.recognize).process(items, batch=1))
    many = list(StreamRecognizer(fakes.quality, fakes.recognize).process(items, batch=4))
    assert one == many
    kinds = [(type(r).__name__, r.track) for r in one]
    assert kinds == [("FrameResult", "a"), ("FrameResult", "b"), ("FrameResult", "a"), ("TrackResult", "b"),
                     ("FrameResult", "a"), ("FrameResult", "c"), ("TrackResult", "a"), ("TrackResult", "c")]
    assert isinstance(one[3], TrackResult) and isinstance(one[0], FrameResult)
    assert one[6].plate == "P700" and one[6].calls == 2


def test_bad_quality_function_is_reported(fakes):
    from lprnet_tf.stream import StreamRecognizer

    with pytest.raises(ValueError, match="track 'x' frame 0; scores must be finite"):
        StreamRecognizer(lambda c: np.array([np.nan]), fakes.recognize).update("x", crop_of(0.1))
    with pytest.raises(ValueError, match="2 scores for 1 crops"):
        StreamRecognizer(lambda c: np.zeros(2), fakes.recognize).update("x", crop_of(0.1))


def test_module_imports_no_tensorflow():
    code = ("import sys, lprnet_tf.stream\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'jax', 'torch'}))")
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------
# frame sources
def write_png(path, value, h=20, w=60):
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def write_video(path, frames, fourcc):
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (w, h))
    assert vw.isOpened(), f"this OpenCV cannot write {fourcc}"
    for f in frames:
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()
    return str(path)


def test_folder_sources(tmp_path, capsys):
    from lprnet_tf.stream import folder_frames, open_stream

    one = tmp_path / "car7"
    one.mkdir()
    for name, v in [("10.png", 30), ("2.png", 20), ("1.png", 10)]:
        write_png(one / name, v)
    (one / "notes.txt").write_text("not an image")
    got = list(folder_frames(str(one)))
    assert [t for t, _ in got] == ["car7"] * 3
    assert [int(c[0, 0, 0]) for _, c in got] == [10, 20, 30]  # natural order: 1, 2, 10
    assert got[0][1].dtype == np.uint8 and got[0][1].shape == (20, 60, 3)

    root = tmp_path / "tracks"
    for d, vals in [("t10", [5]), ("t2", [1, 2]), ("empty", [])]:
        (root / d).mkdir(parents=True)
        for i, v in enumerate(vals):
            write_png(root / d / f"{i}.png", v)
    (root / "t2" / "9.png").write_bytes(b"\x89PNG broken")  # one bad frame: skipped with a warning
    (root / "t5").mkdir()
    (root / "t5" / "0.jpg").write_bytes(b"junk")  # no readable frame: the track is skipped with a warning
    got = list(open_stream(str(root), ends=True))
    assert [(t, None if c is None else int(c[0, 0, 0])) for t, c in got] == [
        ("t2", 1), ("t2", 2), ("t2", None), ("t10", 5), ("t10", None)]
    err = capsys.readouterr().err
    assert "warning:" in err and "9.png" in err and "frame skipped" in err
    assert "t5: none of its 1 image(s) could be read; track skipped" in err


def test_folder_source_errors(tmp_path):
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.stream import folder_frames, open_stream

    with pytest.raises(DataError, match="no such file or folder"):
        open_stream(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="no such folder"):
        folder_frames(str(tmp_path / "missing"))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="empty: folder holds no image files"):
        open_stream(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"junk")
    with pytest.raises(DataError, match="bad: none of its image"):
        list(open_stream(str(tmp_path / "bad")))


@pytest.mark.parametrize("fourcc, ext", [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_video_of_crops(tmp_path, fourcc, ext):
    from lprnet_tf.stream import open_stream

    frames = [np.full((32, 96, 3), (40 * i, 100, 200 - 40 * i), np.uint8) for i in range(4)]
    path = write_video(tmp_path / f"plate9{ext}", frames, fourcc)
    got = list(open_stream(path, ends=True))
    assert [t for t, _ in got] == ["plate9"] * 5 and got[-1][1] is None
    for (_, c), f in zip(got, frames):
        assert c.shape == (32, 96, 3) and c.dtype == np.uint8
        assert np.abs(c.astype(int) - f).mean() < 12  # RGB order kept (lossy codec)


def test_corrupt_video(tmp_path):
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.stream import open_stream, video_frames

    bad = tmp_path / "random.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match="random.mp4: cannot open video"):
        list(open_stream(str(bad)))
    (tmp_path / "zero.avi").write_bytes(b"")
    with pytest.raises(DataError, match="zero.avi: "):
        list(video_frames(str(tmp_path / "zero.avi")))
    with pytest.raises(DataError, match="no such video file"):
        video_frames(str(tmp_path / "none.mp4"))


def scene(n=6, h=120, w=160):
    """Full frames: plate A (red) moves right on frames 0-4, plate B (green) sits still on frames 2-5."""
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 60, np.uint8)
        if i <= 4:
            f[20:44, 10 + 8 * i:10 + 8 * i + 64] = (220, 30, 30)
        if i >= 2:
            f[80:104, 90:154] = (30, 220, 30)
        frames.append(f)
    return frames


def test_boxed_video(tmp_path, capsys):
    from lprnet_tf.stream import open_stream

    video = write_video(tmp_path / "street.avi", scene(), "MJPG")
    rows = ["frame,track,x,y,w,h"] + [f"{i},A,{10 + 8 * i},20,64,24" for i in range(5)] + \
        [f"{i},B,90,80,64,24" for i in range(2, 6)] + ["9,B,90,80,64,24"]  # frame 9: past the end
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    got = list(open_stream(video, boxes=str(csv_path), ends=True))
    seq = [(t, None if c is None else c.shape) for t, c in got]
    assert seq == [("A", (24, 64, 3)), ("A", (24, 64, 3)), ("A", (24, 64, 3)), ("B", (24, 64, 3)),
                   ("A", (24, 64, 3)), ("B", (24, 64, 3)), ("A", (24, 64, 3)), ("B", (24, 64, 3)), ("A", None),
                   ("B", (24, 64, 3)), ("B", None)]
    assert all(c[12, 32, 0] > 150 for t, c in got if t == "A" and c is not None)  # the red plate
    assert all(c[12, 32, 1] > 150 for t, c in got if t == "B" and c is not None)  # the green plate
    assert "1 box row(s) name frames past the video's last frame 5" in capsys.readouterr().err


@pytest.mark.parametrize("rows, match", [
    (["frame,track,x,y,w,h", "0,A,1,2,30,10", "1,A,1,2,30"], r"boxes.csv:3: 5 column\(s\), expected 6"),
    (["0,A,1,2,30,10", "x1,A,1,2,30,10"], r"boxes.csv:2: frame 'x1' is not a frame number"),
    (["0,A,1,2,30,10", "-1,A,1,2,30,10"], r"boxes.csv:2: frame '-1'"),
    (["0,A,1,two,30,10"], r"boxes.csv:1: x,y,w,h 1,two,30,10 are not numbers"),
    (["0,A,1,2,0,10"], r"boxes.csv:1: box .* w, h > 0"),
    (["0,,1,2,30,10"], r"boxes.csv:1: empty track id"),
    (["0,A,1,2,30,10", "0,A,5,5,30,10"], r"boxes.csv:2: track 'A' already has a box in frame 0 \(row 1\)"),
    (["frame,track,x,y,width,h", "0,A,1,2,30,10"], r"boxes.csv:1: header .* lacks column\(s\) w"),
    (["frame,track,x,y,w,h"], r"boxes.csv: no box rows"),
])
def test_bad_box_csv(tmp_path, rows, match):
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.stream import open_stream

    video = write_video(tmp_path / "v.avi", scene(2), "MJPG")
    (tmp_path / "boxes.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=match):
        list(open_stream(video, boxes=str(tmp_path / "boxes.csv")))


def test_box_outside_frame_and_header_order(tmp_path):
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.stream import read_boxes, open_stream

    video = write_video(tmp_path / "v.avi", scene(2), "MJPG")
    (tmp_path / "b.csv").write_text("track,h,w,y,x,frame,note\nA,24,64,20,10,1,ok\n")
    b = read_boxes(str(tmp_path / "b.csv"))[0]
    assert (b.frame, b.track, b.x, b.y, b.w, b.h) == (1, "A", 10, 20, 64, 24)
    (tmp_path / "out.csv").write_text("0,A,500,500,30,10\n")
    with pytest.raises(DataError, match=r"out.csv:1: box .* lies outside the 160x120 frame 0"):
        list(open_stream(video, boxes=str(tmp_path / "out.csv")))
    with pytest.raises(DataError, match="no such box file"):
        open_stream(video, boxes=str(tmp_path / "none.csv"))


def test_iou_tracker():
    from lprnet_tf.stream import IoUTracker, iou

    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0 and iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    tr = IoUTracker(min_iou=0.3, max_missed=1)
    assert tr.step([(0, 0, 40, 10), (100, 50, 40, 10)]) == ([("1", (0, 0, 40, 10)), ("2", (100, 50, 40, 10))], [])
    assert tr.step([(102, 50, 40, 10), (4, 0, 40, 10)]) == ([("2", (102, 50, 40, 10)), ("1", (4, 0, 40, 10))], [])
    assert tr.step([(8, 0, 40, 10)]) == ([("1", (8, 0, 40, 10))], [])  # "2" missed once: kept
    assert tr.step([(12, 0, 40, 10), (104, 50, 40, 10)])[0][1][0] == "2"  # ... and re-found
    assert tr.step([]) == ([], [])
    assert tr.step([(60, 90, 40, 10)]) == ([("3", (60, 90, 40, 10))], ["1", "2"])  # 2 frames unseen: ended
    assert tr.finish() == ["3"]


def test_detected_video_with_injected_detector(tmp_path):
    from lprnet_tf.stream import detected_video_frames

    frames = scene()
    video = write_video(tmp_path / "street.avi", frames, "MJPG")

    def detector(frame):  # the red and green plates, by colour
        boxes = []
        for ch in (0, 1):
            ys, xs = np.nonzero((frame[..., ch] > 150) & (frame[..., 1 - ch] < 100))
            if len(xs):
                boxes.append((int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)))
        return boxes

    got = list(detected_video_frames(video, ends=True, detector=detector, max_missed=0))
    tracks = [t for t, c in got if c is not None]
    assert tracks.count("1") == 5 and tracks.count("2") == 4
    assert [t for t, c in got if c is None] == ["1", "2"]
    assert [(t, c is None) for t, c in got[-3:]] == [("2", False), ("1", True), ("2", True)]  # frame 5 misses "1"


def test_plate_cascade(monkeypatch):
    import lprnet_tf.stream as stream
    from lprnet_tf.config import UsageError

    path = stream.plate_cascade_path()
    if path is None:
        pytest.skip("this OpenCV build ships no plate Haar cascade")
    assert os.path.basename(path) == "haarcascade_russian_plate_number.xml"
    boxes = stream.HaarPlateDetector()(scene(1)[0])
    assert isinstance(boxes, list) and all(len(b) == 4 for b in boxes)
    monkeypatch.setattr(stream, "plate_cascade_path", lambda: None)
    with pytest.raises(UsageError, match="no plate Haar cascade"):
        stream.HaarPlateDetector()


def test_keras_quality_model(tmp_path):
    """--quality MODEL: any Keras model mapping one crop (its input size; grey if 1 channel) to a score."""
    import keras

    from lprnet_tf.modelio import ModelFileError
    from lprnet_tf.stream import StreamRecognizer, load_quality_fn

    inp = keras.Input((16, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(inp)  # (B, 1): the mean grey level in [0, 1]
    model = keras.Model(inp, x)
    (tmp_path / "q").mkdir()
    model.save(str(tmp_path / "q" / "model.keras"))
    qf = load_quality_fn(str(tmp_path / "q"))
    crops = [np.full((30, 90, 3), v, np.uint8) for v in (51, 204, 102)]
    np.testing.assert_allclose(qf(crops), [0.2, 0.8, 0.4], atol=1e-5)
    _, res = StreamRecognizer(qf, Fakes().recognize).run_track(crops)
    assert [r.recognized for r in res] == [True, True, False]
    with pytest.raises(ModelFileError, match="no such model file"):
        load_quality_fn(str(tmp_path / "none.keras"))
    with pytest.raises(ModelFileError, match="a recognizer .*not a quality network"):
        load_quality_fn("br_lprnet_basic")  # a shipped recognizer passed as --quality
    bad = keras.Sequential([keras.Input((None, None, 3)), keras.layers.GlobalAveragePooling2D()])
    bad.save(str(tmp_path / "free.keras"))
    with pytest.raises(ModelFileError, match="fixed H and W"):
        load_quality_fn(str(tmp_path / "free.keras"))


# ------------------------------------------------------------------------------------------------
# output and CLI
def test_run_cli_output_with_fake_recognizer(tmp_path, fakes):
    import io
    import types

    from lprnet_tf.stream import run_cli

    for i, v in enumerate([10, 20, 30]):
        write_png(tmp_path / f"{i}.png", v)

    class FakeRecognizer:
        def recognize(self, crops, decoder):
            return [types.SimpleNamespace(text=f"P{int(c[0, 0, 0])}", confidence=0.5) for c in crops]

    out = io.StringIO()
    assert run_cli(str(tmp_path), lambda: FakeRecognizer(), as_json=True, out=out) == 0
    lines = [json.loads(s) for s in out.getvalue().splitlines()]
    assert [x["event"] for x in lines] == ["frame"] * 3 + ["end"]
    assert lines[0]["recognized"] and lines[0]["frame"] == 0 and 0.0 <= lines[0]["quality"] <= 1.0
    assert lines[-1]["frames"] == 3 and lines[-1]["calls"] == sum(x["recognized"] for x in lines[:3])


def test_cli_stream_with_shipped_model(tmp_path):
    from lprnet_tf.synth.render import sample
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    crops = tmp_path / "plate"
    crops.mkdir()
    for i in range(3):
        image, _, _ = sample(fmt, 5, i)
        cv2.imencode(".png", image[..., ::-1])[1].tofile(str(crops / f"{i}.png"))
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.recognize", "--stream", str(crops), "--model",
                        "cn_lprnet_basic"], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [s.split("\t") for s in r.stdout.strip().splitlines()]
    assert len(lines) == 4 and all(len(x) == 6 for x in lines[:3]) and len(lines[3]) == 5
    assert [x[:2] for x in lines[:3]] == [["plate", "0"], ["plate", "1"], ["plate", "2"]]
    assert lines[0][3] == "1"
    q = [float(x[2]) for x in lines[:3]]
    best = int(np.argmax(q))  # first best: a tie keeps the earlier frame
    assert lines[3][0:2] == ["plate", "END"] and lines[3][2] == lines[best][4]
    recognized = [x[3] == "1" for x in lines[:3]]
    assert recognized == [j == 0 or q[j] > max(q[:j]) for j in range(3)]
    assert lines[3][4] == f"{sum(recognized)}/3"
    assert all(len(x[4]) >= 5 for x in lines[:3])  # the shipped model reads a plate


def test_cli_stream_errors(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lprnet_tf.cli.recognize", *args], env=ENV,
                              capture_output=True, text=True, timeout=120)

    r = cli("--stream", str(tmp_path / "missing"))
    assert r.returncode == 2 and "error:" in r.stderr and "missing: no such file or folder" in r.stderr
    r = cli("--stream", str(tmp_path), "x.png")
    assert r.returncode == 2 and "--stream reads its own SOURCE" in r.stderr
