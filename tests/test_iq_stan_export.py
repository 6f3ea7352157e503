"""Deployment of the multi-frame IQ-STAN: SavedModel (K frames per plate), TFLite f32 (tiled input),
parity, the runtime reading K frames of a plate, and ``lprnet-recognize --frames K``."""

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
K, H, W = 2, 16, 28


@pytest.fixture(scope="module")
def iq(tmp_path_factory):
    """A tiny untrained IQ-STAN (K=2 frames of 16 x 28, cn alphabet): .keras, SavedModel + TFLite f32 with
    parity checked on 8 synthetic tracklets, and three folders of frames on disk."""
    import keras

    from lprnet_tf import export
    from lprnet_tf.modelio import save_model
    from lprnet_tf.models.iq_stan import IQSTAN
    from lprnet_tf.vocab import load_plate_format

    root = tmp_path_factory.mktemp("iq_stan_export")
    (root / "cn_frame.yaml").write_text(f"base: cn\nheight: {H}\nwidth: {W}\n", encoding="utf-8")
    fmt = load_plate_format(str(root / "cn_frame.yaml"))
    keras.utils.set_random_seed(5)
    model = IQSTAN(fmt.num_classes, fmt.max_length, frames=K, frame_height=H, frame_width=W, filters=(4, 4, 4, 8, 8, 8),
                   patches_per_frame=7, encoder_units=8, decoder_units=8, attention_units=8, embed_dim=4,
                   name="iq_stan")
    keras_path = save_model(model, str(root / "model" / "model.keras"), fmt)
    tracks = export.tracklets_from_spec("synth:7:8", fmt, K, 8)
    out = str(root / "out")
    summary = export.export_all(model, fmt, out, tflite=("f32",), crops=tracks)  # raises if parity fails
    x = np.stack([export_tile(t[0], fmt) for t in tracks]).astype(np.float32) / 255.0
    ref = {k: np.asarray(v) for k, v in model(x, training=False).items()}
    folders = []
    for i, n in enumerate((3, 2, 1)):  # 3 frames (K of them picked), exactly K, too few
        d = root / "plates" / f"plate{i}"
        d.mkdir(parents=True)
        frames = tracks[i][0] + tracks[i + 3][0]
        for j in range(n):  # names sort naturally: 2.png before 10.png
            cv2.imencode(".png", np.ascontiguousarray(frames[j][..., ::-1]))[1].tofile(str(d / f"{2 + 8 * j}.png"))
        folders.append(str(d))
    tfl = summary["tflite"]
    return types.SimpleNamespace(fmt=fmt, model=model, root=root, out=out, keras_path=keras_path, tracks=tracks,
                                 x=x, ref=ref, summary=summary, saved=summary["savedmodel"], folders=folders,
                                 tflite=[f for f in tfl if not f.endswith("_batch.tflite")][0],
                                 tflite_batch=[f for f in tfl if f.endswith("_batch.tflite")][0])


def export_tile(frames, fmt):
    from lprnet_tf.runtime import tile_frames

    return tile_frames(frames, fmt)


def _limit(ref):
    from lprnet_tf.export import LOGIT_ATOL, LOGIT_RTOL

    return LOGIT_ATOL + LOGIT_RTOL * float(np.abs(ref).max())


def test_savedmodel_signatures_take_k_frames(iq):
    import tensorflow as tf

    from lprnet_tf.decoding import decode
    from lprnet_tf.runtime import fit_crop
    from lprnet_tf.vocab import load_plate_format

    assert load_plate_format(os.path.join(iq.saved, "assets", "plate_format.yaml")) == iq.fmt
    lines = open(os.path.join(iq.saved, "assets", "alphabet.txt"), encoding="utf-8").read().splitlines()
    assert "".join(lines[1:]) == iq.fmt.alphabet
    loaded = tf.saved_model.load(iq.saved)
    assert set(loaded.signatures) == {"serving_default", "predict_images"}
    sd, pi = loaded.signatures["serving_default"], loaded.signatures["predict_images"]
    (spec,) = sd.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None, K]
    (spec,) = pi.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, K, H, W, 3]
    want = {"plate", "confidence", "logits", "frame_weights", "quality"}
    assert set(sd.structured_outputs) == set(pi.structured_outputs) == want

    plates, conf = decode(iq.ref["logits"], iq.fmt, "greedy", kind="attn")
    u8 = np.stack([np.stack([fit_crop(f, iq.fmt) for f in t[0]]) for t in iq.tracks])  # (N, K, H, W, 3)
    out = pi(images=tf.constant(u8))
    assert out["logits"].shape == iq.ref["logits"].shape and out["frame_weights"].shape == (len(u8), K)
    assert np.abs(out["logits"].numpy() - iq.ref["logits"]).max() <= _limit(iq.ref["logits"])
    assert np.abs(out["frame_weights"].numpy() - iq.ref["frame_weights"]).max() <= 1e-4
    assert [p.decode() for p in out["plate"].numpy()] == plates  # in-graph attention decode = numpy
    np.testing.assert_allclose(out["confidence"].numpy(), conf, rtol=1e-4, atol=1e-12)

    # encoded frames already at H x W: the in-graph decode + resize is the identity, so logits match too
    enc = [[cv2.imencode(".png", np.ascontiguousarray(f[..., ::-1]))[1].tobytes() for f in frames] for frames in u8]
    out = sd(image_bytes=tf.constant(enc))
    assert np.abs(out["logits"].numpy() - iq.ref["logits"]).max() <= _limit(iq.ref["logits"])
    assert [p.decode() for p in out["plate"].numpy()] == plates


