"""Synthetic plates: texts, rendering, glyph coverage, determinism, the writer and the CLI."""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lprnet_tf.synth import glyphs
from lprnet_tf.synth.contact import contact_sheet, save_contact_sheet
from lprnet_tf.synth.generate import write_synthetic_set
from lprnet_tf.synth.render import random_text, render_plate, sample
from lprnet_tf.synth.spec import SynthConfigError, build_spec, synth_spec
from lprnet_tf.vocab import available_formats, load_plate_format

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = available_formats()


def test_every_shipped_format_has_a_synth_section():
    assert set(FORMATS) >= {"cn", "us", "eu", "br", "uz", "tw", "ar"}
    for name in FORMATS:
        assert synth_spec(load_plate_format(name)).styles


@pytest.mark.parametrize("name", FORMATS)
def test_random_texts_pass_check_and_templates(name):
    fmt = load_plate_format(name)
    rng = np.random.default_rng(0)
    styles = set()
    for _ in range(200):
        text, style = random_text(fmt, rng)
        assert fmt.check(text) is None, text
        assert fmt.matches_template(text), text
        styles.add(style)
    # every style can be asked for by name and yields valid texts
    for style in synth_spec(fmt).styles:
        text, got = random_text(fmt, rng, style)
        assert got == style and fmt.check(text) is None and fmt.matches_template(text), (style, text)
    assert len(styles) >= 2 or len(synth_spec(fmt).styles) == 1


def test_cn_texts_cover_the_plate_kinds():
    fmt = load_plate_format("cn")
    rng = np.random.default_rng(1)
    texts = [random_text(fmt, rng)[0] for _ in range(2000)]
    provinces = {t[0] for t in texts}
    assert len(provinces) >= 28  # province weights are flattened: rare provinces still occur
    assert any(len(t) == 8 and t[2] in "DF" for t in texts)  # small new-energy
    assert any(len(t) == 8 and t[-1] in "DF" for t in texts)  # large new-energy
    assert any(t[-1] in "警学挂" for t in texts)
    assert not any(c in "IO" for t in texts for c in t)


@pytest.mark.parametrize("name", FORMATS)
def test_render_returns_rgb_uint8_and_json_params(name):
    fmt = load_plate_format(name)
    rng = np.random.default_rng(2)
    for i in range(6):
        text, style = random_text(fmt, rng)
        img, params = render_plate(fmt, text, rng, style, degrade=i % 3 != 0)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert 40 <= img.shape[0] <= 100 and img.shape[1] > img.shape[0]
        if fmt.rows == 1:
            assert img.shape[0] <= 80 and img.shape[1] > 1.4 * img.shape[0]  # a strip
        assert params["style"] == style
        assert 0.0 <= params["degradation"] <= 1.0
        assert json.loads(json.dumps(params)) == params


def test_clean_render_has_zero_degradation_and_infers_style():
    fmt = load_plate_format("cn")
    img, params = render_plate(fmt, "粤BD12345", np.random.default_rng(0), degrade=False)
    assert params["degradation"] == 0.0 and params["style"] in ("green", "green_large")
    assert img.shape[0] == 64
    _, params = render_plate(fmt, "京A1234警", np.random.default_rng(0), degrade=False)
    assert params["style"] == "police"


def test_sample_is_deterministic_per_index():
    fmt = load_plate_format("cn")
    a, ta, pa = sample(fmt, 7, 3)
    sample(fmt, 7, 2)  # other samples in between must not matter
    b, tb, pb = sample(fmt, 7, 3)
    assert ta == tb and pa == pb and a.shape == b.shape and a.tobytes() == b.tobytes()
    c, tc, _ = sample(fmt, 7, 4)
    assert tc != ta or c.shape != a.shape or c.tobytes() != a.tobytes()
    d, td, _ = sample(fmt, 8, 3)
    assert td != ta or d.tobytes() != a.tobytes()


def test_degradation_spans_clean_to_hard():
    fmt = load_plate_format("br")
    values = [sample(fmt, 0, i)[2]["degradation"] for i in range(120)]
    assert min(values) < 0.15 and max(values) > 0.6


