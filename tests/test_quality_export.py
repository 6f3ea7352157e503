"""Deployment of the EQ-LPR quality networks (issue 7): SavedModel + TFLite f32/f16/dynamic of the shipped
``cn_eq_lpr_e`` with parity, :class:`lprnet_tf.runtime.QualityScorer` on the files, the recognizer refusing
them, and ``lprnet-recognize --stream --quality FILE`` reading them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """cn_eq_lpr_e exported (SavedModel + TFLite f32 batch-1 and dynamic-batch, dynamic-range batch-1) with
    parity checked on 24 synthetic plates."""
    from lprnet_tf import export
    from lprnet_tf.modelio import load_for_inference

    model, fmt, _ = load_for_inference("cn_eq_lpr_e")
    crops = export.crops_from_spec("synth:31", fmt, 24)
    out = str(tmp_path_factory.mktemp("quality_export"))
    summary = export.export_all(model, fmt, out, "q", tflite=["f32", "dynamic"], crops=crops, batch=("1", "dynamic"),
                                crops_source="synthetic plates (seed 31)")
    return model, fmt, crops, out, summary


def test_export_kind_files_sidecar_and_parity(exported):
    from lprnet_tf.export import check_builtin_ops, export_kind

    model, fmt, _, out, summary = exported
    assert export_kind(model) == "quality"
    names = sorted(os.path.basename(f) for f in summary["tflite"])
    assert names == ["q_dynamic.tflite", "q_dynamic_batch.tflite", "q_f32.tflite", "q_f32_batch.tflite"]
    for f in summary["tflite"]:
        check_builtin_ops(f)  # raises on a Flex or custom op
    side = json.load(open(os.path.join(out, "tflite", "q_f32.json"), encoding="utf-8"))
    assert side["model_kind"] == "quality" and side["recognizer"] == "cn_lprnet_basic"
    assert side["input"]["height"] == fmt.height and side["input"]["width"] == fmt.width
    assert side["output"]["signature_name"] == "quality" and side["output"]["shape"] == [1]
    info = json.load(open(os.path.join(summary["savedmodel"], "assets", "model.json"), encoding="utf-8"))
    assert info["model_kind"] == "quality"
    report = summary["parity"]
    assert report["passed"] and report["crops"]["count"] == 24
    assert set(report["exports"]) == {"savedmodel:predict_images", "savedmodel:serving_default",
                                      *(f"tflite:{n}" for n in names)}
    assert report["exports"]["tflite:q_f32.tflite"]["max_abs_quality_diff"] <= 1e-4
    assert report["exports"]["tflite:q_dynamic.tflite"]["check"].startswith("mean |quality diff|")


def test_runtime_scorer_matches_keras_without_tensorflow(exported):
    """QualityScorer on the .tflite gives Keras' scores; the runtime module does not import TF for it."""
    from lprnet_tf.runtime import QualityScorer, preprocess_batch

    model, fmt, crops, out, _ = exported
    images = [c[0] for c in crops]
    ref = np.asarray(model(preprocess_batch(images, fmt), training=False)["quality"], np.float64)
    for name in ("q_f32.tflite", "q_f32_batch.tflite"):
        q = QualityScorer(os.path.join(out, "tflite", name)).score(images)
        assert q.shape == (len(images),)
        np.testing.assert_allclose(q, ref, atol=1e-4)
    np.testing.assert_allclose(QualityScorer.from_keras(model, fmt).score(images), ref, atol=1e-6)
    np.testing.assert_allclose(QualityScorer(os.path.join(out, "q", "1")).score(images), ref, atol=1e-4)
    assert QualityScorer(os.path.join(out, "tflite", "q_f32.tflite")).score([]).shape == (0,)
    code = ("import sys; from lprnet_tf.runtime import QualityScorer; "
            f"QualityScorer({os.path.join(out, 'tflite', 'q_f32.tflite')!r}); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV, cwd=REPO)


def test_recognizer_and_scorer_refuse_the_wrong_kind(exported, tmp_path):
    from lprnet_tf.runtime import QualityScorer, Recognizer, RuntimeModelError

    model, fmt, _, out, _ = exported
    with pytest.raises(RuntimeModelError, match="EQ-LPR quality network.*--quality"):
        Recognizer(os.path.join(out, "tflite", "q_f32.tflite"))
    with pytest.raises(RuntimeModelError, match="EQ-LPR quality network.*--quality"):
        Recognizer(os.path.join(out, "q", "1"))
    side = json.load(open(os.path.join(out, "tflite", "q_f32.json"), encoding="utf-8"))
    side["model_kind"] = "ctc"  # a recognizer's sidecar
    fake = tmp_path / "rec.tflite"
    fake.write_bytes(open(os.path.join(out, "tflite", "q_f32.tflite"), "rb").read())
    (tmp_path / "rec.json").write_text(json.dumps(side), encoding="utf-8")
    with pytest.raises(RuntimeModelError, match="not an EQ-LPR quality network"):
        QualityScorer(str(fake))
    with pytest.raises(RuntimeModelError, match="not a .tflite file or a SavedModel"):
        QualityScorer(str(tmp_path))


def test_parity_fails_loudly_for_another_network(exported, tmp_path):
    """The check is real: the files of one network compared with another (same architecture, other weights)."""
    from lprnet_tf import export
    from lprnet_tf.models import build_model

    model, fmt, crops, out, summary = exported
    other = build_model("eq_lpr_e", fmt, recognizer="cn_lprnet_basic")  # untrained
    with pytest.raises(export.ExportParityError, match="quality diff"):
        export.verify_quality_export(other, fmt, None, [os.path.join(out, "tflite", "q_f32.tflite")], crops=crops,
                                     report_path=str(tmp_path / "parity.json"))
    assert json.load(open(tmp_path / "parity.json"))["passed"] is False


def test_int8_refused_for_quality_networks(exported, tmp_path):
    from lprnet_tf import export

    model, fmt, _, _, _ = exported
    with pytest.raises(export.ExportError, match="EQ-LPR quality network.*int8"):
        export.export_all(model, fmt, str(tmp_path), "q", tflite=["int8"], verify=False)
    assert not os.listdir(tmp_path)  # refused before anything is written
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.export", "--model", "cn_eq_lpr_e", "--out",
                        str(tmp_path / "cli"), "--tflite", "int8"], capture_output=True, text=True, env=ENV, cwd=REPO)
    assert r.returncode != 0 and "--tflite int8" in r.stderr and "quality network" in r.stderr


