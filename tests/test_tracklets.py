"""Tracklets: the reader (tracks / groups / folders, K and the short-track policies), the synthetic
generator (determinism, shared plate, smooth parameters, bad frames), controls of place_and_degrade,
the no-reference quality score and the LCC/SROCC helpers."""

import csv
import hashlib
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, SHARED_DATA, write_image
from lprnet_tf.data.readers import DataError
from lprnet_tf.data.tracklets import read_tracklets, synthetic_tracklets
from lprnet_tf.metrics import lcc, rankdata, srocc
from lprnet_tf.quality import (PATCHES, fit_quality_model, quality_map, quality_score, tracklet_quality_map)
from lprnet_tf.synth.degrade import DegradeConfig, place_and_degrade
from lprnet_tf.synth.render import draw_plate, random_text, render_plate, sample, sample_text
from lprnet_tf.synth.spec import synth_spec
from lprnet_tf.synth.tracklets import BAD_KINDS, TrackletConfig, generate_tracklet, write_tracklet_set
from lprnet_tf.vocab import load_plate_format


# ---- reader ------------------------------------------------------------------------------------
def _csv(tmp_path, rows, header="path,text,track,frame,quality", name="labels.csv"):
    """labels.csv with one small image per distinct path; ``rows`` are tuples matching ``header``."""
    (tmp_path / "images").mkdir(exist_ok=True)
    lines = [header]
    for r in rows:
        p = tmp_path / r[0]
        if not p.exists():
            write_image(str(p))
        lines.append(",".join(str(v) for v in r))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _track_rows(track, text, frames, q=0.5):
    return [(f"images/{track}_{f}.jpg", text, track, f, q) for f in frames]


def test_tracks_csv_orders_frames_and_reads_quality(tmp_path, br):
    rows = _track_rows("a", "abc-1234", [2, 0, 1]) + _track_rows("b", "XYZ9876", [1, 0, 2], q="")
    tracks, report = read_tracklets(_csv(tmp_path, rows), br)
    assert [t.track for t in tracks] == ["a", "b"] and report.layout == "tracks" and report.frames == 6
    a = tracks[0]
    assert a.text == "ABC1234" and a.frame_ids == [0, 1, 2] and a.quality == [0.5] * 3
    assert [os.path.basename(f) for f in a.frames] == ["a_0.jpg", "a_1.jpg", "a_2.jpg"]
    assert a.where[0].endswith("labels.csv:3") and a.padded == [False] * 3
    assert tracks[1].quality == [None] * 3
    imgs = a.images()
    assert len(imgs) == 3 and imgs[0].dtype == np.uint8 and imgs[0].shape[2] == 3


def test_text_mismatch_names_track_and_rows(tmp_path, br):
    rows = _track_rows("a", "ABC1234", [0, 1]) + [("images/a_2.jpg", "ABC1235", "a", 2, 0.5)]
    with pytest.raises(DataError, match=r"track 'a': frames have different texts: 'ABC1234' \(rows 2, 3\) and "
                                        r"'ABC1235' \(row 4\)"):
        read_tracklets(_csv(tmp_path, rows), br)
    with pytest.raises(DataError, match=r"no usable tracks \(1 skipped, first: track 'a'"):
        read_tracklets(str(tmp_path / "labels.csv"), br, skip_bad=True)


def test_text_mismatch_skip_bad_keeps_the_others(tmp_path, br, capsys):
    rows = (_track_rows("a", "ABC1234", [0, 1]) + [("images/a_2.jpg", "ABC1235", "a", 2, 0.5)]
            + _track_rows("b", "XYZ9876", [0, 1, 2]))
    tracks, report = read_tracklets(_csv(tmp_path, rows), br, skip_bad=True)
    assert [t.track for t in tracks] == ["b"] and report.skipped[0][0] == "a"
    assert "1 skipped" in capsys.readouterr().err


