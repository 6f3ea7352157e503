"""lprnet-data (stats, validate, convert, split, show) and the dataset tools behind it."""

import csv
import json
import os
import random
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, SHARED_DATA, write_image
from lprnet_tf.cli.data import SUBCOMMANDS, describe
from lprnet_tf.cli.data._app import normalize_flag_names
from lprnet_tf.data.readers import DataError, image_size, scan_rows
from lprnet_tf.datatools.common import one_apart
from lprnet_tf.datatools.split import assign, units
from lprnet_tf.datatools.stats import compute_stats, render_stats

ENV = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
HEAVY = ("tensorflow", "keras", "jax", "torch")
# Runs `lprnet-data ARGS` in a fresh interpreter and reports, after it exits, which heavy ML
# frameworks it imported: every call below also proves the subcommand stays TensorFlow-free.
_RUNNER = (
    "import sys\n"
    "from lprnet_tf.cli.data import main\n"
    "code = 0\n"
    "try:\n"
    "    main(['lprnet-data'] + sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
    "print('HEAVY_MODULES=' + ','.join(heavy), file=sys.stderr)\n"
    "sys.exit(code)\n")
CCPD_NAMES = {  # file name -> (text, box)
    "025-95_113-40&50_160&80-160&80_40&80_40&50_160&50-0_0_22_27_27_33_16-37-15.jpg": ("皖AY339S", (40, 50, 160, 80)),
    "01-90_90-30&40_170&90-170&90_30&90_30&40_170&40-12_1_3_4_5_6_7-100-20.jpg": ("京BDEFGH", (30, 40, 170, 90)),
}


