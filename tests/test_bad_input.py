"""The bad-input matrix (docs/bad_input.md): one test per row.

Every bad input either raises the project's error class with a one-line message that names the file
(and row) and the fix, or is normalized as documented; the command-line tools turn the errors into a
single ``error: ...`` line and exit code 2 (no traceback). The library rows call the functions the
commands call (``read_samples``, ``load_image``, ``load_config``, ``load_plate_format``,
``load_model``/``load_for_inference``, ``train``); a representative subset also runs the commands.
"""

import ast
import glob
import os
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import yaml

from conftest import REPO, write_image
from lprnet_tf.config import ConfigError, config_from_dict, load_config
from lprnet_tf.data import readers
from lprnet_tf.data.readers import DataError, load_image, read_samples
from lprnet_tf.vocab import PlateFormatError, load_plate_format

ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
BR_MODEL = os.path.join(REPO, "lprnet_tf", "pretrained", "br_lprnet_basic")


def one_line(msg) -> str:
    msg = str(msg)
    assert "\n" not in msg, f"message spans lines: {msg!r}"
    return msg


# =============================================================================================
# images: load_image (training, evaluation, recognize and the server all decode through it)
def _jpeg_bytes(h=40, w=120):
    img = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _png_ihdr(w, h):
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + w.to_bytes(4, "big") + h.to_bytes(4, "big") + \
        b"\x08\x02\x00\x00\x00" + b"\x00" * 32


def _jpeg_sof(w, h):
    sof = b"\xff\xc0\x00\x11\x08" + h.to_bytes(2, "big") + w.to_bytes(2, "big") + b"\x03" + b"\x01\x22\x00" * 3
    return b"\xff\xd8" + sof + b"\x00" * 32


def _bmp_header(w, h):
    return b"BM" + b"\x00" * 16 + w.to_bytes(4, "little") + h.to_bytes(4, "little") + b"\x00" * 32


