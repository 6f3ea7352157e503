"""data.mix (issue 5): several training sources in one pipeline, drawn from in fixed proportions decided by
(seed, sample index) only: real crops plus synthetic plates of styles the real set lacks."""

import json
import os

import numpy as np
import pytest

from conftest import REPO
from lprnet_tf.config import ConfigError, config_from_dict
from lprnet_tf.data.pipeline import ArraySource, ExampleMaker, MixedSource, SynthSource, open_train_source
from lprnet_tf.data.readers import DataError


def _arrays(n, value, prefix):
    return ArraySource([np.full((20, 60, 3), value, np.uint8) for _ in range(n)], [f"{prefix}{i:04d}" for i in range(n)])


def test_mixed_source_proportions_determinism_and_coverage(br):
    real = ArraySource([np.full((20, 60, 3), 10, np.uint8)] * 5, ["ABC1234", "XYZ9876", "BRA2E19", "QWE1A23", "JKL0000"])
    synth = SynthSource(br, 5)
    mixed = MixedSource([real, synth], [0.7, 0.3], seed=3)
    n = 4000
    picks = [mixed.locate(i) for i in range(n)]
    share = sum(p is synth for p, _ in picks) / n
    assert abs(share - 0.3) < 0.03, share
    # synthetic samples are the stream's own index (each used once); real ones cover the whole set
    assert all(j == i for i, (p, j) in enumerate(picks) if p is synth)
    assert {j for p, j in picks if p is real} == set(range(5))
    # a function of (seed, i) only: a fresh object gives the same samples, another seed other ones
    again = MixedSource([real, synth], [0.7, 0.3], seed=3)
    assert [again.locate(i)[1] for i in range(200)] == [j for _, j in picks[:200]]
    other = MixedSource([real, synth], [0.7, 0.3], seed=4)
    assert [other.locate(i)[0] is synth for i in range(200)] != [p is synth for p, _ in picks[:200]]
    assert mixed.get(7)[1] == picks[7][0].get(picks[7][1])[1]
    with pytest.raises(DataError, match="unbounded"):
        mixed.texts()


def test_mixed_batches_are_the_same_across_batch_splits_and_shuffle_is_not_a_permutation(br):
    mixed = MixedSource([_arrays(7, 50, "AAA"), SynthSource(br, 1)], [0.5, 0.5], seed=0)
    maker = ExampleMaker(mixed, br, augment="light", seed=2, shuffle=True)  # must not build a 2**40 permutation
    x, y = maker.batch(10, 6)
    x2, y2 = maker.batch(10, 6)
    assert x.shape == (6, br.height, br.width, 3) and np.array_equal(x, x2) and np.array_equal(y, y2)
    # the labels of sample g do not depend on how the stream is cut into batches
    _, ya = maker.batch(10, 3)
    _, yb = maker.batch(13, 3)
    assert np.array_equal(np.concatenate([ya, yb]), y)


def test_mixed_source_errors(br):
    with pytest.raises(ValueError, match="weights must be > 0"):
        MixedSource([_arrays(2, 1, "A"), _arrays(2, 2, "B")], [1.0, 0.0])
    with pytest.raises(DataError, match="no samples"):
        MixedSource([_arrays(2, 1, "A"), ArraySource([], [])], [0.5, 0.5])


def test_open_train_source_and_permute_within_parts(tiny_csv, br):
    from lprnet_tf.data.permute import permuted_sample

    plain = open_train_source(str(tiny_csv), br, split="train")
    assert len(plain) == 4 and not isinstance(plain, MixedSource)
    mixed = open_train_source(str(tiny_csv), br, split="train", seed=1,
                              mix=[{"source": "synth:5", "weight": 0.25}, {"source": str(tiny_csv), "split": "val",
                                                                           "weight": 0.25}])
    assert isinstance(mixed, MixedSource) and [len(p) for p in mixed.parts][::2] == [4, 2]
    assert np.allclose(np.diff(np.concatenate([[0.0], mixed.cum])), [0.5, 0.25, 0.25])
    texts = {mixed.get(i)[1] for i in range(200)}
    assert {"ABC1234", "JKL0000"} <= texts  # a train row and a val row (the mixed-in split)
    # a character permutation of a mixed sample is made from the part it comes from
    i = next(i for i in range(100) if isinstance(mixed.locate(i)[0], SynthSource))
    image, text = permuted_sample(mixed, i, br, np.random.default_rng(0))
    assert image.ndim == 3 and sorted(text) == sorted(mixed.get(i)[1])
    with pytest.raises(DataError, match="tracklet"):
        open_train_source("synth:0:4", br, frames=2, mix=[{"source": "synth:1", "weight": 0.5}])


