"""EQ-LPR quality networks (lprnet_tf/models/eq_lpr.py): the quality label, the three variants,
save/load, training through lprnet-train's train() and the quality evaluation."""

import numpy as np
import pytest




def _logits(path_probs, classes=73):
    """Log-probabilities (1, T, C) whose arg-max path and top probabilities are given: [(class, p)]."""
    rest = 1e-3
    p = np.full((1, len(path_probs), classes), rest, np.float32)
    for t, (c, v) in enumerate(path_probs):
        p[0, t, c] = v
    p /= p.sum(-1, keepdims=True)
    return np.log(p), p


def test_recognition_quality_is_the_weakest_character_of_the_greedy_reading():
    import keras

    from lprnet_tf.models.eq_lpr import recognition_quality

    # path a a _ b b _ c: characters a (run max 0.9), b (run max 0.8), c (0.95) -> alpha = p(b) = 0.8
    logits, p = _logits([(1, .6), (1, .9), (0, .99), (2, .5), (2, .8), (0, .9), (3, .95)])
    got = float(keras.ops.convert_to_numpy(recognition_quality(logits))[0])
    want = min(p[0, 1, 1], p[0, 4, 2], p[0, 6, 3])
    assert got == pytest.approx(want, rel=1e-5)
    # a repeated character separated by a blank is two characters; its weaker run counts
    logits, p = _logits([(5, .9), (0, .9), (5, .4), (0, .9)])
    assert float(keras.ops.convert_to_numpy(recognition_quality(logits))[0]) == pytest.approx(p[0, 2, 5], rel=1e-5)
    # nothing read -> 0
    logits, _ = _logits([(0, .9)] * 4)
    assert float(keras.ops.convert_to_numpy(recognition_quality(logits))[0]) == 0.0


def test_grayscale_layer(tmp_path):
    import keras

    from lprnet_tf.models.eq_lpr import Grayscale

    x = np.random.default_rng(0).random((2, 5, 7, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(Grayscale()(x))
    assert y.shape == (2, 5, 7, 1)
    np.testing.assert_allclose(y[..., 0], x @ np.array([0.299, 0.587, 0.114], np.float32), rtol=1e-5)
    inp = keras.Input((5, 7, 3))
    m = keras.Model(inp, Grayscale(name="g")(inp))
    m.save(tmp_path / "g.keras")
    m2 = keras.saving.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(m2.predict(x, verbose=0), y, rtol=1e-6)
    assert Grayscale.from_config(Grayscale(name="g").get_config()).name == "g"


@pytest.mark.parametrize("variant", ["p", "s", "e"])
def test_quality_networks_shapes_loss_and_roundtrip(variant, cn, tmp_path):
    from lprnet_tf.modelio import input_shape_of, load_model
    from lprnet_tf.models import build_model, model_kind

    m = build_model(f"eq_lpr_{variant}", cn, recognizer="cn_lprnet_basic")
    assert model_kind(m) == "quality" and input_shape_of(m) == (24, 94, 3)
    x = np.random.default_rng(1).random((3, 24, 94, 3)).astype("float32")
    out = m(x)
    assert out["quality"].shape == (3,)
    q = np.asarray(out["quality"])
    assert ((q >= 0) & (q <= 1)).all()
    if variant == "e":
        assert out["features"].shape == (3, 256)
    loss = float(m.compute_loss(x, None, m(x)))
    assert np.isfinite(loss) and loss >= 0
    m.save(tmp_path / "q.keras")
    m2 = load_model(str(tmp_path / "q.keras"))
    np.testing.assert_allclose(np.asarray(m2(x)["quality"]), q, atol=1e-5)
    assert m2.get_config()["recognizer"] == "cn_lprnet_basic"


def test_siamese_variant_shares_the_recognizers_backbone(cn):
    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.models import build_model

    rec, _, _ = load_for_inference("cn_lprnet_basic")
    s = build_model("eq_lpr_s", cn, recognizer="cn_lprnet_basic")
    backbone = s.net.get_layer("shared_backbone")
    assert not backbone.trainable
    np.testing.assert_array_equal(backbone.get_layer("conv1").get_weights()[0], rec.get_layer("conv1").get_weights()[0])
    # only the head learns
    assert 0 < sum(int(np.prod(w.shape)) for w in s.trainable_weights) < 50_000


def test_quality_network_options_are_checked(cn):
    from lprnet_tf.config import ConfigError
    from lprnet_tf.models import build_model

    with pytest.raises(ConfigError, match="recognizer"):
        build_model("eq_lpr_e", cn)
    from lprnet_tf.vocab import load_plate_format

    big = load_plate_format("configs/variants/cn_120x40.yaml")
    with pytest.raises(ConfigError, match="24x94"):
        build_model("eq_lpr_s", big, recognizer="cn_lprnet_basic")


def test_quality_network_trains_and_evaluates(tmp_path):
    import json

    from lprnet_tf.config import config_from_dict
    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.evaluation import evaluate_quality_net
    from lprnet_tf.modelio import load_model
    from lprnet_tf.training import train
    from lprnet_tf.vocab import load_plate_format

    cfg = config_from_dict({"name": "t", "plate_format": "cn", "model": {"name": "eq_lpr_e",
                                                                        "options": {"recognizer": "cn_lprnet_basic"}},
                            "data": {"train": "synth:0", "val": "synth:9:4", "augment": "none"},
                            "train": {"batch_size": 2, "steps": 2, "eval_every": 1, "gradient_noise": 0.0}})
    run = tmp_path / "run"
    state = train(cfg, str(run), verbose=False)
    assert state["step"] == 2
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2] and all("val_srocc" in r and "val_mae" in r for r in recs)
    assert (run / "best.keras").is_file()
    # resume continues
    state = train(cfg, str(run), resume=True, steps=3, verbose=False)
    assert state["step"] == 3
    m = evaluate_quality_net(load_model(str(run / "last.keras")), open_source("synth:9:4", load_plate_format("cn")),
                             load_plate_format("cn"))
    assert m["count"] == 4 and 0 <= m["mae"] <= 1 and 0 <= m["alpha_mean"] <= 1


def test_training_loads_the_real_teacher_eagerly(cn):
    """The frozen recognizer must be loaded before fit traces the train step (loaded inside the trace,
    its weights were never assigned and alpha came from a random network)."""
    import keras

    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.models import build_model

    m = build_model("eq_lpr_e", cn, recognizer="cn_lprnet_basic")
    m.compile(optimizer=keras.optimizers.Adam(1e-3))
    rec, _, _ = load_for_inference("cn_lprnet_basic")
    x = np.random.default_rng(2).random((4, 24, 94, 3)).astype("float32")
    m.train_on_batch(x, None)  # loads the teacher before tracing the step
    np.testing.assert_array_equal(m.teacher().get_layer("conv1").get_weights()[0], rec.get_layer("conv1").get_weights()[0])
