import numpy as np
import pytest

from lprnet_tf.decoding import beam_search, decode, greedy_ids, log_softmax
from lprnet_tf.metrics import confidence_operating_points, edit_distance, plate_metrics, psnr
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


def test_confidence_operating_points():
    truths = ["AB1", "CD2", "EF3", "GH4", "O0"]
    preds = ["AB1", "CD7", "EF3", "GH", "00"]  # wrong: CD7 (0.95), GH (0.2); 00 is right only with O=0
    conf = [0.9, 0.95, 0.4, 0.2, 0.6]
    pts = confidence_operating_points(truths, preds, conf, thresholds=(0.0, 0.5, 0.92, 0.99))
    assert [p["accepted"] for p in pts] == [5, 3, 1, 0]
    assert pts[0]["coverage"] == 1.0 and pts[0]["accuracy_accepted"] == pytest.approx(2 / 5)
    assert (pts[1]["errors_accepted"], pts[1]["errors_rejected"], pts[1]["correct_rejected"]) == (2, 1, 1)
    assert pts[2]["accuracy_accepted"] == 0.0 and pts[2]["errors_accepted"] == 1  # a confident misread stays
    assert pts[3]["accuracy_accepted"] is None and pts[3]["errors_rejected"] == 3 and pts[3]["correct_rejected"] == 2
    merged = confidence_operating_points(truths, preds, conf, merges=["O0"], thresholds=(0.5,))[0]
    assert merged["accuracy_accepted"] == pytest.approx(2 / 3) and merged["errors_accepted"] == 1
    with pytest.raises(ValueError, match="confidences"):
        confidence_operating_points(truths, preds, conf[:2])


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


# ---- local prior (LocalPrior: re-ranking the beams for a site's share of local plates) ----------------------
CN3 = plate_format_from_dict({"name": "p", "alphabet": "皖桂京A1", "max_length": 3, "height": 24, "width": 94,
                              "templates": ["^[皖桂京]A1$"]})


def province_logits(p_province: dict) -> np.ndarray:
    """(1, 6, 6) logits reading "?A1": the first step spread over the provinces as ``p_province``, blanks between."""
    eps = 1e-4
    rows = []
    first = np.full(6, eps)
    for ch, p in p_province.items():
        first[1 + CN3.alphabet.index(ch)] = p
    rows.append(first)
    for k in (0, 4, 0, 5, 0):  # blank, A, blank, 1, blank
        r = np.full(6, eps)
        r[k] = 1.0
        rows.append(r)
    return np.log(np.stack(rows) / np.stack(rows).sum(1, keepdims=True))[None].astype(np.float32)


def test_local_prior_flips_a_near_tie_but_not_a_confident_read():
    from lprnet_tf.decoding import LocalPrior

    prior = LocalPrior("皖", 0.5, 0.07)
    near = province_logits({"桂": 0.55, "皖": 0.40, "京": 0.05})
    sure = province_logits({"桂": 0.97, "皖": 0.02, "京": 0.01})
    assert decode(near, CN3, "template")[0] == ["桂A1"]
    texts, conf = decode(near, CN3, "template", prior=prior)
    assert texts == ["皖A1"]
    # confidence: the re-ranked beam mass; 皖 gets x (0.5/0.07), every other beam x (0.5/0.93)
    w_in, w_out = 0.5 / 0.07, 0.5 / 0.93
    want = 0.40 * w_in / (0.40 * w_in + 0.60 * w_out)
    assert abs(conf[0] - want) < 2e-3
    assert decode(sure, CN3, "template", prior=prior)[0] == ["桂A1"]
    assert decode(sure, CN3, "beam", prior=LocalPrior("皖", 0.99, 0.07))[0] == ["皖A1"]
    # the prior is part of the search: even a one-beam search keeps the local reading
    assert decode(near, CN3, "beam", beam_width=1)[0] == ["桂A1"]
    assert decode(near, CN3, "beam", beam_width=1, prior=prior)[0] == ["皖A1"]
    # a prior for another province pulls the other way
    assert decode(near, CN3, "template", prior=LocalPrior("京", 0.95, 0.05))[0] == ["京A1"]
    assert prior.bonus("皖A1") == pytest.approx(np.log(0.5 / 0.07))
    assert prior.bonus("桂A1") == pytest.approx(np.log(0.5 / 0.93))