def cli(*args, cwd=None):
    r = subprocess.run([sys.executable, "-c", _RUNNER, *args], env=ENV, cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    marker = [line for line in r.stderr.splitlines() if line.startswith("HEAVY_MODULES=")]
    assert marker, r.stderr
    assert marker[-1] == "HEAVY_MODULES=", f"lprnet-data {args[0]} imported {marker[-1]}"
    r.stderr = "\n".join(line for line in r.stderr.splitlines() if not line.startswith("HEAVY_MODULES="))
    return r


def error_line(r) -> str:
    """The one `error: ...` line of a failed run."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def make_set(root, rows, header="path,text,split,group", images=None):
    """labels.csv in ``root`` with ``rows`` (strings); writes a 30x90 JPEG for every image named."""
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    for k, name in enumerate(images or []):
        write_image(os.path.join(root, "images", name), value=(40 + 7 * k) % 256)  # distinct bytes
    p = os.path.join(root, "labels.csv")
    with open(p, "w", encoding="utf-8") as f:
        f.write("\n".join([header] + rows) + "\n")
    return p


@pytest.fixture
def clean_set(tmp_path):
    """12 BR crops: 6 plates seen twice (group = plate), split train/val by plate."""
    texts = ["ABC1234", "XYZ9876", "BRA2E19", "QWE1A23", "JKL0000", "MNO5555"]
    rows, names = [], []
    for i, t in enumerate(texts):
        for k in range(2):
            names.append(f"{i}_{k}.jpg")
            rows.append(f"images/{i}_{k}.jpg,{t},{'train' if i < 4 else 'val'},{t}")
    return make_set(str(tmp_path / "set"), rows, images=names)


# ---- the command -------------------------------------------------------------------------------
def test_help_lists_subcommands_and_their_flags():
    r = cli("--help")
    assert r.returncode == 0
    for sub in SUBCOMMANDS:
        assert sub in r.stdout and describe(sub) in r.stdout and len(describe(sub)) > 20
    r = cli("validate", "--help")
    assert r.returncode == 0
    assert "  --fix_out:" in r.stdout and "  --templates:" in r.stdout and "Exit codes" in r.stdout
    assert "  --val:" not in r.stdout  # only validate's own flags
    r = cli("split", "--help")
    assert "  --val:" in r.stdout and "  --seed:" in r.stdout and "  --fix_out:" not in r.stdout
    r = cli("stat")
    assert r.returncode == 2 and "did you mean 'stats'" in error_line(r)
    r = cli()
    assert r.returncode == 2 and "subcommands:" in r.stderr


def test_flag_errors_are_usage_errors(tmp_path, clean_set):
    r = cli("split", "--data", clean_set, "--out", str(tmp_path / "o.csv"), "--val", "abc")
    assert r.returncode == 2 and "--val" in error_line(r) and "--help" in error_line(r)
    r = cli("validate", "--data", clean_set)
    assert r.returncode == 2 and "--format is required" in error_line(r)
    r = cli("stats", "--data", clean_set, "stray")
    assert r.returncode == 2 and "unexpected argument" in error_line(r)
    r = cli("validate", "--data", clean_set, "--format", "nope")
    assert r.returncode == 2 and "unknown plate format 'nope'" in error_line(r)
    r = cli("stats", "--data", str(tmp_path / "none.csv"))
    assert r.returncode == 2 and "no such file" in error_line(r)


def test_normalize_flag_names():
    assert normalize_flag_names(["--fix-out=a-b.csv", "--min-height", "-5", "--no-progress", "--no-x", "--",
                                 "--x-y"], frozenset({"progress"})) == \
        ["--fix_out=a-b.csv", "--min_height", "-5", "--noprogress", "--no_x", "--", "--x-y"]


# ---- readers additions -------------------------------------------------------------------------
def test_scan_rows_keeps_bad_rows_and_image_size(tmp_path):
    write_image(str(tmp_path / "a.jpg"), h=30, w=90)
    (tmp_path / "list.txt").write_text("a.jpg abc-123\nonlyonefield\n# comment\n\n", encoding="utf-8")
    scan = scan_rows(str(tmp_path / "list.txt"))
    assert scan.layout == "list" and len(scan.rows) == 2
    assert scan.rows[0].sample.text == "abc-123"  # as written; normalizing is the format's job
    assert scan.rows[1].sample is None and "expected 'path LABEL'" in scan.rows[1].problem
    assert image_size(str(tmp_path / "a.jpg")) == (90, 30)
    assert image_size(str(tmp_path / "a.jpg"), box=(10, 5, 50, 25)) == (40, 20)
    with pytest.raises(DataError, match="outside"):
        image_size(str(tmp_path / "a.jpg"), box=(100, 100, 200, 200))
    with pytest.raises(DataError, match="unknown layout"):
        scan_rows(str(tmp_path / "list.txt"), layout="xml")


# ---- stats -------------------------------------------------------------------------------------
def test_stats_counts_and_flags_duplicates_across_splits(tmp_path):
    rows = ["images/a.jpg,ABC1234,train,g1", "images/b.jpg,ABC-1234,val,g2",  # same plate in train and val
            "images/c.jpg,XYZ9876,train,g3", "images/d.jpg,QWE1A23,val,g3",  # same group in train and val
            "images/e.jpg,JKL000,train,g4", "images/gone.jpg,MNO5555,train,g5",
            "images/e_copy.jpg,ZZZ1111,val,g6"]  # the same image file content as a train row
    data = make_set(str(tmp_path), rows, images=["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])
    (tmp_path / "images" / "e_copy.jpg").write_bytes((tmp_path / "images" / "e.jpg").read_bytes())
    st = compute_stats(data, progress=False)
    assert st["rows"] == 7 and st["plates"] == 6 and st["groups"] == 6
    assert st["splits"]["train"] == {"rows": 4, "plates": 4, "groups": 4}
    assert st["label_lengths"] == {6: 1, 7: 6}
    assert st["characters"]["A"] == 3 and st["characters"]["1"] == 7
    assert st["images"]["read"] == 6 and st["images"]["missing"] == 1 and st["images"]["identical_images"] == 1
    assert st["images"]["height"]["24-32"] == 6 and st["images"]["common_sizes"] == [["90x30", 6]]
    ov = st["overlap"][0]
    assert ov["splits"] == ["train", "val"] and ov["plates"] == 1 and ov["groups"] == 1
    assert ov["plate_examples"] == ["ABC1234"] and ov["group_examples"] == ["g3"]
    assert ov["images"] == 1  # e.jpg / e_copy.jpg
    assert st["leaks"] == 1
    assert "DUPLICATES ACROSS SPLITS" in render_stats(st)
    r = cli("stats", "--data", data, "--format", "br", "--json", str(tmp_path / "st.json"), "--noprogress")
    assert r.returncode == 0, r.stderr
    assert "DUPLICATES ACROSS SPLITS" in r.stdout and "1 MISSING" in r.stdout
    assert "match none of its 2 templates (e.g. JKL000)" in r.stdout
    assert json.loads((tmp_path / "st.json").read_text(encoding="utf-8"))["leaks"] == 1
    assert cli("stats", "--data", data, "--fail_on_overlap", "--noprogress").returncode == 1


def test_stats_clean_split_is_not_flagged(clean_set):
    st = compute_stats(clean_set, progress=False)
    assert st["leaks"] == 0 and st["overlap"][0]["plates"] == 0 and st["images"]["identical_images"] == 0
    assert "DUPLICATES" not in render_stats(st) and "one character apart" not in render_stats(st)
    assert st["overlap"][0]["one_apart"] == 0
    assert cli("stats", "--data", clean_set, "--fail_on_overlap", "--noprogress").returncode == 0


def test_one_apart_pairs():
    texts = ["AYQ2915", "AVQ2915", "AVQ2915", "AVQ2916", "AVQ291", "BVQ2915X", "ZZZ0000"]
    assert one_apart(texts) == [("AVQ2915", "AVQ2916"), ("AVQ2915", "AYQ2915")]  # same length, one position
    assert one_apart(["皖A12345", "苏A12345", "皖A1234"]) == [("皖A12345", "苏A12345")]
    assert one_apart([]) == [] and one_apart(["ABC"]) == []


def test_stats_lists_plates_one_character_apart_across_splits(tmp_path):
    """A one-character label error gives one physical plate two texts, one per split: exact comparison misses
    it, so stats lists such pairs (not a leak by itself: a fleet's next number is one apart too)."""
    rows = ["images/a.jpg,AVQ2915,train,g1", "images/b.jpg,AYQ2915,val,g2",
            "images/c.jpg,ATK5902,train,g3", "images/d.jpg,ATK5903,train,g4",  # one apart, same split: not listed
            "images/e.jpg,QWE1A23,val,g5"]
    data = make_set(str(tmp_path), rows, images=["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])
    st = compute_stats(data, progress=False)
    ov = st["overlap"][0]
    assert ov["one_apart"] == 1 and ov["one_apart_pairs"] == ["AVQ2915/AYQ2915"]  # train's text first
    assert [os.path.basename(p) for p, _ in ov["one_apart_crops"][0]] == ["a.jpg", "b.jpg"]  # where to look
    assert st["leaks"] == 0
    text = render_stats(st)
    assert "1 plate pair one character apart: AVQ2915/AYQ2915" in text and "--by near" in text
    assert cli("stats", "--data", data, "--fail_on_overlap", "--noprogress").returncode == 0
    # --pairs_sheet draws each pair side by side (one crop per text, labelled with its split)
    sheet = tmp_path / "pairs.png"
    r = cli("stats", "--data", data, "--pairs_sheet", str(sheet), "--noprogress")
    assert r.returncode == 0 and f"wrote {sheet}: 1 pairs" in r.stdout
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] > img.shape[0]  # one row of two cells
    r = cli("stats", "--data", data, "--pairs_sheet", str(sheet), "--noprogress")  # exists: refused
    assert r.returncode == 2 and "--overwrite" in error_line(r)
    r = cli("stats", "--data", data, "--pairs_sheet", str(tmp_path / "pairs.jpg"), "--noprogress")
    assert r.returncode == 2 and "PNG" in error_line(r)


def test_stats_of_shared_br_set():
    path = os.path.join(SHARED_DATA, "br_openalpr_crops")
    if not os.path.isdir(path):
        pytest.skip("shared data not present")
    from lprnet_tf.vocab import load_plate_format

    st = compute_stats(path, fmt=load_plate_format("br"), progress=False)
    # the set's README: 1144 crops, train 900 / val 244 split by plate, group = physical plate
    assert st["rows"] == 1144 and st["malformed_rows"] == 0
    assert {k: v["rows"] for k, v in st["splits"].items()} == {"train": 900, "val": 244}
    assert st["leaks"] == 0 and st["overlap"][0]["groups"] == 0 and st["overlap"][0]["plates"] == 0
    assert st["label_lengths"] == {7: 1144}
    assert st["images"]["read"] == 1144 and st["images"]["missing"] == 0
    assert st["images"]["height"]["64-96"] == 1144  # crops were scaled to height 64
    assert st["format"]["bad_labels"] == 0 and st["format"]["no_template_match"] == 0
    assert st["plates"] == st["groups"] and sum(st["characters"].values()) == 7 * 1144
    # 14 train/val plate pairs one character apart; by eye (2026-12-04) at least 8 are one physical plate under
    # two labels, e.g. val AYQ2915 whose crop shows AVQ2915, the label of its train twin (model README)
    near = st["overlap"][0]["one_apart_pairs"]
    assert len(near) == 14 and "AVQ2915/AYQ2915" in near and "ASD9793/ASD9783" in near


# ---- validate ----------------------------------------------------------------------------------
def test_validate_clean_set_passes(clean_set):
    r = cli("validate", "--data", clean_set, "--format", "br", "--noprogress")
    assert r.returncode == 0, r.stderr
    assert "12 rows, 12 ok, 0 bad" in r.stdout


def test_validate_reports_every_bad_row_and_fixes(tmp_path):
    root = tmp_path / "raw"
    rows = ["images/a.jpg,abc-1234,train,g1",  # fine after normalization
            "images/b.jpg,AB€1234,train,g2",  # unknown character
            "images/c.jpg,ABC12345,train,g3",  # too long
            "images/d.jpg,ABCD123,train,g4",  # no template
            "images/gone.jpg,XYZ9876,train,g5",  # missing image
            "images/broken.jpg,XYZ9877,train,g6",  # not an image
            "images/tiny.png,XYZ9878,train,g7",  # too small
            "images/a.jpg,ABC1234,val,g1",  # duplicate of row 2
            "images/e.jpg,QWE1A23,val,g8", "images/e.jpg,QWE1A24,val,g8",  # conflicting labels
            "images/f.jpg"]  # malformed
    data = make_set(str(root), rows, images=["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"])
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cv2.imwrite(str(root / "images" / "tiny.png"), np.zeros((5, 40, 3), np.uint8))
    out = tmp_path / "clean" / "labels.csv"
    r = cli("validate", "--data", data, "--format", "br", "--fix-out", str(out), "--noprogress")
    assert r.returncode == 1, r.stderr
    expect = {3: "outside the 'br' alphabet", 4: "max_length=7", 5: "matches none of the 2 templates",
              6: "does not exist", 7: "not a decodable image", 8: "smaller than the minimum",
              9: "same image as", 10: "labels the same image", 11: "labels the same image", 12: "fields of the header"}
    for line_no, text in expect.items():
        assert any(line.startswith(f"  {data}:{line_no}: ") and text in line for line in r.stdout.splitlines()), \
            (line_no, r.stdout)
    assert "11 rows, 1 ok, 10 bad" in r.stdout
    good = read_csv(out)
    assert good == [{"path": "../raw/images/a.jpg", "text": "ABC1234", "split": "train", "group": "g1"}]
    rejects = read_csv(tmp_path / "clean" / "labels.rejects.csv")
    assert [x["row"] for x in rejects] == [f"{data}:{i}" for i in range(3, 13)]
    assert all(x["reason"] for x in rejects) and rejects[0]["path"] == "../raw/images/b.jpg"
    assert "label: " in rejects[0]["reason"] and "image: " in rejects[3]["reason"]
    # the cleaned file is valid from its new folder
    assert cli("validate", "--data", str(out), "--format", "br", "--noprogress").returncode == 0
    # outputs are not overwritten, the input never without --overwrite
    r = cli("validate", "--data", data, "--format", "br", "--fix_out", str(out), "--noprogress")
    assert r.returncode == 2 and "already exists" in error_line(r)
    r = cli("validate", "--data", data, "--format", "br", "--fix_out", data, "--noprogress")
    assert r.returncode == 2 and "is the input file" in error_line(r)


def test_validate_template_modes(tmp_path):
    data = make_set(str(tmp_path), ["images/a.jpg,ABCD123,train,g"], images=["a.jpg"])
    assert cli("validate", "--data", data, "--format", "br", "--noprogress").returncode == 1
    r = cli("validate", "--data", data, "--format", "br", "--templates", "warn", "--noprogress")
    assert r.returncode == 0 and "warnings (rows kept): 1" in r.stdout
    assert cli("validate", "--data", data, "--format", "br", "--templates", "off", "--noprogress").returncode == 0


# ---- convert -----------------------------------------------------------------------------------
def _ccpd_folder(root):
    os.makedirs(root, exist_ok=True)
    img = np.full((120, 200, 3), 90, np.uint8)
    for name in CCPD_NAMES:
        cv2.imencode(".jpg", img)[1].tofile(os.path.join(root, name))
    return root


def test_convert_ccpd_cuts_crops_at_the_boxes(tmp_path):
    src = _ccpd_folder(str(tmp_path / "ccpd"))
    out = tmp_path / "out"
    r = cli("convert", "--data", src, "--format", "cn", "--out", str(out), "--split", "train", "--noprogress")
    assert r.returncode == 0, r.stderr
    assert "2 images (2 cropped from boxes, 0 copied)" in r.stdout
    rows = read_csv(out / "labels.csv")
    assert list(rows[0]) == ["path", "text", "split", "source_file", "box"]
    for row in rows:
        text, (x1, y1, x2, y2) = CCPD_NAMES[row["source_file"]]
        assert row["text"] == text and row["split"] == "train" and row["box"] == f"{x1} {y1} {x2} {y2}"
        crop = cv2.imread(str(out / row["path"]))
        assert crop.shape == (y2 - y1, x2 - x1, 3)
    assert cli("validate", "--data", str(out), "--format", "cn", "--noprogress").returncode == 0
    # a non-empty --out is refused; --overwrite replaces what convert wrote, keeps other files
    r = cli("convert", "--data", src, "--format", "cn", "--out", str(out), "--noprogress")
    assert r.returncode == 2 and "--overwrite" in error_line(r)
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "images" / "stale.jpg").write_bytes(b"x")
    r = cli("convert", "--data", src, "--format", "cn", "--out", str(out), "--overwrite", "--noprogress")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out / "images")) == ["00001.jpg", "00002.jpg"] and (out / "notes.txt").exists()