def test_in_graph_tiling_and_decode_edge_cases(iq):
    import tensorflow as tf

    from lprnet_tf.decoding import attention_decode
    from lprnet_tf.export import attention_decode_tf, tile_frames_tf
    from lprnet_tf.runtime import tile_frames

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, K, H, W, 3), dtype=np.uint8)
    got = tile_frames_tf(tf.constant(frames)).numpy()
    assert got.shape == (3, H, K * W, 3)
    for i in range(3):
        np.testing.assert_array_equal(got[i], tile_frames(list(frames[i]), iq.fmt))  # frame 0 left

    s, c = iq.fmt.max_length + 1, iq.fmt.num_classes
    logits = rng.normal(0, 1, (4, s, c)).astype(np.float32)
    logits[0, :, 0] = -9  # never ends: cut at max_length
    logits[1, 3, 0] = 9  # ends after 3 characters
    logits[2, 0, 0] = 9  # empty plate
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.range(c, dtype=tf.int64), tf.constant(["<end>"] + list(iq.fmt.alphabet))), default_value="")
    plates, conf = attention_decode_tf(tf.constant(logits), table, iq.fmt.max_length)
    want, want_conf = attention_decode(logits, iq.fmt)
    assert [p.decode() for p in plates.numpy()] == want
    assert len(want[0]) == iq.fmt.max_length and len(want[1]) == 3 and want[2] == ""
    np.testing.assert_allclose(conf.numpy(), want_conf, rtol=1e-4)


def test_tflite_f32_files_and_sidecar(iq):
    from ai_edge_litert.interpreter import Interpreter

    from lprnet_tf.export import check_builtin_ops

    for path, batch in ((iq.tflite, 1), (iq.tflite_batch, -1)):
        ops = check_builtin_ops(path)  # raises on Flex / custom ops
        assert "TOPK_V2" in ops and not any(o.startswith("Flex") for o in ops)
        inp = Interpreter(model_path=path).get_input_details()[0]
        assert [int(v) for v in inp["shape_signature"]] == [batch, H, K * W, 3] and inp["dtype"] == np.float32
        side = json.load(open(path[: -len(".tflite")] + ".json", encoding="utf-8"))
        assert side["frames"] == K and side["model_kind"] == "attn"
        assert side["frame_size"] == {"height": H, "width": W}
        assert side["tiling"]["input_width"] == K * W and "frame 0 left" in side["tiling"]["layout"]
        assert side["input"]["shape"] == [batch, H, K * W, 3] and side["input"]["width"] == K * W
        assert set(side["outputs"]) == {"logits", "frame_weights", "quality"}
        assert side["outputs"]["frame_weights"]["shape"] == [batch, K]
        assert side["output"]["shape"] == [batch, iq.fmt.max_length + 1, iq.fmt.num_classes]
        assert "first end class" in side["decoder"]["greedy"] and side["end_index"] == 0
        assert side["format"]["width"] == W and side["variant"] == "f32"


def test_parity_report(iq):
    report = iq.summary["parity"]
    assert report["passed"] and not report["failures"]
    assert report["crops"] == {"source": "given crops", "count": 8, "frames": K, "unit": "tracklets"}
    names = {"savedmodel:predict_images", "savedmodel:serving_default", "tflite:lpr_f32.tflite",
             "tflite:lpr_f32_batch.tflite"}
    assert set(report["exports"]) == names
    for key in ("savedmodel:predict_images", "tflite:lpr_f32.tflite", "tflite:lpr_f32_batch.tflite"):
        r = report["exports"][key]
        assert r["plate_agreement"] == 1.0 and r["max_abs_logit_diff"] <= r["logit_diff_limit"]
        assert r["max_abs_frame_weight_diff"] <= 1e-4
    assert json.load(open(os.path.join(iq.out, "parity.json"), encoding="utf-8"))["passed"]


def test_quantized_variants_refused(iq, tmp_path):
    from lprnet_tf.export import ExportError, export_tflite

    with pytest.raises(ExportError, match="multi-frame model.*--tflite f32"):
        export_tflite(iq.model, iq.fmt, str(tmp_path), variants=("f32", "int8"))
    assert not os.listdir(tmp_path)


