"""Issue 8 items 3-4: the DGM and the MTGAN train through lprnet-train's train() like every model: (HR, LR)
pairs from the one pipeline (data.pairs: lowres), their own losses/optimizers, validation lines in
metrics.jsonl, best/last checkpoints, resume at the same step (both MTGAN optimizers), loading the result."""

import json
import os

import cv2
import keras
import numpy as np
import pytest

from conftest import REPO
from lprnet_tf.config import ConfigError, config_from_dict, load_config
from lprnet_tf.data.lowres import PairedSource
from lprnet_tf.data.pipeline import ExampleMaker, SampleOptions, SynthSource, build_dataset, flat_signature
from lprnet_tf.models import model_kind
from lprnet_tf.vocab import load_plate_format

CN40 = os.path.join(REPO, "configs", "variants", "cn_120x40.yaml")
MTGAN_TINY = {"residual_blocks": 1, "gen_filters": 8, "disc_convs": 4, "disc_fc_units": 16}


def _detail(images) -> float:
    """Mean absolute horizontal gradient: how much fine detail a batch of images holds."""
    return float(np.abs(np.diff(np.asarray(images, np.float32), axis=2)).mean())


def _check_signature(maker, x, y):
    flat = [x, *(y if isinstance(y, tuple) else (y,))]
    for a, (shape, dtype) in zip(flat, flat_signature(maker.signature())):
        assert a.dtype == np.dtype(dtype) and a.shape[1:] == tuple(shape[1:])


# ---- the pipeline's pair modes ---------------------------------------------------------------------------
def test_dgm_pairs_shapes_determinism_and_lower_resolution():
    cn40 = load_plate_format(CN40)
    src = SynthSource(cn40, 11, 6)
    maker = ExampleMaker(src, cn40, seed=3, options=SampleOptions(pairs="hr_to_lr", lr_heights=[8]))
    x, y = maker.batch(0, 4)  # x = HR crops, y = their 8-pixel-high versions brought back to H x W
    assert x.shape == y.shape == (4, 40, 120, 3) and x.dtype == y.dtype == np.float32
    assert 0 <= y.min() and y.max() <= 1
    _check_signature(maker, x, y)
    assert _detail(y) < 0.6 * _detail(x)  # the LR target really lost the fine detail
    plain, _ = ExampleMaker(src, cn40).batch(0, 4)
    np.testing.assert_array_equal(x, plain)  # the HR input is exactly what a recognizer reads
    # sample g depends only on (seed, g): another maker, another batch split, the same arrays
    x2, y2 = ExampleMaker(src, cn40, seed=3, options=SampleOptions(pairs="hr_to_lr", lr_heights=[8])).batch(1, 3)
    np.testing.assert_array_equal(x2, x[1:])
    np.testing.assert_array_equal(y2, y[1:])
    # the LR crop is lowres.py's rule: PairedSource.pair on the source crop with key = the global index
    image, _ = src.get(2)
    _, lr, height = PairedSource(src, cn40, heights=[8], seed=3).pair(image, 2)
    assert height == 8
    np.testing.assert_array_equal(y[2], lr.astype(np.float32) * np.float32(1.0 / 255.0))
    # augmentation happens before the pairing: both images of a pair show the same augmented crop
    xa, ya = ExampleMaker(src, cn40, augment="light", seed=3,
                          options=SampleOptions(pairs="hr_to_lr", lr_heights=[8])).batch(0, 4)
    assert not np.array_equal(xa, x)
    grey = xa.mean(-1)
    blurred = np.stack([cv2.resize(cv2.resize(g, (31, 8), interpolation=cv2.INTER_AREA), (120, 40),
                                   interpolation=cv2.INTER_LINEAR) for g in grey])
    assert np.abs(ya.mean(-1) - blurred).mean() < 0.5 * np.abs(ya.mean(-1) - x.mean(-1)).mean()