def _fonts_of(fmt):
    spec = synth_spec(fmt)
    return {f for st in spec.styles.values() for f in st.fonts.options}


def _chars_of(style):
    """Every character the patterns of a style can produce."""
    return {c for p in style.patterns.options for t in p.tokens if t is not None
            for g in t.groups for item in g for c in item}


@pytest.mark.parametrize("name", FORMATS)
def test_every_alphabet_glyph_renders_with_ink(name):
    """Each alphabet character has real ink in the format's fonts and is not the .notdef box."""
    fmt = load_plate_format(name)
    spec = synth_spec(fmt)
    primary = spec.styles[next(iter(spec.styles))].fonts.options[0]
    for ch in fmt.alphabet:
        assert glyphs.has_glyph(primary, ch), f"{name}: {ch!r} does not render in font {primary}"
        a = glyphs.glyph(primary, ch, 20, 40)
        assert a.max() > 0.5 and a.shape[0] == 40 and 1 <= a.shape[1] <= 20
    for st in spec.styles.values():
        for font in st.fonts.options:
            for cjk in st.cjk_fonts.options:  # ideographs are drawn with the style's cjk_fonts, whatever its font
                missing = sorted(c for c in _chars_of(st) if not glyphs.has_glyph(cjk if glyphs.is_cjk(c) else font, c))
                assert not missing, f"{name}.{st.name}: font {font} / {cjk} lacks {missing}"
    assert _fonts_of(fmt) <= set(glyphs.FONTS)


def test_notdef_differs_from_real_glyphs():
    for font in glyphs.FONTS:
        nd = glyphs.notdef(font)
        assert nd.size > 0  # the subsets keep a visible .notdef outline
        assert not glyphs.has_glyph(font, "\u4e00")  # 一 is not in any subset