def test_runtime_recognizes_frames(iq):
    from lprnet_tf.decoding import decode
    from lprnet_tf.runtime import Recognizer, RuntimeModelError

    plates, conf = decode(iq.ref["logits"], iq.fmt, "greedy", kind="attn")
    frames = [t[0] for t in iq.tracks]
    for path in (iq.tflite, iq.tflite_batch, iq.saved):
        rec = Recognizer(path)  # format (and K) from the sidecar / the SavedModel
        assert rec.frames == K and rec.kind == "attn" and rec.fmt.alphabet == iq.fmt.alphabet
        assert (rec.fmt.height, rec.fmt.width) == (H, W)
        got = rec.recognize_frames(frames)
        assert [p.text for p in got] == plates
        np.testing.assert_allclose([p.confidence for p in got], conf, rtol=1e-4, atol=1e-12)
        weights = np.array([p.frame_weights for p in got])
        assert np.abs(weights - iq.ref["frame_weights"]).max() <= 1e-4
        np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    with pytest.raises(RuntimeModelError, match="multi-frame model"):
        rec.recognize(frames[0])  # single crops
    with pytest.raises(RuntimeModelError, match="reads K=2"):
        rec.recognize_frames([frames[0][:1]])
    with pytest.raises(RuntimeModelError, match="greedy"):
        Recognizer(iq.tflite).recognize_frames(frames[:1], decoder="beam")


def _recognize(*args):
    return subprocess.run([sys.executable, "-m", "lprnet_tf.cli.recognize", *args], env=ENV,
                          capture_output=True, text=True, timeout=300)


def _folder_plates(iq, folders):
    """What the runtime reads from each folder's frames (K evenly spaced files in name order)."""
    from lprnet_tf.cli.recognize import folder_frames
    from lprnet_tf.runtime import Recognizer, read_image

    tracks = [[read_image(p) for p in folder_frames(f, K, "pad_last")[0]] for f in folders]
    return Recognizer(iq.tflite).recognize_frames(tracks)


def test_folder_frames_pick_and_policy(iq):
    from lprnet_tf.cli.recognize import folder_frames
    from lprnet_tf.data.readers import DataError

    paths, n = folder_frames(iq.folders[0], K)
    assert n == 3 and [os.path.basename(p) for p in paths] == ["2.png", "18.png"]  # first and last, natural order
    assert [os.path.basename(p) for p in folder_frames(iq.folders[2], K, "repeat")[0]] == ["2.png", "2.png"]
    assert folder_frames(iq.folders[2], K, "skip") == ([], 1)
    with pytest.raises(DataError, match="plate2: 1 frame.*--track_policy repeat or pad_last"):
        folder_frames(iq.folders[2], K)


def test_recognize_cli_frames_tflite(iq):
    want = _folder_plates(iq, iq.folders)
    r = _recognize("--frames", str(K), *iq.folders, "--model", iq.tflite_batch, "--batch", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2  # the 1-frame folder is an error
    for line, w in zip(lines, want):
        folder, plate, conf, weights = line.split("\t")
        assert plate == w.text and abs(float(conf) - w.confidence) < 1e-3
        ws = [float(v) for v in weights.split(",")]
        assert len(ws) == K and abs(sum(ws) - 1) < 1e-3
    assert [line.split("\t")[0] for line in lines] == iq.folders[:2]
    assert f"error: {iq.folders[2]}: 1 frame(s) but --frames {K}" in r.stderr

    r = _recognize("--frames", str(K), *iq.folders, "--model", iq.tflite, "--json", "--track_policy", "pad_last")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [x["folder"] for x in recs] == iq.folders and [x["plate"] for x in recs] == [w.text for w in want]
    assert set(recs[0]) == {"folder", "frames", "plate", "confidence", "matches_template", "frame_weights"}
    assert [os.path.basename(p) for p in recs[2]["frames"]] == ["2.png", "2.png"]
    assert "filled by --track_policy pad_last" in r.stderr

    r = _recognize("--frames", "3", iq.folders[0], "--model", iq.tflite)  # K of the model is 2
    assert r.returncode == 2 and "reads K=2 frames" in r.stderr and "--frames 2" in r.stderr
    r = _recognize(iq.folders[0], "--model", iq.tflite)  # without --frames
    assert r.returncode == 2 and "multi-frame model" in r.stderr and "--frames 2" in r.stderr


def test_recognize_cli_frames_keras(iq):
    want = [w.text for w in _folder_plates(iq, iq.folders[:2])]
    r = _recognize("--frames", str(K), *iq.folders[:2], "--model", iq.keras_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [line.split("\t")[1] for line in r.stdout.strip().splitlines()] == want