def test_local_prior_errors():
    from lprnet_tf.decoding import LocalPrior, PriorError, local_prior

    logits = province_logits({"桂": 0.55, "皖": 0.45})
    prior = LocalPrior("皖", 0.5, 0.07)
    with pytest.raises(PriorError, match="beam or template"):
        decode(logits, CN3, "greedy", prior=prior)
    with pytest.raises(PriorError, match="beam or template"):
        decode(logits, CN3, "greedy", kind="slot", prior=prior)
    for bad in ({"share": 0.0}, {"share": 1.0}, {"share": -2}, {"base": 1.0}, {"base": float("nan")}):
        with pytest.raises(PriorError, match="strictly between 0 and 1"):
            LocalPrior(**{"prefix": "皖", "share": 0.5, "base": 0.1, **bad})
    with pytest.raises(PriorError, match="prefix is empty"):
        LocalPrior("", 0.5, 0.1)
    with pytest.raises(PriorError, match=r"\['沪'\] of prefix '沪' not in the alphabet of plate format 'p'"):
        local_prior(CN3, "沪", 0.5, 0.1)
    # no synthetic generator: the base share must be given (or come from a sidecar's first_char_shares)
    with pytest.raises(PriorError, match="no 'synth:' section.*--local_base"):
        local_prior(CN3, "皖", 0.5)
    assert local_prior(CN3, "皖", 0.6, 0.2) == LocalPrior("皖", 0.6, 0.2)
    assert local_prior(CN3, "皖", 0.6, shares={"皖": 0.25, "桂": 0.75}).base == 0.25
    with pytest.raises(PriorError, match="never starts a plate"):
        local_prior(CN3, "京", 0.6, shares={"皖": 0.25, "桂": 0.75})


def test_training_share_is_the_generator_s_share():
    from lprnet_tf.decoding import BASE_DRAWS, first_char_shares, local_prior, training_share
    from lprnet_tf.vocab import load_plate_format

    cn = load_plate_format("cn")
    shares = first_char_shares(cn)
    assert abs(sum(shares.values()) - 1.0) < 1e-3 and set(shares) <= set(cn.alphabet)
    assert training_share(cn, "皖") == shares["皖"]
    # the cn generator's province weights: 皖 9 of 123.5 (0.073) on the plates that draw a province
    assert 0.055 < shares["皖"] < 0.08
    assert training_share(cn, "皖A") < shares["皖"]
    assert local_prior(cn, "皖").base == shares["皖"] and local_prior(cn, "皖").share == 0.5
    with pytest.raises(ValueError, match=f"0 of {BASE_DRAWS}"):
        local_prior(cn, "Z")  # in the alphabet, never first


def test_local_prior_in_the_search_scores_as_rescoring_the_beams():
    """With a beam wide enough to keep every candidate, the prior inside the search gives each reading the log
    probability of the plain search plus ``bonus(text)``, for one- and two-character prefixes."""
    from lprnet_tf.decoding import LocalPrior

    rng = np.random.default_rng(0)
    logp = log_softmax(rng.normal(0, 1.5, (4, 6)).astype(np.float32))  # <= 781 readings: the beam keeps all
    plain = dict(beam_search(logp, beam_width=2000, prune=-1e9))
    for prefix in ("皖", "皖A"):
        prior = LocalPrior(prefix, 0.6, 0.1)
        with_prior = beam_search(logp, beam_width=2000, prune=-1e9, bonus=lambda ids: prior.bonus(CN3.decode(ids)),
                                 bonus_at=len(prefix))
        assert len(with_prior) == len(plain)
        for ids, lp in with_prior:
            assert lp == pytest.approx(plain[ids] + prior.bonus(CN3.decode(ids)), abs=1e-6)
    near = province_logits({"桂": 0.55, "皖": 0.40, "京": 0.05})
    assert decode(near, CN3, "template", prior=LocalPrior("皖A", 0.5, 0.07))[0] == ["皖A1"]