def test_stream_cli_reads_an_exported_quality_file(exported, tmp_path):
    """lprnet-recognize --stream --quality FILE.tflite gives the same calls and plates as the Keras network."""
    import cv2

    from lprnet_tf.synth.tracklets import generate_tracklet

    _, fmt, _, out, _ = exported
    for t in range(2):
        d = tmp_path / "streams" / f"t{t}"
        d.mkdir(parents=True)
        for i, frame in enumerate(generate_tracklet(fmt, 40, t, k=5, quality=False)[0]):
            cv2.imwrite(str(d / f"{i}.png"), frame[..., ::-1])
    lines = {}
    for q in (os.path.join(out, "tflite", "q_f32.tflite"), "cn_eq_lpr_e"):
        r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.recognize", "--stream", str(tmp_path / "streams"),
                            "--quality", q, "--model", "cn_lprnet_basic"], capture_output=True, text=True, env=ENV,
                           cwd=REPO)
        assert r.returncode == 0, r.stderr
        lines[q] = [ln.split("\t") for ln in r.stdout.splitlines()]
    a, b = lines.values()
    assert len(a) == len(b) == 12  # 2 tracks x (5 frames + END)
    for x, y in zip(a, b):
        assert x[0] == y[0] and x[1] == y[1] and x[3:] == y[3:]  # same calls, plates, confidences
        if x[1] != "END":
            assert abs(float(x[2]) - float(y[2])) < 1e-3  # the quality column