BAD_IMAGES = {  # name: (file name, bytes, expected message part, fix part)
    "truncated_jpeg": ("cut.jpg", _jpeg_bytes()[:700], "not a decodable image", "re-export or remove it"),
    "jpeg_without_end_marker": ("noeoi.jpg", _jpeg_bytes()[:-2], "no end-of-image marker", "re-export or remove it"),
    "truncated_png": ("cut.png", cv2.imencode(".png", np.full((30, 90, 3), 7, np.uint8))[1].tobytes()[:-20],
                      "not a decodable image", "re-export or remove it"),
    "zero_byte": ("zero.jpg", b"", "empty (0 bytes)", "re-export or remove it"),
    "text_named_jpg": ("notes.jpg", b"path,text\nthis is not an image\n", "not a decodable image",
                       "re-export or remove it"),
    "huge_png_header_20000x20000": ("huge.png", _png_ihdr(20000, 20000), "20000x20000", "crop the plate first"),
    "huge_jpeg_header_20000x20000": ("huge.jpg", _jpeg_sof(20000, 20000), "20000x20000", "crop the plate first"),
    "huge_bmp_header_20000x20000": ("huge.bmp", _bmp_header(20000, 20000), "20000x20000", "crop the plate first"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_image_is_refused(case, tmp_path, monkeypatch):
    name, data, what, fix = BAD_IMAGES[case]
    path = tmp_path / name
    path.write_bytes(data)
    if case.startswith("huge"):  # refused from the header, before any decoding
        def no_decode(*a, **k):
            raise AssertionError("the image was decoded")
        monkeypatch.setattr(readers.cv2, "imdecode", no_decode)
    with pytest.raises(DataError) as e:
        load_image(str(path))
    msg = one_line(e.value)
    assert str(path) in msg and what in msg and fix in msg


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_image_in_a_csv_names_the_row(case, tmp_path, br):
    name, data, what, _ = BAD_IMAGES[case]
    (tmp_path / name).write_bytes(data)
    write_image(str(tmp_path / "good.jpg"))
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(f"path,text\ngood.jpg,ABC1234\n{name},ABC1235\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_samples(str(csv_path), br)
    msg = one_line(e.value)
    assert f"{csv_path}:3" in msg and name in msg and what in msg and "--skip_bad" in msg
    samples, report = read_samples(str(csv_path), br, skip_bad=True)  # or counted and skipped
    assert [s.text for s in samples] == ["ABC1234"] and len(report.skipped) == 1


def _write_gray(p):
    cv2.imwrite(p, np.tile(np.arange(90, dtype=np.uint8), (30, 1)))


def _write_rgba(p):
    img = np.zeros((30, 90, 4), np.uint8)
    img[..., 2] = 200  # red (BGRA order on disk)
    img[..., 3] = 0  # fully transparent: the alpha channel is dropped, not blended
    cv2.imwrite(p, img)


def _write_png16(p):
    img = np.zeros((30, 90, 3), np.uint16)
    img[..., 0] = 65535  # blue at full 16-bit scale
    img[..., 1] = 257 * 100
    cv2.imwrite(p, img)


def _write_gray16(p):
    cv2.imwrite(p, np.full((30, 90), 65535, np.uint16))


NORMALIZED_IMAGES = {  # name: (writer, expected RGB value of pixel (0, 5))
    "grayscale_png": (_write_gray, (5, 5, 5)),
    "rgba_png": (_write_rgba, (200, 0, 0)),
    "png_16bit": (_write_png16, (0, 100, 255)),
    "grayscale_png_16bit": (_write_gray16, (255, 255, 255)),
}


@pytest.mark.parametrize("case", sorted(NORMALIZED_IMAGES))
def test_image_is_normalized_to_8bit_rgb(case, tmp_path, br):
    writer, pixel = NORMALIZED_IMAGES[case]
    p = str(tmp_path / f"{case}.png")
    writer(p)
    img = load_image(p)
    assert img.dtype == np.uint8 and img.shape == (30, 90, 3)
    assert tuple(int(v) for v in img[0, 5]) == pixel
    # and such a file is an ordinary row of a data set
    (tmp_path / "labels.csv").write_text(f"path,text\n{case}.png,ABC1234\n", encoding="utf-8")
    assert len(read_samples(str(tmp_path / "labels.csv"), br)[0]) == 1


# =============================================================================================
# label files (CSV; list files share the checks)
def _csv(tmp_path, content, images=("a.jpg", "b.jpg")):
    for name in images:
        write_image(str(tmp_path / name))
    p = tmp_path / "labels.csv"
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


NORMALIZED_CSV = {  # name: (content, expected texts)
    "bom": ("\ufeffpath,text\na.jpg,ABC1234\n".encode("utf-8"), ["ABC1234"]),
    "crlf": (b"path,text\r\na.jpg,ABC1234\r\nb.jpg,XYZ9876\r\n", ["ABC1234", "XYZ9876"]),
    "bom_and_crlf": ("\ufeffpath,text\r\na.jpg,ABC1234\r\n".encode("utf-8"), ["ABC1234"]),
    "header_with_spaces": ("path , text\na.jpg,ABC1234\n", ["ABC1234"]),
    "label_with_spaces": ("path,text\na.jpg, ABC 1234 \n", ["ABC1234"]),
    "label_with_dashes_and_dots": ("path,text\na.jpg,ABC-12.34\n", ["ABC1234"]),
    "label_lowercase": ("path,text\na.jpg,abc1d23\n", ["ABC1D23"]),
    "label_fullwidth": ("path,text\na.jpg,ＡＢＣ１２３４\n", ["ABC1234"]),
    "extra_columns": ("path,text,split,group,note\na.jpg,ABC1234,train,g1,hello\n", ["ABC1234"]),
}


@pytest.mark.parametrize("case", sorted(NORMALIZED_CSV))
def test_csv_is_normalized(case, tmp_path, br):
    content, texts = NORMALIZED_CSV[case]
    samples, report = read_samples(str(_csv(tmp_path, content)), br)
    assert [s.text for s in samples] == texts and not report.skipped


BAD_CSV = {  # name: (content, expected message part, fix part, row or None for a file-level error)
    "empty_file": ("", "the CSV is empty", "header 'path,text'", None),
    "whitespace_only": ("\n \n", "the CSV is empty", "header 'path,text'", None),
    "header_only": ("path,text\n", "no samples", "add one row per labelled image", None),
    "missing_text_column": ("path,label\na.jpg,ABC1234\n", "missing column(s) ['text']", "header", None),
    "missing_path_column": ("file,text\na.jpg,ABC1234\n", "missing column(s) ['path']", "header", None),
    "no_header": ("a.jpg,ABC1234\n", "missing column(s)", "header", None),
    "repeated_column": ("path,text,path\na.jpg,ABC1234,b.jpg\n", "column(s) ['path'] more than once",
                        "keep one of each", None),
    "short_row": ("path,text\na.jpg\n", "fields of the header", "fix the row", 2),
    "unknown_character": ("path,text\na.jpg,ABC12#4\n", "'#'", "add the character(s)", 2),
    "unknown_character_cn_in_br": ("path,text\na.jpg,皖A12345\n", "'皖'", "add the character(s)", 2),
    "over_long_label": ("path,text\na.jpg,ABCD12345\n", "more than max_length=7", "raise max_length", 2),
    "empty_label": ("path,text\na.jpg, - \n", "empty label", "write the plate text", 2),
    "missing_image": ("path,text\nnope.jpg,ABC1234\n", "does not exist", "fix the path", 2),
    "conflicting_duplicate": ("path,text\na.jpg,ABC1234\na.jpg,ABC1235\n", "labelled 'ABC1234' at",
                              "keep one label per image", 3),
    "not_utf8": ("path,text\na.jpg,ÄBC1234\n".encode("latin-1"), "not UTF-8", "save the file as UTF-8", None),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_is_refused(case, tmp_path, br):
    content, what, fix, row = BAD_CSV[case]
    p = _csv(tmp_path, content)
    with pytest.raises(DataError) as e:
        read_samples(str(p), br)
    msg = one_line(e.value)
    assert str(p) in msg and what in msg and fix in msg
    if row is not None:
        assert f"{p}:{row}:" in msg


def test_csv_duplicate_rows_are_used_once_with_a_warning(tmp_path, br, capsys):
    p = _csv(tmp_path, "path,text\na.jpg,ABC1234\nb.jpg,XYZ9876\na.jpg,abc-1234\n")
    samples, report = read_samples(str(p), br)
    assert [s.text for s in samples] == ["ABC1234", "XYZ9876"]
    assert report.duplicates == [(f"{p}:4", f"{p}:2")]
    err = capsys.readouterr().err
    assert f"warning: {p}: 2 samples, 1 duplicate row(s) used once (first: {p}:4 repeats {p}:2" in err


def test_list_file_shares_the_label_checks(tmp_path, br):
    write_image(str(tmp_path / "a.jpg"))
    p = tmp_path / "list.txt"
    p.write_text("a.jpg abc-1234\n", encoding="utf-8")
    assert [s.text for s in read_samples(str(p), br)[0]] == ["ABC1234"]
    p.write_text("a.jpg ABC1234\na.jpg ABC12$4\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"list.txt:2: label 'ABC12\$4' has character\(s\) '\$'"):
        read_samples(str(p), br)


# =============================================================================================
# YAML: plate formats and experiment configs
FORMAT_OK = {"name": "x", "alphabet": "AB12", "max_length": 4, "height": 24, "width": 94}
BAD_FORMATS = {  # name: (YAML text, expected message part)
    "unknown_key": (yaml.safe_dump({**FORMAT_OK, "colour": "blue"}), "unknown key(s) ['colour']"),
    "wrong_type": (yaml.safe_dump({**FORMAT_OK, "max_length": "eight"}), "key 'max_length' must be int"),
    "bool_for_int": (yaml.safe_dump({**FORMAT_OK, "height": True}), "key 'height' must be int"),
    "missing_required": (yaml.safe_dump({"name": "x", "alphabet": "AB"}),
                         "missing required key(s) ['max_length', 'height', 'width']"),
    "not_a_mapping": ("- A\n- B\n", "must be a YAML mapping"),
    "empty_file": ("", "must be a YAML mapping, got an empty file; it needs at least name, alphabet"),
    "bad_syntax": ("name: x\nalphabet: [A, B\nmax_length: 3\n", "not valid YAML"),
    "repeated_character": (yaml.safe_dump({**FORMAT_OK, "alphabet": "ABA"}), "alphabet repeats ['A']"),
    "bad_template_regex": (yaml.safe_dump({**FORMAT_OK, "templates": ["^[A-"]}), "not a valid regex"),
    "reports_on_unknown_format": (yaml.safe_dump({**FORMAT_OK, "reports_on": ["br", "bz"]}),
                                  "reports_on lists ['bz'], not shipped plate formats; choose from ['ar'"),
    "reports_on_not_a_list": (yaml.safe_dump({**FORMAT_OK, "reports_on": "br"}), "key 'reports_on' must be list"),
}


@pytest.mark.parametrize("case", sorted(BAD_FORMATS))
def test_bad_plate_format_yaml(case, tmp_path):
    text, what = BAD_FORMATS[case]
    p = tmp_path / "fmt.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(PlateFormatError) as e:
        load_plate_format(str(p))
    msg = one_line(e.value)
    assert str(p) in msg and what in msg
    if case == "bad_syntax":
        assert f"{p}:3:" in msg  # the line of the problem


BAD_CONFIGS = {  # name: (YAML text, expected message part)
    "unknown_top_level_key": ("name: x\ntrian: {steps: 5}\n", "unknown key(s) ['trian'] at the top level"),
    "unknown_section_key": ("train: {stpes: 5}\n", "unknown key(s) ['stpes'] in section 'train'"),
    "wrong_type": ("train: {steps: many}\n", "train.steps: expected int, got str ('many')"),
    "wrong_type_bool": ("train: {batch_size: true}\n", "train.batch_size: expected int, got bool"),
    "section_not_a_mapping": ("train: 5\n", "train: expected a mapping, got int"),
    "bad_value": ("train: {batch_size: 0}\n", "train.batch_size must be >= 1"),
    "unknown_model": ("model: {name: lprnet_huge}\n", "model.name: unknown model 'lprnet_huge'"),
    "unknown_plate_format": ("plate_format: atlantis\n", "plate_format: unknown plate format 'atlantis'"),
    "empty_file": ("", "must be a mapping, got an empty file"),
    "bad_syntax": ("name: x\ntrain: {steps: 5\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_experiment_yaml(case, tmp_path):
    text, what = BAD_CONFIGS[case]
    p = tmp_path / "exp.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    msg = one_line(e.value)
    assert str(p) in msg and what in msg


BAD_OVERRIDES = {  # --set value: (message part); the YAML itself is fine, so the message names the --set
    "train.batch_sise=4": "unknown key(s) ['batch_sise'] in section 'train'",
    "train.batch_size=abc": "train.batch_size: expected int, got str ('abc')",
    "nosection.x=1": "unknown key(s) ['nosection'] at the top level",
    "train.batch_size=0": "train.batch_size must be >= 1, got 0",
}


@pytest.mark.parametrize("item", sorted(BAD_OVERRIDES))
def test_bad_override_is_named_not_the_file(item, tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("name: x\ntrain: {steps: 5}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(str(p), ["train.steps=7", item])
    msg = one_line(e.value)
    assert msg.startswith(f"--set {item}: ") and BAD_OVERRIDES[item] in msg and str(p) not in msg
    assert load_config(str(p), ["train.steps=7"]).train.steps == 7


def test_bad_yaml_is_named_even_with_overrides(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("train: {stpes: 5}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="exp.yaml: unknown key"):
        load_config(str(p), ["train.steps=7"])


def test_experiment_config_has_no_required_keys():
    """Every key has a default (the paper's recipe), so 'missing' keys are filled, never guessed wrong:
    the resolved config is written to the run directory."""
    cfg = config_from_dict({"name": "x"})
    assert cfg.model.name == "lprnet_basic" and cfg.plate_format == "cn" and cfg.train.steps == 250_000


# =============================================================================================
# model files
TINY = {
    "name": "tiny", "plate_format": "cn", "model": {"name": "lprnet_basic"},
    "data": {"train": "synth:0", "val": "synth:99:4", "augment": "none"},
    "train": {"batch_size": 2, "steps": 2, "eval_every": 2},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small untrained models saved the way training saves them (cn format)."""
    import keras

    from lprnet_tf.models import build_model
    from lprnet_tf.modelio import save_model

    from lprnet_tf.training import compile_model

    fmt = load_plate_format("cn")
    root = tmp_path_factory.mktemp("models")
    cfg = config_from_dict({**TINY, "model": {"name": "lprnet_reduced"}})
    # compiled like a training checkpoint (a resume needs the optimizer state)
    reduced = save_model(compile_model(build_model("lprnet_reduced", fmt), cfg),
                         str(root / "reduced" / "model.keras"), fmt)
    inp = keras.Input((fmt.height, fmt.width, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    lam = keras.Model(inp, keras.layers.Dense(fmt.num_classes)(keras.layers.Reshape((-1, 3))(x)))
    lam_path = str(root / "lambda" / "model.keras")
    os.makedirs(os.path.dirname(lam_path))
    lam.save(lam_path)

    def double(t):
        return t * 2.0

    fn = keras.Model(inp, keras.layers.Lambda(double)(inp))  # a named function: a reference into __main__/tests
    fn_path = str(root / "function.keras")
    fn.save(fn_path)
    return {"root": root, "fmt": fmt, "reduced": reduced, "lambda": lam_path, "function": fn_path}


def _truncated(models):
    p = models["root"] / "truncated.keras"
    data = open(models["reduced"], "rb").read()
    p.write_bytes(data[: len(data) // 2])
    return str(p)


def _not_zip(models):
    p = models["root"] / "notzip.keras"
    p.write_bytes(b"this is a text file, not a model\n" * 10)
    return str(p)


def _zip_without_config(models):
    p = str(models["root"] / "other.keras")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "not a model")
    return p


def _empty(models):
    p = models["root"] / "empty.keras"
    p.write_bytes(b"")
    return str(p)


BAD_MODEL_FILES = {  # name: (make path, expected message part)
    "truncated_keras": (_truncated, "not a .keras archive (truncated or corrupt)"),
    "zero_byte_keras": (_empty, "not a .keras archive (truncated or corrupt)"),
    "not_a_zip": (_not_zip, "not a .keras archive (truncated or corrupt)"),
    "zip_without_model": (_zip_without_config, "no config.json inside"),
    "lambda_layer": (lambda m: m["lambda"], "refused: unsafe model file"),
    "lambda_named_function": (lambda m: m["function"], "refused: unsafe model file"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODEL_FILES))
def test_bad_model_file_is_refused(case, models):
    from lprnet_tf.modelio import ModelFileError, load_model

    make, what = BAD_MODEL_FILES[case]
    path = make(models)
    with pytest.raises(ModelFileError) as e:
        load_model(path)
    msg = one_line(e.value)
    assert path in msg and what in msg
    if case.startswith("lambda"):
        assert "Lambda" in msg


def test_keras_safe_mode_refuses_the_lambda_file_too(models):
    """Our pre-check is on top of Keras' own safe mode, which also refuses the file."""
    import keras

    with pytest.raises(ValueError, match="arbitrary code"):
        keras.saving.load_model(models["lambda"], safe_mode=True)


def test_model_of_another_alphabet_is_refused_for_inference(models):
    from lprnet_tf.modelio import ModelFileError, load_for_inference

    with pytest.raises(ModelFileError) as e:  # 37-class BR model with the 73-class CN format
        load_for_inference(BR_MODEL, "cn")
    msg = one_line(e.value)
    assert "model.keras" in msg and "outputs 37 classes" in msg and "use the format it was trained with" in msg
    # same class count, other characters: caught from the plate_format.yaml saved beside the model
    br = load_plate_format("br")
    shuffled = {**br.to_dict(), "name": "br_shuffled", "alphabet": br.alphabet[::-1], "templates": [], "synth": {}}
    with pytest.raises(ModelFileError, match="alphabet differs from the given format 'br_shuffled'"):
        load_for_inference(BR_MODEL, shuffled)


def _run_with_last(models, tmp_path, src="reduced"):
    import shutil

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copyfile(models[src], run / "last.keras")
    return str(run)


def test_resume_from_another_model_is_refused(models, tmp_path):
    from lprnet_tf.modelio import ModelFileError
    from lprnet_tf.training import train

    run = _run_with_last(models, tmp_path)
    with pytest.raises(ModelFileError) as e:
        train(config_from_dict(TINY), run, resume=True, verbose=False)
    msg = one_line(e.value)
    assert "last.keras: holds a lprnet_reduced model but the config's model.name is lprnet_basic" in msg
    assert "resume with the config the run was started with" in msg
    assert not os.path.isfile(os.path.join(run, "config.yaml"))  # nothing of the run was overwritten


def test_resume_with_the_same_model_passes_the_checks(models, tmp_path):
    from lprnet_tf.training import open_run

    run = _run_with_last(models, tmp_path)
    cfg = config_from_dict({**TINY, "model": {"name": "lprnet_reduced"}})
    model, _ = open_run(cfg, load_plate_format("cn"), run, resume=True)
    assert model.name == "lprnet_reduced" and os.path.isfile(os.path.join(run, "config.yaml"))


def test_resume_with_another_alphabet_is_refused(models, tmp_path):
    from lprnet_tf.modelio import ModelFileError
    from lprnet_tf.training import train

    run = _run_with_last(models, tmp_path)
    cfg = config_from_dict({**TINY, "plate_format": "br", "model": {"name": "lprnet_reduced"}})
    with pytest.raises(ModelFileError, match="last.keras: model outputs 73 classes but plate format 'br' has 37"):
        train(cfg, run, resume=True, verbose=False)


def test_resume_with_other_model_options_is_refused(models, tmp_path):
    from lprnet_tf.modelio import ModelFileError
    from lprnet_tf.training import train

    run = _run_with_last(models, tmp_path)
    cfg = config_from_dict({**TINY, "model": {"name": "lprnet_reduced", "options": {"locnet": True}}})
    with pytest.raises(ModelFileError, match=r"differs from the configured one in layer\(s\) \['locnet'\]"):
        train(cfg, run, resume=True, verbose=False)


def test_init_from_another_model_is_refused(models):
    from lprnet_tf.modelio import ModelFileError
    from lprnet_tf.training import build_training_model

    cfg = config_from_dict({**TINY, "train": {**TINY["train"], "init_from": models["reduced"]}})
    with pytest.raises(ModelFileError) as e:
        build_training_model(cfg, models["fmt"])
    msg = one_line(e.value)
    assert models["reduced"] in msg and "holds a lprnet_reduced model but the config's model.name is lprnet_basic" in msg
    assert "set model.name: lprnet_reduced" in msg


def test_init_from_another_alphabet_keeps_the_backbone(models):
    """Fine-tuning to another country is the documented use of init_from: the head is re-initialised."""
    from lprnet_tf.training import build_training_model

    cfg = config_from_dict({**TINY, "plate_format": "br", "model": {"name": "lprnet_reduced"},
                            "train": {**TINY["train"], "init_from": models["reduced"]}})
    model = build_training_model(cfg, load_plate_format("br"))
    assert model.output_shape[-1] == 37


# =============================================================================================
# exit codes and the command-line tools
def test_run_guarded_exit_codes(capsys):
    from lprnet_tf.cli.common import EXIT_INTERRUPTED, EXIT_USER_ERROR, run_guarded

    def fail(exc):
        raise exc

    with pytest.raises(SystemExit) as e:
        run_guarded(fail, DataError("labels.csv:3: bad\nsecond line"))
    assert e.value.code == EXIT_USER_ERROR == 2
    assert capsys.readouterr().err == "error: labels.csv:3: bad second line\n"  # always one line
    with pytest.raises(SystemExit) as e:
        run_guarded(fail, KeyboardInterrupt())
    assert e.value.code == EXIT_INTERRUPTED == 130
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_guarded(fail, ZeroDivisionError("bug"))


def test_every_command_is_guarded():
    """Every lprnet_tf/cli module's main() runs app.run(run_guarded(...), flags_parser=parse_flags)."""
    files = [f for f in sorted(glob.glob(os.path.join(REPO, "lprnet_tf", "cli", "*.py")))
             if os.path.basename(f) not in ("__init__.py", "common.py")]
    assert len(files) >= 8
    for f in files:
        tree = ast.parse(open(f, encoding="utf-8").read())
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        assert mains, f"{f}: no main()"
        src = ast.unparse(mains[0])
        assert "app.run(" in src and "run_guarded(" in src and "flags_parser=parse_flags" in src, f
    app = os.path.join(REPO, "lprnet_tf", "cli", "data", "_app.py")  # lprnet-data's subcommands share one runner
    if os.path.isfile(app):
        src = open(app, encoding="utf-8").read()
        assert "run_guarded(" in src and "flags_parser=" in src and "EXIT_USER_ERROR" in src


def _cli(module, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", f"lprnet_tf.cli.{module}", *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _assert_user_error(r, *parts):
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2, r.stderr[-3000:]
    assert len(errors) == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    for p in parts:
        assert p in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("module,args", [
    ("evaluate", ["--model", "x", "--data", "y", "--out", "z", "--no_such_flag"]),
    ("train", ["--config", "x.yaml", "--run_dir", "r", "--steps", "many"]),
    ("recognize", ["--batch", "0", "x.jpg"]),
])
def test_cli_bad_flag_is_exit_2(module, args):
    _assert_user_error(_cli(module, *args), "(see --help)")


@pytest.mark.parametrize("module,args,part", [
    ("train", ["--config", "x.yaml", "--run_dir", "r", "--steps", "0"], "--steps"),
    ("evaluate", ["--model", "x", "--data", "y", "--out", "z", "--batch_size", "0"], "--batch_size"),
    ("serve", ["--model", "m", "--port", "99999"], "--port"),
    ("serve", ["--model", "m", "--max_batch", "0"], "--max_batch"),
    ("export", ["--model", "m", "--out", "o", "--parity_count", "0"], "--parity_count"),
])
def test_cli_out_of_range_flag_is_exit_2(module, args, part):
    """Counts, sizes and ports are checked when the flags are parsed: no traceback later, no full-length run
    started for --steps 0 (it used to mean 'the config's steps')."""
    _assert_user_error(_cli(module, *args), part, "(see --help)")


def test_cli_output_folder_that_is_a_file(tmp_path):
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    _assert_user_error(_cli("train", "--config", "x.yaml", "--run_dir", str(f)), "--run_dir", "is a file")
    _assert_user_error(_cli("evaluate", "--model", BR_MODEL, "--data", "y", "--out", str(f / "sub")),
                       "--out", "lies under the file")
    _assert_user_error(_cli("export", "--model", BR_MODEL, "--out", str(f)), "--out", "is a file")
    _assert_user_error(_cli("demo", "--out", str(f)), "--out", "is a file")
    assert f.read_bytes() == b"x"


def test_cli_info_bad_model_option():
    _assert_user_error(_cli("info", "--models", "lprnet_reduced", "--set", "foo=1"), "model lprnet_reduced",
                       "unexpected keyword argument 'foo'", "check --set")
    _assert_user_error(_cli("info", "--models", "lprnet_reduced", "--set", "dropout=5"), "--set dropout=5", "rate")


def test_check_output_dir(tmp_path):
    from lprnet_tf.cli.common import check_output_dir
    from lprnet_tf.config import UsageError

    check_output_dir(str(tmp_path / "new" / "deeper"), "--out")  # missing folders are fine (created later)
    check_output_dir(str(tmp_path), "--out")
    (tmp_path / "f").write_text("x")
    for path, part in ((tmp_path / "f", "is a file"), (tmp_path / "f" / "a" / "b", "lies under the file")):
        with pytest.raises(UsageError, match=part):
            check_output_dir(str(path), "--out")


def test_cli_evaluate_bad_merge(tmp_path):
    p = _csv(tmp_path, "path,text\na.jpg,ABC1234\n")
    _assert_user_error(_cli("evaluate", "--model", BR_MODEL, "--data", str(p), "--out", str(tmp_path / "o"),
                            "--merge", "O"), "--merge O", "e.g. --merge O0,I1")


def test_cli_help_is_exit_0():
    r = _cli("evaluate", "--help")
    assert r.returncode == 0 and "--model" in r.stdout


def test_cli_evaluate_bad_csv_row(tmp_path):
    p = _csv(tmp_path, "path,text\na.jpg,ABC1234\nb.jpg,ABC1#34\n")
    _assert_user_error(_cli("evaluate", "--model", BR_MODEL, "--data", str(p), "--out", str(tmp_path / "o")),
                       f"{p}:3:", "'#'")


@pytest.mark.slow  # the library row above covers the message; this is the command
def test_cli_evaluate_truncated_image(tmp_path):
    (tmp_path / "cut.jpg").write_bytes(_jpeg_bytes()[:500])
    p = _csv(tmp_path, "path,text\na.jpg,ABC1234\ncut.jpg,ABC1235\n")
    _assert_user_error(_cli("evaluate", "--model", BR_MODEL, "--data", str(p), "--out", str(tmp_path / "o")),
                       f"{p}:3:", "cut.jpg", "not a decodable image")


@pytest.mark.slow  # the library row above covers the message; this is the command
def test_cli_evaluate_model_of_another_alphabet(tmp_path):
    _assert_user_error(_cli("evaluate", "--model", BR_MODEL, "--format", "cn", "--data", "synth:1:2",
                            "--out", str(tmp_path / "o")), "model.keras", "37 classes", "'cn'")


def test_cli_evaluate_unsafe_model(models, tmp_path):
    _assert_user_error(_cli("evaluate", "--model", models["lambda"], "--format", "cn", "--data", "synth:1:2",
                            "--out", str(tmp_path / "o")), models["lambda"], "unsafe", "Lambda")


@pytest.mark.slow  # the library row above covers the message; this is the command
def test_cli_evaluate_truncated_model(models, tmp_path):
    path = _truncated(models)
    _assert_user_error(_cli("evaluate", "--model", path, "--format", "cn", "--data", "synth:1:2",
                            "--out", str(tmp_path / "o")), path, "truncated or corrupt")


def test_cli_train_bad_config(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("name: x\ntrain: {steps: many}\n", encoding="utf-8")
    _assert_user_error(_cli("train", "--config", str(p), "--run_dir", str(tmp_path / "run")),
                       str(p), "train.steps: expected int")


def test_cli_train_resume_from_another_model(models, tmp_path):
    run = _run_with_last(models, tmp_path)
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    _assert_user_error(_cli("train", "--config", str(p), "--run_dir", run, "--resume", "--quiet"),
                       "last.keras", "lprnet_reduced", "lprnet_basic")


def test_cli_recognize_nothing_readable_is_exit_1(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image", encoding="utf-8")
    (tmp_path / "zero.png").write_bytes(b"")
    r = _cli("recognize", str(tmp_path / "notes.jpg"), str(tmp_path / "zero.png"), "--model", BR_MODEL)
    assert r.returncode == 1, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert any("notes.jpg" in e for e in errors) and any("zero.png" in e for e in errors)
    assert "Traceback" not in r.stderr


def test_export_unknown_tflite_variant_is_named():
    from lprnet_tf.export import check_variants

    for kind in ("ctc", "slot", "attn", "sr", "quality"):
        assert "unknown TFLite variant(s) ['f99']: choose from" in check_variants(kind, ["f32", "f99"])
    assert check_variants("ctc", ["f32", "int8"]) is None


def test_corrupt_model_is_named_before_a_missing_plate_format(tmp_path):
    from lprnet_tf.modelio import ModelFileError, resolve_model

    (tmp_path / "m.keras").write_text("not a model")
    with pytest.raises(ModelFileError, match="not a .keras archive"):
        resolve_model(str(tmp_path / "m.keras"))