def test_mtgan_pairs_shapes_labels_and_dataset(cn):
    src = SynthSource(cn, 12, 8)
    maker = ExampleMaker(src, cn, seed=1, options=SampleOptions(pairs="lr_to_hr", lr_heights=[8, 12]))
    x, (hr, labels) = maker.batch(0, 4)  # MTGAN.fit's contract: x = LR, y = (HR, labels)
    assert x.shape == (4, 12, 47, 3) and hr.shape == (4, 24, 94, 3) and labels.shape == (4, 8)
    assert labels.dtype == np.int32 and x.dtype == hr.dtype == np.float32
    _check_signature(maker, x, (hr, labels))
    plain_x, plain_y = ExampleMaker(src, cn).batch(0, 4)
    np.testing.assert_array_equal(labels, plain_y)
    np.testing.assert_array_equal(hr, plain_x)
    # LR from crops 8 or 12 pixels high: no more detail than HR area-averaged to the LR size
    paired = PairedSource(src, cn, heights=[8, 12], seed=1)
    assert {paired.lr_height(g) for g in range(4)} <= {8, 12}
    half = np.stack([cv2.resize(h, (47, 12), interpolation=cv2.INTER_AREA) for h in hr])
    assert _detail(x) <= _detail(half) * 1.02
    # tf.data: nested (x, (hr, labels)) batches equal to the maker's
    ds = build_dataset(src, cn, batch_size=4, seed=1, options=SampleOptions(pairs="lr_to_hr", lr_heights=[8, 12]))
    bx, (bhr, blab) = next(iter(ds.take(1).as_numpy_iterator()))
    np.testing.assert_array_equal(bx, x)
    np.testing.assert_array_equal(bhr, hr)
    np.testing.assert_array_equal(blab, labels)


def test_pairs_config_checks():
    base = {"name": "t", "plate_format": "cn", "model": {"name": "mtgan", "options": MTGAN_TINY},
            "data": {"train": "synth:0", "val": "synth:9:4", "pairs": "lowres"}}
    cfg = config_from_dict(base)
    assert cfg.data.pairs == "lowres" and cfg.data.lr_heights == [8, 12, 16]
    with pytest.raises(ConfigError, match="data.pairs: lowres"):
        config_from_dict({**base, "data": {"train": "synth:0"}})
    with pytest.raises(ConfigError, match="data.pairs is for"):
        config_from_dict({**base, "model": {"name": "lprnet_basic"}})
    with pytest.raises(ConfigError, match="lr_heights"):
        config_from_dict(base, ["data.lr_heights=[0, 8]"])
    with pytest.raises(ConfigError, match="data.pairs must be"):
        config_from_dict(base, ["data.pairs=far"])
    with pytest.raises(ConfigError, match="data.frames: 0"):
        config_from_dict(base, ["data.frames=5"])
    for name in ("dgm_cn", "mtgan_cn", "dgm_br", "mtgan_br"):
        for schedule in (None, "paper"):
            cfg = load_config(os.path.join(REPO, "configs", "experiments", f"{name}.yaml"), schedule=schedule)
            assert model_kind(cfg.model.name) in ("image", "gan") and cfg.data.pairs == "lowres"


# ---- training through train() ------------------------------------------------------------------------------
def _records(run):
    with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _cfg(model, fmt, **data):
    return config_from_dict({
        "name": f"tiny_{model['name']}", "plate_format": fmt, "model": model,
        "data": {"train": "synth:0", "val": "synth:99:4", "augment": "light", "pairs": "lowres",
                 "lr_heights": [8, 12], **data},
        "train": {"batch_size": 4, "steps": 2, "eval_every": 1, "gradient_noise": 0.0, "learning_rate": 1e-3},
    })


def test_dgm_trains_resumes_and_loads(tmp_path):
    from lprnet_tf.losses import ImageMSE
    from lprnet_tf.modelio import load_for_inference, load_model
    from lprnet_tf.training import train

    cfg = _cfg({"name": "dgm", "options": {"filters": 8}}, CN40)
    run = str(tmp_path / "run")
    state = train(cfg, run, verbose=False)
    assert state["step"] == 2 and state["best_metric"] == "val_psnr"
    recs = _records(run)
    assert [r["step"] for r in recs] == [1, 2]
    for r in recs:
        assert np.isfinite(r["loss"]) and 0 < r["loss"] < 1
        assert 0 < r["val_mse"] < 1 and r["val_psnr"] > 0
        assert "val_accuracy" not in r
    assert state["best_val_accuracy"] == max(r["val_psnr"] for r in recs)
    state = train(cfg, run, resume=True, steps=3, verbose=False)
    assert state["step"] == 3 and [r["step"] for r in _records(run)] == [1, 2, 3]
    last = load_model(os.path.join(run, "last.keras"), compile=True)
    assert int(keras.ops.convert_to_numpy(last.optimizer.iterations)) == 3 and isinstance(last.loss, ImageMSE)
    model, fmt, path = load_for_inference(run)  # best.keras, checked against the run's plate format
    assert model_kind(model) == "image" and path.endswith("best.keras") and (fmt.height, fmt.width) == (40, 120)
    x = np.random.default_rng(0).random((2, 40, 120, 3)).astype("float32")
    assert model(x).shape == (2, 40, 120, 1)


