"""One harness for every custom layer and model: shape, get_config round trip, .keras save/load."""

import os

import keras
import numpy as np


def check_layer(layer, input_shape, expected_shape, tmp_path, x=None):
    """Build ``layer`` on ``input_shape`` (batch included), check output shape, config and save/load."""
    x = np.random.default_rng(0).random(input_shape).astype("float32") if x is None else x
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == tuple(expected_shape), f"{type(layer).__name__}: {y.shape} != {expected_shape}"
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(expected_shape)
    cfg = layer.get_config()
    clone = type(layer).from_config(cfg)
    assert clone.get_config() == cfg
    inp = keras.Input(input_shape[1:])
    model = keras.Model(inp, layer(inp))
    check_model_roundtrip(model, x, tmp_path)
    return y


def check_model_roundtrip(model, x, tmp_path, atol=1e-5):
    """Save to .keras, reload with safe_mode=True and compare predictions."""
    path = os.path.join(str(tmp_path), f"{model.name}.keras")
    y1 = keras.ops.convert_to_numpy(model(x, training=False))
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    y2 = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_allclose(y1, y2, atol=atol)
    return loaded
