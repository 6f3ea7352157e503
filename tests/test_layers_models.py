import keras
import numpy as np
import pytest

from helpers import check_layer, check_model_roundtrip
from lprnet_tf.config import ConfigError
from lprnet_tf.layers import ChannelMaxPool, GlobalContext, LocNet, SmallBasicBlock, affine_grid_sample
from lprnet_tf.layers import locnet_enabled, set_locnet_enabled
from lprnet_tf.models import build_model


def test_small_basic_block(tmp_path):
    check_layer(SmallBasicBlock(32), (2, 6, 10, 8), (2, 6, 10, 32), tmp_path)
    with pytest.raises(ValueError, match="divisible by 4"):
        SmallBasicBlock(30)


def test_channel_max_pool(tmp_path):
    x = np.random.default_rng(0).random((2, 3, 4, 8)).astype("float32")
    y = check_layer(ChannelMaxPool(4), x.shape, (2, 3, 4, 4), tmp_path, x=x)
    np.testing.assert_allclose(y, x.reshape(2, 3, 4, 4, 2).max(-1))


def test_global_context(tmp_path):
    check_layer(GlobalContext(16), (2, 4, 18, 10), (2, 4, 18, 26), tmp_path)


def test_global_context_is_per_sample():
    """One plate's output must not depend on the rest of the batch (the peer bug normalizes per batch)."""
    layer = GlobalContext(8)
    rng = np.random.default_rng(1)
    a = rng.random((1, 4, 18, 10)).astype("float32")
    others = (rng.random((5, 4, 18, 10)) * 50).astype("float32")
    alone = keras.ops.convert_to_numpy(layer(a))
    batched = keras.ops.convert_to_numpy(layer(np.concatenate([a, others])))[:1]
    np.testing.assert_allclose(alone, batched, rtol=1e-5, atol=1e-6)


def test_locnet_identity_gate_and_roundtrip(tmp_path):
    x = np.random.default_rng(2).random((2, 24, 94, 3)).astype("float32")
    layer = LocNet()
    y = check_layer(layer, x.shape, x.shape, tmp_path, x=x)
    np.testing.assert_allclose(y, x, atol=1e-6)  # gate off: pass-through
    layer.enabled.assign(1.0)
    y_on = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(y_on[:, 1:-1, 1:-1], x[:, 1:-1, 1:-1], atol=1e-4)  # identity transform at init


def test_affine_sampler_shift():
    x = np.zeros((1, 5, 9, 1), "float32")
    x[0, 2, 4, 0] = 1.0
    shift = 2.0 / 8  # one pixel to the right in normalized coordinates
    theta = np.array([[1, 0, shift, 0, 1, 0]], "float32")
    y = keras.ops.convert_to_numpy(affine_grid_sample(x, theta))
    assert y[0, 2, 3, 0] == pytest.approx(1.0, abs=1e-5) and y[0, 2, 4, 0] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name,T", [("lprnet_basic", 18), ("lprnet_reduced", 18), ("lprnet_baseline", 18)])
def test_models_shape_and_roundtrip(name, T, cn, tmp_path):
    model = build_model(name, cn)
    x = np.random.default_rng(3).random((2, 24, 94, 3)).astype("float32")
    assert model(x).shape == (2, T, cn.num_classes)
    check_model_roundtrip(model, x, tmp_path, atol=1e-4)


def test_model_prediction_independent_of_batch(cn):
    model = build_model("lprnet_basic", cn)
    rng = np.random.default_rng(4)
    a = rng.random((1, 24, 94, 3)).astype("float32")
    rest = rng.random((7, 24, 94, 3)).astype("float32")
    alone = keras.ops.convert_to_numpy(model(a, training=False))
    batched = keras.ops.convert_to_numpy(model(np.concatenate([a, rest]), training=False))[:1]
    # An untrained model's logits reach ~1e3, where float32 rounding (batch-size dependent oneDNN kernels) moves
    # single logits by ~1e-4; a normalization over the batch would move every logit by percents of that scale.
    np.testing.assert_allclose(alone, batched, rtol=1e-4, atol=1e-5 * float(np.abs(alone).max()))


def test_locnet_gate_survives_save_load(cn, tmp_path):
    model = build_model("lprnet_basic", cn, locnet=True)
    assert locnet_enabled(model) is False
    assert set_locnet_enabled(model, True)
    x = np.random.default_rng(5).random((1, 24, 94, 3)).astype("float32")
    loaded = check_model_roundtrip(model, x, tmp_path, atol=1e-4)
    assert locnet_enabled(loaded) is True


def test_unknown_model(cn):
    with pytest.raises(ValueError, match="unknown model"):
        build_model("lprnet_huge", cn)
    with pytest.raises(ValueError, match="bad option.*check the model: section of the config"):
        build_model("lprnet_basic", cn, wings=2)
    # a value the model refuses names the model and where the options came from
    with pytest.raises(ConfigError, match=r"model 'lprnet_basic': .*rate.*; check --set"):
        build_model("lprnet_basic", cn, options_from="--set", dropout=5)
