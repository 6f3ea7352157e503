"""Host runtime (no TensorFlow) and the lprnet-recognize CLI."""

import json
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from conftest import REPO
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    """Untrained lprnet_reduced (cn): .keras file, TFLite f32 (batch 1 + dynamic), SavedModel, crops on disk."""
    import keras

    from lprnet_tf import export
    from lprnet_tf.data.pipeline import SynthSource
    from lprnet_tf.models import build_model
    from lprnet_tf.modelio import save_model
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    keras.utils.set_random_seed(3)
    model = build_model("lprnet_reduced", fmt)
    root = tmp_path_factory.mktemp("runtime")
    keras_path = save_model(model, str(root / "model" / "model.keras"), fmt)
    tfl = export.export_tflite(model, fmt, str(root / "tflite"), "lpr", variants=("f32",))
    saved = export.export_savedmodel(model, fmt, str(root / "sm"), "lpr", 1)
    src = SynthSource(fmt, 21)
    crops = [src.get(i)[0] for i in range(6)]
    (root / "crops").mkdir()
    paths = []
    for i, c in enumerate(crops):
        paths.append(str(root / "crops" / f"{i}.{'png' if i % 2 else 'jpg'}"))
        cv2.imencode(os.path.splitext(paths[-1])[1], c[..., ::-1])[1].tofile(paths[-1])
    from lprnet_tf.runtime import read_image

    return types.SimpleNamespace(fmt=fmt, model=model, root=root, keras_path=keras_path, tflite=tfl[0],
                                 tflite_batch=tfl[1], saved=saved, crops=crops, paths=paths,
                                 decoded=[read_image(p) for p in paths])  # what the files decode to


def test_import_does_not_load_tensorflow():
    code = ("import sys, lprnet_tf.runtime, lprnet_tf.cli.recognize\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'jax', 'torch'}))")
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("shape", [(24, 94), (60, 200), (20, 80), (40, 60), (100, 90)])
def test_runtime_preprocess_is_what_training_and_evaluation_feed(shape, cn):
    """The runtime's preprocessing gives bit-identical input to the training/evaluation pipeline."""
    from lprnet_tf.data.pipeline import ExampleMaker, SampleSource
    from lprnet_tf.runtime import preprocess_batch

    img = (np.random.default_rng(shape[0]).random(shape + (3,)) * 255).astype(np.uint8)

    class One(SampleSource):
        def __len__(self):
            return 1

        def get(self, i):
            return img, "皖A12345"

    x, _ = ExampleMaker(One(), cn, augment="none").batch(0, 1)
    a = preprocess_batch([img], cn)
    assert a.dtype == np.float32 and a.shape == (1, 24, 94, 3)
    assert np.array_equal(a, x)  # bit-identical


def test_recognizer_tflite_matches_keras(rt):
    from lprnet_tf.decoding import decode
    from lprnet_tf.runtime import Recognizer, preprocess_batch

    ref_texts, ref_conf = decode(np.asarray(rt.model(preprocess_batch(rt.crops, rt.fmt), training=False)), rt.fmt)
    rec = Recognizer(rt.tflite)  # plate format from the sidecar
    assert rec.fmt == rt.fmt
    res = rec.recognize(rt.crops)
    assert [r.text for r in res] == ref_texts
    np.testing.assert_allclose([r.confidence for r in res], ref_conf, atol=1e-4)
    assert all(r.matches_template == rt.fmt.matches_template(r.text) for r in res)
    batched = Recognizer(rt.tflite_batch).recognize(rt.crops)
    assert [r.text for r in batched] == ref_texts
    for decoder in ("beam", "template"):
        assert len(rec.recognize(rt.crops[:2], decoder)) == 2
    assert rec.recognize([]) == []


def test_recognizer_savedmodel_and_keras_agree(rt):
    from lprnet_tf.runtime import Recognizer

    want = [r.text for r in Recognizer(rt.tflite).recognize(rt.crops)]
    assert [r.text for r in Recognizer(rt.saved).recognize(rt.crops)] == want
    assert [r.text for r in Recognizer.from_keras(rt.model, rt.fmt).recognize(rt.crops)] == want
    rec = Recognizer(rt.tflite)
    assert rec.recognize_file(rt.paths[1]).text == rec.recognize([rt.decoded[1]])[0].text