def test_mtgan_trains_resumes_with_both_optimizers_and_loads(tmp_path, cn):
    from lprnet_tf.modelio import load_for_inference, load_model
    from lprnet_tf.training import train

    cfg = _cfg({"name": "mtgan", "options": MTGAN_TINY}, "cn")
    run = str(tmp_path / "run")
    state = train(cfg, run, verbose=False)
    assert state["step"] == 2 and state["best_metric"] == "val_accuracy"
    recs = _records(run)
    assert [r["step"] for r in recs] == [1, 2]
    for r in recs:
        for k in ("loss", "d_loss", "g_loss", "mse", "l_real", "l_fake", "rec_hr", "rec_sr", "val_mse", "val_psnr"):
            assert np.isfinite(r[k]), k
        assert r["loss"] == r["g_loss"]
        for k in ("val_accuracy", "val_acc1", "val_char_accuracy", "val_accuracy_hr"):
            assert 0 <= r[k] <= 1, k
    # last.keras holds both optimizers: both at step 2, with their Adam moments (not fresh zeros)
    last = load_model(os.path.join(run, "last.keras"), compile=True)
    for opt in (last.optimizer, last.d_optimizer):
        assert int(keras.ops.convert_to_numpy(opt.iterations)) == 2
        assert max(float(np.abs(keras.ops.convert_to_numpy(v)).max()) for v in opt.variables[2:]) > 0
    state = train(cfg, run, resume=True, steps=3, verbose=False)
    assert state["step"] == 3 and [r["step"] for r in _records(run)] == [1, 2, 3]
    last = load_model(os.path.join(run, "last.keras"), compile=True)
    assert [int(keras.ops.convert_to_numpy(o.iterations)) for o in (last.optimizer, last.d_optimizer)] == [3, 3]
    model, fmt, _ = load_for_inference(run)
    assert model_kind(model) == "gan" and fmt.name == "cn"
    lr = np.random.default_rng(1).random((2, 12, 47, 3)).astype("float32")
    assert model(lr).shape == (2, 8, cn.num_classes)
    assert model.super_resolve(lr).shape == (2, 24, 94, 3)


# ---- low-resolution training crops for recognizers (data.lowres / data.degrader) ------------------------------
def _tiny_dgm(path, out_channels=1, height=40, width=120):
    from lprnet_tf.modelio import save_model
    from lprnet_tf.models.dgm import build_dgm

    keras.utils.set_random_seed(0)
    save_model(build_dgm(height, width, filters=4, out_channels=out_channels), str(path))
    return str(path)


def test_degrader_plain_downsampling_is_the_test_set_rule_and_deterministic():
    from lprnet_tf.data.lowres import downscale_to_height
    from lprnet_tf.runtime import fit_crop

    cn40 = load_plate_format(CN40)
    src = SynthSource(cn40, 5, 8)
    plain, labels = ExampleMaker(src, cn40).batch(0, 8)
    for method in ("bicubic", "area"):
        maker = ExampleMaker(src, cn40, seed=2, options=SampleOptions(lowres=1.0, lr_heights=[8], degrader=method))
        x, y = maker.batch(0, 8)
        np.testing.assert_array_equal(y, labels)  # labels untouched
        assert x.shape == plain.shape and x.dtype == np.float32
        assert _detail(x) < 0.6 * _detail(plain)
        for g in (0, 5):  # exactly: the crop downscaled to 8 px with this method, enlarged by the runtime's rule
            crop, _ = src.get(g)
            want = fit_crop(downscale_to_height(crop, 8, method)[0], cn40).astype(np.float32) / np.float32(255.0)
            np.testing.assert_allclose(x[g], want, atol=1e-6)
    # a fraction: the drawn samples only, decided by (seed, g); another batch split gives the same arrays
    maker = ExampleMaker(src, cn40, seed=4, options=SampleOptions(lowres=0.5, lr_heights=[8, 12]))
    drawn = [maker._degrader.height(g) for g in range(8)]
    assert set(drawn) - {0} <= {8, 12} and 0 < sum(h > 0 for h in drawn) < 8
    x, _ = maker.batch(0, 8)
    for g, h in enumerate(drawn):
        same = np.array_equal(x[g], plain[g])
        assert same == (h == 0)
    x2, _ = ExampleMaker(src, cn40, seed=4, options=SampleOptions(lowres=0.5, lr_heights=[8, 12])).batch(3, 5)
    np.testing.assert_array_equal(x2, x[3:])
    with pytest.raises(ValueError, match="downscaling method"):
        downscale_to_height(np.zeros((40, 120, 3), np.uint8), 8, "lanczos")


