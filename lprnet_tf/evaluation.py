"""Evaluate a recognizer on a labelled set: logits -> decoder -> metrics, plus error reports.

``evaluate_model`` writes ``metrics.json``, ``errors.csv`` and ``error_gallery.png`` (image, truth,
prediction, confidence) to ``out_dir``. The same functions score validation during training.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from lprnet_tf.data.pipeline import ExampleMaker, SampleSource
from lprnet_tf.decoding import decode_views
from lprnet_tf.metrics import apply_merges, confidence_operating_points, merge_map_from, plate_metrics
from lprnet_tf.progress import Progress
from lprnet_tf.vocab import PlateFormat

# The real sets of ../shared/data that shipped models are reported on: folder -> (plate format, the
# split that may be reported; never a split anything was trained on, and for a test-only set that a
# model was fine-tuned on, the derived split it was not trained on: lprnet-data split's arguments).
REFERENCE_SETS = {
    "cn_ccpd_like_1000": ("cn", "test", None),
    "br_openalpr_crops": ("br", "val", None),
    "uz_plates": ("uz", "val", None),
    "tw_plates": ("tw", "val", None),
    # us_lprnet_basic trains on the train side of `lprnet-data split --val 0.4 --seed 0` of this set
    "us_openalpr_crops": ("us", "val", {"val": 0.4, "seed": 0}),
    "ar_plates": ("ar", "test", None),
}
HELD_OUT_SYNTH_SEED = 777_000_777  # never used for training (training seeds: 0.., validation 1000003)


MULTI_VIEW_SETS = {"br_openalpr_crops": ("br", "val")}  # real sets whose `group`s are repeated captures


def multi_view_tracks(folder: str, fmt: PlateFormat, split: str, k: int) -> list:
    """The real multi-view test of a grouped set: K views per group (``pick=random``, seed 0), groups
    with fewer captures cycled (policy ``repeat``), only groups with at least 2 distinct captures."""
    from lprnet_tf.data.tracklets import read_tracklets

    tracks, _ = read_tracklets(folder, fmt, k=k, layout="groups", policy="repeat", split=split, seed=0)
    return [t for t in tracks if len(set(t.frames)) >= 2]


def reference_sets(fmt: PlateFormat, data_root: str, synth_count: int = 1000, frames: int = 0) -> list:
    """The sets a model of format ``fmt`` is reported on: ``(label, source, merges)`` for the held-apart
    synthetic set and each real set of that format found under ``data_root`` -- for a multi-country
    format, also the sets of the formats its ``reports_on`` names -- (real sets carry the format's
    scoring merges, e.g. US labels write the letter O as the digit 0).

    ``frames`` = K > 0 (a multi-frame model): ``synth_count`` held-apart synthetic tracklets of K frames
    and the real multi-view sets (:data:`MULTI_VIEW_SETS`, :func:`multi_view_tracks`)."""
    from lprnet_tf.data.pipeline import FileSource, SynthSource, SynthTrackletSource, TrackletSource, open_source
    from lprnet_tf.data.readers import read_samples

    if frames:
        sets = [(f"synthetic tracklets held-out ({synth_count} x {frames})",
                 SynthTrackletSource(fmt, HELD_OUT_SYNTH_SEED, synth_count, frames), [])]
        for name, (fmt_name, split) in MULTI_VIEW_SETS.items():
            folder = os.path.join(data_root, name)
            if fmt_name == fmt.name and os.path.isdir(folder):
                tracks = multi_view_tracks(folder, fmt, split, frames)
                sets.append((f"{name} ({split} groups with >= 2 views, {frames} views)", TrackletSource(tracks, frames),
                             list(fmt.merges)))
        return sets
    sets = [(f"synthetic held-out ({synth_count})", SynthSource(fmt, HELD_OUT_SYNTH_SEED, synth_count), [])]
    reads = (fmt.name,) + tuple(fmt.reports_on)
    for name, (fmt_name, split, derived) in REFERENCE_SETS.items():
        folder = os.path.join(data_root, name)
        if fmt_name not in reads or not os.path.isdir(folder):
            continue
        if derived is None:
            sets.append((f"{name} ({split})", open_source(folder, fmt, split=split), list(fmt.merges)))
            continue
        from lprnet_tf.datatools.split import split_of_paths

        side = split_of_paths(folder, **derived)
        samples = [s for s in read_samples(folder, fmt)[0] if side.get(os.path.abspath(s.path)) == split]
        label = f"{name} ({split} of split --val {derived['val']} --seed {derived['seed']})"
        sets.append((label, FileSource(samples), list(fmt.merges)))
    return sets


def predict_outputs(model, source: SampleSource, fmt: PlateFormat, batch_size: int = 64,
                    progress: bool = False, desc: str = "predict") -> dict:
    """Every output of ``model`` for every sample of ``source`` in order (no augmentation) -> dict of
    arrays: ``logits`` ``(N, T, C)``, plus the other outputs of a dict-output model (IQ-STAN's
    ``quality (N, M)`` and ``frame_weights (N, K)``); ``targets``: the labels/quality targets."""
    maker = ExampleMaker(source, fmt)
    n = len(source)
    bar = Progress(n, desc, "tracklet" if maker.frames else "img", enabled=progress)
    out: dict = {}
    for start in range(0, n, batch_size):
        x, y = maker.batch(start, min(batch_size, n - start))
        pred = model.predict_on_batch(x)
        pred = dict(pred) if isinstance(pred, dict) else {"logits": pred}
        pred["targets"] = y
        for k, v in pred.items():
            out.setdefault(k, []).append(np.asarray(v))
        bar.update(len(x))
    bar.close()
    return {k: np.concatenate(v, axis=0) for k, v in out.items()}


def predict_logits(model, source: SampleSource, fmt: PlateFormat, batch_size: int = 64,
                   progress: bool = False, desc: str = "predict") -> np.ndarray:
    """Logits ``(N, T, C)`` for every sample of ``source`` in order (no augmentation)."""
    return predict_outputs(model, source, fmt, batch_size, progress, desc)["logits"]


class MappedSource(SampleSource):
    """``source`` with every crop changed by ``fn(image, index) -> image`` (a test-time view, a corruption);
    the texts are unchanged."""

    def __init__(self, source: SampleSource, fn):
        self.source, self.fn = source, fn

    def __len__(self):
        return len(self.source)

    def get(self, i):
        image, text = self.source.get(i)
        return self.fn(image, i), text

    def texts(self):
        return self.source.texts()


def view_source(source: SampleSource, view: str) -> MappedSource:
    """``source`` with every crop in one test-time view (:func:`lprnet_tf.runtime.tta_view`; an unknown view
    raises at the first crop)."""
    from lprnet_tf.runtime import tta_view

    return MappedSource(source, lambda image, i: tta_view(image, view))


def corrupted_source(source: SampleSource, name: str, severity: int) -> MappedSource:
    """``source`` with every crop changed by corruption ``name`` at ``severity``
    (:func:`lprnet_tf.data.corrupt.corrupt`)."""
    from lprnet_tf.data.corrupt import corrupt, corruption_param

    corruption_param(name, severity)  # an unknown name or severity fails here, not at the first crop
    return MappedSource(source, lambda image, i: corrupt(image, name, severity, i))


def predict_views(model, source: SampleSource, fmt: PlateFormat, batch_size: int = 64,
                  progress: bool = False, full: np.ndarray | None = None) -> list:
    """Logits ``(N, T, C)`` of every test-time view of ``source`` (:data:`lprnet_tf.runtime.TTA_VIEWS`), in
    that order: what :func:`score` votes over (``--tta``); ``full``: the plain pass's logits when already
    predicted. Single-crop models only."""
    from lprnet_tf.runtime import TTA_VIEWS

    if ExampleMaker(source, fmt).frames:
        raise ValueError("test-time views are for single-crop models; a multi-frame model already reads K frames")
    return [full if v == "full" and full is not None else
            predict_logits(model, view_source(source, v), fmt, batch_size, progress, desc=f"view {v}")
            for v in TTA_VIEWS]


def sample_path(source: SampleSource, i: int) -> str:
    """Where sample ``i`` of ``source`` comes from, for error reports: its file, the files of a
    tracklet's frames (``;``-separated), or ``synthetic:i`` (a :class:`MappedSource`: its source's)."""
    while isinstance(source, MappedSource):
        source = source.source
    samples = getattr(source, "samples", None)
    if samples:
        return samples[i].path
    tracklets = getattr(source, "tracklets", None)
    if tracklets:
        paths = [f for f in tracklets[i].frames if isinstance(f, str)]
        return ";".join(paths) if paths else f"track {tracklets[i].track}"
    return f"synthetic:{i}"


def quality_metrics(outputs: dict, fmt: PlateFormat) -> dict:
    """LCC/SROCC of a multi-frame model's predicted quality against the targets (iq-stan.md Table 2):
    per patch (M per tracklet) and per frame (the mean of its patches, eq. 6); {} without a quality output."""
    from lprnet_tf.metrics import lcc, srocc

    if "quality" not in outputs:
        return {}
    pred = outputs["quality"]  # (N, M)
    true = outputs["targets"][:, fmt.max_length:].astype(np.float32)  # (N, M)
    k = outputs["frame_weights"].shape[1]
    pf, tf_ = pred.reshape(len(pred), k, -1).mean(-1), true.reshape(len(true), k, -1).mean(-1)
    return {"quality_lcc_patch": lcc(pred.ravel(), true.ravel()), "quality_srocc_patch": srocc(pred.ravel(), true.ravel()),
            "quality_lcc_frame": lcc(pf.ravel(), tf_.ravel()), "quality_srocc_frame": srocc(pf.ravel(), tf_.ravel())}


def score(logits, texts, fmt: PlateFormat, decoder: str = "greedy", merges=None, kind: str = "ctc",
          prior=None):
    """Decode and score -> (metrics dict, predictions, confidences). ``kind``: the model's output kind
    (:func:`lprnet_tf.models.model_kind`: ``ctc`` sequence logits or ``slot`` per-slot logits).
    ``logits``: one ``(N, T, C)`` array, or a list of them (:func:`predict_views`: the test-time views of
    the same crops), each decoded and then voted (:func:`lprnet_tf.decoding.vote`; metrics ``tta`` true).
    ``prior``: a :class:`lprnet_tf.decoding.LocalPrior` re-ranking the beams (metrics ``local_prior``)."""
    preds, conf = decode_views(logits, fmt, decoder, kind=kind, prior=prior)
    m = plate_metrics(texts, preds, merges=merges, max_positions=fmt.max_length)
    if isinstance(logits, (list, tuple)) and len(logits) > 1:
        m["tta"] = True
    m["decoder"] = decoder
    if prior is not None:
        m["local_prior"] = prior.to_dict()
    m["plate_format"] = fmt.name
    return m, preds, conf


def evaluate_model(model, source: SampleSource, fmt: PlateFormat, out_dir: str, decoder: str = "greedy",
                   merges=None, batch_size: int = 64, gallery_size: int = 48, progress: bool = True,
                   extra: dict | None = None, return_predictions: bool = False, tta: bool = False, prior=None):
    """Evaluate and write ``metrics.json``, ``errors.csv``, ``error_gallery.png`` into ``out_dir``.

    ``tta``: read every crop in the test-time views and vote (:func:`predict_views`). ``prior``: a
    :class:`lprnet_tf.decoding.LocalPrior` for the beam / template decoder.
    Returns the metrics dict, or ``(metrics, predictions, confidences)`` with ``return_predictions``.
    """
    from lprnet_tf.config import UsageError
    from lprnet_tf.models import model_kind

    kind = model_kind(model)
    if kind == "slot" and decoder != "greedy":
        raise UsageError(f"{model.name} is a slot model (one class per character position): it decodes by arg-max "
                         f"per slot; use --decoder greedy, not {decoder}")
    if kind == "attn" and decoder != "greedy":
        raise UsageError(f"{model.name} has an attention decoder that reads its own greedy steps; use --decoder "
                         f"greedy, not {decoder}")
    if tta and getattr(model, "frames", 0):
        raise UsageError(f"{model.name} is a multi-frame model: it already reads K frames of a plate; drop --tta")
    if prior is not None and (decoder == "greedy" or kind != "ctc"):
        raise UsageError(f"a local prior (--local_prefix) re-ranks the beam search's candidates: use --decoder "
                         f"template (or beam) with a CTC model, not --decoder {decoder} on {model.name} ({kind})")
    os.makedirs(out_dir, exist_ok=True)
    texts = source.texts()
    outputs = predict_outputs(model, source, fmt, batch_size, progress=progress, desc="evaluate")
    logits = predict_views(model, source, fmt, batch_size, progress, full=outputs["logits"]) if tta else outputs["logits"]
    m, preds, conf = score(logits, texts, fmt, decoder, merges, kind=kind, prior=prior)
    m["confidence_thresholds"] = confidence_operating_points(texts, preds, conf, merges)
    m.update(quality_metrics(outputs, fmt))
    if "frame_weights" in outputs:
        m["frame_weights_mean"] = [round(float(v), 4) for v in outputs["frame_weights"].mean(0)]
    if extra:
        m.update(extra)
    mm = merge_map_from(merges)
    errors = [i for i, (t, p) in enumerate(zip(texts, preds)) if apply_merges(t, mm) != apply_merges(p, mm)]
    with open(os.path.join(out_dir, "errors.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "path", "truth", "prediction", "confidence"])
        for i in errors:
            w.writerow([i, sample_path(source, i), texts[i], preds[i], f"{conf[i]:.4f}"])
    if errors:
        from lprnet_tf.synth.contact import save_contact_sheet

        idx = errors[:gallery_size]
        images = [ExampleMaker(source, fmt).input_image(i) for i in idx]
        labels = [f"{texts[i]}\n{preds[i] or '-'} {conf[i]:.2f}" for i in idx]
        save_contact_sheet(os.path.join(out_dir, "error_gallery.png"), images, labels, cols=6)
    tmp = os.path.join(out_dir, "metrics.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(m, f, indent=2, ensure_ascii=False)
    os.replace(tmp, os.path.join(out_dir, "metrics.json"))
    return (m, preds, conf) if return_predictions else m


def evaluate_pairs(model, source: SampleSource, fmt: PlateFormat, lr_heights=None, batch_size: int = 64) -> dict:
    """An image-to-image or GAN model on the (HR, LR) pairs of ``source`` made as in training
    (:class:`ExampleMaker` with ``pairs``, no augmentation, LR heights drawn by (seed 0, index)).

    DGM (kind ``image``): ``mse`` and ``psnr`` (dB, mean over crops of ``10 log10(1 / MSE)``) of DGM(HR)
    against the LR target (:class:`lprnet_tf.losses.ImageMSE`: grey target for a one-channel DGM).
    MTGAN (kind ``gan``): ``mse`` / ``psnr`` of SR(LR) against HR, and the exact match (``accuracy``,
    ``acc1``, ``char_accuracy``, ``accuracy_no_first``) of the discriminator's recognition head reading
    SR(LR), greedy slot decoding (``mtgan.md`` §3: it recognizes the super-resolved plate), plus
    ``accuracy_hr``: the same head on the HR crops. Also ``count``."""
    import keras

    from lprnet_tf.data.pipeline import PAIR_MODES, SampleOptions
    from lprnet_tf.losses import ImageMSE
    from lprnet_tf.metrics import psnr
    from lprnet_tf.models import model_kind

    kind = model_kind(model)
    if kind not in PAIR_MODES:
        raise ValueError(f"evaluate_pairs is for image-to-image and GAN models, not {model.name} ({kind!r})")
    maker = ExampleMaker(source, fmt, options=SampleOptions(pairs=PAIR_MODES[kind], lr_heights=lr_heights))
    mse_of = ImageMSE(reduction=None)
    n = len(source)
    mse, sr_logits, hr_logits = [], [], []
    for start in range(0, n, batch_size):
        x, y = maker.batch(start, min(batch_size, n - start))
        if kind == "image":
            pred, target = model.predict_on_batch(x), y  # DGM(HR) vs the LR target
        else:
            target = y[0]  # HR
            pred = model.generator.predict_on_batch(x)  # SR(LR)
            sr_logits.append(np.asarray(model.discriminator.predict_on_batch(pred)[1]))
            hr_logits.append(np.asarray(model.discriminator.predict_on_batch(target)[1]))
        mse.append(keras.ops.convert_to_numpy(mse_of(target, pred)))
    mse = np.concatenate(mse).astype(np.float64)
    m = {"count": int(n), "mse": float(mse.mean()), "psnr": float(psnr(mse).mean())}  # dB, images in [0, 1]
    if kind == "gan":
        texts = source.texts()
        rec, _, _ = score(np.concatenate(sr_logits), texts, fmt, "greedy", kind="slot")
        m.update({k: rec[k] for k in ("accuracy", "acc1", "char_accuracy", "accuracy_no_first")})
        m["accuracy_hr"] = score(np.concatenate(hr_logits), texts, fmt, "greedy", kind="slot")[0]["accuracy"]
    return m


def evaluate_quality_net(model, source: SampleSource, fmt: PlateFormat, batch_size: int = 128) -> dict:
    """An EQ-LPR quality network (:mod:`lprnet_tf.models.eq_lpr`) against its recognizer's α on every
    crop of ``source``: mean absolute error, LCC and SROCC (eq-lpr.md §3; ``count``, means too)."""
    from lprnet_tf.metrics import lcc, srocc

    maker = ExampleMaker(source, fmt)
    pred, alpha = [], []
    for start in range(0, len(source), batch_size):
        x, _ = maker.batch(start, min(batch_size, len(source) - start))
        pred.append(np.asarray(model.predict_on_batch(x)["quality"], np.float32))
        alpha.append(np.asarray(model.targets(x)[0], np.float32))
    pred, alpha = np.concatenate(pred), np.concatenate(alpha)
    return {"count": int(len(pred)), "mae": float(np.abs(pred - alpha).mean()), "lcc": lcc(pred, alpha),
            "srocc": srocc(pred, alpha), "alpha_mean": float(alpha.mean()), "quality_mean": float(pred.mean())}