def test_missing_and_duplicate_frames(tmp_path, br):
    rows = _track_rows("a", "ABC1234", [0, 1, 3]) + _track_rows("b", "XYZ9876", [0, 1, 2, 3])
    path = _csv(tmp_path, rows)
    with pytest.raises(DataError, match=r"track 'a': missing frame\(s\) 2 \(frames 0\.\.3\)"):
        read_tracklets(path, br)
    tracks, report = read_tracklets(path, br, policy="skip")
    assert [t.track for t in tracks] == ["b"] and [s[0] for s in report.skipped] == ["a"]
    tracks, report = read_tracklets(path, br, policy="pad_last", k=4)
    assert tracks[0].frame_ids == [0, 1, 3, 3] and tracks[0].padded == [False, False, False, True]
    assert report.gaps == [("a", [2])]
    dup = _track_rows("a", "ABC1234", [0, 1]) + [("images/a_9.jpg", "ABC1234", "a", 1, 0.5)]
    with pytest.raises(DataError, match=r"track 'a': frame 1 appears more than once \(rows 3, 4\)"):
        read_tracklets(_csv(tmp_path, dup, name="dup.csv"), br, policy="repeat")


def test_unequal_lengths_and_k_policies(tmp_path, br):
    rows = _track_rows("long", "ABC1234", range(5)) + _track_rows("short", "XYZ9876", range(2))
    path = _csv(tmp_path, rows)
    with pytest.raises(DataError, match=r"track 'short' has 2 frames but track 'long' has 5"):
        read_tracklets(path, br)
    whole, _ = read_tracklets(path, br, policy="repeat")  # k=None, lenient: whole tracks
    assert [len(t) for t in whole] == [5, 2]
    with pytest.raises(DataError, match=r"track 'short' has 2 frame\(s\) but K=3 \(rows 7, 8\)"):
        read_tracklets(path, br, k=3)
    tracks, report = read_tracklets(path, br, k=3, policy="skip")
    assert [t.track for t in tracks] == ["long"] and tracks[0].frame_ids == [0, 2, 4]  # spread keeps the span
    assert report.skipped == [("short", "2 frame(s) < K=3")]
    tracks, report = read_tracklets(path, br, k=3, policy="repeat")
    assert tracks[1].frame_ids == [0, 1, 0] and tracks[1].padded == [False, False, True]
    assert report.padded == [("short", 2, 3)]
    tracks, _ = read_tracklets(path, br, k=3, policy="pad_last")
    assert tracks[1].frame_ids == [0, 1, 1]
    tracks, _ = read_tracklets(path, br, k=2, pick="first")
    assert tracks[0].frame_ids == [0, 1]


def test_reader_argument_and_column_errors(tmp_path, br):
    path = _csv(tmp_path, _track_rows("a", "ABC1234", range(3)))
    for kw, msg in ((dict(policy="drop"), "unknown policy 'drop'"), (dict(k=0), "K must be a positive integer"),
                    (dict(layout="video"), "unknown tracklet layout"), (dict(pick="best"), "unknown pick")):
        with pytest.raises(DataError, match=msg):
            read_tracklets(path, br, **kw)
    bad_frame = _csv(tmp_path, [("images/x.jpg", "ABC1234", "a", "one", "")], name="f.csv")
    with pytest.raises(DataError, match=r"f\.csv:2: frame 'one' is not an integer"):
        read_tracklets(bad_frame, br)
    bad_q = _csv(tmp_path, [("images/x.jpg", "ABC1234", "a", 0, "good")], name="q.csv")
    with pytest.raises(DataError, match=r"q\.csv:2: quality 'good' is not a number"):
        read_tracklets(bad_q, br)
    no_track = _csv(tmp_path, [("images/x.jpg", "ABC1234")], header="path,text", name="n.csv")
    with pytest.raises(DataError, match="layout 'tracks' needs 'track' and 'frame' columns"):
        read_tracklets(no_track, br, layout="tracks")
    no_frame = _csv(tmp_path, [("images/x.jpg", "ABC1234", "a")], header="path,text,track", name="nf.csv")
    with pytest.raises(DataError, match="no 'frame' column"):
        read_tracklets(no_frame, br)
    missing_img = tmp_path / "m.csv"
    missing_img.write_text("path,text,track,frame\nimages/nope.jpg,ABC1234,a,0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.csv:2: image .*nope\.jpg does not exist"):
        read_tracklets(str(missing_img), br)
    with pytest.raises(DataError, match="no such file or folder"):
        read_tracklets(str(tmp_path / "absent"), br)


