"""The PyDataset path (used on backends without TensorFlow, e.g. JAX on a GPU box) yields exactly the
batches of the tf.data path."""

import numpy as np
import pytest

from lprnet_tf.data.pipeline import SynthSource, build_dataset, make_batch_sequence


def test_pydataset_matches_tf_data(cn):
    src = SynthSource(cn, seed=3)
    seq = make_batch_sequence(src, cn, batch_size=4, steps=3, augment="full", shuffle=True, seed=3, start=8)
    ds = build_dataset(src, cn, batch_size=4, augment="full", shuffle=True, seed=3, start=8, repeat=True,
                       drop_remainder=True)
    assert len(seq) == 3
    for b, (x, y) in zip(range(3), ds):
        sx, sy = seq[b]
        np.testing.assert_array_equal(sy, y.numpy())
        np.testing.assert_allclose(sx, x.numpy())
    assert sx.shape == (4, cn.height, cn.width, 3) and sx.dtype == np.float32
    assert 0.0 <= sx.min() and sx.max() <= 1.0


def test_pydataset_processes_match_threads(cn):
    src = SynthSource(cn, seed=3)
    kw = dict(batch_size=4, steps=3, augment="full", shuffle=True, seed=3, start=8)
    seq = make_batch_sequence(src, cn, workers=1, **kw)
    got = list(make_batch_sequence(src, cn, processes=2, **kw))
    assert len(got) == 3
    for b, (x, y) in enumerate(got):
        sx, sy = seq[b]
        np.testing.assert_array_equal(x, sx)
        np.testing.assert_array_equal(y, sy)


def test_pydataset_negative_processes_rejected(cn):
    with pytest.raises(ValueError, match="processes"):
        make_batch_sequence(SynthSource(cn, seed=3), cn, batch_size=4, steps=1, processes=-1)
