"""Partial re-runs of the benchmarks keep what they did not measure, with the date it was measured."""

import json
import os
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import results_io  # noqa: E402


def _write(out, results, md_first_line):
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(results, f)
    with open(out + ".md", "w", encoding="utf-8") as f:
        f.write(md_first_line + "\n\nrest\n")


def test_merge_previous_keeps_order_and_dates(tmp_path):
    out = str(tmp_path / "stream")
    _write(out, [{"set": "cn", "v": 1}, {"set": "br", "v": 2}], "Stream recognition, 2026-11-23: tracks")
    merged = results_io.merge_previous([{"set": "br", "v": 3}, {"set": "us", "v": 4}], out)
    assert [(r["set"], r["v"]) for r in merged] == [("cn", 1), ("br", 3), ("us", 4)]  # old order, new last
    assert merged[0]["date"] == "2026-11-23"  # undated old result: the old .md's date
    assert merged[1]["date"] == merged[2]["date"] == results_io.today()
    assert "2026-11-23 and " in results_io.dates_line(merged)
    assert results_io.set_date(merged[0], merged) == ", measured 2026-11-23"
    assert results_io.dates_line(merged[1:]) == results_io.today() and results_io.set_date(merged[1], merged[1:]) == ""
    # nothing before: the new results alone; a JSON that is not a list is refused by name
    assert [r["set"] for r in results_io.merge_previous([{"set": "x"}], str(tmp_path / "none"))] == ["x"]
    with open(out + ".json", "w") as f:
        json.dump({"set": "cn"}, f)
    try:
        results_io.load_previous(out)
    except SystemExit as e:
        assert "stream.json" in str(e)
    else:
        raise AssertionError("a non-list JSON was accepted")


def test_lowres_keeps_rows_whose_model_is_not_here(tmp_path):
    import lowres

    out = str(tmp_path / "lowres")
    sets = {"HR": {"accuracy": 0.5, "char_accuracy": 0.9, "count": 3}}
    old = [{"format": "br", "set": "br_openalpr_crops", "columns": ["HR"], "count": 3, "merges": [], "missing": [],
            "rows": {"LPRNet": {"model": "br_lprnet_basic", "sets": sets},
                     "MTGAN-SR + LPRNet": {"model": "runs/mtgan_br/last.keras", "sets": sets}},
            "psnr": {"bilinear interpolation": {"12 px": 29.0},
                     "MTGAN generator (runs/mtgan_br/last.keras)": {"12 px": 27.0},
                     "MTGAN generator, bilinear input skip (runs/old/last.keras)": {"12 px": 28.0}}},
           {"format": "cn", "set": "cn_ccpd_like_1000", "columns": ["HR"], "count": 3, "merges": [], "missing": [],
            "rows": {"LPRNet": {"model": "cn_lprnet_basic", "sets": sets}}}]
    _write(out, old, "Low-resolution plates, `python benchmarks/lowres.py`, 2026-11-30, 2-core CPU")
    new_sets = {"HR": {"accuracy": 0.7, "char_accuracy": 0.95, "count": 3}}
    new = [{"format": "br", "set": "br_openalpr_crops", "columns": ["HR"], "count": 3, "merges": [],
            "rows": {"LPRNet": {"model": "br_lprnet_basic", "sets": new_sets}},
            "missing": ["MTGAN-SR + LPRNet (runs/mtgan_br/last.keras)",
                        "multi-task CNN, HR training crops only (runs/multitask_br_more/last.keras)"],
            "psnr": {"bilinear interpolation": {"12 px": 29.5},
                     "MTGAN generator, bilinear input skip (runs/new/last.keras)": {"12 px": 29.9}}}]
    merged = lowres.keep_unmeasured(new, out)
    br, cn = merged
    assert list(br["rows"]) == ["LPRNet", "MTGAN-SR + LPRNet"]  # READERS order
    assert br["rows"]["LPRNet"]["sets"]["HR"]["accuracy"] == 0.7 and br["rows"]["LPRNet"]["date"] == results_io.today()
    assert br["rows"]["MTGAN-SR + LPRNet"]["date"] == "2026-11-30"  # kept, with its date
    assert br["rows"]["MTGAN-SR + LPRNet"]["kept"] and not br["rows"]["LPRNet"].get("kept")
    assert br["missing"] == ["multi-task CNN, HR training crops only (runs/multitask_br_more/last.keras)"]
    assert cn["date"] == "2026-11-30" and cn["rows"]["LPRNet"]["sets"] == sets  # not measured: kept whole
    # PSNR: the generator not measured now is kept with its date; the one measured again is not duplicated
    assert br["psnr"] == {"bilinear interpolation": {"12 px": 29.5},
                          "MTGAN generator, bilinear input skip (runs/new/last.keras)": {"12 px": 29.9},
                          "MTGAN generator (runs/mtgan_br/last.keras) (kept, measured 2026-11-30)": {"12 px": 27.0}}
    lowres.write(merged, out)
    md = open(out + ".md", encoding="utf-8").read()
    assert "| MTGAN-SR + LPRNet (kept, measured 2026-11-30) | 0.500 / 0.900 |" in md
    assert "| LPRNet | 0.700 / 0.950 |" in md and "were not re-measured in this run" in md
    assert "(validation crops, 3 per column; merges none, measured 2026-11-30)" in md  # the CN table
    assert "| MTGAN generator (runs/mtgan_br/last.keras) (kept, measured 2026-11-30) | 27.00 |" in md


