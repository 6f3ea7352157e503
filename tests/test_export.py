"""Export: SavedModel signatures and assets, TFLite variants (builtin ops only), sidecars, parity."""

import functools
import json
import os
import re
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def ex(tmp_path_factory):
    """An untrained lprnet_reduced (cn), saved as .keras and exported (SavedModel + TFLite f32)."""
    import keras

    from lprnet_tf import export
    from lprnet_tf.data.pipeline import SynthSource
    from lprnet_tf.models import build_model
    from lprnet_tf.modelio import save_model
    from lprnet_tf.runtime import preprocess_batch
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    keras.utils.set_random_seed(1)
    model = build_model("lprnet_reduced", fmt)
    root = tmp_path_factory.mktemp("export")
    keras_path = save_model(model, str(root / "model" / "model.keras"), fmt)
    src = SynthSource(fmt, 11)
    crops = [src.get(i) for i in range(16)]
    out = str(root / "out")
    summary = export.export_all(model, fmt, out, tflite=("f32",), crops=crops)  # raises if parity fails
    x = preprocess_batch([c[0] for c in crops], fmt)
    ref = np.asarray(model(x, training=False))
    return types.SimpleNamespace(fmt=fmt, model=model, root=root, out=out, keras_path=keras_path, crops=crops,
                                 x=x, ref=ref, summary=summary, saved=summary["savedmodel"])


def _limit(ref):
    from lprnet_tf.export import LOGIT_ATOL, LOGIT_RTOL

    return LOGIT_ATOL + LOGIT_RTOL * float(np.abs(ref).max())


def test_savedmodel_layout_and_assets(ex):
    from lprnet_tf.vocab import load_plate_format

    assert ex.saved == os.path.join(ex.out, "lpr", "1")
    assert os.path.isfile(os.path.join(ex.saved, "saved_model.pb"))
    assert os.path.isdir(os.path.join(ex.saved, "variables"))
    assert os.listdir(os.path.join(ex.out, "lpr")) == ["1"]  # no temporary folder left behind
    lines = open(os.path.join(ex.saved, "assets", "alphabet.txt"), encoding="utf-8").read().splitlines()
    assert lines[0] == "<blank>" and "".join(lines[1:]) == ex.fmt.alphabet  # line k = class k
    assert load_plate_format(os.path.join(ex.saved, "assets", "plate_format.yaml")) == ex.fmt


def test_savedmodel_signatures_agree_with_keras(ex):
    import tensorflow as tf

    from lprnet_tf.decoding import decode
    from lprnet_tf.runtime import resize_crop

    loaded = tf.saved_model.load(ex.saved)
    assert set(loaded.signatures) == {"serving_default", "predict_images"}
    sd, pi = loaded.signatures["serving_default"], loaded.signatures["predict_images"]
    (spec,) = sd.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    (spec,) = pi.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 24, 94, 3]
    assert set(sd.structured_outputs) == set(pi.structured_outputs) == {"plate", "confidence", "logits"}

    plates, conf = decode(ex.ref, ex.fmt, "greedy")
    u8 = np.stack([resize_crop(c[0], 24, 94) for c in ex.crops])
    out = pi(images=tf.constant(u8))
    assert np.abs(out["logits"].numpy() - ex.ref).max() <= _limit(ex.ref)
    assert [p.decode() for p in out["plate"].numpy()] == plates  # in-graph greedy decode = numpy decoder
    np.testing.assert_allclose(out["confidence"].numpy(), conf, atol=1e-5)

    # Encoded bytes: PNG of the original-size crops (resized in the graph) -> same plates.
    pngs = [cv2.imencode(".png", c[0][..., ::-1])[1].tobytes() for c in ex.crops]
    out = sd(image_bytes=tf.constant(pngs))
    assert [p.decode() for p in out["plate"].numpy()] == plates
    # JPEG of a 24x94 crop: decoded like cv2 (accurate IDCT), so the logits match exactly.
    jpg = cv2.imencode(".jpg", u8[0][..., ::-1])[1].tobytes()
    same = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    want = np.asarray(ex.model(same[None].astype(np.float32) * (1.0 / 255.0), training=False))
    assert np.abs(sd(image_bytes=tf.constant([jpg]))["logits"].numpy() - want).max() <= _limit(want)
    with pytest.raises(tf.errors.InvalidArgumentError):
        sd(image_bytes=tf.constant([b"not an image"]))


