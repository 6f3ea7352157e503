"""IQ-STAN (``papers/iq-stan.md``): its layers (shape, config, .keras round trip, contracts), the model and
its loss (eq. 4-6), the tracklet input pipeline, attention decoding, and a tiny train -> resume ->
evaluate run. Everything at toy size: K = 2 frames of 16 x 28 (M = 2 x 7 = 14 patches)."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from conftest import write_image
from helpers import check_layer
from lprnet_tf.layers.iq_stan import AttentionDecoder, IQDeconvAttention, PatchQuality
from lprnet_tf.models.iq_stan import IQSTAN

K, H, W = 2, 16, 28  # frames, frame height and width
M = K * 7  # patches (7 per frame)
C, L = 10, 4  # classes and max plate length of the toy model
TINY = dict(frames=K, frame_height=H, frame_width=W, filters=(4, 4, 4, 8, 8, 8), encoder_units=8, decoder_units=8,
            attention_units=8, embed_dim=4)
TINY_OPTIONS = {k: v for k, v in TINY.items() if k not in ("frame_height", "frame_width")}  # from the format
TINY_OPTIONS["filters"] = list(TINY["filters"])


def tiny_model(**kw) -> IQSTAN:
    return IQSTAN(C, L, **{**TINY, **kw}, name="iq_stan")


def frames_batch(n=2, seed=0):
    return np.random.default_rng(seed).random((n, H, K * W, 3)).astype("float32")


def targets(labels, seed=1):
    """``y = concat(labels (B, L), quality map (B, M))`` float32, as ExampleMaker makes it."""
    labels = np.asarray(labels, np.float32)
    q = np.random.default_rng(seed).random((len(labels), M)).astype("float32")
    return np.concatenate([labels, q], axis=1)


def numpy_outputs(out) -> list:
    return [keras.ops.convert_to_numpy(v) for v in keras.tree.flatten(out)]


def roundtrip(model, inputs, tmp_path, atol=1e-5):
    """Save ``model`` to .keras, reload it (safe mode) and compare every output on ``inputs``."""
    path = os.path.join(str(tmp_path), f"{model.name}.keras")
    before = numpy_outputs(model(inputs, training=False))
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    after = numpy_outputs(loaded(inputs, training=False))
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, atol=atol)
    return loaded


def check_config(layer):
    cfg = layer.get_config()
    clone = type(layer).from_config(cfg)
    assert clone.get_config() == cfg
    return clone


@pytest.fixture(scope="module")
def fmt16_path(tmp_path_factory):
    """A plate format variant: the shipped cn at a 16 x 28 frame."""
    path = tmp_path_factory.mktemp("fmt") / "cn_16x28.yaml"
    path.write_text("base: cn\nheight: 16\nwidth: 28\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def fmt16(fmt16_path):
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format(fmt16_path)
    assert (fmt.height, fmt.width) == (H, W)
    return fmt


@pytest.fixture(scope="module")
def tracks(fmt16, tmp_path_factory):
    """3 synthetic tracks of 3 frames (lprnet-synth --tracklets 3) -> (folder, labels.csv rows)."""
    from lprnet_tf.synth.tracklets import write_tracklet_set

    out = tmp_path_factory.mktemp("tracks")
    labels = write_tracklet_set(fmt16, str(out), count=3, k=3, seed=5, progress=False)
    with open(labels, encoding="utf-8") as f:
        return str(out), list(csv.DictReader(f))


# ---- layers ---------------------------------------------------------------------------------------
def test_patch_quality(tmp_path):
    y = check_layer(PatchQuality(7, units=8), (2, 4, 14, 8), (2, 7), tmp_path)
    assert ((y >= 0) & (y <= 1)).all()
    with pytest.raises(ValueError, match="feature width 14 is not a multiple of 5 patches"):
        PatchQuality(5)(np.zeros((1, 4, 14, 8), "float32"))


@pytest.mark.parametrize("use_quality", [True, False])
def test_iq_deconv_attention(use_quality, tmp_path):
    rng = np.random.default_rng(2)
    f = (0.5 + rng.random((2, 4, 14, 8))).astype("float32")  # (B, h, W, C): no zeros, so A = F~ / F
    s = rng.random((2, M)).astype("float32")
    layer = IQDeconvAttention(K, filters=4, use_quality=use_quality)
    attended, weights = numpy_outputs(layer([f, s]))
    assert attended.shape == f.shape and weights.shape == (2, K)
    shapes = layer.compute_output_shape([f.shape, s.shape])
    assert tuple(shapes[0]) == f.shape and tuple(shapes[1]) == (2, K)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    if use_quality:
        a = (attended / f).reshape(2, 4, K, 14 // K, 8)  # (B, h, K, W/K, C)
        assert (a > 0).all()
        np.testing.assert_allclose(a.mean(axis=2), 1.0, atol=1e-5)  # a softmax over the frames, times K
        np.testing.assert_allclose(weights, a.mean(axis=(1, 3, 4)) / K, atol=1e-5)
    else:
        np.testing.assert_allclose(attended, f)
        np.testing.assert_allclose(weights, 1.0 / K)
        alone = numpy_outputs(IQDeconvAttention(K, use_quality=False)(f))  # F alone, as IQ-STAN's baseline calls it
        np.testing.assert_allclose(alone[0], f)
    check_config(layer)
    fi, si = keras.Input(f.shape[1:]), keras.Input(s.shape[1:])
    roundtrip(keras.Model([fi, si], IQDeconvAttention(K, 4, use_quality)([fi, si])), [f, s], tmp_path)


def test_iq_deconv_attention_contract():
    f, s = np.zeros((1, 4, 15, 8), "float32"), np.zeros((1, 15), "float32")
    with pytest.raises(ValueError, match="feature width 15 and 15 patches must split into 2 frames"):
        IQDeconvAttention(2)([f, s])
    with pytest.raises(ValueError, match="must split into 2 frames"):
        IQDeconvAttention(2, use_quality=False)(f)
    with pytest.raises(ValueError, match=r"takes \[F, patch scores\]"):
        IQDeconvAttention(2)(np.zeros((1, 4, 14, 8), "float32"))


@pytest.mark.parametrize("with_targets", [False, True])
def test_attention_decoder_shapes_and_roundtrip(with_targets, tmp_path):
    rng = np.random.default_rng(3)
    memory = rng.random((2, 14, 6)).astype("float32")  # (B, T, D)
    tgt = rng.integers(0, C, (2, L + 1)).astype("int32")  # (B, S)
    layer = AttentionDecoder(C, L + 1, units=8, attention_units=8, embed_dim=4)
    logits, alphas = numpy_outputs(layer(memory, tgt) if with_targets else layer(memory))
    assert logits.shape == (2, L + 1, C) and alphas.shape == (2, L + 1, 14)
    np.testing.assert_allclose(alphas.sum(-1), 1.0, atol=1e-5)  # attention over the encoder states
    shapes = layer.compute_output_shape(memory.shape, tgt.shape if with_targets else None)
    assert tuple(shapes[0]) == logits.shape and tuple(shapes[1]) == alphas.shape
    check_config(layer)
    mi, ti = keras.Input((14, 6)), keras.Input((L + 1,), dtype="int32")
    dec = AttentionDecoder(C, L + 1, units=8, attention_units=8, embed_dim=4)
    if with_targets:
        roundtrip(keras.Model([mi, ti], dec(mi, ti)), [memory, tgt], tmp_path)
    else:
        roundtrip(keras.Model(mi, dec(mi)), memory, tmp_path)


def test_attention_decoder_rejects_short_targets():
    layer = AttentionDecoder(C, L + 1, units=8, attention_units=8, embed_dim=4)
    with pytest.raises(ValueError, match=f"targets have {L} steps but the decoder runs {L + 1}"):
        layer(np.zeros((1, 14, 6), "float32"), np.zeros((1, L), "int32"))


def test_attention_decoder_teacher_forcing_and_greedy_feedback():
    rng = np.random.default_rng(4)
    memory = rng.normal(size=(3, 14, 6)).astype("float32")
    layer = AttentionDecoder(C, L + 1, units=8, attention_units=8, embed_dim=4)
    tgt = rng.integers(1, C, (3, L + 1)).astype("int32")
    other = tgt.copy()
    other[:, 0] = (tgt[:, 0] % (C - 1)) + 1  # another character at step 0
    assert (other[:, 0] != tgt[:, 0]).all()
    a, _ = numpy_outputs(layer(memory, tgt))
    b, _ = numpy_outputs(layer(memory, other))
    np.testing.assert_allclose(a[:, 0], b[:, 0], atol=1e-6)  # step 0 reads GO either way
    assert np.abs(a[:, 1] - b[:, 1]).max() > 1e-4  # step 1 reads targets[:, 0]
    greedy, _ = numpy_outputs(layer(memory))  # greedy: each step reads the previous step's arg-max
    forced, _ = numpy_outputs(layer(memory, greedy.argmax(-1).astype("int32")))
    np.testing.assert_allclose(greedy, forced, atol=1e-5)


# ---- the model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_quality", [True, False])
def test_iq_stan_outputs(use_quality):
    model = tiny_model(use_quality=use_quality)
    assert model.input_size == (H, K * W) and model.patches == M and model.steps == L + 1
    x = frames_batch(3)
    out = {k: keras.ops.convert_to_numpy(v) for k, v in model(x, training=False).items()}
    expected = {"logits": (3, L + 1, C), "frame_weights": (3, K)}
    if use_quality:
        expected["quality"] = (3, M)
        assert ((out["quality"] >= 0) & (out["quality"] <= 1)).all()
    assert {k: v.shape for k, v in out.items()} == expected
    np.testing.assert_allclose(out["frame_weights"].sum(-1), 1.0, atol=1e-5)
    if not use_quality:
        np.testing.assert_allclose(out["frame_weights"], 1.0 / K)
    steps = model.decode_steps(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(steps["logits"]), out["logits"], atol=1e-5)
    assert tuple(steps["alphas"].shape) == (3, L + 1, K * W // 4)
    train_out = model(x, training=True)  # the decoder runs in compute_loss, on the encoder states
    assert set(train_out) == set(expected) - {"logits"} | {"memory"}
    assert tuple(train_out["memory"].shape) == (3, K * W // 4, 2 * TINY["encoder_units"])


def test_iq_stan_trains_and_evaluates():
    keras.utils.set_random_seed(0)
    model = tiny_model(dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)  # graph mode: test_train_resume_evaluate
    x, y = frames_batch(2), targets([[1, 2, 3, 0], [4, 5, 0, 0]])
    losses = [float(model.train_on_batch(x, y)) for _ in range(5)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    assert np.isfinite(model.evaluate(x, y, verbose=0))  # training=False: the loss of the greedy logits


def test_iq_stan_loss_masks_steps_after_the_end():
    for use_quality in (True, False):
        model = tiny_model(use_quality=use_quality)
        x = frames_batch(2)
        y_pred = model(x, training=True)  # once: dropout is random
        loss = lambda labels: float(model.compute_loss(x, targets(labels), y_pred))  # noqa: E731
        base = loss([[1, 2, 3, 0], [4, 5, 0, 0]])
        assert np.isfinite(base)
        assert loss([[1, 2, 3, 0], [4, 5, 0, 7]]) == pytest.approx(base, rel=1e-6)  # after the end class: ignored
        assert loss([[1, 2, 3, 0], [4, 5, 0, 0]]) == pytest.approx(base, rel=1e-6)
        assert loss([[1, 2, 4, 0], [4, 5, 0, 0]]) != pytest.approx(base, rel=1e-6)  # before it: counted
        assert loss([[1, 2, 3, 0], [4, 5, 6, 0]]) != pytest.approx(base, rel=1e-6)  # the end step itself moved
    with pytest.raises(ValueError, match=r"targets are \(B, 4 \+ 14\)"):
        model.compute_loss(x, np.zeros((2, L), "float32"), y_pred)


def test_iq_stan_mixed_precision():
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = tiny_model()
        x = frames_batch(2)
        out = model(x, training=False)
        assert tuple(out["logits"].shape) == (2, L + 1, C)
        loss = model.compute_loss(x, targets([[1, 2, 0, 0], [3, 0, 0, 0]]), model(x, training=True))
        assert np.isfinite(float(loss))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_iq_stan_save_load(tmp_path):
    model = tiny_model()
    loaded = roundtrip(model, frames_batch(2), tmp_path)
    assert isinstance(loaded, IQSTAN) and loaded.get_config() == model.get_config()
    assert (loaded.frames, loaded.frame_width, loaded.use_quality) == (K, W, True)


def test_iq_stan_invalid_options():
    with pytest.raises(ValueError, match="frame_width 30 must be a multiple of 4"):
        tiny_model(frame_width=30)
    with pytest.raises(ValueError, match="quality_target must be one of"):
        tiny_model(quality_target="x")
    with pytest.raises(ValueError, match="6 conv layers"):
        tiny_model(filters=(4, 4))


def test_registry_build(fmt16):
    from lprnet_tf.config import ConfigError
    from lprnet_tf.models import build_model, model_kind

    model = build_model("iq_stan", fmt16, **TINY_OPTIONS)
    assert isinstance(model, IQSTAN) and model_kind(model) == "attn" and model.name == "iq_stan"
    assert (model.num_classes, model.max_length, model.input_size) == (fmt16.num_classes, fmt16.max_length,
                                                                      (H, K * W))
    out = model(np.zeros((1, H, K * W, 3), "float32"))
    assert tuple(out["logits"].shape) == (1, fmt16.max_length + 1, fmt16.num_classes)
    with pytest.raises(ConfigError, match="model 'iq_stan': quality_target"):
        build_model("iq_stan", fmt16, quality_target="x")


# ---- data --------------------------------------------------------------------------------------------
def test_synthetic_tracklets(fmt16):
    from lprnet_tf.data.pipeline import ExampleMaker, SynthTrackletSource, open_source
    from lprnet_tf.data.readers import DataError

    src = open_source("synth:3:4", fmt16, frames=K)
    assert isinstance(src, SynthTrackletSource) and len(src) == 4
    maker = ExampleMaker(src, fmt16)
    assert maker.frames == K
    x, y = maker.batch(1, 2)
    n_l = fmt16.max_length
    assert x.shape == (2, H, K * W, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (2, n_l + M) and y.dtype == np.float32
    assert [fmt16.decode(row) for row in y[:, :n_l].astype(int)] == src.texts()[1:3]
    q = y[:, n_l:]
    assert ((q >= 0) & (q <= 1)).all() and q.std() > 0
    (xs, xd), (ys, yd) = maker.signature()
    assert (xs, ys) == ((None, H, K * W, 3), (None, n_l + M)) and xd == yd == "float32"
    x2, y2 = ExampleMaker(open_source("synth:3:4", fmt16, frames=K), fmt16).batch(1, 2)  # same (seed, start)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, ExampleMaker(open_source("synth:4:4", fmt16, frames=K), fmt16).batch(1, 2)[0])
    with pytest.raises(DataError, match="synthetic tracklets need a count"):
        open_source("synth:3", fmt16, frames=K)


def test_tracklet_csv(fmt16, tracks):
    from lprnet_tf.data.pipeline import ExampleMaker, TrackletSource, open_source
    from lprnet_tf.data.readers import DataError

    folder, rows = tracks
    n_l = fmt16.max_length
    csv_maps = {(r["track"], int(r["frame"])): [float(v) for v in r["quality_map"].split()] for r in rows}

    src = open_source(folder, fmt16, frames=2)  # 3 frames per track: spread picks the first and the last
    assert isinstance(src, TrackletSource) and len(src) == 3
    assert [t.frame_ids for t in src.tracklets] == [[0, 2]] * 3
    x, y = ExampleMaker(src, fmt16).batch(0, 3)
    assert x.shape == (3, H, 2 * W, 3) and y.shape == (3, n_l + 14)
    for t, row in zip(src.tracklets, y):
        assert fmt16.decode(row[:n_l].astype(int)) == t.text
        np.testing.assert_allclose(row[n_l:], csv_maps[(t.track, 0)] + csv_maps[(t.track, 2)], atol=1e-6)

    with pytest.raises(DataError, match="has 3 frame.* but K=4"):
        open_source(folder, fmt16, frames=4)
    src = open_source(folder, fmt16, frames=4, track_policy="repeat")
    assert [t.padded for t in src.tracklets] == [[False, False, False, True]] * 3
    x, y = ExampleMaker(src, fmt16).batch(0, 3)
    assert x.shape == (3, H, 4 * W, 3) and y.shape == (3, n_l + 28)
    np.testing.assert_array_equal(x[:, :, 3 * W:], x[:, :, :W])  # frame 3 repeats frame 0
    np.testing.assert_array_equal(y[:, n_l + 21:], y[:, n_l:n_l + 7])


def test_groups_csv_quality_is_computed(fmt16, tmp_path):
    from lprnet_tf.data.pipeline import ExampleMaker, open_source

    (tmp_path / "images").mkdir()
    lines = ["path,text,group"]
    for i, (text, value) in enumerate([("皖A12345", 60), ("皖A12345", 200), ("京B67890", 120), ("京B67890", 30)]):
        write_image(str(tmp_path / "images" / f"{i}.jpg"), h=30, w=100, value=value)
        lines.append(f"images/{i}.jpg,{text},{text}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    src = open_source(str(tmp_path / "labels.csv"), fmt16, frames=2)
    assert sorted(src.texts()) == ["京B67890", "皖A12345"]
    assert all(q is None for t in src.tracklets for q in t.quality)  # no quality column
    _, y = ExampleMaker(src, fmt16).batch(0, 2)
    q = y[:, fmt16.max_length:]
    assert q.shape == (2, 14) and np.isfinite(q).all() and ((q >= 0) & (q <= 1)).all()
    np.testing.assert_array_equal(ExampleMaker(src, fmt16).batch(0, 2)[1], y)  # cached, same values


# ---- decoding ------------------------------------------------------------------------------------------
def test_attention_decode(cn):
    from lprnet_tf.decoding import attention_decode, decode, log_softmax

    s = cn.max_length + 1
    ids = cn.encode("皖A1")
    one = cn.encode("1")[0]
    chosen = [ids + [0, 5, 0, 7, 0, 0],  # ends after 3 characters; what follows is ignored
              [one] * s,  # never ends: cut at max_length characters
              [0] * s]  # ends at once: empty
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 1, (3, s, cn.num_classes)).astype("float32")
    for b, row in enumerate(chosen):
        logits[b, np.arange(s), row] += 4.0
    p = np.exp(log_softmax(logits))
    texts, conf = attention_decode(logits, cn)
    assert texts == ["皖A1", "1" * cn.max_length, ""]
    expected = [p[0, np.arange(4), chosen[0][:4]].prod(),  # 3 characters and the end step
                p[1, np.arange(s - 1), one].prod() * p[1, s - 1, 0],  # and the end class where it stopped
                p[2, 0, 0]]
    np.testing.assert_allclose(conf, expected, rtol=1e-5)
    texts2, conf2 = decode(logits, cn, "greedy", kind="attn")
    assert texts2 == texts and np.allclose(conf2, conf)
    for method in ("beam", "template"):
        with pytest.raises(ValueError, match=f"decoder '{method}' is for CTC models"):
            decode(logits, cn, method, kind="attn")


# ---- train -> resume -> evaluate -----------------------------------------------------------------------
def test_train_resume_evaluate(fmt16, fmt16_path, tracks, tmp_path):
    from lprnet_tf.config import ConfigError, config_from_dict
    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.evaluation import evaluate_model
    from lprnet_tf.modelio import load_model
    from lprnet_tf.training import train

    raw = {"name": "tiny_iq_stan", "plate_format": fmt16_path,
           "model": {"name": "iq_stan", "options": TINY_OPTIONS},
           "data": {"train": tracks[0], "val": "synth:1:4", "frames": K, "augment": "light"},
           "train": {"batch_size": 2, "steps": 2, "eval_every": 1, "keep_checkpoints": 2, "gradient_noise": 0.0}}
    run = str(tmp_path / "run")
    state = train(config_from_dict(raw), run, verbose=False)
    assert state["step"] == 2
    state = train(config_from_dict(raw), run, resume=True, steps=3, verbose=False)
    assert state["step"] == 3
    recs = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"), encoding="utf-8")]
    assert [r["step"] for r in recs] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and "val_accuracy" in r for r in recs)

    with pytest.raises(ConfigError, match=r"reads 2 frame\(s\) but data.frames is 0; set data.frames: 2"):
        train(config_from_dict({**raw, "data": {**raw["data"], "frames": 0}}), str(tmp_path / "run0"), verbose=False)

    model = load_model(os.path.join(run, "last.keras"))
    assert isinstance(model, IQSTAN) and model.frames == K
    out = str(tmp_path / "eval")
    m = evaluate_model(model, open_source("synth:1:4", fmt16, frames=K), fmt16, out, progress=False)
    saved = json.load(open(os.path.join(out, "metrics.json"), encoding="utf-8"))
    assert saved["count"] == 4 and saved == json.loads(json.dumps(m))
    for key in ("quality_lcc_frame", "quality_srocc_frame", "quality_lcc_patch", "quality_srocc_patch"):
        assert -1.0 <= saved[key] <= 1.0, key
    assert len(saved["frame_weights_mean"]) == K and sum(saved["frame_weights_mean"]) == pytest.approx(1.0, abs=1e-3)
    assert os.path.isfile(os.path.join(out, "errors.csv"))
    from lprnet_tf.config import UsageError
    from lprnet_tf.evaluation import predict_views

    with pytest.raises(UsageError, match="multi-frame model.*drop --tta"):  # test-time views: single crops only
        evaluate_model(model, open_source("synth:1:4", fmt16, frames=K), fmt16, str(tmp_path / "tta"), tta=True)
    assert not os.path.exists(tmp_path / "tta")  # refused before anything is written
    with pytest.raises(ValueError, match="single-crop"):
        predict_views(model, open_source("synth:1:4", fmt16, frames=K), fmt16)

    # tracklets read from files: errors.csv names the frames of each wrong track
    src = open_source(tracks[0], fmt16, frames=K)
    _, preds, _ = evaluate_model(model, src, fmt16, str(tmp_path / "eval_files"), progress=False,
                                 return_predictions=True)
    with open(os.path.join(str(tmp_path / "eval_files"), "errors.csv"), encoding="utf-8") as f:
        wrong = list(csv.DictReader(f))
    assert len(wrong) == sum(p != t for p, t in zip(preds, src.texts()))
    for row in wrong:
        assert row["path"] == ";".join(src.tracklets[int(row["index"])].frames)