def test_convert_list_and_filename_folders(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_image(str(src / "ABC1234.jpg"))
    write_image(str(src / "ABC1234_2.jpg"))
    cv2.imwrite(str(src / "XYZ9876.png"), np.full((20, 70, 3), 200, np.uint8))
    out = tmp_path / "names"
    r = cli("convert", "--data", str(src), "--format", "br", "--out", str(out), "--noprogress")
    assert r.returncode == 0, r.stderr
    rows = read_csv(out / "labels.csv")
    assert [(x["path"], x["text"], x["source_file"]) for x in rows] == [
        ("images/00001.jpg", "ABC1234", "ABC1234.jpg"), ("images/00002.jpg", "ABC1234", "ABC1234_2.jpg"),
        ("images/00003.png", "XYZ9876", "XYZ9876.png")]
    assert (out / "images" / "00003.png").read_bytes() == (src / "XYZ9876.png").read_bytes()  # copied as is
    (src / "train.txt").write_text("ABC1234.jpg abc-1234\nXYZ9876.png ABC12#4\n", encoding="utf-8")
    r = cli("convert", "--data", str(src / "train.txt"), "--format", "br", "--out", str(tmp_path / "l1"),
            "--noprogress")
    assert r.returncode == 2 and "train.txt:2" in error_line(r) and "--skip_bad" in error_line(r)
    r = cli("convert", "--data", str(src / "train.txt"), "--format", "br", "--out", str(tmp_path / "l2"),
            "--skip_bad", "--noprogress")
    assert r.returncode == 0 and "skipped 1 rows" in r.stdout
    assert [x["text"] for x in read_csv(tmp_path / "l2" / "labels.csv")] == ["ABC1234"]
    assert read_csv(tmp_path / "l2" / "skipped.csv")[0]["row"].endswith("train.txt:2")


def test_convert_refuses_to_overwrite_its_own_source(tmp_path, clean_set):
    folder = os.path.dirname(clean_set)
    r = cli("convert", "--data", clean_set, "--format", "br", "--out", folder, "--overwrite", "--noprogress")
    assert r.returncode == 2 and "would delete" in error_line(r)
    assert len(os.listdir(os.path.join(folder, "images"))) == 12


# ---- split -------------------------------------------------------------------------------------
def _plate_rows(n_plates=40, seed=0):
    rng = random.Random(seed)
    rows = []
    for p in range(n_plates):
        text = f"ABC{p:04d}"
        for k in range(rng.randint(1, 4)):
            rows.append(f"images/{p}_{k}.jpg,{text},,G{p // 2}")  # two plates per group
    return rows


def test_split_keeps_groups_and_plates_together_and_is_deterministic(tmp_path):
    rows = _plate_rows()
    data = make_set(str(tmp_path / "a"), rows)
    out1, out2 = tmp_path / "s1.csv", tmp_path / "s2.csv"
    r = cli("split", "--data", data, "--out", str(out1), "--val", "0.2", "--test", "0.1", "--seed", "3")
    assert r.returncode == 0, r.stderr
    got = read_csv(out1)
    assert len(got) == len(rows) and list(got[0]) == ["path", "text", "split", "group"]
    for key in ("group", "text"):
        sides = {}
        for x in got:
            sides.setdefault(x[key], set()).add(x["split"])
        assert all(len(s) == 1 for s in sides.values()), key
    counts = {s: sum(x["split"] == s for x in got) for s in ("train", "val", "test")}
    n = len(rows)
    assert abs(counts["val"] - 0.2 * n) <= 8 and abs(counts["test"] - 0.1 * n) <= 8 and counts["train"] > 0.5 * n
    assert got[0]["path"] == "a/images/0_0.jpg"  # relative to the output file
    # same seed, rows shuffled -> the same split for every image
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    data_b = make_set(str(tmp_path / "b"), shuffled)
    assert cli("split", "--data", data_b, "--out", str(out2), "--val", "0.2", "--test", "0.1", "--seed", "3").returncode == 0
    side_a = {x["path"].split("/", 1)[1]: x["split"] for x in got}
    side_b = {x["path"].split("/", 1)[1]: x["split"] for x in read_csv(out2)}
    assert side_a == side_b
    # another seed deals differently
    keys = units([f"ABC{i:04d}" for i in range(40)], [""] * 40)
    assert assign(keys, 0.2, 0.1, 3) != assign(keys, 0.2, 0.1, 4)


def test_split_units_join_groups_and_texts_transitively():
    texts = ["A1", "A1", "B2", "C3", "D4"]
    groups = ["g1", "", "g1", "", "g2"]
    u = units(texts, groups, "auto")
    assert u[0] == u[1] == u[2] and len({u[0], u[3], u[4]}) == 3
    assert units(texts, groups, "group")[0] != units(texts, groups, "group")[1]
    assert len(set(units(texts, groups, "row"))) == 5


def test_split_by_near_keeps_plates_one_character_apart_together():
    texts = ["AVQ2915", "AYQ2915", "AYQ2915", "ZZZ0000", "ZZZ0001", "QWE1A23"]
    groups = ["", "", "", "g1", "", ""]
    near = units(texts, groups, "near")
    assert near[0] == near[1] == near[2] and near[3] == near[4] and len(set(near)) == 3
    assert len(set(units(texts, groups, "auto"))) == 5  # auto joins equal texts only
    sides = assign([k for k in near for _ in range(10)], 0.3, 0.0, 0)
    by_unit = {}
    for k, s in zip([k for k in near for _ in range(10)], sides):
        by_unit.setdefault(k, set()).add(s)
    assert all(len(s) == 1 for s in by_unit.values())


def test_split_refuses_bad_requests(tmp_path, clean_set):
    out = tmp_path / "o.csv"
    r = cli("split", "--data", clean_set, "--out", clean_set)
    assert r.returncode == 2 and "is the input file" in error_line(r)
    r = cli("split", "--data", clean_set, "--out", str(out), "--val", "0.6", "--test", "0.5")
    assert r.returncode == 2 and "val + test < 1" in error_line(r)
    r = cli("split", "--data", clean_set, "--out", clean_set, "--overwrite", "--val", "0.34", "--seed", "1")
    assert r.returncode == 0, r.stderr
    rows = read_csv(clean_set)
    assert {x["split"] for x in rows} == {"train", "val"} and rows[0]["path"].startswith("images/")
    assert sum(x["split"] == "val" for x in rows) == 4  # 2 plates of 2 rows each: 1/3 of 12 rows


def test_rewritten_csv_keeps_its_mode(tmp_path, clean_set):
    """write_csv renames a private temp file over the output: the result keeps the replaced file's mode (a
    new file gets the umask's), not mkstemp's 0600."""
    os.chmod(clean_set, 0o644)
    r = cli("split", "--data", clean_set, "--out", clean_set, "--overwrite", "--val", "0.34")
    assert r.returncode == 0, r.stderr
    assert os.stat(clean_set).st_mode & 0o777 == 0o644
    old = os.umask(0o022)
    try:
        from lprnet_tf.datatools.common import write_csv

        write_csv(str(tmp_path / "new.csv"), ["path", "text"], [{"path": "a.jpg", "text": "ABC1234"}])
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "new.csv").st_mode & 0o777 == 0o644


