"""ONNX export (the optional ``[onnx]`` extra): file layout, sidecar, parity with Keras through ONNX
Runtime, the runtime backend, and the clear error when the extra is missing.

The tests of the ONNX file itself skip unless onnx, onnxruntime and tf2onnx import (the dev venv and
CI do not install the extra); the missing-extra tests run everywhere (the imports are made to fail).
"""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from conftest import REPO

ONNX_MODULES = ("onnx", "onnxruntime", "tf2onnx")


def _env():
    return {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}


# ------------------------------------------------------------------------------------------------
# without the extra (run everywhere)
@pytest.fixture
def no_onnx(monkeypatch):
    """Make ``import onnx`` / ``onnxruntime`` / ``tf2onnx`` fail (None in sys.modules -> ImportError)."""
    for name in ONNX_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_onnx_names_the_extra(no_onnx, tmp_path, cn):
    from lprnet_tf import export
    from lprnet_tf.config import UsageError

    assert export.onnx_missing().startswith("onnx (")
    need = r'--onnx needs onnx, onnxruntime and tf2onnx.*pip install "lprnet_tf\[onnx\]"'
    with pytest.raises(UsageError, match=need):
        export.require_onnx("--onnx")
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=r'pip install "lprnet_tf\[onnx\]"'):  # before anything is written
        export.export_all(types.SimpleNamespace(name="lprnet_basic"), cn, str(out), onnx=True)
    assert not out.exists()


def test_runtime_onnx_without_onnxruntime(no_onnx, tmp_path):
    from lprnet_tf.runtime import OnnxBackend, RuntimeModelError

    with pytest.raises(RuntimeModelError, match=r'needs onnxruntime.*pip install "lprnet_tf\[onnx\]"'):
        OnnxBackend(str(tmp_path / "lpr.onnx"))


def test_onnx_covers_single_crop_ctc_models_only():
    from lprnet_tf.export import onnx_unsupported

    assert onnx_unsupported(types.SimpleNamespace(name="lprnet_basic")) is None
    assert "multi-frame model (K=5)" in onnx_unsupported(types.SimpleNamespace(name="iq_stan", frames=5))
    assert "'slot' model" in onnx_unsupported(types.SimpleNamespace(name="multitask_cnn"))