def _group_rows():
    rows = [(f"images/g{i}.jpg", "ABC1234", "ABC1234") for i in range(8)]
    rows += [(f"images/h{i}.jpg", "XYZ9876", "XYZ9876") for i in range(2)]
    rows += [("images/u0.jpg", "BRA2E19", "")]  # no group: grouped by its text
    return rows


def test_groups_sample_k_views_deterministically(tmp_path, br):
    rows = _group_rows()
    path = _csv(tmp_path, rows, header="path,text,group")
    a, report = read_tracklets(path, br, k=3, policy="skip", seed=0)
    assert report.layout == "groups" and [t.track for t in a] == ["ABC1234"]
    assert len(set(a[0].frames)) == 3 and a[0].frame_ids == sorted(a[0].frame_ids)
    b, _ = read_tracklets(path, br, k=3, policy="skip", seed=0)
    assert a[0].frames == b[0].frames
    # the same views whatever the row order
    shuffled = _csv(tmp_path, list(reversed(rows)), header="path,text,group", name="rev.csv")
    c, _ = read_tracklets(shuffled, br, k=3, policy="skip", seed=0)
    assert sorted(c[0].frames) == sorted(a[0].frames)
    picks = {tuple(read_tracklets(path, br, k=3, policy="skip", seed=s)[0][0].frames) for s in range(6)}
    assert len(picks) > 1  # the seed matters
    rep, report = read_tracklets(path, br, k=3, policy="repeat")
    assert [t.track for t in rep] == ["ABC1234", "XYZ9876", "BRA2E19"]
    assert rep[2].frames == [rep[2].frames[0]] * 3 and rep[2].padded == [False, True, True]
    assert len(report.padded) == 2


def test_folder_per_track(tmp_path, br):
    root = tmp_path / "tracks"
    for d, names in (("ABC1234", ["10.jpg", "2.jpg", "1.jpg"]), ("ABC1234_2", ["a.png", "b.png"]),
                     ("XYZ9876", ["f0.jpg", "f1.jpg", "f2.jpg"]), ("empty", [])):
        (root / d).mkdir(parents=True)
        for n in names:
            write_image(str(root / d / n))
    tracks, report = read_tracklets(str(root), br, k=3, policy="pad_last")
    assert report.layout == "folders" and [t.track for t in tracks] == ["ABC1234", "ABC1234_2", "XYZ9876"]
    assert [os.path.basename(f) for f in tracks[0].frames] == ["1.jpg", "2.jpg", "10.jpg"]  # natural order
    assert tracks[1].text == "ABC1234" and tracks[1].padded == [False, False, True]
    (root / "bad€").mkdir()
    write_image(str(root / "bad€" / "0.jpg"))
    with pytest.raises(DataError, match="outside"):
        read_tracklets(str(root), br)
    with pytest.raises(DataError, match="no sub-folder holds images"):
        (tmp_path / "flat").mkdir()
        read_tracklets(str(tmp_path / "flat"), br)


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_DATA, "br_openalpr_crops")), reason="shared BR set absent")
def test_br_groups_as_multiview_tracklets(br):
    src = os.path.join(SHARED_DATA, "br_openalpr_crops")
    a, report = read_tracklets(src, br, k=5, policy="skip", seed=0, verify_images=False)
    b, _ = read_tracklets(src, br, k=5, policy="skip", seed=0, verify_images=False)
    c, _ = read_tracklets(src, br, k=5, policy="skip", seed=1, verify_images=False)
    assert report.layout == "groups" and len(a) > 10 and report.skipped
    assert [t.frames for t in a] == [t.frames for t in b]
    assert [t.frames for t in a] != [t.frames for t in c]
    for t in a:
        assert len(set(t.frames)) == 5 and t.text == t.track and not any(t.padded)
    with pytest.raises(DataError, match="but K=5"):
        read_tracklets(src, br, k=5, verify_images=False)