def test_degrader_dgm_images_in_the_tf_data_pipeline(tmp_path):
    import pickle

    cn40 = load_plate_format(CN40)
    src = SynthSource(cn40, 6, 8)
    dgm = _tiny_dgm(tmp_path / "dgm.keras")
    model = keras.models.load_model(dgm)
    plain, _ = ExampleMaker(src, cn40).batch(0, 8)
    maker = ExampleMaker(src, cn40, seed=1, options=SampleOptions(lowres=0.5, lr_heights=[8], degrader=dgm))
    drawn = [maker._degrader.height(g) > 0 for g in range(8)]
    assert any(drawn) and not all(drawn)
    x, _ = maker.batch(0, 8)
    grey = keras.ops.convert_to_numpy(model(plain[np.array(drawn)]))  # (n, 40, 120, 1)
    want = np.repeat(np.clip(np.rint(grey * 255.0), 0, 255), 3, axis=-1) / np.float32(255.0)
    np.testing.assert_allclose(x[np.array(drawn)], want, atol=1.5 / 255)  # the DGM's image, grey -> RGB
    np.testing.assert_array_equal(x[~np.array(drawn)], plain[~np.array(drawn)])
    # the DGM is not pickled with the pipeline (worker processes load their own)
    again = pickle.loads(pickle.dumps(maker))
    assert again._degrader._model is None
    np.testing.assert_array_equal(again.batch(0, 8)[0], x)
    # tf.data threads call it too
    ds = build_dataset(src, cn40, batch_size=4, seed=1, options=SampleOptions(lowres=0.5, lr_heights=[8], degrader=dgm))
    got = np.concatenate([b[0] for b in ds.as_numpy_iterator()])
    np.testing.assert_allclose(got, x, atol=1e-6)
    # a DGM for another input size is refused with the fix
    other = _tiny_dgm(tmp_path / "dgm_small.keras", height=24, width=96)
    with pytest.raises(Exception, match="same plate-format variant"):
        ExampleMaker(src, cn40, options=SampleOptions(lowres=1.0, degrader=other)).batch(0, 2)


def test_lowres_config_checks_and_training(tmp_path):
    from lprnet_tf.training import train

    base = {"name": "t", "plate_format": CN40, "model": {"name": "multitask_cnn"},
            "data": {"train": "synth:0", "val": "synth:9:4", "lowres": 0.5, "augment": "light"},
            "train": {"batch_size": 4, "steps": 2, "eval_every": 2, "gradient_noise": 0.0}}
    cfg = config_from_dict(base)
    assert cfg.data.lowres == 0.5 and cfg.data.degrader == "bicubic"
    with pytest.raises(ConfigError, match="data.lowres is the fraction"):
        config_from_dict(base, ["data.lowres=1.5"])
    with pytest.raises(ConfigError, match="dgm_"):
        config_from_dict(base, [f"data.degrader={tmp_path / 'missing.keras'}"])
    with pytest.raises(ConfigError, match="data.lowres degrades single"):
        config_from_dict({**base, "model": {"name": "dgm"}, "data": {**base["data"], "pairs": "lowres"}})
    dgm = _tiny_dgm(tmp_path / "dgm.keras", out_channels=3)
    cfg = config_from_dict(base, [f"data.degrader={dgm}"])
    state = train(cfg, str(tmp_path / "run"), verbose=False)
    assert state["step"] == 2 and np.isfinite(_records(str(tmp_path / "run"))[-1]["loss"])