def test_export_cli_onnx_without_the_extra_is_a_usage_error(tmp_path):
    """``lprnet-export --onnx`` with the packages missing: exit 2, one ``error:`` line naming the
    install command, checked before the model is loaded (the model here does not even exist)."""
    out = tmp_path / "out"
    code = ("import sys\n"
            "sys.modules.update(onnx=None, onnxruntime=None, tf2onnx=None)\n"
            f"sys.argv = ['lprnet-export', '--model', 'no_such_model', '--out', {str(out)!r}, '--onnx']\n"
            "from lprnet_tf.cli.export import main\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and 'pip install "lprnet_tf[onnx]"' in err[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and not out.exists()


# ------------------------------------------------------------------------------------------------
# with the extra (skipped unless onnx, onnxruntime and tf2onnx import)
@pytest.fixture(scope="module")
def ox(tmp_path_factory):
    """The shipped cn_lprnet_basic (trained; its LocNet is switched on, so the sampler's Floor/Gather
    ops are exercised) exported: SavedModel + TFLite f32 (dynamic batch) + ONNX, parity on 16
    synthetic crops."""
    for name in ONNX_MODULES:
        pytest.importorskip(name)
    from lprnet_tf import export
    from lprnet_tf.data.pipeline import SynthSource
    from lprnet_tf.layers import locnet_enabled
    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.runtime import preprocess_batch

    model, fmt, _ = load_for_inference("cn_lprnet_basic", None)
    assert locnet_enabled(model)
    root = tmp_path_factory.mktemp("onnx_export")
    src = SynthSource(fmt, 21)
    crops = [src.get(i) for i in range(16)]
    out = str(root / "out")
    summary = export.export_all(model, fmt, out, tflite=("f32",), batch=("dynamic",), crops=crops,
                                onnx=True)  # raises ExportParityError if ONNX (or anything) disagrees
    x = preprocess_batch([c[0] for c in crops], fmt)
    ref = np.asarray(model(x, training=False))
    return types.SimpleNamespace(fmt=fmt, model=model, root=root, out=out, crops=crops,
                                 x=x, ref=ref, summary=summary, path=os.path.join(out, "onnx", "lpr.onnx"))


def _limit(ref):
    from lprnet_tf.export import LOGIT_ATOL, LOGIT_RTOL

    return LOGIT_ATOL + LOGIT_RTOL * float(np.abs(ref).max())


def test_onnx_file_inputs_outputs(ox):
    import onnx

    from lprnet_tf.export import ONNX_OPSET

    assert ox.summary["onnx"] == [ox.path]
    m = onnx.load(ox.path)
    onnx.checker.check_model(m)
    (inp,), (out,) = m.graph.input, m.graph.output
    assert inp.name == "image" and out.name == "logits"
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(inp) == ["batch", 24, 94, 3] and dims(out) == ["batch", 18, ox.fmt.num_classes]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == ONNX_OPSET
    assert sorted(os.listdir(os.path.dirname(ox.path))) == ["lpr.json", "lpr.onnx"]  # no temp file left


def test_onnx_sidecar(ox):
    side = json.load(open(os.path.join(ox.out, "onnx", "lpr.json"), encoding="utf-8"))
    tfl = json.load(open(os.path.join(ox.out, "tflite", "lpr_f32_batch.json"), encoding="utf-8"))
    assert side["variant"] == "f32" and side["alphabet"] == ox.fmt.alphabet and side["blank_index"] == 0
    assert side["input"]["shape"] == [-1, 24, 94, 3] and side["input"]["batch"] == "dynamic"
    assert side["input"]["name"] == "image" and side["input"]["range"] == [0.0, 1.0]
    assert side["output"]["shape"] == [-1, 18, ox.fmt.num_classes] and side["output"]["name"] == "logits"
    assert side["onnx"]["input_name"] == "image" and side["onnx"]["output_name"] == "logits"
    assert {"Floor", "Gather"} <= set(side["ops"])  # the LocNet sampler
    for key in ("classes", "decoder", "templates", "format", "max_length", "num_classes", "plate_format"):
        assert side[key] == tfl[key], key  # the same description of the model as the TFLite file
    for key in ("color", "layout", "normalization", "resize", "height", "width"):
        assert side["input"][key] == tfl["input"][key], key


def test_onnx_parity_report(ox):
    report = json.load(open(os.path.join(ox.out, "parity.json"), encoding="utf-8"))
    assert report["passed"] and not report["failures"]
    r, t = report["exports"]["onnx:lpr.onnx"], report["exports"]["tflite:lpr_f32_batch.tflite"]
    assert r["passed"] and r["check"] == t["check"] == "logits within atol + identical plates"
    assert r["plate_agreement"] == 1.0 and r["max_abs_logit_diff"] <= r["logit_diff_limit"]
    assert r["runtime"].startswith("onnxruntime ") and r["bytes"] == os.path.getsize(ox.path)
    assert report["crops"]["count"] == 16


def test_onnx_backend_batches_and_recognizer(ox):
    from lprnet_tf.decoding import decode
    from lprnet_tf.runtime import OnnxBackend, Recognizer

    backend = OnnxBackend(ox.path)
    assert backend.dynamic and backend.input_shape == (24, 94, 3)
    y = backend.logits(ox.x)
    assert y.shape == ox.ref.shape and np.abs(y - ox.ref).max() <= _limit(ox.ref)
    backend.max_batch = 5  # 5 + 5 + 5 + 1
    assert np.abs(backend.logits(ox.x) - y).max() <= 1e-5
    rec = Recognizer(ox.path)  # plate format from the sidecar
    assert rec.fmt == ox.fmt and not rec.frames
    assert [p.text for p in rec.recognize([c[0] for c in ox.crops])] == decode(ox.ref, ox.fmt)[0]


def test_runtime_reads_onnx_without_tensorflow(ox):
    code = ("import sys, numpy as np\n"
            "from lprnet_tf.runtime import Recognizer\n"
            f"rec = Recognizer({ox.path!r})\n"
            "plates = rec.recognize([np.full((30, 100, 3), 127, np.uint8)])\n"
            "assert len(plates) == 1\n"
            "print('tf' if any(m in sys.modules for m in ('tensorflow', 'keras')) else 'no tf')\n")
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "no tf"


def test_onnx_parity_failure_raises_with_figures(ox):
    import keras

    from lprnet_tf import export
    from lprnet_tf.models import build_model

    keras.utils.set_random_seed(4)
    other = build_model("lprnet_basic", ox.fmt, locnet=True)  # other weights than the exported file
    with pytest.raises(export.ExportParityError, match=r"onnx:lpr.onnx: max \|logit diff\|") as e:
        export.verify_export(other, ox.fmt, crops=ox.crops[:4], onnx_files=[ox.path])
    assert not e.value.report["exports"]["onnx:lpr.onnx"]["passed"]


def test_onnx_refuses_multi_frame_models(ox, tmp_path):
    from lprnet_tf import export

    with pytest.raises(export.ExportError, match="single-crop CTC models only"):
        export.export_onnx(types.SimpleNamespace(name="iq_stan", frames=5), ox.fmt, str(tmp_path))
    assert not os.listdir(tmp_path)


def _export_cli(ox, out, *args, prelude=""):
    code = (prelude + "import sys\n"
            f"sys.argv = ['lprnet-export', '--model', 'cn_lprnet_basic', '--out', {out!r}, "
            f"'--tflite', 'none', '--onnx', '--parity_data', 'synth:5:4', *{list(args)!r}]\n"
            "from lprnet_tf.cli.export import main\n"
            "main()\n")
    return subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=600)


def test_export_cli_onnx(ox):
    out = str(ox.root / "cli")
    r = _export_cli(ox, out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.isfile(os.path.join(out, "onnx", "lpr.onnx")) and "ONNX:" in r.stdout
    report = json.load(open(os.path.join(out, "parity.json"), encoding="utf-8"))
    assert report["passed"] and report["exports"]["onnx:lpr.onnx"]["plate_agreement"] == 1.0
    assert "onnx:lpr.onnx" in r.stdout and "FAIL" not in r.stdout


def test_export_cli_onnx_parity_failure_exits_3(ox):
    """An ONNX file whose logits are off fails the check like a TFLite f32 file: exit 3, the figures
    on stderr, the files and parity.json kept (ONNX Runtime's output is shifted here)."""
    out = str(ox.root / "cli_bad")
    prelude = ("import lprnet_tf.runtime as rt\n"
               "_logits = rt.OnnxBackend.logits\n"
               "rt.OnnxBackend.logits = lambda self, x: _logits(self, x) + 0.5\n")
    r = _export_cli(ox, out, prelude=prelude)
    assert r.returncode == 3, r.stderr[-2000:]
    assert "export parity check failed" in r.stderr and "onnx:lpr.onnx: max |logit diff|" in r.stderr
    report = json.load(open(os.path.join(out, "parity.json"), encoding="utf-8"))
    assert not report["passed"] and os.path.isfile(os.path.join(out, "onnx", "lpr.onnx"))