@pytest.mark.parametrize("font", sorted(glyphs.FONTS))
def test_plate_shapes_follow_the_chinese_plate_font(font):
    """C/G/Q are the font's 0 (undotted: the Mono faces' O) with a mouth, a bar or a tail, O is that 0 itself;
    M keeps H's box."""
    zero = glyphs.master(font, glyphs.PLAIN_ZERO.get(font, "0"))
    for ch in "CGQ":
        a = glyphs.plate_shape(font, ch)
        assert a.shape == zero.shape and a.dtype == np.uint8
        h, w = a.shape
        diff = np.abs(a.astype(int) - zero).astype(bool)
        assert diff[:, w // 2:].sum() > diff[:, :w // 2].sum() > -1  # the change is on the right side
        if ch == "C":  # the mouth: no ink on the right at mid-height, where the 0 has its right stroke
            assert zero[h // 2, w - 3:].max() > 127 and a[h // 2, w // 2:].max() == 0
    assert np.array_equal(glyphs.plate_shape(font, "O"), zero)  # O: the 0's narrow oval itself
    if font in ("latin", "cjk"):  # these faces draw O as a wider ring than their 0
        o = glyphs.master(font, "O")
        assert o.shape[1] / o.shape[0] > 1.1 * zero.shape[1] / zero.shape[0]
    m, hh = glyphs.plate_shape(font, "M"), glyphs.master(font, "H")
    assert m.shape == hh.shape
    h, w = m.shape
    assert m[h // 2, w // 2] > 127 and m[int(0.85 * h), w // 2] == 0  # the V meets half way down, no crossbar below
    out = glyphs.glyph(font, glyphs.PLATE_PREFIX + "C", 20, 40, 1)
    assert out.shape[0] == 40 and 0 < out.shape[1] <= 20
    with pytest.raises(ValueError, match="no plate shape"):
        glyphs.plate_shape(font, "A")


@pytest.mark.parametrize("font", sorted(glyphs.FONTS))
def test_plate_w_three_and_five(font):
    """W is the plate M upside down; the plate 5 keeps the font's 5 box, has its top bar and stem, and its bowl
    curls back so that its left side has ink below the middle (the bundled faces' 5 is open there); the further
    the curl, the more ink on the left. The plate 3 keeps the 3 box, has a flat top (ink across the first row)
    and no stem on the left above its bowl."""
    for k in range(len(glyphs.M_APEX)):
        assert np.array_equal(glyphs.plate_shape(font, f"W{k}"), glyphs.plate_shape(font, f"M{k}")[::-1])
    five = glyphs.master(font, "5")
    h, w = five.shape
    curls = [glyphs.plate_shape(font, f"5{k}") for k in range(len(glyphs.BOWL_CURL))]
    for a in curls:
        assert a.shape == five.shape and a.dtype == np.uint8
        assert a[1, w // 2] > 127 and a[int(0.25 * h), :w // 3].max() > 127  # the top bar and the stem
        assert a[int(0.25 * h), 2 * w // 3:].max() == 0  # nothing right of the stem above the bowl
    left = [int((a[int(0.55 * h):int(0.8 * h), :w // 4] > 127).sum()) for a in curls]
    assert left == sorted(left) and left[-1] > left[0]
    assert np.array_equal(glyphs.plate_shape(font, "5"), curls[1])  # plain "5": the middle curl
    three = glyphs.master(font, "3")
    h, w = three.shape
    for k in range(len(glyphs.BOWL_CURL)):
        a = glyphs.plate_shape(font, f"3{k}")
        assert a.shape == three.shape
        assert (a[1, :] > 127).sum() > 0.6 * w  # the flat top
        assert a[int(0.25 * h), :w // 4].max() == 0  # no stem: the diagonal is right of the middle up there
        assert a[int(0.25 * h), w // 2:].max() > 127


def test_plate_shapes_chars_opt_in():
    """``plate_shapes_chars`` names the characters a plate_shapes plate draws so (default C, G, Q, M: a format
    without the key keeps its samples); cn draws W, 3 and 5 too (recorded as bowl_curl); bad values are refused."""
    cn = load_plate_format("cn")
    assert synth_spec(cn).styles["blue"].plate_shapes_chars == "CGQMW35"
    params = [sample(cn, 5, i)[2] for i in range(40)]
    assert all(("bowl_curl" in p) == p.get("plate_shapes", False) for p in params)
    assert {p["bowl_curl"] for p in params if "bowl_curl" in p} <= set(glyphs.BOWL_CURL)
    styles = cn.to_dict()["synth"]["styles"]
    old = dict(cn.to_dict(), synth=dict(cn.to_dict()["synth"], styles={
        k: {kk: vv for kk, vv in v.items() if kk != "plate_shapes_chars"} for k, v in styles.items()}))
    old_fmt = load_plate_format(old)
    assert synth_spec(old_fmt).styles["blue"].plate_shapes_chars == "CGQM"
    assert all("bowl_curl" not in sample(old_fmt, 5, i)[2] for i in range(40))
    for bad_value in ("CGQX", "", 5):
        bad = dict(cn.to_dict(), synth={"styles": {"x": {"patterns": ["DDDD"], "size_mm": [440, 140],
                                                         "plate_shapes": 0.5, "plate_shapes_chars": bad_value}}})
        with pytest.raises(SynthConfigError, match="plate_shapes_chars"):
            build_spec(load_plate_format(bad))


def test_cn_plates_draw_plate_shapes_and_undotted_zero():
    """The cn styles use plate_shapes (recorded in the params); the Mono faces' dotted 0 is drawn as their O."""
    cn, br = load_plate_format("cn"), load_plate_format("br")
    assert synth_spec(cn).styles["blue"].plate_shapes > 0 and not synth_spec(cn).styles["blue"].letter_o
    assert synth_spec(br).styles[next(iter(synth_spec(br).styles))].letter_o  # BR has the letter O
    flags = [sample(cn, 5, i)[2].get("plate_shapes", False) for i in range(60)]
    assert 0 < sum(flags) < 60
    bad = dict(cn.to_dict(), synth={"styles": {"x": {"patterns": ["PS|XXXXX"], "size_mm": [440, 140],
                                                     "plate_shapez": 0.5}}})
    with pytest.raises(SynthConfigError, match="plate_shapes"):  # the message lists the allowed keys
        build_spec(load_plate_format(bad))


def test_cjk_fonts_pick_the_face_of_the_ideographs():
    """``cjk_fonts``: the province is drawn in one of the listed faces per plate (recorded in the params);
    the Latin characters keep the style's font; an unknown face is refused with the key's name."""
    cn = load_plate_format("cn")
    sets = {"P": "皖苏", "S": "AB"}
    style = {"patterns": ["PS|DDDDD"], "size_mm": [440, 140], "fonts": "latin", "bg": "#1356c8", "fg": "#f2f5f8"}
    fmt = load_plate_format(dict(cn.to_dict(), synth={"sets": sets, "styles": {"x": dict(style, cjk_fonts={
        "cjk": 1, "cjk_black": 1, "cjk_medium": 1})}}))
    assert synth_spec(fmt).styles["x"].cjk_fonts.options == ("cjk", "cjk_black", "cjk_medium")
    picked = {sample(fmt, 3, i)[2]["cjk_font"] for i in range(30)}
    assert picked == {"cjk", "cjk_black", "cjk_medium"}
    # the three faces draw the same ideograph differently (Black has the most ink)
    ink = {f: glyphs.glyph(f, "皖", 20, 40).sum() for f in picked}
    assert ink["cjk_black"] > ink["cjk"] > ink["cjk_medium"]
    # one face (the default): no pick drawn, no params key, same plates as without the key
    plain = load_plate_format(dict(cn.to_dict(), synth={"sets": sets, "styles": {"x": style}}))
    one = load_plate_format(dict(cn.to_dict(), synth={"sets": sets, "styles": {"x": dict(style, cjk_fonts="cjk")}}))
    a, b = sample(plain, 3, 0), sample(one, 3, 0)
    assert "cjk_font" not in a[2] and a[1] == b[1] and np.array_equal(a[0], b[0])
    bad = load_plate_format(dict(cn.to_dict(), synth={"sets": sets, "styles": {"x": dict(style, cjk_fonts={"cjk_heavy": 1})}}))
    with pytest.raises(SynthConfigError, match="cjk_fonts: unknown font"):
        build_spec(bad)


def test_warped_glyph_moves_its_parts_but_keeps_shape_and_most_ink():
    a = glyphs.glyph("cjk", "皖", 30, 60)
    rng = np.random.default_rng(0)
    assert glyphs.warped(a, rng, 0.0) is a  # off: the glyph as drawn, no draw from rng
    assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state
    outs = [glyphs.warped(a, rng, 0.04) for _ in range(20)]
    for w in outs:
        assert w.shape == a.shape and w.dtype == np.float32 and 0.0 <= w.min() and w.max() <= 1.0
        assert 0.6 < w.sum() / a.sum() < 1.4  # the parts move; the strokes are not erased or smeared
    diffs = [float(np.abs(w - a).mean()) for w in outs]
    assert max(diffs) > 0.02 and len({round(d, 6) for d in diffs}) > 15  # each call draws its own warp
    # the same rng state gives the same warp (samples stay reproducible from their seed)
    w1, w2 = (glyphs.warped(a, np.random.default_rng(5), 0.04) for _ in range(2))
    assert np.array_equal(w1, w2)


def test_cjk_warp_changes_only_the_ideographs_and_is_opt_in():
    """``cjk_warp``: ideographs drawn under a random warp (recorded in the params); a style without the key draws
    exactly what it always drew; a value outside [0, 0.15] is refused naming the key."""
    cn = load_plate_format("cn")
    sets = {"P": "皖苏", "S": "AB"}
    style = {"patterns": ["PS|DDDDD"], "size_mm": [440, 140], "fonts": "latin", "bg": "#1356c8", "fg": "#f2f5f8"}
    plain = load_plate_format(dict(cn.to_dict(), synth={"sets": sets, "styles": {"x": style}}))
    warp = load_plate_format(dict(cn.to_dict(), synth={"sets": sets, "styles": {"x": dict(style, cjk_warp=0.04)}}))
    zero = load_plate_format(dict(cn.to_dict(), synth={"sets": sets, "styles": {"x": dict(style, cjk_warp=0)}}))
    assert synth_spec(warp).styles["x"].cjk_warp == 0.04
    a, b, z = sample(plain, 3, 0), sample(warp, 3, 0), sample(zero, 3, 0)
    assert "cjk_warp" not in a[2] and b[2]["cjk_warp"] == 0.04 and a[1] == b[1]
    assert np.array_equal(a[0], z[0]) and not np.array_equal(a[0], b[0])
    # clean plates (no camera draws): the warp touches the province's box only
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    pa, _ = render_plate(plain, "皖A12345", rng_a, degrade=False)
    pb, _ = render_plate(warp, "皖A12345", rng_b, degrade=False)
    cols = np.flatnonzero(np.abs(pa.astype(int) - pb.astype(int)).max(axis=(0, 2)) > 0)
    assert cols.size and cols.max() < pa.shape[1] * 0.2  # the first of 7 characters (and its margin) only
    for v in (-0.01, 0.5, "lots"):
        bad = load_plate_format(dict(cn.to_dict(), synth={"sets": sets, "styles": {"x": dict(style, cjk_warp=v)}}))
        with pytest.raises(SynthConfigError, match="cjk_warp"):
            build_spec(bad)
    # the experiment's variant warps every CN style's ideographs and keeps everything else of `cn`
    var = synth_spec(load_plate_format(os.path.join(ROOT, "configs", "variants", "cn_province_warp.yaml")))
    base = synth_spec(cn)
    assert set(var.styles) == set(base.styles) and all(st.cjk_warp == 0.04 for st in var.styles.values())
    assert all(repr(dataclasses.replace(var.styles[k], cjk_warp=0.0)) == repr(base.styles[k]) for k in base.styles)


def test_lead_box_draws_the_first_characters_small_and_apart():
    """``lead`` (the Uzbek region code): the first characters are drawn in their own box at their own size;
    the rest keeps the pattern's groups; a style may not have both ``lead`` and ``two_row``."""
    from lprnet_tf.synth.render import draw_plate

    uz = load_plate_format("uz")
    st = synth_spec(uz).styles["private"]
    n, box, char, _ = st.first_box
    assert n == 2 and char[1] < st.char_mm[1]
    rgba, _ = draw_plate(st, "30A123BC", np.random.default_rng(0))
    ppm = rgba.shape[0] / st.size_mm[1]
    ink = rgba[..., :3].astype(int).sum(-1) < 200  # dark characters on the white plate

    def ink_rows(x0, x1):  # rows holding ink between x0 and x1 mm (the frame's top and bottom rows cut off)
        band = ink[int(10 * ppm):int(102 * ppm), int(x0 * ppm):int(x1 * ppm)]
        return np.flatnonzero(band.any(1))

    lead, serial = ink_rows(box[0] + 1, box[2] - 1), ink_rows(110, 450)
    assert len(lead) and len(serial)
    assert lead.max() - lead.min() < 0.8 * (serial.max() - serial.min())  # the region code is smaller
    raw = dict(uz.synth)
    styles = dict(raw["styles"])
    styles["private"] = dict(styles["private"], two_row={"top_chars": 2, "top_box_mm": [1, 2, 3, 4],
                                                          "top_char_mm": [1, 2]})
    with pytest.raises(SynthConfigError, match="two_row or lead, not both"):
        build_spec(load_plate_format({**uz.to_dict(), "synth": {**raw, "styles": styles}}))
    styles["private"] = dict(raw["styles"]["private"], lead={"chars": 2, "box_mm": [1, 2, 3, 4]})
    with pytest.raises(SynthConfigError, match="lead: needs chars, box_mm, char_mm"):
        build_spec(load_plate_format({**uz.to_dict(), "synth": {**raw, "styles": styles}}))


def test_bundled_fonts_are_small_and_licensed():
    font_dir = glyphs.FONT_DIR
    for f in glyphs.FONTS.values():
        assert os.path.getsize(os.path.join(font_dir, f)) < 1_000_000
    for f in ("OFL.txt", "LICENSE-DejaVu.txt", "README.md"):
        assert os.path.isfile(os.path.join(font_dir, f))


def test_bad_synth_sections_are_reported():
    base = load_plate_format("br").to_dict()
    bad = dict(base, synth={"styles": {"x": {"patterns": ["LLLQDDD"], "size_mm": [400, 130]}}})
    with pytest.raises(SynthConfigError, match="set 'Q'"):
        build_spec(load_plate_format(bad))
    bad = dict(base, synth={"styles": {"x": {"patterns": ["LLL"], "size_mm": [400, 130], "colour": 1}}})
    with pytest.raises(SynthConfigError, match="unknown key"):
        build_spec(load_plate_format(bad))
    wrong = dict(base, synth={"styles": {"x": {"patterns": ["DDDDDDD"], "size_mm": [400, 130]}}})
    with pytest.raises(SynthConfigError, match="templates"):
        random_text(load_plate_format(wrong), np.random.default_rng(0))
    with pytest.raises(SynthConfigError, match="no 'synth:'"):
        build_spec(load_plate_format(dict(base, synth={})))


def test_contact_sheet_multiline_labels(tmp_path):
    imgs = [np.full((24, 94, 3), 200, np.uint8), np.zeros((30, 60), np.uint8), np.ones((10, 40, 3), np.float32)]
    sheet = contact_sheet(imgs, ["皖A12345", "truth\npred 0.93", ""], cols=2, cell_hw=(48, 150))
    assert sheet.dtype == np.uint8 and sheet.shape[1] == 2 * (150 + 8)
    path = save_contact_sheet(str(tmp_path / "sheet.png"), imgs, None, cols=8)
    assert cv2.imread(path) is not None


def test_write_synthetic_set(tmp_path):
    out = tmp_path / "set"
    labels = write_synthetic_set("cn", str(out), 12, seed=3, progress=False, split="val")
    with open(labels, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    assert list(rows[0]) == ["path", "text", "split", "style", "degradation", "params"]
    fmt = load_plate_format("cn")
    for i, row in enumerate(rows):
        img = cv2.imread(str(out / row["path"]))
        assert img is not None and img.ndim == 3
        assert row["split"] == "val" and fmt.check(row["text"]) is None
        assert json.loads(row["params"])["degradation"] == float(row["degradation"])
        assert row["text"] == sample(fmt, 3, i)[1]
    assert cv2.imread(str(out / "contact_sheet.png")) is not None


def _cli(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "lprnet_tf.cli.synth", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_errors_and_run(tmp_path):
    r = _cli("--format", "nope", "--out", str(tmp_path / "x"))
    assert r.returncode != 0 and "unknown plate format 'nope'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli("--format", "cn", "--count", "0", "--out", str(tmp_path / "x"))
    assert r.returncode != 0 and "--count must be positive" in r.stderr
    r = _cli("--format", "br", "--count", "3", "--out", str(tmp_path / "br"), "--no_degrade", "--noprogress")
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(tmp_path / "br" / "images")) == 3
    # an existing data set is never written over without --overwrite; bad --out / --seed are refused up front
    labels = (tmp_path / "br" / "labels.csv").read_bytes()
    r = _cli("--format", "br", "--count", "2", "--out", str(tmp_path / "br"), "--noprogress", "--seed", "5")
    assert r.returncode == 2 and "is not empty" in r.stderr and "--overwrite" in r.stderr
    assert (tmp_path / "br" / "labels.csv").read_bytes() == labels
    (tmp_path / "f.txt").write_text("x")
    r = _cli("--format", "br", "--count", "2", "--out", str(tmp_path / "f.txt"))
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr
    r = _cli("--format", "br", "--count", "2", "--out", str(tmp_path / "s"), "--seed", "-1")
    assert r.returncode == 2 and "--seed" in r.stderr and not (tmp_path / "s").exists()
    r = _cli("--format", "br", "--count", "2", "--out", str(tmp_path / "c"), "--compare_real", str(tmp_path / "no"))
    assert r.returncode == 2 and "--compare_real" in r.stderr and not (tmp_path / "c").exists()
    r = _cli("--format", "br", "--count", "2", "--out", str(tmp_path / "br"), "--noprogress", "--overwrite")
    assert r.returncode == 0, r.stderr


def test_us_stacked_variant_keeps_the_us_styles():
    """configs/variants/us_stacked.yaml adds four styles to us.yaml's synth section (synth_update) and keeps
    the rest of it as it is."""
    from conftest import REPO

    us = load_plate_format("us").synth
    var = load_plate_format(os.path.join(REPO, "configs", "variants", "us_stacked.yaml")).synth
    assert {k: v for k, v in var.items() if k != "styles"} == {k: v for k, v in us.items() if k != "styles"}
    extra = set(var["styles"]) - set(us["styles"])
    assert extra == {"stacked_left", "stacked_right", "stacked3", "emblem"}
    assert {k: var["styles"][k] for k in us["styles"]} == us["styles"]
    plain_marks = us["styles"]["plain"]["marks"]
    for name in extra:  # the state name and slogan drawn as on the plain style
        assert var["styles"][name]["marks"][:2] == plain_marks[:2], name


def test_br_plate_font_variant_draws_narrow_o_on_old_plates():
    """configs/variants/br_plate_font.yaml: the grey style (and red, based on it) draws C, G, Q, O in plate shapes
    with lighter strokes, everything else of `br` kept; a letter O on such a plate is drawn as the face's 0."""
    from lprnet_tf.synth.render import draw_plate

    br = load_plate_format("br")
    var = synth_spec(load_plate_format(os.path.join(ROOT, "configs", "variants", "br_plate_font.yaml")))
    base = synth_spec(br)
    assert set(var.styles) == set(base.styles)
    for name in ("grey", "red"):
        st = var.styles[name]
        assert (st.plate_shapes, st.plate_shapes_chars, st.thin) == (0.7, "CGQO", (0.0, 0.03))
        assert repr(dataclasses.replace(st, plate_shapes=0.0, plate_shapes_chars="CGQM", thin=(0.0, 0.02))) == \
            repr(base.styles[name])
    assert repr(var.styles["mercosul"]) == repr(base.styles["mercosul"])

    shaped = dataclasses.replace(var.styles["grey"], plate_shapes=1.0, fonts=base.styles["grey"].fonts)
    plain = dataclasses.replace(shaped, plate_shapes=0.0)
    o_plate = glyphs.glyph("latin", glyphs.PLATE_PREFIX + "O", 20, 40)
    assert np.array_equal(o_plate, glyphs.glyph("latin", "0", 20, 40))  # the letter drawn as the digit's oval
    assert not np.array_equal(o_plate, glyphs.glyph("latin", "O", 20, 40))  # the face's O squeezed into the box
    for text, same in (("OQC1234", False), ("ABD1234", True)):  # only C, G, Q, O change
        (a, pa), (b, pb) = (draw_plate(st, text, np.random.default_rng(3)) for st in (shaped, plain))
        assert pa["plate_shapes"] and "plate_shapes" not in pb and pa["font"] == pb["font"]
        assert np.array_equal(a, b) == same


def test_degrade_contrast_max_bounds_the_contrast_draw():
    """``degrade.contrast_max`` (default 1.1, the draw's old fixed bound) caps the contrast factor; the draws of
    every other parameter do not move with it."""
    from lprnet_tf.synth.degrade import DegradeConfig, place_and_degrade

    rgba = np.zeros((70, 220, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (30, 80, 200), 255
    rgba[20:50, 30:190, :3] = 240

    def draws(cfg):
        return [place_and_degrade(rgba, np.random.default_rng(s), cfg)[1] for s in range(40)]

    base, wide = draws(DegradeConfig()), draws(DegradeConfig(contrast_max=1.4))
    assert max(p["contrast"] for p in base) <= 1.1 and max(p["contrast"] for p in wide) > 1.1
    assert max(p["contrast"] for p in wide) <= 1.4
    for a, b in zip(base, wide):
        assert a["difficulty"] == b["difficulty"] and a["rotate_deg"] == b["rotate_deg"]
        assert a.get("blur") == b.get("blur") and a.get("noise") == b.get("noise")