def test_tflite_f32_parity_and_dynamic_batch(ex):
    from lprnet_tf.decoding import decode
    from lprnet_tf.runtime import TFLiteBackend

    one = TFLiteBackend(os.path.join(ex.out, "tflite", "lpr_f32.tflite"))
    batch = TFLiteBackend(os.path.join(ex.out, "tflite", "lpr_f32_batch.tflite"))
    assert not one.dynamic and batch.dynamic
    y1, yb = one.logits(ex.x), batch.logits(ex.x)
    assert y1.shape == ex.ref.shape == (16, 18, ex.fmt.num_classes)
    assert np.abs(y1 - ex.ref).max() <= _limit(ex.ref)
    assert np.abs(yb - y1).max() <= _limit(ex.ref)
    assert decode(y1, ex.fmt)[0] == decode(ex.ref, ex.fmt)[0]
    batch.max_batch = 5  # resize_tensor_input to 5, then to the remainder 1
    assert np.abs(batch.logits(ex.x) - y1).max() <= _limit(ex.ref)


def test_sidecar_json(ex):
    side = json.load(open(os.path.join(ex.out, "tflite", "lpr_f32.json"), encoding="utf-8"))
    assert side["alphabet"] == ex.fmt.alphabet and side["blank_index"] == 0
    assert side["classes"][0] == "<blank>" and len(side["classes"]) == ex.fmt.num_classes
    assert side["input"]["shape"] == [1, 24, 94, 3] and side["input"]["dtype"] == "float32"
    assert side["input"]["range"] == [0.0, 1.0] and side["input"]["color"] == "RGB"
    assert side["output"]["shape"] == [1, 18, ex.fmt.num_classes] and side["output"]["time_steps"] == 18
    assert side["templates"] == list(ex.fmt.templates) and side["decoder"]["default"] == "greedy"
    assert side["variant"] == "f32" and not any(op.startswith("Flex") for op in side["ops"])
    batch = json.load(open(os.path.join(ex.out, "tflite", "lpr_f32_batch.json"), encoding="utf-8"))
    assert batch["input"]["shape"] == [-1, 24, 94, 3] and batch["input"]["batch"] == "dynamic"


def test_parity_report(ex):
    report = json.load(open(os.path.join(ex.out, "parity.json"), encoding="utf-8"))
    assert report["passed"] and not report["failures"]
    assert set(report["exports"]) == {"savedmodel:predict_images", "savedmodel:serving_default",
                                      "tflite:lpr_f32.tflite", "tflite:lpr_f32_batch.tflite"}
    assert report["exports"]["tflite:lpr_f32.tflite"]["plate_agreement"] == 1.0


def test_quantized_variants_use_builtin_ops_only(ex, tmp_path):
    from lprnet_tf import export

    files = export.export_tflite(ex.model, ex.fmt, str(tmp_path), "q", variants=("f16", "dynamic", "int8"),
                                 batch=("1",), representative=[c[0] for c in ex.crops], calibration_count=16)
    assert [os.path.basename(f) for f in files] == ["q_f16.tflite", "q_dynamic.tflite", "q_int8.tflite"]
    for f in files:
        ops = export.check_builtin_ops(f)
        assert "CONV_2D" in ops and not any(o.startswith("Flex") for o in ops)
    side = json.load(open(str(tmp_path / "q_int8.json"), encoding="utf-8"))
    assert side["int8"]["float32_layers"] == ["global_context"]  # no LocNet in this model
    assert "QUANTIZE" in side["ops"] and "DEQUANTIZE" in side["ops"]
    assert os.path.getsize(files[2]) < 0.5 * os.path.getsize(os.path.join(ex.out, "tflite", "lpr_f32.tflite"))
    # Untrained weights: quantized plates need not agree; the report must still carry the figures.
    report = export.verify_export(ex.model, ex.fmt, tflite_files=files, crops=ex.crops, raise_on_fail=False)
    for f in files:
        r = report["exports"][f"tflite:{os.path.basename(f)}"]
        assert 0.0 <= r["plate_agreement"] <= 1.0 and "max_abs_logit_diff" in r
        # The changed plates split by whether Keras reads the crop right; the parts add up.
        (cr, nr), (cw, nw) = r["changed_where_keras_right"], r["changed_where_keras_wrong"]
        n = len(ex.crops)
        assert nr + nw == n and nr == round(report["keras"]["accuracy"] * n)
        assert cr + cw == round((1 - r["plate_agreement"]) * n) and cr <= nr and cw <= nw