def test_recognizer_errors(rt, tmp_path):
    import shutil

    from lprnet_tf.runtime import Recognizer, RuntimeModelError
    from lprnet_tf.vocab import load_plate_format

    lone = str(tmp_path / "lone.tflite")
    shutil.copyfile(rt.tflite, lone)
    with pytest.raises(RuntimeModelError, match="sidecar"):
        Recognizer(lone)
    with open(lone[:-len(".tflite")] + ".json", "w") as f:
        f.write("{}")  # JSON, but not a sidecar lprnet-export wrote
    with pytest.raises(RuntimeModelError, match="sidecar without its plate format.*re-export"):
        Recognizer(lone)
    os.remove(lone[:-len(".tflite")] + ".json")
    with pytest.raises(RuntimeModelError, match="not a .tflite"):
        Recognizer(str(tmp_path))
    br = load_plate_format("br")  # 24x94 as well, but another alphabet: decode refuses the logits
    with pytest.raises(ValueError, match="logits"):
        Recognizer(lone, fmt=br).recognize(rt.crops[:1])


def test_crops_are_checked_and_converted():
    """What the Python API accepts as crops (lprnet_tf.runtime.as_crop): uint8 RGB, grey and RGBA converted;
    None, paths, float / 16-bit arrays, empty images and a bare (H, W, 3) array refused by name."""
    from lprnet_tf.runtime import as_crop, as_crops

    rgb = np.random.default_rng(0).integers(0, 255, (20, 60, 3), dtype=np.uint8)
    assert as_crop(rgb) is rgb
    grey = as_crop(rgb[..., 0])
    assert grey.shape == (20, 60, 3) and (grey[..., 2] == rgb[..., 0]).all()
    rgba = np.concatenate([rgb, np.zeros((20, 60, 1), np.uint8)], axis=2)
    assert (as_crop(rgba) == rgb).all()
    for bad, part in ((None, "NoneType"), ("a.jpg", "recognize_file"), (rgb.astype(np.float32) / 255, "float32"),
                      (rgb.astype(np.uint16), "uint16"), (np.zeros((0, 0, 3), np.uint8), "empty"),
                      (np.zeros((4, 4, 2), np.uint8), "shape")):
        with pytest.raises(ValueError, match=f"crop 1: .*{part}"):
            as_crops([rgb, bad])
    with pytest.raises(ValueError, match=r"list of crops \(\[image\]\)"):
        as_crops(rgb)
    assert len(as_crops(np.stack([rgb, rgb]))) == 2 and as_crops([]) == []


def test_recognizer_path_errors(tmp_path):
    from lprnet_tf.runtime import Recognizer, RuntimeModelError

    with pytest.raises(RuntimeModelError, match="no such file or folder"):
        Recognizer(str(tmp_path / "nope.tflite"))
    (tmp_path / "m.keras").write_bytes(b"x")
    with pytest.raises(RuntimeModelError, match="from_keras"):
        Recognizer(str(tmp_path / "m.keras"))


def _recognize(*args):
    return subprocess.run([sys.executable, "-m", "lprnet_tf.cli.recognize", *args], env=ENV,
                          capture_output=True, text=True, timeout=300)


