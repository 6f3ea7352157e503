import csv
import os

import pytest

from lprnet_tf.vocab import LabelError, PlateFormatError, available_formats, load_plate_format, plate_format_from_dict
from conftest import SHARED_DATA

SETS = {"cn_ccpd_like_1000": "cn", "br_openalpr_crops": "br", "uz_plates": "uz", "tw_plates": "tw",
        "us_openalpr_crops": "us", "ar_plates": "ar"}


def test_every_shipped_format_loads():
    names = available_formats()
    for n in ("cn", "us", "eu", "br", "uz", "tw", "ar"):
        assert n in names
    for n in names:
        f = load_plate_format(n)
        assert f.num_classes == len(f.alphabet) + 1
        assert f.encode(f.alphabet[0]) == [1]


def test_cn_alphabet_has_provinces_and_specials(cn):
    provinces = "京津冀晋蒙辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川贵云藏陕甘青宁新"
    assert len(provinces) == 31 and all(c in cn.alphabet for c in provinces + "警学挂港澳使领")
    assert "I" not in cn.alphabet and "O" not in cn.alphabet
    assert cn.matches_template("皖A12345") and cn.matches_template("粤BD12345") and cn.matches_template("京A1234警")
    assert not cn.matches_template("皖123456")


def test_br_templates(br):
    assert br.matches_template("ABC1234") and br.matches_template("BRA2E19")
    assert not br.matches_template("AB12345")


def test_encode_decode_and_errors(cn):
    ids = cn.encode("皖A·12345")
    assert cn.decode(ids) == "皖A12345"
    assert cn.pad(ids)[-1] == 0 and len(cn.pad(ids)) == cn.max_length
    assert load_plate_format("br").normalize("abc-1234") == "ABC1234"
    with pytest.raises(LabelError, match="outside"):
        cn.encode("皖AI2345")
    with pytest.raises(LabelError, match="max_length"):
        cn.encode("皖A1234567")
    with pytest.raises(LabelError, match="empty"):
        cn.encode(" ")


@pytest.mark.parametrize("set_name", sorted(SETS))
def test_roundtrip_every_shared_label(set_name):
    path = os.path.join(SHARED_DATA, set_name, "labels.csv")
    if not os.path.isfile(path):
        pytest.skip("shared data not present")
    fmt = load_plate_format(SETS[set_name])
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            assert fmt.decode(fmt.encode(row["text"])) == row["text"]


def test_bad_format_yaml(tmp_path):
    with pytest.raises(PlateFormatError, match="unknown key"):
        plate_format_from_dict({"name": "x", "alphabet": "AB", "max_length": 3, "height": 24, "width": 94, "colour": 1})
    with pytest.raises(PlateFormatError, match="missing"):
        plate_format_from_dict({"name": "x", "alphabet": "AB"})
    with pytest.raises(PlateFormatError, match="must be int"):
        plate_format_from_dict({"name": "x", "alphabet": "AB", "max_length": "3", "height": 24, "width": 94})
    with pytest.raises(PlateFormatError, match="repeats"):
        plate_format_from_dict({"name": "x", "alphabet": "ABA", "max_length": 3, "height": 24, "width": 94})
    with pytest.raises(PlateFormatError, match="unknown plate format"):
        load_plate_format("atlantis")
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(PlateFormatError, match="not valid YAML"):
        load_plate_format(str(p))


def test_synth_update_changes_one_set_of_the_base(tmp_path):
    """A format variant may update parts of the inherited synth section (synth_update) instead of copying it:
    configs/variants/cn_local_anhui.yaml replaces the province set P only."""
    import collections

    from conftest import REPO
    from lprnet_tf.synth.render import sample_text
    from lprnet_tf.vocab import PlateFormatError, load_plate_format

    cn = load_plate_format("cn")
    local = load_plate_format(os.path.join(REPO, "configs", "variants", "cn_local_anhui.yaml"))
    assert local.name == "cn" and local.alphabet == cn.alphabet
    assert local.synth["styles"] == cn.synth["styles"] and local.synth["degrade"] == cn.synth["degrade"]
    assert {k: v for k, v in local.synth["sets"].items() if k != "P"} == {k: v for k, v in cn.synth["sets"].items()
                                                                          if k != "P"}
    assert set(local.synth["sets"]["P"]) == set(cn.synth["sets"]["P"])  # every province still drawn
    first = collections.Counter(sample_text(local, 3, i)[0] for i in range(600))
    assert first["皖"] > 0.8 * 600 and len(first) > 5
    assert collections.Counter(sample_text(cn, 3, i)[0] for i in range(600))["皖"] < 0.2 * 600
    assert "P" in load_plate_format("cn").synth["sets"] and load_plate_format("cn").synth == cn.synth  # base untouched

    (tmp_path / "s.yaml").write_text("base: cn\nsynth_update:\n  degrade: {rotate_std: 1.0}\n  note: x\n",
                                     encoding="utf-8")
    f = load_plate_format(str(tmp_path / "s.yaml"))
    assert f.synth["degrade"] == {**cn.synth["degrade"], "rotate_std": 1.0} and f.synth["note"] == "x"
    (tmp_path / "bad.yaml").write_text("base: cn\nsynth_update: [1, 2]\n", encoding="utf-8")
    with pytest.raises(PlateFormatError, match="bad.yaml: 'synth_update' must be a non-empty mapping"):
        load_plate_format(str(tmp_path / "bad.yaml"))
    (tmp_path / "nosynth.yaml").write_text("name: x\nalphabet: AB\nmax_length: 2\nsynth_update: {sets: {A: B}}\n",
                                           encoding="utf-8")
    with pytest.raises(PlateFormatError, match="needs a 'synth' section"):
        load_plate_format(str(tmp_path / "nosynth.yaml"))


def test_with_synth_update_is_the_file_key_on_a_loaded_format(tmp_path):
    """vocab.with_synth_update applies synth_update to a loaded format: the same format as a variant file with that
    synth_update, the original untouched; a format without a synth section is refused by name."""
    from lprnet_tf.vocab import with_synth_update

    cn = load_plate_format("cn")
    (tmp_path / "v.yaml").write_text("base: cn\nsynth_update:\n  degrade: {margin_x: [-0.1, 0.1]}\n", encoding="utf-8")
    f = with_synth_update(cn, {"degrade": {"margin_x": [-0.1, 0.1]}})
    v = load_plate_format(str(tmp_path / "v.yaml"))
    assert f == v and f.synth == v.synth  # (PlateFormat equality leaves synth out)
    assert f.synth["degrade"] == {**cn.synth["degrade"], "margin_x": [-0.1, 0.1]}
    assert f.synth["styles"] == cn.synth["styles"] and cn.synth == load_plate_format("cn").synth
    bare = plate_format_from_dict({"name": "bare", "alphabet": "AB", "max_length": 2, "height": 24, "width": 94})
    with pytest.raises(PlateFormatError, match="plate format bare: 'synth_update' needs a 'synth' section"):
        with_synth_update(bare, {"degrade": {"margin_x": [0, 0]}})
