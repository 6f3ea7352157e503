"""Two-row (square) plates: the row layout of lprnet_tf.runtime.fit_crop, its in-graph twin in the
SavedModel, the synthetic cn2 plates, format inheritance (``base:``) and an export round trip."""

import json
import os

import cv2
import numpy as np
import pytest

from conftest import REPO


@pytest.fixture
def cn2():
    from lprnet_tf.vocab import load_plate_format

    return load_plate_format("cn2")


def _two_colour_crop(h=60, w=80, cut=23):
    img = np.zeros((h, w, 3), np.uint8)
    img[:cut] = (255, 0, 0)   # top row red
    img[cut:] = (0, 0, 255)   # bottom row blue
    return img


def test_fit_crop_lays_rows_side_by_side(cn2):
    from lprnet_tf.runtime import fit_crop, row_bounds

    img = _two_colour_crop(60, 80, cut=row_bounds(60, cn2))
    out = fit_crop(img, cn2)
    assert out.shape == (24, 94, 3) and out.dtype == np.uint8
    left = cn2.width // 2
    assert (out[:, :left, 0] == 255).all() and (out[:, :left, 2] == 0).all()  # top row on the left
    assert (out[:, left:, 2] == 255).all() and (out[:, left:, 0] == 0).all()  # bottom row on the right


def test_row_bounds_keep_a_pixel_each_side(cn2):
    from lprnet_tf.runtime import fit_crop, row_bounds

    assert row_bounds(100, cn2) == 38
    assert row_bounds(2, cn2) == 1
    assert fit_crop(np.zeros((2, 10, 3), np.uint8), cn2).shape == (24, 94, 3)
    with pytest.raises(ValueError, match="two-row"):
        fit_crop(np.zeros((1, 10, 3), np.uint8), cn2)


def test_one_row_formats_are_unchanged(cn):
    from lprnet_tf.runtime import fit_crop, resize_crop

    img = np.random.default_rng(0).integers(0, 256, (40, 130, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit_crop(img, cn), resize_crop(img, 24, 94))


def test_in_graph_layout_matches_the_runtime(cn2):
    import tensorflow as tf

    from lprnet_tf.export import fit_like_pipeline
    from lprnet_tf.runtime import fit_crop

    rng = np.random.default_rng(3)
    for h, w in ((60, 80), (96, 190), (20, 40), (9, 200)):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)
        got = fit_like_pipeline(tf.constant(img), cn2).numpy()
        want = fit_crop(img, cn2)
        assert got.shape == want.shape == (24, 94, 3)
        # TF's area/bilinear resize vs cv2's: off by at most a few grey levels on smooth images
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 3, (h, w)


def test_cn2_synthetic_plates(cn2):
    from lprnet_tf.data.pipeline import ExampleMaker, SynthSource

    src = SynthSource(cn2, 5, 12)
    for i in range(12):
        image, text = src.get(i)
        assert cn2.matches_template(text), text
        assert image.shape[0] >= 40 and image.shape[1] < 3 * image.shape[0]  # square-ish crop, not a strip
    x, y = ExampleMaker(src, cn2).batch(0, 4)
    assert x.shape == (4, 24, 94, 3) and y.shape == (4, cn2.max_length)


def test_two_row_style_is_validated():
    from lprnet_tf.synth.spec import SynthConfigError, build_spec
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn2")
    raw = dict(fmt.synth)
    styles = dict(raw["styles"])
    styles["large"] = dict(styles["large"], two_row={"top_chars": 2, "top_box_mm": [1, 2, 3, 4]})
    bad = load_plate_format({**fmt.to_dict(), "synth": {**raw, "styles": styles}})
    with pytest.raises(SynthConfigError, match="top_char_mm"):
        build_spec(bad)


def test_format_base_inheritance(tmp_path):
    from lprnet_tf.vocab import PlateFormatError, load_plate_format

    p = tmp_path / "mine.yaml"
    p.write_text("base: cn2\nname: mine\nrows: 1\n", encoding="utf-8")
    fmt = load_plate_format(str(p))
    assert (fmt.name, fmt.rows, fmt.alphabet) == ("mine", 1, load_plate_format("cn2").alphabet)
    assert fmt.synth == load_plate_format("cn2").synth
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nname: b\n", encoding="utf-8")
    with pytest.raises(PlateFormatError, match="cycle"):
        load_plate_format(str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("base: nowhere\nname: c\n", encoding="utf-8")
    with pytest.raises(PlateFormatError, match="unknown plate format 'nowhere'"):
        load_plate_format(str(tmp_path / "c.yaml"))
    onerow = load_plate_format(os.path.join(REPO, "configs", "variants", "cn2_onerow.yaml"))
    assert onerow.rows == 1 and onerow.name == "cn2_onerow"


def test_export_round_trip_with_two_rows(cn2, tmp_path):
    """SavedModel bytes signature (layout in the graph), TFLite f32 via the runtime (layout on the
    host) and the Keras model read a two-row crop identically; the sidecar documents the layout."""
    import keras
    import tensorflow as tf

    from lprnet_tf import export
    from lprnet_tf.data.pipeline import SynthSource
    from lprnet_tf.decoding import decode
    from lprnet_tf.models import build_model
    from lprnet_tf.runtime import Recognizer, preprocess_batch, sidecar_path

    keras.utils.set_random_seed(2)
    model = build_model("lprnet_reduced", cn2)
    src = SynthSource(cn2, 21)
    crops = [src.get(i) for i in range(8)]
    summary = export.export_all(model, cn2, str(tmp_path / "out"), tflite=("f32",), crops=crops)
    ref = np.asarray(model(preprocess_batch([c[0] for c in crops], cn2), training=False))
    plates, _ = decode(ref, cn2, "greedy")

    sd = tf.saved_model.load(summary["savedmodel"]).signatures["serving_default"]
    pngs = [cv2.imencode(".png", c[0][..., ::-1])[1].tobytes() for c in crops]
    assert [p.decode() for p in sd(image_bytes=tf.constant(pngs))["plate"].numpy()] == plates

    tfl = [p for p in summary["tflite"] if "f32" in os.path.basename(p) and p.endswith(".tflite")][0]
    side = json.load(open(sidecar_path(tfl), encoding="utf-8"))
    assert side["input"]["rows"] == 2 and "side by side" in side["input"]["row_layout"]
    rec = Recognizer(tfl)
    assert [r.text for r in rec.recognize([c[0] for c in crops])] == plates