def test_recognize_cli_tflite(rt, tmp_path):
    from lprnet_tf.runtime import Recognizer

    want = {p: r for p, r in zip(rt.paths, Recognizer(rt.tflite).recognize(rt.decoded))}
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    missing = str(tmp_path / "missing.png")
    r = _recognize(str(rt.root / "crops"), str(bad), missing, "--model", rt.tflite, "--batch", "4")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(rt.paths)
    for line in lines:
        path, plate, conf = line.split("\t")
        assert plate == want[path].text and abs(float(conf) - want[path].confidence) < 1e-3
        assert len(conf.split(".")[1]) == 4
    assert f"error: {missing}: no such file" in r.stderr
    assert f"error: {bad}:" in r.stderr and "not a decodable image" in r.stderr

    r = _recognize(rt.paths[0], "--model", rt.tflite, "--json", "--decoder", "template")
    rec = json.loads(r.stdout.strip())
    assert set(rec) == {"path", "plate", "confidence", "matches_template"} and rec["path"] == rt.paths[0]

    # --review_below: one more column / key marking the reads below the threshold; nothing dropped
    # (this untrained file reads every crop at confidence 1: the shipped model's confidences spread)
    plain = _recognize(*rt.paths, "--model", "cn_lprnet_basic").stdout.split("\n")
    conf = {p: float(c) for p, _, c in (line.split("\t") for line in plain if line)}
    low, high = sorted(conf.values())[len(conf) // 2 - 1: len(conf) // 2 + 1]
    cut = (low + high) / 2  # between two printed (rounded) confidences
    r = _recognize(*rt.paths, "--model", "cn_lprnet_basic", "--review_below", str(cut))
    marks = {line.split("\t")[0]: line.split("\t")[3] for line in r.stdout.strip().splitlines()}
    assert marks == {p: "review" if conf[p] < cut else "ok" for p in rt.paths}
    assert set(marks.values()) == {"review", "ok"}
    r = _recognize(rt.paths[0], "--model", rt.tflite, "--json", "--review_below", "1")
    assert json.loads(r.stdout.strip())["review"] is (want[rt.paths[0]].confidence < 1)
    for args, msg in ((["--review_below", "2"], "not a number in the range"),
                      (["--stream", rt.paths[0], "--review_below", "0.5"], "drop --review_below")):
        r = _recognize(*([] if "--stream" in args else rt.paths[:1]), "--model", rt.tflite, *args)
        assert r.returncode == 2 and msg in r.stderr, r.stderr[-800:]

    r = _recognize(str(bad), missing, "--model", rt.tflite)  # nothing readable -> non-zero exit
    assert r.returncode != 0 and "could be read" in r.stderr and not r.stdout.strip()


def test_recognize_cli_keras_model(rt):
    from lprnet_tf.runtime import Recognizer

    want = [r.text for r in Recognizer(rt.tflite).recognize(rt.decoded)]
    r = _recognize(*rt.paths, "--model", os.path.dirname(rt.keras_path), "--format", "cn")
    assert r.returncode == 0, r.stderr[-2000:]
    assert [line.split("\t")[1] for line in r.stdout.strip().splitlines()] == want


# ---- test-time views (--tta) -------------------------------------------------------------------
def test_tta_views():
    from lprnet_tf.runtime import TTA_VIEWS, tta_view

    rng = np.random.default_rng(0)
    im = rng.integers(0, 256, (50, 100, 3), dtype=np.uint8)
    assert TTA_VIEWS[0] == "full" and tta_view(im, "full") is im
    np.testing.assert_array_equal(tta_view(im, "trim"), im[2:48, 4:96])  # round(0.04 * 50) = 2, round(0.04 * 100) = 4
    pad = tta_view(im, "pad")
    assert pad.shape == (54, 108, 3) and pad.dtype == np.uint8
    np.testing.assert_array_equal(pad[2:52, 4:104], im)
    np.testing.assert_array_equal(pad[0, 4:104], im[0])  # edge rows and columns repeated
    np.testing.assert_array_equal(pad[2:52, 0], im[:, 0])
    np.testing.assert_array_equal(tta_view(im, "trim_rows"), im[4:46])  # int(0.08 * 50) = 4
    g = tta_view(im, "gamma")
    want = np.clip(np.round(255.0 * (im / 255.0) ** 0.8), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(g, want)
    assert g.dtype == np.uint8 and (g.astype(int) >= im).all()  # mid-tones brighter, 0 and 255 fixed
    small = im[:12, :40]  # under 13 px high the row cuts round to nothing (docs/deployment.md §5)
    np.testing.assert_array_equal(tta_view(small, "trim_rows"), small)
    np.testing.assert_array_equal(tta_view(small, "trim"), small[:, 2:38])
    assert tta_view(small, "pad").shape == (12, 44, 3)
    assert tta_view(im[:1, :1], "trim").shape == (1, 1, 3)  # never empty
    with pytest.raises(ValueError, match="unknown test-time view 'flip'.*full"):
        tta_view(im, "flip")


def test_recognizer_tta_votes_over_the_views(rt):
    from lprnet_tf.decoding import decode, vote
    from lprnet_tf.runtime import TTA_VIEWS, Recognizer, preprocess_batch, tta_view

    rec = Recognizer(rt.tflite_batch)
    readings = [decode(np.asarray(rt.model(preprocess_batch([tta_view(c, v) for c in rt.crops], rt.fmt),
                                           training=False)), rt.fmt) for v in TTA_VIEWS]
    texts, conf = vote(readings)
    res = rec.recognize(rt.crops, tta=True)
    assert [r.text for r in res] == texts
    np.testing.assert_allclose([r.confidence for r in res], conf, atol=1e-4)
    assert rec.recognize_file(rt.paths[1], tta=True).text == rec.recognize([rt.decoded[1]], tta=True)[0].text
    assert rec.recognize([], tta=True) == [] and rec.decode([]) == []


def test_recognize_cli_tta(rt):
    from lprnet_tf.runtime import Recognizer

    want = Recognizer(rt.tflite).recognize(rt.decoded, tta=True)
    r = _recognize(*rt.paths, "--model", rt.tflite, "--tta")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line.split("\t") for line in r.stdout.strip().splitlines()]
    assert [p for _, p, _ in lines] == [w.text for w in want]
    np.testing.assert_allclose([float(c) for _, _, c in lines], [w.confidence for w in want], atol=1e-4)
    for flag, extra in (("--stream", ["--stream", str(rt.root / "crops")]),
                        ("--frames", ["--frames", "5", str(rt.root / "crops")]),
                        ("--sr", [rt.paths[0], "--sr", rt.keras_path])):
        r = _recognize(*extra, "--model", rt.tflite, "--tta")
        assert r.returncode == 2 and "--tta reads single crops" in r.stderr and f"combined with {flag}" in r.stderr


def test_evaluate_cli_tta(rt, tmp_path):
    out = tmp_path / "ev"
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.evaluate", "--model", rt.keras_path, "--data", "synth:7:6",
                        "--out", str(out), "--tta"], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(out / "metrics.json", encoding="utf-8"))
    assert m["tta"] is True and m["count"] == 6


