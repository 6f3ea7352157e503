import numpy as np
import pytest

from lprnet_tf.decoding import beam_search, decode, greedy_ids, log_softmax
from lprnet_tf.metrics import edit_distance, plate_metrics, psnr
from lprnet_tf.vocab import plate_format_from_dict

FMT = plate_format_from_dict({"name": "t", "alphabet": "AB12", "max_length": 4, "height": 24, "width": 94,
                              "templates": ["^[AB][12]$"]})


def onehot_logits(path, c=5, hi=8.0):
    x = np.zeros((len(path), c), np.float32)
    for t, k in enumerate(path):
        x[t, k] = hi
    return x


def test_greedy_collapses_repeats_and_blanks():
    # A A blank A B B -> "AAB"  (A=1, B=2)
    logits = onehot_logits([1, 1, 0, 1, 2, 2])[None]
    ids, conf = greedy_ids(logits)
    assert ids == [[1, 1, 2]]
    texts, _ = decode(logits, FMT, "greedy")
    assert texts == ["AAB"] and 0.9 < conf[0] <= 1.0


def test_beam_agrees_with_greedy_on_peaked_input():
    logits = onehot_logits([3, 0, 4, 4])[None]
    assert decode(logits, FMT, "beam")[0] == decode(logits, FMT, "greedy")[0] == ["12"]


def test_beam_sums_paths():
    """Greedy picks the single best path; beam finds the most probable label (sum over paths)."""
    p = np.array([[0.4, 0.35, 0.25, 0, 0], [0.4, 0.35, 0.25, 0, 0]], np.float32) + 1e-6
    logits = np.log(p)[None]
    assert decode(logits, FMT, "greedy")[0] == [""]
    best = beam_search(log_softmax(logits[0]))[0][0]
    # P("A") = 0.35*0.35 + 2*0.4*0.35 = 0.4025 > P("") = 0.16
    assert FMT.decode(best) == "A"
    assert decode(logits, FMT, "beam")[0] == ["A"]


def test_template_filter_picks_first_matching_beam():
    # most probable "A" (no template match); next best "A1" matches ^[AB][12]$
    p = np.array([[0.05, 0.9, 0.01, 0.02, 0.02], [0.5, 0.02, 0.01, 0.45, 0.02]], np.float32)
    logits = np.log(p)[None]
    assert decode(logits, FMT, "beam")[0] == ["A"]
    assert decode(logits, FMT, "template")[0] == ["A1"]


def test_decode_rejects_wrong_class_count():
    with pytest.raises(ValueError, match="expected logits"):
        decode(np.zeros((1, 4, 9)), FMT)
    with pytest.raises(ValueError, match="unknown decoder"):
        decode(np.zeros((1, 4, 5)), FMT, "viterbi")


def test_metrics():
    m = plate_metrics(["皖A12345", "皖B11111", "AB"], ["皖A12345", "苏B11111", "ABC"])
    assert m["count"] == 3
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["acc1"] == pytest.approx(1.0)
    assert m["accuracy_no_first"] == pytest.approx(2 / 3)
    assert m["length_accuracy"] == pytest.approx(2 / 3)
    assert m["char_accuracy"] == pytest.approx(1 - 2 / 16)
    assert m["per_position_accuracy"][0] == pytest.approx(2 / 3)
    assert m["correct_chars_histogram"]["7"] == 1 and m["correct_chars_histogram"]["6"] == 1


def test_metrics_merges():
    assert plate_metrics(["D0N0R"], ["DONOR"])["accuracy"] == 0.0
    m = plate_metrics(["D0N0R"], ["DONOR"], merges=["O0"])
    assert m["accuracy"] == 1.0 and m["merges"] == ["O0"]


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "ab") == 2


def test_vote_over_views():
    from lprnet_tf.decoding import vote

    readings = [(["A1", "B2", "C3"], np.array([0.9, 0.5, 0.2])),
                (["A1", "B9", "C4"], np.array([0.8, 0.9, 0.3])),
                (["A7", "B9", "C3"], np.array([0.3, 0.1, 0.1])),
                (["A1", "B2", "C4"], np.array([0.6, 0.2, 0.3]))]
    texts, conf = vote(readings)
    # A1: 3 votes; B2 vs B9: 2 each, B9 holds more confidence (1.0 vs 0.7); C3 vs C4: 2 each, C4 more (0.6 vs 0.3)
    assert texts == ["A1", "B9", "C4"]
    np.testing.assert_allclose(conf, [(0.9 + 0.8 + 0.6) / 4, 1.0 / 4, 0.6 / 4], rtol=1e-6)
    # a full tie (votes and confidence) goes to the earlier view
    assert vote([(["X"], np.array([0.5])), (["Y"], np.array([0.5]))])[0] == ["X"]
    one = (["P1", "P2"], np.array([0.4, 0.6]))
    t, c = vote([one])
    assert t == ["P1", "P2"] and c.dtype == np.float32 and np.allclose(c, [0.4, 0.6])
    with pytest.raises(ValueError, match="same 2 crops"):
        vote([one, (["P1"], np.array([0.1]))])
    with pytest.raises(ValueError, match="at least one"):
        vote([])


def test_decode_views_is_decode_then_vote():
    from lprnet_tf.decoding import decode_views, vote
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("br")
    rng = np.random.default_rng(0)
    views = [rng.normal(size=(4, 18, fmt.num_classes)).astype(np.float32) for _ in range(3)]
    t, c = decode_views(views, fmt, "greedy")
    want = vote([decode(v, fmt, "greedy") for v in views])
    assert t == want[0] and np.allclose(c, want[1])
    t1, c1 = decode_views(views[0], fmt, "beam")  # one array: plain decode
    assert t1 == decode(views[0], fmt, "beam")[0] and np.allclose(c1, decode(views[0], fmt, "beam")[1])


def test_psnr_of_mse():
    """PSNR of images in [0, 1]: 10 log10(1 / MSE) per image; an exact copy (MSE 0) reads 100 dB."""
    assert np.allclose(psnr([1e-2, 1e-3, 0.0, 1.0]), [20.0, 30.0, 100.0, 0.0])