def test_glyph_probe_forces_the_character_into_valid_plates():
    """benchmarks/glyph_probe.py: every probe plate is a valid plate of the format with the character at the
    recorded place (after the first character; an ideograph where the plate holds one); a character the format
    cannot place is refused; --faces sets every style's ideograph face."""
    import pytest

    import glyph_probe
    from lprnet_tf.synth.spec import synth_spec
    from lprnet_tf.vocab import load_plate_format

    cn = load_plate_format("cn")
    items = glyph_probe.forced_texts(cn, "W", 30, seed=0)
    assert len(items) == 30
    for text, style, i in items:
        assert i >= 1 and text[i] == "W" and cn.check(text) is None and cn.matches_template(text)
        assert style in synth_spec(cn).styles
    assert glyph_probe.forced_texts(cn, "W", 30, seed=0) == items  # deterministic
    assert {st.plate_shapes for st in synth_spec(glyph_probe.with_every_style(cn, plate_shapes=1.0)).styles.values()} == {1.0}
    with pytest.raises(SystemExit, match="pick another"):
        glyph_probe.forced_texts(cn, "O", 5, seed=0)  # not in the cn alphabet: no valid plate holds it
    # an ideograph goes where the text holds one (the province, first; or the last character of 学/挂/警 plates)
    provinces = glyph_probe.forced_texts(cn, "皖", 30, seed=1)
    assert all(t[i] == "皖" and not t[i].isascii() and cn.check(t) is None for t, _, i in provinces)
    assert sum(i == 0 for _, _, i in provinces) >= 25
    medium = synth_spec(glyph_probe.with_every_style(cn, cjk_fonts={"cjk_medium": 1}))
    assert {st.cjk_fonts.options for st in medium.styles.values()} == {("cjk_medium",)}


def test_crop_margins_changes_only_the_crop_margin():
    """benchmarks/crop_margins.py: the tight and loose sets are the format's plates (same texts) with only the
    horizontal crop margin changed; None leaves the format as it is; a tight crop is narrower around the
    same plate than a loose one."""
    import crop_margins
    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.synth.spec import synth_spec
    from lprnet_tf.vocab import load_plate_format

    cn = load_plate_format("cn")
    assert crop_margins.with_margin_x(cn, None) is cn
    tight = crop_margins.with_margin_x(cn, crop_margins.MARGINS["tight"])
    loose = crop_margins.with_margin_x(cn, crop_margins.MARGINS["loose"])
    assert synth_spec(tight).degrade.margin_x == (-0.16, -0.10) and synth_spec(loose).degrade.margin_x == (0.08, 0.14)
    assert synth_spec(tight).degrade.margin_y == synth_spec(cn).degrade.margin_y
    assert tight.to_dict()["synth"]["styles"] == cn.to_dict()["synth"]["styles"]
    a, b = open_source("synth:5:4", tight), open_source("synth:5:4", loose)
    assert a.texts() == b.texts() == open_source("synth:5:4", cn).texts()
    for i in range(4):  # the same plate height, so the tighter crop is narrower
        ia, ib = a.get(i)[0], b.get(i)[0]
        assert ia.shape[1] / ia.shape[0] < ib.shape[1] / ib.shape[0]


def test_plate_colours_measures_text_and_plate():
    """benchmarks/plate_colours.py: on a drawn white-on-blue crop the text, background, contrast and coverage are
    what was drawn; other plates are skipped; less stroke erosion in a variant raises the synthetic coverage."""
    import numpy as np

    import plate_colours
    from lprnet_tf.vocab import load_plate_format

    crop = np.zeros((24, 94, 3), np.uint8)
    crop[:] = (20, 60, 160)  # blue: Y = 59.5
    crop[:, 30:40] = crop[:, 60:70] = (200, 200, 200)  # two bars, 20 of the band's 79 columns
    s = plate_colours.band_stats(crop)
    bg = 0.299 * 20 + 0.587 * 60 + 0.114 * 160
    assert abs(s["background"] - bg) < 0.5 and abs(s["text"] - 200) < 0.5
    assert abs(s["contrast"] - (200 - bg)) < 1 and abs(s["coverage"] - 20 / 79) < 0.01
    assert plate_colours.band_stats(np.full((24, 94, 3), (160, 150, 20), np.uint8)) is None  # yellow: skipped
    cn, bold = load_plate_format("cn"), load_plate_format(os.path.join(REPO, "configs/variants/cn_bold_strokes.yaml"))
    a, b = plate_colours.synth_stats(cn, 40, seed=3), plate_colours.synth_stats(bold, 40, seed=3)
    assert a["crops"] > 30 and b["coverage"][1] > a["coverage"][1] + 0.01
    assert plate_colours.summarize([]) == {"crops": 0, **{c: None for c in plate_colours.COLUMNS}}  # no fake zeros
    try:  # a format without a blue style is a usage error, not a traceback
        plate_colours.main(["--real", "", "--formats", "br", "--count", "1"])
    except SystemExit as e:
        assert e.code == 2
    else:
        raise AssertionError("--formats br was accepted")