def test_evaluate_tta_matches_the_runtime(rt, tmp_path):
    """lprnet-evaluate --tta (evaluation.predict_views + score) reads what Recognizer.recognize(tta=True) reads."""
    from lprnet_tf.data.pipeline import ArraySource
    from lprnet_tf.evaluation import evaluate_model, predict_views
    from lprnet_tf.runtime import TTA_VIEWS, Recognizer

    rec = Recognizer.from_keras(rt.model, rt.fmt)
    want = [r.text for r in rec.recognize(rt.crops, "template", tta=True)]
    texts = want[:3] + ["京A00000"] * (len(want) - 3)  # some right, some wrong
    src = ArraySource(rt.crops, texts)
    m, preds, conf = evaluate_model(rt.model, src, rt.fmt, str(tmp_path / "ev"), decoder="template", progress=False,
                                    return_predictions=True, tta=True)
    assert preds == want and m["tta"] is True and m["accuracy"] >= 3 / len(want)
    np.testing.assert_allclose(conf, [r.confidence for r in rec.recognize(rt.crops, "template", tta=True)], atol=1e-5)
    plain = evaluate_model(rt.model, src, rt.fmt, str(tmp_path / "ev0"), progress=False)
    assert "tta" not in plain
    assert [p["threshold"] for p in plain["confidence_thresholds"]] == [0.3, 0.5, 0.7, 0.9]
    assert all(p["errors_accepted"] + p["errors_rejected"] == round((1 - plain["accuracy"]) * plain["count"])
               for p in plain["confidence_thresholds"])
    assert len(predict_views(rt.model, src, rt.fmt)) == len(TTA_VIEWS)