# ---- generator ---------------------------------------------------------------------------------
def test_generate_tracklet_is_deterministic_and_one_plate():
    fmt = load_plate_format("cn")
    f1, t1, p1 = generate_tracklet(fmt, 3, 7, k=4)
    f2, t2, p2 = generate_tracklet("cn", 3, 7, k=4)
    assert t1 == t2 and p1 == p2 and all(a.tobytes() == b.tobytes() for a, b in zip(f1, f2))
    assert t1 == sample_text(fmt, 3, 7)  # the track's plate is single sample (seed, index)'s plate
    assert len(f1) == 4 and all(f.dtype == np.uint8 and f.ndim == 3 for f in f1)
    for key in ("style", "font", "bg", "fg", "thin"):
        assert len({p[key] for p in p1}) == 1, key
    assert [p["frame"] for p in p1] == [0, 1, 2, 3]
    for p in p1:
        assert 0 <= p["degradation"] <= 1 and 0 <= p["quality"] <= 1 and len(p["quality_map"]) == PATCHES
        assert p["bad"] in ("",) + BAD_KINDS
        assert json.loads(json.dumps(p)) == p
    f3, t3, _ = generate_tracklet(fmt, 3, 8, k=4)
    assert t3 != t1 or f3[0].tobytes() != f1[0].tobytes()


def test_adjacent_frames_are_closer_than_random_pairs():
    tracks = [generate_tracklet("br", 0, i, k=5, quality=False)[2] for i in range(16)]
    for key in ("difficulty", "rotate_deg", "yaw", "lowres", "brightness", "out_h", "light", "degradation"):
        v = np.array([[p[key] for p in t] for t in tracks], np.float64)
        adjacent = np.abs(np.diff(v, axis=1)).mean()
        pairs = np.abs(v[:, None, 0] - v[None, :, 2])[~np.eye(len(v), dtype=bool)].mean()
        assert adjacent < 0.6 * pairs, (key, adjacent, pairs)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_frames_degrade_the_same_trajectory(kind):
    clean = TrackletConfig(bad_p=0.0)
    bad = TrackletConfig(bad_p=1.0, bad_kinds=(kind,))
    worse = []
    for i in range(3):
        f0, _, p0 = generate_tracklet("cn", 1, i, k=2, cfg=clean, quality=False)
        f1, _, p1 = generate_tracklet("cn", 1, i, k=2, cfg=bad, quality=False)
        assert all(p["bad"] == "" for p in p0) and all(p["bad"] == kind for p in p1)
        for a, b in zip(p0, p1):
            assert a["rotate_deg"] == b["rotate_deg"] and a["out_h"] == b["out_h"]  # same trajectory
            worse.append(b["degradation"] >= a["degradation"])
            if kind == "occlusion":
                assert b["occlusion"] > 0 and "occlusion" in b["severity"]
            if kind == "overexposure":
                assert b["exposure"] > a["exposure"]
    assert all(worse)


def test_place_and_degrade_controls_are_applied():
    fmt = load_plate_format("br")
    spec = synth_spec(fmt)
    rng = np.random.default_rng(0)
    text, st = random_text(fmt, rng)
    rgba, _ = draw_plate(spec.style(st), text, rng)
    c = dict(difficulty=0.2, rotate_deg=5.0, yaw=0.0, pitch=0.0, shear=0.0, out_h=50, margins=[0.1] * 4,
             blur=None, noise=None, jpeg=None, lowres=1.0, shadow=None, glare=None, colour="gray", contrast=1.0,
             brightness=0.0, light=0.0, light_dir=0.0, background_seed=5)
    img, p = place_and_degrade(rgba, np.random.default_rng(1), spec.degrade, c)
    img2, _ = place_and_degrade(rgba, np.random.default_rng(2), spec.degrade, c)
    assert img.shape[0] == 50 and p["rotate_deg"] == 5.0 and p["colour"] == "gray"
    assert "blur" not in p and "noise" not in p and "jpeg" not in p
    assert img.tobytes() == img2.tobytes()  # every draw fixed: the generator no longer matters
    assert np.abs(img[..., 0].astype(int) - img[..., 1]).max() <= 1  # grey
    with pytest.raises(ValueError, match="controls\\['blur'\\]"):
        place_and_degrade(rgba, rng, DegradeConfig(), dict(c, blur="zoom"))
    with pytest.raises(ValueError, match="controls\\['colour'\\]"):
        place_and_degrade(rgba, rng, DegradeConfig(), dict(c, colour="sepia"))


