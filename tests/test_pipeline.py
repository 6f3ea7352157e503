"""The input pipeline: batches depend only on (seed, start), in threads or in worker processes."""

import gc
import multiprocessing
import pickle

import numpy as np
import pytest

from lprnet_tf.data.pipeline import (ExampleMaker, FileSource, SampleOptions, SynthSource, build_dataset,
                                     process_batches)
from lprnet_tf.data.readers import DataError, Sample, read_samples


def batches(source, fmt, count, **kw):
    """The first ``count`` batches (x, y) of ``build_dataset(source, fmt, **kw)`` as numpy."""
    return list(build_dataset(source, fmt, **kw).take(count).as_numpy_iterator())


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.fixture
def file_source(cn, tmp_path):
    """20 pre-rendered synthetic CN plates on disk."""
    from lprnet_tf.synth.generate import write_synthetic_set

    write_synthetic_set(cn, str(tmp_path / "set"), 20, seed=1, progress=False)
    return FileSource(read_samples(str(tmp_path / "set"), cn, verify_images=False)[0])


def test_example_maker_pickles(cn):
    maker = ExampleMaker(SynthSource(cn, 5, 16), cn, "full", seed=3, shuffle=True)
    maker.batch(0, 2)  # builds the per-thread augmenter, which must not be pickled
    clone = pickle.loads(pickle.dumps(maker))
    for a, b in zip(maker.batch(4, 3), clone.batch(4, 3)):
        np.testing.assert_array_equal(a, b)


def test_workers_match_threads_synthetic(cn):
    kw = dict(batch_size=8, augment="full", shuffle=True, seed=3, start=12, repeat=True, drop_remainder=True)
    src = SynthSource(cn, 5, 40)
    assert_same(batches(src, cn, 4, workers=2, **kw), batches(src, cn, 4, **kw))
    gc.collect()
    assert multiprocessing.active_children() == []  # the iterator is gone, and its workers with it


def test_workers_match_threads_files(cn, file_source):
    # start 12, 4 batches of 8 over 20 samples: three shuffled passes
    kw = dict(batch_size=8, augment="full", shuffle=True, seed=3, start=12, repeat=True, drop_remainder=True)
    assert_same(batches(file_source, cn, 4, workers=2, **kw), batches(file_source, cn, 4, **kw))


def test_threads_depend_only_on_seed_and_start(cn, file_source):
    kw = dict(batch_size=16, augment="full", shuffle=True, seed=7, repeat=True, drop_remainder=True)
    assert_same(batches(file_source, cn, 2, start=64, **kw), batches(file_source, cn, 6, start=0, **kw)[4:])


def test_worker_error_surfaces(cn, tmp_path):
    bad = tmp_path / "corrupt_plate.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    src = FileSource([Sample(path=str(bad), text="皖A12345")])
    maker = ExampleMaker(src, cn)
    with pytest.raises(DataError, match="corrupt_plate.jpg: not a decodable image"):
        next(process_batches(pickle.dumps(maker), iter([(0, 1)]), workers=1))
    # Through tf.data the same message arrives wrapped in a TensorFlow error, as in the thread path.
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match="DataError: .*corrupt_plate.jpg: not a decodable"):
        batches(src, cn, 1, batch_size=1, workers=2)


def test_config_workers():
    from lprnet_tf.config import ConfigError, config_from_dict

    assert config_from_dict({}).data.workers == 0
    assert config_from_dict({"data": {"workers": 2}}).data.workers == 2
    with pytest.raises(ConfigError, match="data.workers must be >= 0"):
        config_from_dict({"data": {"workers": -1}})


def test_loosen_extends_the_crop_and_keeps_it_inside():
    from lprnet_tf.data.augment import LOOSE_P, loosen

    crop = np.random.default_rng(0).integers(0, 256, (24, 94, 3), dtype=np.uint8)
    assert loosen(crop, 0.0, np.random.default_rng(1)) is crop  # off: the crop itself
    outs = [loosen(crop, 0.4, np.random.default_rng(s)) for s in range(200)]
    looser = [o for o in outs if o is not crop]
    assert abs(len(looser) / len(outs) - LOOSE_P) < 0.12  # about half the crops
    for out in looser:
        h, w = out.shape[:2]
        assert out.dtype == np.uint8 and 24 <= h <= 24 + 2 * round(0.4 * 24) and 94 <= w <= 94 + 2 * round(0.4 * 24)
        # the crop sits unchanged somewhere inside the looser one (borders only added)
        hits = [(t, left) for t in range(h - 23) for left in range(w - 93)
                if np.array_equal(out[t:t + 24, left:left + 94], crop)]
        assert hits
    assert max(o.shape[0] for o in looser) > 24 + 0.4 * 24  # the margins reach well beyond a few pixels
    np.testing.assert_array_equal(loosen(crop, 0.4, np.random.default_rng(5)), outs[5])  # only the rng decides