# ---- super-resolved training crops (data.super_resolve) --------------------------------------------------------
def test_super_resolve_training_crops_are_the_generators_output(tmp_path):
    """A recognizer fine-tuned with data.super_resolve is fed exactly what lprnet-recognize --sr and
    benchmarks/lowres.py feed it at inference: the (possibly degraded) crop laid out at the generator's
    input by the runtime's SuperResolver, super-resolved, rounded to uint8."""
    import pickle

    from lprnet_tf.data.lowres import downscale_to_height
    from lprnet_tf.modelio import load_for_inference, save_model
    from lprnet_tf.models import build_model
    from lprnet_tf.runtime import SuperResolver

    cn = load_plate_format("cn")
    keras.utils.set_random_seed(0)
    gan = save_model(build_model("mtgan", cn, **MTGAN_TINY), str(tmp_path / "gan" / "model.keras"), cn)
    sr = SuperResolver.from_keras(load_for_inference(gan)[0], cn)
    src = SynthSource(cn, 7, 6)
    maker = ExampleMaker(src, cn, seed=1,
                         options=SampleOptions(lowres=0.5, lr_heights=[8], degrader="area", super_resolve=gan))
    drawn = [maker._degrader.height(g) for g in range(6)]
    assert any(drawn) and not all(drawn)
    x, y = maker.batch(0, 6)
    _check_signature(maker, x, y)
    for g, h in enumerate(drawn):  # every crop is the generator's output; the drawn ones from the 8-px crop
        crop, _ = src.get(g)
        small = downscale_to_height(crop, h, "area")[0] if h else crop
        want = sr.super_resolve([small])[0].astype(np.float32) / np.float32(255.0)
        np.testing.assert_allclose(x[g], want, atol=1e-6)
    # fraction 0: every crop at full resolution, still super-resolved; the generator is not pickled
    only_sr = ExampleMaker(src, cn, options=SampleOptions(super_resolve=gan))
    x0, _ = only_sr.batch(0, 2)
    np.testing.assert_allclose(x0, sr.super_resolve([src.get(g)[0] for g in range(2)]) / np.float32(255.0), atol=1e-6)
    again = pickle.loads(pickle.dumps(only_sr))
    assert again._degrader._sr is None
    np.testing.assert_array_equal(again.batch(0, 2)[0], x0)
    # the tf.data pipeline makes the same batches
    ds = build_dataset(src, cn, batch_size=3, seed=1,
                       options=SampleOptions(lowres=0.5, lr_heights=[8], degrader="area", super_resolve=gan))
    np.testing.assert_allclose(np.concatenate([b[0] for b in ds.as_numpy_iterator()]), x, atol=1e-6)
    # refusals name the fix: not an MTGAN; an MTGAN for another size
    cn40 = load_plate_format(CN40)
    dgm = _tiny_dgm(tmp_path / "dgm" / "model.keras")
    cn40.save(str(tmp_path / "dgm" / "plate_format.yaml"))
    with pytest.raises(Exception, match="mtgan_"):
        ExampleMaker(SynthSource(cn40, 7, 2), cn40, options=SampleOptions(super_resolve=dgm)).batch(0, 1)
    with pytest.raises(Exception, match="MTGAN trained for this format"):
        ExampleMaker(SynthSource(cn40, 7, 2), cn40, options=SampleOptions(super_resolve=gan)).batch(0, 1)


def test_super_resolve_config_checks(tmp_path):
    from lprnet_tf.training import train

    base = {"name": "t", "plate_format": "cn", "model": {"name": "lprnet_basic"},
            "data": {"train": "synth:0", "val": "synth:9:4"}, "train": {"batch_size": 4, "steps": 2}}
    # the config stays loadable before its MTGAN is trained; training refuses to start, naming the fix
    cfg = config_from_dict(base, [f"data.super_resolve={tmp_path / 'missing.keras'}"])
    with pytest.raises(ConfigError, match="data.super_resolve must be a trained MTGAN.*mtgan_"):
        train(cfg, str(tmp_path / "run"), verbose=False)
    assert not os.path.exists(tmp_path / "run")
    with pytest.raises(ConfigError, match="data.super_resolve feeds"):
        config_from_dict({**base, "model": {"name": "dgm"}, "data": {**base["data"], "pairs": "lowres",
                                                                     "super_resolve": "cn_lprnet_basic"}})