# Digest of sample(fmt, 5, i), i < 5 (text, shape, pixels, params), recorded from the code before
# place_and_degrade took `controls`: single synthetic plates must stay bit-identical (training sets
# are reproduced from their seed). Changing the renderer on purpose means updating these digests.
_SINGLE_SAMPLE_DIGESTS = {
    "cn": "87cfc29393be0c7117a7710ec6e83f8111535f69566d26211ffec67b6a88bf26",  # 2026-12-03: + plate-font W, 3, 5
    # a shipped model's saved cn format from before the W/3/5 shapes (no plate_shapes_chars key) keeps its samples:
    # the digest the code before the W/3/5 commit (e54e732^) gives for the same saved format
    "cn_iq_stan": "4d1d00f3844ae010f1614bceb35813b2fac0052f396c62050f75554dde30656e",
    "br": "78abfd46884dfb20355dcf4c71d2c31312f61ff8c921125a03d247dce13b3e73",
    "us": "22f7694efc02056eda2da050b3ea1a130ed8bad29539dc966240e954ccba77a1",
    "tw": "30ba54fd273e89b475309d792e876e3256da76ebbabd7cc6a94c4af3ddea1db7",
}


@pytest.mark.parametrize("name", sorted(_SINGLE_SAMPLE_DIGESTS))
def test_single_samples_are_bit_identical_to_before(name):
    from lprnet_tf.modelio import PRETRAINED_DIR

    saved = os.path.join(PRETRAINED_DIR, name, "plate_format.yaml")
    fmt = load_plate_format(saved if os.path.isfile(saved) else name)
    h = hashlib.sha256()
    for i in range(5):
        img, text, params = sample(fmt, 5, i)
        h.update(text.encode())
        h.update(str(img.shape).encode())
        h.update(img.tobytes())
        h.update(json.dumps(params, sort_keys=True).encode())
    assert h.hexdigest() == _SINGLE_SAMPLE_DIGESTS[name]


def test_write_tracklet_set_round_trip_and_cli(tmp_path, cn):
    out = tmp_path / "tr"
    labels = write_tracklet_set(cn, str(out), count=3, k=4, seed=2, progress=False)
    with open(labels, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and (out / "contact_sheet.png").is_file()
    assert json.loads(rows[0]["params"])["difficulty"] >= 0 and len(rows[0]["quality_map"].split()) == PATCHES
    tracks, report = read_tracklets(str(out), cn, k=4)
    assert report.layout == "tracks" and len(tracks) == 3 and all(len(t) == 4 for t in tracks)
    _, text, params = generate_tracklet(cn, 2, 1, k=4)
    assert tracks[1].text == text and tracks[1].quality == [p["quality"] for p in params]
    mem = synthetic_tracklets(cn, 2, 2, k=4)
    assert mem[1].text == text and mem[1].quality == tracks[1].quality and isinstance(mem[1].frames[0], np.ndarray)
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.synth", "--format", "br", "--count", "2",
                        "--tracklets", "3", "--out", str(tmp_path / "cli"), "--noprogress"],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "2 br tracklets x 3 frames" in r.stdout and (tmp_path / "cli" / "images" / "00001_2.jpg").is_file()
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.synth", "--format", "br", "--tracklets", "-2",
                        "--out", str(tmp_path / "x")], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert r.returncode == 2 and "error: --tracklets must be 0" in r.stderr