# ---- local prior (--local_prefix) ----------------------------------------------------------------------------
def test_recognizer_local_prior(rt):
    from lprnet_tf.decoding import PriorError, decode, first_char_shares, local_prior
    from lprnet_tf.runtime import Recognizer, RuntimeModelError

    side = json.load(open(rt.tflite[:-len(".tflite")] + ".json", encoding="utf-8"))
    assert side["decoder"]["first_char_shares"] == first_char_shares(rt.fmt) and "local_prior" in side["decoder"]
    rec = Recognizer(rt.tflite)
    assert not rec.fmt.synth  # the sidecar's format: no generator
    with pytest.raises(PriorError, match="--local_base"):
        local_prior(rec.fmt, "皖")
    prior = local_prior(rec.fmt, "皖", 0.9, shares=side["decoder"]["first_char_shares"])
    assert prior == local_prior(rt.fmt, "皖", 0.9)  # the sidecar's shares are the generator's
    logits = rec.logits(rt.decoded)
    res = rec.recognize(rt.decoded, "template", prior=prior)
    texts, conf = decode(logits, rt.fmt, "template", prior=prior)
    assert [r.text for r in res] == texts
    np.testing.assert_allclose([r.confidence for r in res], conf, atol=1e-6)
    assert rec.recognize_file(rt.paths[0], "beam", prior=prior).text == decode(logits[:1], rt.fmt, "beam",
                                                                                prior=prior)[0][0]
    from lprnet_tf.stream import recognizer_fn  # what lprnet-recognize --stream reads with

    assert recognizer_fn(rec, "template", prior)(rt.decoded) == (texts, [r.confidence for r in res])
    with pytest.raises(RuntimeModelError, match="template"):
        rec.recognize(rt.decoded, "greedy", prior=prior)


def test_recognize_and_evaluate_cli_local_prior(rt, tmp_path):
    from lprnet_tf.decoding import local_prior
    from lprnet_tf.runtime import Recognizer

    want = Recognizer(rt.tflite).recognize(rt.decoded, "template", prior=local_prior(rt.fmt, "皖", 0.8))
    r = _recognize(*rt.paths, "--model", rt.tflite, "--decoder", "template", "--local_prefix", "皖",
                   "--local_share", "0.8")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line.split("\t") for line in r.stdout.strip().splitlines()]
    assert [p for _, p, _ in lines] == [w.text for w in want]
    for args, msg in ((["--local_prefix", "皖"], "add --decoder template"),
                      (["--decoder", "template", "--local_share", "0.8"],
                       "--local_share is a setting of --local_prefix"),
                      (["--decoder", "template", "--local_prefix", "皖", "--local_share", "1"], "strictly between"),
                      (["--decoder", "template", "--local_prefix", "Z"], "never starts a plate"),
                      (["--decoder", "template", "--local_prefix", "皖A"],
                       "give the base share yourself (--local_base)"),
                      (["--decoder", "template", "--local_prefix", "q"], "not in the alphabet")):
        r = _recognize(rt.paths[0], "--model", rt.tflite, *args)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr[-500:])
    r = _recognize("--frames", "5", str(rt.root / "crops"), "--model", rt.tflite, "--local_prefix", "皖")
    assert r.returncode == 2 and "multi-frame model (--frames)" in r.stderr
    stream = [_recognize("--stream", str(rt.root / "crops"), "--model", rt.tflite, "--decoder", "template", *extra)
              for extra in ([], ["--local_prefix", "皖", "--local_share", "0.99"])]
    assert [x.returncode for x in stream] == [0, 0], stream[1].stderr[-2000:]
    ends = [[line.split("\t")[2] for line in x.stdout.splitlines() if "\tEND\t" in line] for x in stream]
    assert len(ends[0]) == len(ends[1]) >= 1

    out = tmp_path / "ev"
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.evaluate", "--model", rt.keras_path, "--data", "synth:7:6",
                        "--out", str(out), "--decoder", "template", "--local_prefix", "皖", "--local_share", "0.3"],
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(out / "metrics.json", encoding="utf-8"))
    assert m["local_prior"]["prefix"] == "皖" and m["local_prior"]["share"] == 0.3
    assert 0.05 < m["local_prior"]["base"] < 0.08