def test_loose_crops_in_the_pipeline(cn, file_source):
    plain = ExampleMaker(file_source, cn, "light", seed=3, shuffle=True)
    off = ExampleMaker(file_source, cn, "light", seed=3, shuffle=True, options=SampleOptions(loose_crops=0.0))
    loose = ExampleMaker(file_source, cn, "light", seed=3, shuffle=True, options=SampleOptions(loose_crops=0.4))
    np.testing.assert_array_equal(plain.batch(0, 8)[0], off.batch(0, 8)[0])  # 0: every existing recipe unchanged
    xp, yp = ExampleMaker(file_source, cn, "none", seed=3).batch(0, 20)
    xl, yl = ExampleMaker(file_source, cn, "none", seed=3, options=SampleOptions(loose_crops=0.4)).batch(0, 20)
    assert xl.shape == xp.shape and np.array_equal(yl, yp)  # the model's size; labels untouched
    changed = [not np.array_equal(a, b) for a, b in zip(xl, xp)]
    assert 3 <= sum(changed) <= 17  # some crops, not all
    loose_only = ExampleMaker(file_source, cn, "none", seed=3, shuffle=True, options=SampleOptions(loose_crops=0.4))
    np.testing.assert_array_equal(loose_only.batch(4, 3)[0], loose_only.batch(0, 8)[0][4:7])  # (seed, index) only
    assert not np.array_equal(loose.batch(0, 8)[0], plain.batch(0, 8)[0])
    # build_dataset passes it on
    ds = batches(file_source, cn, 1, batch_size=20, seed=3, options=SampleOptions(loose_crops=0.4))
    np.testing.assert_array_equal(ds[0][0], xl)


def test_loose_crops_bad_values(cn, file_source):
    from lprnet_tf.config import ConfigError, config_from_dict

    assert config_from_dict({}).data.loose_crops == 0.0
    assert config_from_dict({"data": {"loose_crops": 0.4}}).data.loose_crops == 0.4
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match=r"data.loose_crops is a margin per side in crop heights, in \[0, 1\]"):
            config_from_dict({"data": {"loose_crops": bad}})
    with pytest.raises(DataError, match="data.loose_crops .* does not combine with data.pairs"):
        ExampleMaker(file_source, cn, options=SampleOptions(pairs="hr_to_lr", loose_crops=0.3))


def test_sample_options_from_config():
    """Every per-sample option is a DataConfig field of the same name and from_config carries it over, so a new
    option cannot be dropped on its way from the config to the ExampleMaker; pairs come from the model's kind."""
    import dataclasses

    from lprnet_tf.config import DataConfig, config_from_dict

    fields = [f.name for f in dataclasses.fields(SampleOptions)]
    data_fields = {f.name for f in dataclasses.fields(DataConfig)}
    assert set(fields) - {"pairs"} <= data_fields
    changed = {"permute": 0.3, "lr_heights": [10, 14], "lowres": 0.25, "degrader": "area",
               "super_resolve": "some_mtgan", "loose_crops": 0.2}
    assert set(changed) == set(fields) - {"pairs"}  # a new field needs a value here too
    opts = SampleOptions.from_config(config_from_dict({"data": changed}).data, pairs="lr_to_hr")
    assert opts == SampleOptions(pairs="lr_to_hr", **changed)
    assert opts.lr_heights == (10, 14) and opts.single_crop == ["data.loose_crops", "data.lowres",
                                                                  "data.super_resolve"]
    assert SampleOptions.from_config(DataConfig()) == SampleOptions(lr_heights=DataConfig().lr_heights)
    assert SampleOptions().single_crop == []


def test_sample_options_bad_values(cn, file_source):
    for kw, msg in (({"pairs": "sideways"}, "pairs must be one of"), ({"permute": 1.5}, r"permute is a probability"),
                    ({"lowres": -0.1}, r"lowres is a probability"), ({"loose_crops": -1}, "loose_crops is a margin")):
        with pytest.raises(ValueError, match=msg):
            SampleOptions(**kw)
    with pytest.raises(TypeError, match="options must be a SampleOptions"):
        ExampleMaker(file_source, cn, options={"loose_crops": 0.4})