def test_mix_config_checks_and_training(tmp_path, tiny_csv):
    from lprnet_tf.training import train

    base = {"name": "t", "plate_format": "br", "model": {"name": "lprnet_reduced"},
            "data": {"train": str(tiny_csv), "train_split": "train", "val": str(tiny_csv), "val_split": "val",
                     "mix": [{"source": "synth:5", "weight": 0.5}], "augment": "light"},
            "train": {"batch_size": 4, "steps": 2, "eval_every": 2, "gradient_noise": 0.0}}
    cfg = config_from_dict(base)
    assert cfg.data.mix == [{"source": "synth:5", "weight": 0.5}]
    bad = [("data.mix=[{source: 'synth:5', weight: 1.0}]", "in \\(0, 1\\)"),
           ("data.mix=[{source: 'synth:5', weight: 0.6}, {source: 'synth:6', weight: 0.4}]", "sum to 1"),
           ("data.mix=[{weight: 0.5}]", "source: a data spec"),
           ("data.mix=[{source: 'synth:5', weight: 0.5, wieght: 1}]", "unknown key"),
           ("data.mix=['synth:5']", "expected a mapping"),
           ("data.mix=[{source: 'synth:5', weight: true}]", "in \\(0, 1\\)")]
    for override, message in bad:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(base, [override])
    with pytest.raises(ConfigError, match="data.mix mixes single crops"):
        config_from_dict({**base, "model": {"name": "iq_stan"}, "data": {**base["data"], "frames": 2}})
    state = train(cfg, str(tmp_path / "run"), verbose=False)
    assert state["step"] == 2
    with open(os.path.join(tmp_path / "run", "metrics.jsonl"), encoding="utf-8") as f:
        assert np.isfinite(json.loads(f.readlines()[-1])["loss"])


WARP = os.path.join(REPO, "configs", "variants", "cn_province_warp.yaml")


def test_mixed_source_with_its_own_plate_format_variant(cn):
    """data.mix[].plate_format: plain and warped CN plates in one run; each part renders with its own format."""
    from lprnet_tf.vocab import layout_differences, load_plate_format

    warp = load_plate_format(WARP)
    assert layout_differences(warp, cn) == []
    mixed = open_train_source("synth:3", cn, seed=0, mix=[{"source": "synth:4", "weight": 0.5, "plate_format": WARP}])
    plain_part, warp_part = mixed.parts
    assert plain_part.fmt is cn and warp_part.fmt.name == warp.name and warp_part.fmt.synth != cn.synth
    i = next(i for i in range(50) if mixed.locate(i)[0] is warp_part)
    image, text = mixed.get(i)
    ref_image, ref_text = SynthSource(warp, 4).get(i)
    assert text == ref_text and np.array_equal(image, ref_image)
    assert not np.array_equal(image, SynthSource(cn, 4).get(i)[0])  # the warp draws the ideograph otherwise
    x, y = ExampleMaker(mixed, cn, augment="none", seed=0).batch(i, 1)  # encoded with the run's format
    assert x.shape == (1, cn.height, cn.width, 3) and y.shape[0] == 1


def test_mix_plate_format_must_keep_the_layout(tmp_path, cn):
    from lprnet_tf.vocab import layout_differences, load_plate_format

    other = tmp_path / "cn_wide.yaml"
    other.write_text("base: cn\nwidth: 128\n", encoding="utf-8")
    assert layout_differences(load_plate_format(str(other)), cn) == ["width"]
    with pytest.raises(DataError, match="differs from the run's format 'cn' in width"):
        open_train_source("synth:3", cn, mix=[{"source": "synth:4", "weight": 0.5, "plate_format": str(other)}])
    with pytest.raises(DataError, match="plate_format: unknown plate format 'nope'"):
        open_train_source("synth:3", cn, mix=[{"source": "synth:4", "weight": 0.5, "plate_format": "nope"}])
    base = {"name": "t", "plate_format": "cn", "model": {"name": "lprnet_reduced"},
            "data": {"train": "synth:3", "mix": [{"source": "synth:4", "weight": 0.5, "plate_format": WARP}]}}
    assert config_from_dict(base).data.mix[0]["plate_format"] == WARP
    with pytest.raises(ConfigError, match=r"^[^:]*: plate_format: unknown plate format 'zz'"):  # named as the run's
        config_from_dict({**base, "plate_format": "zz"})
    for value, message in [(str(other), "in width"), ("nope", "unknown plate format"), (3, "a format name or YAML")]:
        with pytest.raises(ConfigError, match=r"data.mix\[0\].plate_format: .*" + message):
            entry = {**base["data"]["mix"][0], "plate_format": value}
            config_from_dict({**base, "data": {**base["data"], "mix": [entry]}})