# ---- quality score -----------------------------------------------------------------------------
def _clean_plates():
    out = []
    for name in ("cn", "br", "us"):
        fmt = load_plate_format(name)
        rng = np.random.default_rng(11)
        text, st = random_text(fmt, rng)
        out.append(render_plate(fmt, text, rng, st, degrade=False)[0])
    return out


def test_quality_drops_with_blur_and_noise():
    for img in _clean_plates():
        blur = [quality_score(cv2.GaussianBlur(img, (0, 0), s) if s else img) for s in (0, 1, 2, 3)]
        assert all(a > b for a, b in zip(blur, blur[1:])), blur
        noise = [quality_score(np.clip(img + np.random.default_rng(1).normal(0, s, img.shape), 0, 255).astype(np.uint8))
                 for s in (0, 8, 16, 32)]
        assert all(a > b for a, b in zip(noise, noise[1:])), noise
        jpeg = [quality_score(cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], 1))
                for q in (95, 5)]
        assert jpeg[0] > jpeg[1], jpeg
        dark = quality_score((img * 0.15).astype(np.uint8))
        assert dark < blur[0]


def test_quality_map_shapes_and_local_blur():
    img = _clean_plates()[1]
    qm = quality_map(img)
    assert qm.shape == (PATCHES,) and qm.dtype == np.float32 and ((qm >= 0) & (qm <= 1)).all()
    assert quality_score(img) == pytest.approx(float(qm.mean()), abs=1e-6)
    half = img.copy()
    w = img.shape[1]
    half[:, w // 2:] = cv2.GaussianBlur(img, (0, 0), 3)[:, w // 2:]
    qh = quality_map(half)
    assert qh[-2:].mean() < qm[-2:].mean() - 0.2 and abs(qh[:2].mean() - qm[:2].mean()) < 0.05
    grey = quality_map(img[..., 0])  # 2-D input is accepted
    assert grey.shape == (PATCHES,)
    m = tracklet_quality_map([img, half, img, half, img])
    assert m.shape == (5, PATCHES) and m.size == 35  # IQ-STAN's M = 5 frames x 7 patches
    with pytest.raises(ValueError, match="patches"):
        quality_map(img, patches=0)
    with pytest.raises(ValueError, match="too small"):
        quality_map(np.zeros((1, 5, 3), np.uint8))


def test_fit_quality_model_recovers_a_linear_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) * [1, 10, 0.1, 5, 1, 1] + [0, 3, 1, -2, 0, 0]
    y = np.clip(0.5 + 0.05 * x[:, 0] - 0.01 * x[:, 1] + 0.3 * x[:, 2], 0, 1)
    m = fit_quality_model(x, y, l2=0.1)
    assert lcc(m.predict(x), y) > 0.99
    src = m.to_source()
    assert src.startswith("QUALITY_MODEL = QualityModel(") and "bias=" in src
    with pytest.raises(ValueError, match="features must be"):
        fit_quality_model(x, y[:-1])


def test_lcc_srocc_hand_computed():
    a, b = [1, 2, 3, 4, 5], [2, 4, 5, 4, 5]
    # Pearson: sum(da*db)=6, sum(da^2)=10, sum(db^2)=6 -> 6/sqrt(60)
    assert lcc(a, b) == pytest.approx(6 / np.sqrt(60), abs=1e-12)
    # ranks of b with ties averaged: [1, 2.5, 4.5, 2.5, 4.5] -> 7/sqrt(90)
    assert list(rankdata(b)) == [1, 2.5, 4.5, 2.5, 4.5]
    assert srocc(a, b) == pytest.approx(7 / np.sqrt(90), abs=1e-12)
    assert srocc([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0) and lcc([1, 2, 3, 4], [1, 8, 27, 64]) < 0.99
    assert srocc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert lcc([1, 2, 3], [5, 5, 5]) == 0.0
    assert list(rankdata([3, 1, 4, 1, 5])) == [3, 1.5, 4, 1.5, 5]
    for bad in (([1, 2], [1]), ([1], [1]), ([1, np.nan], [1, 2])):
        with pytest.raises(ValueError):
            lcc(*bad)