def test_flex_ops_are_refused():
    import tensorflow as tf

    from lprnet_tf.export import ExportError, check_builtin_ops, tflite_ops

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def cumprod(x):
        return tf.math.cumprod(x, axis=1)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([cumprod.get_concrete_function()], cumprod)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    data = conv.convert()
    assert tflite_ops(data) == ["FlexCumprod"]
    with pytest.raises(ExportError, match="FlexCumprod"):
        check_builtin_ops(data)


def test_parity_failure_raises_with_figures(ex):
    import keras

    from lprnet_tf import export
    from lprnet_tf.models import build_model

    keras.utils.set_random_seed(2)
    other = build_model("lprnet_reduced", ex.fmt)  # different weights than the exported model
    with pytest.raises(export.ExportParityError, match=r"max \|logit diff\|") as e:
        export.verify_export(other, ex.fmt, ex.saved, [os.path.join(ex.out, "tflite", "lpr_f32.tflite")],
                             crops=ex.crops[:4])
    assert not e.value.report["passed"] and e.value.report["failures"]


def test_existing_version_is_refused(ex):
    from lprnet_tf.export import export_savedmodel

    with pytest.raises(FileExistsError, match="--overwrite"):
        export_savedmodel(ex.model, ex.fmt, ex.out, "lpr", 1)


def test_int8_locnet_sampler_needs_float(tmp_path):
    """The finding behind INT8_FLOAT_DEFAULT: with every op int8, LocNet's bilinear sampler reads the
    wrong pixels (coordinates are quantized before they become gather indices); with the LocNet kept
    float32 the error is the ordinary int8 error of the layers after it."""
    import keras

    from lprnet_tf import export
    from lprnet_tf.data.pipeline import SynthSource
    from lprnet_tf.layers import LocNet
    from lprnet_tf.runtime import TFLiteBackend, preprocess_batch
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 94, 3))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inp)
    x = LocNet(name="locnet")(x)
    model = keras.Model(inp, keras.layers.Conv2D(8, 3, name="conv")(x))
    loc = model.get_layer("locnet")
    loc.enabled.assign(1.0)  # switched on, with a small rotation/scale/shift
    loc.fc2.set_weights([loc.fc2.get_weights()[0], np.array([0.1, 0.1, 0.05, -0.1, 0.1, -0.05], np.float32)])
    src = SynthSource(fmt, 5)
    images = [src.get(i)[0] for i in range(8)]
    x = preprocess_batch(images, fmt)
    ref = np.asarray(model(x))
    saved = export._save_logits_model(model, fmt, str(tmp_path / "logits"))
    rep = export.representative_batches(fmt, images, 8)
    err = {}
    for name, float_layers in (("all_int8", []), ("locnet_float", ["locnet"])):
        path = str(tmp_path / f"{name}.tflite")
        with open(path, "wb") as f:
            f.write(export._convert(saved, "batch1", "int8", rep, float_layers))
        export.check_builtin_ops(path)
        err[name] = float(np.abs(TFLiteBackend(path).logits(x) - ref).mean() / np.abs(ref).mean())
    assert err["locnet_float"] < 0.05, err  # measured ~0.012
    assert err["all_int8"] > 0.3, err  # measured ~0.67: the warp is destroyed
    # float16: the converter stores every float constant as float16; the sampler's grid is integer pixel
    # coordinates (exact in float16), so the f16 warp samples the f32 points (normalized coordinates in
    # [-1, 1] lost ~0.01 px in float16: 98.6 % plate agreement on the real CN crops, now 99.7 %)
    path = str(tmp_path / "f16.tflite")
    with open(path, "wb") as f:
        f.write(export._convert(saved, "batch1", "f16"))
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path)
    grids = [d for d in it.get_tensor_details() if d["dtype"] == np.float16 and d["shape"].tolist() == [1, 24 * 94]]
    assert grids, "the sampler's grids should be float16 constants of the f16 file"
    for d in grids:  # integer pixel coordinates
        vals = it.get_tensor(d["index"]).astype(np.float64)
        assert np.array_equal(vals, np.round(vals)) and vals.max() in (23.0, 93.0), d["name"]
    # converter flags (benchmarks/quantization.py): set on the converter; a misspelt one is refused by name
    assert export._convert(saved, "batch1", "dynamic", converter_flags={"_experimental_disable_per_channel": True})
    with pytest.raises(export.ExportError, match="'_experimental_disable_per_chanel' is not an attribute"):
        export._convert(saved, "batch1", "dynamic", converter_flags={"_experimental_disable_per_chanel": True})