def test_validate_and_convert_check_outputs_first(tmp_path, clean_set):
    same = str(tmp_path / "fixed.csv")
    r = cli("validate", "--data", clean_set, "--format", "br", "--fix_out", same, "--rejects_out", same)
    assert r.returncode == 2 and "is the --fix_out file" in error_line(r) and not os.path.exists(same)
    (tmp_path / "f").write_text("x")
    r = cli("convert", "--data", clean_set, "--format", "br", "--out", str(tmp_path / "f"))
    assert r.returncode == 2 and "is a file" in error_line(r)


def test_stats_json_refuses_to_replace_a_file(tmp_path, clean_set):
    before = open(clean_set, encoding="utf-8").read()
    r = cli("stats", "--data", clean_set, "--json", clean_set)
    assert r.returncode == 2 and "is the input file" in error_line(r)
    assert open(clean_set, encoding="utf-8").read() == before
    out = tmp_path / "s.json"
    out.write_text("{}")
    r = cli("stats", "--data", clean_set, "--json", str(out))
    assert r.returncode == 2 and "already exists" in error_line(r)
    r = cli("stats", "--data", clean_set, "--json", str(out), "--overwrite")
    assert r.returncode == 0 and json.loads(out.read_text())["rows"] == 12


# ---- show --------------------------------------------------------------------------------------
def test_show_writes_model_input_sheet(tmp_path, clean_set):
    out = tmp_path / "sheet.png"
    r = cli("show", "--data", clean_set, "--format", "br", "--out", str(out), "--count", "5", "--cols", "5",
            "--scale", "1")
    assert r.returncode == 0, r.stderr
    plain = cv2.imread(str(out))
    assert plain is not None and plain.shape[1] == 5 * (94 + 8)  # 5 cells of the 24x94 input + padding
    r = cli("show", "--data", clean_set, "--format", "br", "--out", str(out), "--count", "5")
    assert r.returncode == 2 and "already exists" in error_line(r) and "--overwrite" in error_line(r)
    r = cli("show", "--data", clean_set, "--format", "br", "--out", str(out), "--count", "5", "--cols", "5",
            "--scale", "1", "--augment", "full", "--pick", "random", "--seed", "2", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert "augment full" in r.stdout
    aug = cv2.imread(str(out))
    assert aug.shape[1] == 6 * (94 + 8) and aug.shape[0] == 2 * plain.shape[0]  # plain + augmented pairs
    r = cli("show", "--data", clean_set, "--format", "br", "--out", str(tmp_path / "sheet.jpg"))
    assert r.returncode == 2 and ".png" in error_line(r)