def test_quantization_benchmark_weights_on_grid(ex, tmp_path):
    """benchmarks/quantization.py's weight-only QAT end state: every kernel on its per-channel int8 grid,
    the largest weight of each channel kept, idempotent; the setting runs end to end on the tiny model."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import quantization

    from lprnet_tf.modelio import load_model

    m = load_model(ex.keras_path)
    before = {v.path: np.asarray(v) for v in m.weights}
    quantization.weights_on_grid(m)
    kernels = [v for v in m.weights if v.path.endswith("kernel") and len(v.shape) >= 2]
    assert kernels
    for v in kernels:
        w, w0 = np.asarray(v, np.float64), before[v.path]
        axes = tuple(range(w.ndim - 1))
        scale = np.abs(w0).max(axis=axes, keepdims=True) / 127.0
        q = w / np.where(scale > 0, scale, 1.0)
        assert np.allclose(q, np.round(q), atol=1e-3), v.path
        assert np.allclose(np.abs(w).max(axis=axes), np.abs(w0).max(axis=axes), rtol=1e-6), v.path
        assert np.abs(w - w0).max() <= scale.max() / 2 + 1e-7, v.path
    snapped = [np.asarray(v) for v in m.weights]
    quantization.weights_on_grid(m)
    assert all(np.allclose(a, np.asarray(v), atol=1e-7) for a, v in zip(snapped, m.weights))
    out = str(tmp_path / "q")
    assert quantization.main(["--model", ex.keras_path, "--settings", "dynamic_weights_on_grid", "--data",
                              "synth:11:8", "--count", "8", "--groups", "locnet_fc2,head,all", "--out", out]) == 0
    result = json.load(open(out + ".json", encoding="utf-8"))
    row = result["rows"][0]
    assert row["setting"] == "dynamic_weights_on_grid" and "agree with the original's on" in row["what"]
    assert 0.0 <= row["agreement"] <= 1.0
    # the Keras-only diagnosis: one group of kernels rounded at a time
    fc2, head, everything = result["groups"]
    # this model has no LocNet: nothing rounded, the copy reads as the original
    assert (fc2["group"], fc2["kernels"], fc2["agreement"]) == ("locnet_fc2", 0, 1.0)
    assert head["kernels"] == 2 and everything["kernels"] == len(kernels)  # global context FC + classifier
    assert all(0.0 <= r["agreement"] <= 1.0 for r in result["groups"])
    assert "Where the flips come from" in open(out + ".md", encoding="utf-8").read()
    with pytest.raises(SystemExit):
        quantization.main(["--model", ex.keras_path, "--settings", "none", "--groups", "locnet"])
    # --each_kernel: one row per kernel, each rounding exactly that kernel
    assert quantization.main(["--model", ex.keras_path, "--settings", "none", "--groups", "none", "--each_kernel",
                              "--data", "synth:11:8", "--count", "8", "--out", out]) == 0
    each = json.load(open(out + ".json", encoding="utf-8"))["groups"]
    unnumbered = functools.partial(re.sub, r"_\d+/", "/")  # auto-named layers are numbered per load
    assert [unnumbered(r["group"]) for r in each] == [unnumbered(v.path) for v in kernels]
    assert all(r["kernels"] == 1 and 0.0 <= r["agreement"] <= 1.0 for r in each)
    # on a model with a LocNet the groups split its kernels: convolutions + fc1, and fc2 (the affine parameters)
    from lprnet_tf.models import build_model

    loc = build_model("lprnet_reduced", ex.fmt, locnet=True)
    counts = {g: quantization.weights_on_grid(loc, quantization.GROUPS[g][0]) for g in quantization.GROUPS}
    assert counts["locnet_features"] == 3 and counts["locnet_fc2"] == 1
    assert sum(counts[g] for g in ("locnet_features", "locnet_fc2", "backbone", "head")) == counts["all"]


def _export_cli(ex, out, *args):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, os.path.join(REPO, "export_savedmodel.py"), "--model",
                           os.path.dirname(ex.keras_path), "--out", out, *args],
                          env=env, capture_output=True, text=True, timeout=600)


def test_export_cli(ex):
    out = str(ex.root / "cli")
    r = _export_cli(ex, out, "--name", "plates", "--version", "3", "--tflite", "none", "--parity_data", "synth:5:4")
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.isfile(os.path.join(out, "plates", "3", "saved_model.pb"))
    assert not os.path.exists(os.path.join(out, "tflite"))
    report = json.load(open(os.path.join(out, "parity.json"), encoding="utf-8"))
    assert report["passed"] and report["crops"]["count"] == 4
    assert "savedmodel:serving_default" in r.stdout and "FAIL" not in r.stdout


def test_quantization_benchmark_given_calibration(ex, tmp_path):
    """benchmarks/quantization.py's int8_given_calibration: int8 calibrated on one split of a labels.csv (the
    training crops) and named so in the row; refused without --calibration_data."""
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import quantization

    from lprnet_tf.data.pipeline import SynthSource

    src, rows = SynthSource(ex.fmt, 21), ["path,text,split"]
    for i in range(5):
        image, text = src.get(i)
        cv2.imwrite(str(tmp_path / f"{i}.png"), image[..., ::-1])
        rows.append(f"{i}.png,{text},{'train' if i < 3 else 'val'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = str(tmp_path / "q")
    assert quantization.main(["--model", ex.keras_path, "--settings", "int8_given_calibration", "--data", "synth:11:8",
                              "--count", "8", "--groups", "none", "--calibration_data", str(tmp_path / "labels.csv"),
                              "--calibration_split", "train", "--out", out]) == 0
    row = json.load(open(out + ".json", encoding="utf-8"))["rows"][0]
    assert row["setting"] == "int8_given_calibration" and "the first 3 crops of" in row["what"]
    assert "(split train)" in row["what"] and 0.0 <= row["agreement"] <= 1.0
    with pytest.raises(SystemExit):
        quantization.main(["--model", ex.keras_path, "--settings", "int8_given_calibration", "--out", out])


def test_crops_from_spec_split(tiny_csv, br):
    """Calibration and parity crops can be one split of a labels.csv (calibrate on train, check on val);
    a split of synthetic plates is refused with the fix."""
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.export import crops_from_spec, tracklets_from_spec

    train = crops_from_spec(str(tiny_csv), br, 10, split="train")
    val = crops_from_spec(str(tiny_csv), br, 10, split="val", with_path=False)
    assert [c[1] for c in train] == ["ABC1234", "XYZ9876", "BRA2E19", "QWE1A23"] and len(val) == 2
    assert val[0].dtype == np.uint8 and val[0].ndim == 3
    assert len(crops_from_spec(str(tiny_csv), br, 10)) == 6
    for fn, args in ((crops_from_spec, (br, 4)), (tracklets_from_spec, (br, 2, 4))):
        with pytest.raises(DataError, match="synthetic plates, which have none"):
            fn("synth:3", *args, split="train")


def test_export_cli_split_flags_refused_without_labelled_data(ex, tmp_path):
    """--parity_split needs --parity_data; --calibration_split needs labelled calibration data: both refused
    before the model is loaded, one error line, exit 2."""
    for args, msg in ((["--parity_split", "val"], "--parity_split val needs --parity_data"),
                      (["--calibration_split", "train"], "--calibration_data synth:0 is synthetic plates")):
        r = _export_cli(ex, str(tmp_path / "o"), "--tflite", "int8", *args)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]


@pytest.mark.slow
def test_export_cli_all_variants(ex):
    """Default variants on an untrained model: f32 must pass; quantized variants of random weights
    usually disagree with Keras, and then the CLI exits 3 naming them, files and report kept."""
    out = str(ex.root / "cli_all")
    r = _export_cli(ex, out, "--calibration_count", "16", "--parity_data", "synth:5:16")
    assert r.returncode in (0, 3), r.stderr[-2000:]
    names = sorted(f for f in os.listdir(os.path.join(out, "tflite")) if f.endswith(".tflite"))
    assert names == sorted(f"lpr_{v}{b}.tflite" for v in ("f32", "f16", "dynamic", "int8") for b in ("", "_batch"))
    report = json.load(open(os.path.join(out, "parity.json"), encoding="utf-8"))
    assert all(report["exports"][k]["passed"] for k in report["exports"] if "f32" in k or "savedmodel" in k)
    if r.returncode == 3:
        assert "export parity check failed" in r.stderr and "plate agreement" in r.stderr
        assert "hint: quantized files flip" in r.stderr and "--no_verify" in r.stderr
        assert all(("dynamic" in f or "int8" in f or "f16" in f) for f in report["failures"])
