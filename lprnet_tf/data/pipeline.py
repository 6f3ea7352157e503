"""The one input pipeline: ``read -> decode -> augment -> batch``.

Samples come from a :class:`SampleSource` (files read by :mod:`lprnet_tf.data.readers`, or the
synthetic generator on the fly). :class:`ExampleMaker` turns global sample indices ``start..start+n-1`` into a batch
``(images float32 (n, H, W, 3) in [0, 1], labels int32 (n, max_length))`` with plain numpy/cv2; it
depends only on (seed, start, n): a resumed run sees the same data in the same order. :func:`build_dataset`
wraps it with ``tf.data`` (parallel map, batch, prefetch) for the TensorFlow backend, computing the
batches in threads or, with ``workers``, in worker processes (:func:`process_batches`; the work is
mostly Python, so threads are held back by the GIL); :class:`BatchSequence` wraps the same function
as a ``keras.utils.PyDataset`` for JAX.

Image-to-image and GAN models (``dgm``, ``mtgan``) read (HR, LR) pairs of each crop from the same
pipeline: ``SampleOptions(pairs=...)`` (:data:`PAIR_MODES`) makes the LR crop with the one
downsampling rule of :mod:`lprnet_tf.data.lowres` (area averaging to a crop height drawn per sample).

What one sample is made of besides its source and the augmentation (character permutation, pairs, low-resolution
or super-resolved or loosened crops: the per-sample ``data.*`` options of a config) travels as one
:class:`SampleOptions` from the config (:meth:`SampleOptions.from_config`) through :func:`build_dataset` /
:func:`make_batch_sequence` to :class:`ExampleMaker`, the one place that applies it.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import multiprocessing
import pickle
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator, Sequence

import cv2
import numpy as np

from lprnet_tf.data.augment import Augmenter, loosen
from lprnet_tf.data.readers import DataError, Sample, load_image, read_samples
from lprnet_tf.runtime import fit_crop, tile_frames  # the one preprocessing rule, shared with the runtime
from lprnet_tf.vocab import PlateFormat, PlateFormatError, layout_differences, load_plate_format

SYNTH_STREAM = 2**40  # length of an unbounded synthetic stream
# Pair modes of ExampleMaker (the model kinds that train on (HR, LR) pairs, lprnet_tf.models.registry):
# "hr_to_lr": x = HR crop (B, H, W, 3), y = its LR version brought back to H x W (the DGM's HR -> LR task);
# "lr_to_hr": x = LR crop (B, H/2, W/2, 3), y = (HR crop (B, H, W, 3), labels (B, L)) (MTGAN.fit's contract).
PAIR_MODES = {"image": "hr_to_lr", "gan": "lr_to_hr"}


class SampleSource:
    """Indexable source of ``(uint8 RGB image, text)``."""

    def __len__(self) -> int:
        raise NotImplementedError

    def get(self, i: int) -> tuple[np.ndarray, str]:
        raise NotImplementedError

    def texts(self) -> list[str]:
        return [self.get(i)[1] for i in range(len(self))]


class FileSource(SampleSource):
    """Samples read from disk (any reader layout)."""

    def __init__(self, samples: Sequence[Sample]):
        self.samples = list(samples)

    def __len__(self):
        return len(self.samples)

    def get(self, i):
        s = self.samples[i]
        return load_image(s.path, s.box), s.text

    def texts(self):
        return [s.text for s in self.samples]


class ArraySource(SampleSource):
    """Labelled crops already in memory (uint8 RGB arrays), e.g. the frames of tracklets read by a
    single-frame model."""

    def __init__(self, images: Sequence[np.ndarray], texts: Sequence[str]):
        self.images, self._texts = list(images), list(texts)
        if len(self.images) != len(self._texts):
            raise ValueError(f"ArraySource: {len(self.images)} images but {len(self._texts)} texts")

    def __len__(self):
        return len(self.images)

    def get(self, i):
        return self.images[i], self._texts[i]

    def texts(self):
        return list(self._texts)


class SynthSource(SampleSource):
    """Synthetic plates rendered on the fly: sample ``i`` depends only on (seed, i)."""

    def __init__(self, fmt: PlateFormat, seed: int = 0, size: int | None = None):
        from lprnet_tf.synth import render  # lazy: the renderer loads fonts

        self._sample, self._text = render.sample, render.sample_text
        self.fmt, self.seed, self.size = fmt, int(seed), size

    def __len__(self):
        return self.size if self.size is not None else SYNTH_STREAM

    def get(self, i):
        image, text, _ = self._sample(self.fmt, self.seed, int(i))
        return image, text

    def texts(self):
        if self.size is None:
            raise DataError("an unbounded synthetic stream has no text list; give a count (synth:SEED:COUNT)")
        return [self._text(self.fmt, self.seed, i) for i in range(self.size)]


class MixedSource(SampleSource):
    """Several single-crop sources drawn from in fixed proportions: an unbounded stream whose sample ``i``
    comes from part ``k`` with probability ``weights[k]``, decided by (seed, i) only, so a resumed run sees
    the same samples. A finite part is sampled with replacement (index drawn by (seed, i)); an unbounded
    synthetic part gives its own sample ``i`` (each at most once). Used for ``data.mix``: e.g. real crops
    plus synthetic plates of the styles the real set lacks."""

    _SALT = 11

    def __init__(self, parts: Sequence[SampleSource], weights: Sequence[float], seed: int = 0):
        if len(parts) != len(weights) or not parts:
            raise ValueError(f"MixedSource: {len(parts)} parts but {len(weights)} weights")
        w = np.asarray(weights, np.float64)
        if np.any(w <= 0):
            raise ValueError(f"MixedSource: weights must be > 0, got {list(weights)}")
        for p in parts:
            if getattr(p, "frames", 0):
                raise DataError("data.mix mixes single crops; tracklet sources (data.frames > 0) cannot be mixed")
            if len(p) == 0:
                raise DataError("data.mix: one of the mixed sources has no samples")
        self.parts, self.seed = list(parts), int(seed)
        self.cum = np.cumsum(w / w.sum())

    def __len__(self):
        return SYNTH_STREAM

    def locate(self, i: int) -> tuple[SampleSource, int]:
        """(part, index within it) of sample ``i``."""
        rng = np.random.default_rng([self.seed, self._SALT, int(i)])
        k = min(int(np.searchsorted(self.cum, rng.random(), side="right")), len(self.parts) - 1)
        part = self.parts[k]
        n = len(part)
        return part, (int(i) if n >= SYNTH_STREAM else int(rng.integers(n)))

    def get(self, i):
        part, j = self.locate(i)
        return part.get(j)

    def texts(self):
        raise DataError("a mixed source is an unbounded stream and has no text list")


class TrackletSource(SampleSource):
    """Tracklets of K frames (:mod:`lprnet_tf.data.tracklets`) for multi-frame models: ``get(i)`` gives
    ``(list of K uint8 RGB frames, text, quality map (K * 7,) float32)``. The quality map is the
    per-strip no-reference score (:mod:`lprnet_tf.quality`, 7 strips per frame: IQ-STAN's M = 35
    patches for K = 5): the ``quality_map`` column of a synthetic tracklet CSV, else the frame's
    ``quality`` column repeated over its strips, else computed from the pixels (and cached)."""

    def __init__(self, tracklets: Sequence, frames: int):
        self.tracklets, self.frames = list(tracklets), int(frames)
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self):
        return len(self.tracklets)

    def _quality(self, i: int, images: list) -> np.ndarray:
        from lprnet_tf.quality import PATCHES, quality_map

        q = self._maps.get(i)
        if q is None:
            t, rows = self.tracklets[i], []
            for f, image in enumerate(images):
                p = t.params[f] if f < len(t.params) else {}
                qm = p.get("quality_map") if isinstance(p, dict) else None
                if isinstance(qm, str) and qm.strip():
                    qm = [float(v) for v in qm.split()]
                if qm is not None and len(qm) == PATCHES:
                    rows.append(np.asarray(qm, np.float32))
                elif t.quality and f < len(t.quality) and t.quality[f] is not None:
                    rows.append(np.full(PATCHES, float(t.quality[f]), np.float32))
                else:
                    rows.append(quality_map(image).astype(np.float32))
            q = self._maps[i] = np.concatenate(rows)
        return q

    def get(self, i):
        images = self.tracklets[i].images()
        return images, self.tracklets[i].text, self._quality(i, images)

    def texts(self):
        return [t.text for t in self.tracklets]


class SynthTrackletSource(TrackletSource):
    """Synthetic tracklets rendered on the fly (:func:`lprnet_tf.synth.tracklets.generate_tracklet`):
    track ``i`` depends only on (seed, i). About 20 tracks/s per core with the quality maps: for
    training, pre-render them (``lprnet-synth --tracklets K``)."""

    def __init__(self, fmt: PlateFormat, seed: int, size: int, frames: int):
        super().__init__([], frames)
        self.fmt, self.seed, self.size = fmt, int(seed), int(size)

    def __len__(self):
        return self.size

    def get(self, i):
        from lprnet_tf.synth.tracklets import generate_tracklet

        images, text, params = generate_tracklet(self.fmt, self.seed, int(i), self.frames)
        return images, text, np.concatenate([np.asarray(p["quality_map"], np.float32) for p in params])

    def texts(self):
        from lprnet_tf.synth.render import sample_text

        return [sample_text(self.fmt, self.seed, i) for i in range(self.size)]


def _synth_spec(spec: str) -> tuple[int, int | None]:
    parts = spec.split(":")
    try:
        seed = int(parts[1]) if len(parts) > 1 and parts[1] else 0
        count = int(parts[2]) if len(parts) > 2 and parts[2] else None
    except ValueError:
        raise DataError(f"bad synthetic data spec '{spec}'; use synth, synth:SEED or synth:SEED:COUNT") from None
    return seed, count


def synthetic_split_error(spec: str, split: str | None, what: str = "a split") -> str | None:
    """The refusal of a split asked of synthetic plates (``synth:…``, which have no rows to select), worded
    with ``what`` (the flag or config key that asked for it); None when ``split`` is fine for ``spec``."""
    if not (split and str(spec).startswith("synth")):
        return None
    return (f"{what} ('{split}') selects rows of a labelled set; '{spec}' is synthetic plates, which have none: "
            f"drop the split or use a labels.csv with a split column")


def open_source(spec: str, fmt: PlateFormat, split: str | None = None, skip_bad: bool = False,
                verify_images: bool = True, frames: int = 0, track_policy: str = "error") -> SampleSource:
    """Open a data spec: ``synth[:SEED[:COUNT]]`` or a path any reader understands.

    ``frames`` = K > 0 opens tracklets of K frames instead (:class:`TrackletSource`; a path in any
    layout of :func:`lprnet_tf.data.tracklets.read_tracklets`, short tracks handled by
    ``track_policy``), or ``synth:SEED:COUNT`` synthetic tracklets rendered on the fly. A ``split`` selects
    rows of a labelled set; with synthetic plates, which have none, it is refused (it used to be ignored)."""
    refusal = synthetic_split_error(spec, split)
    if refusal:
        raise DataError(refusal)
    if frames:
        if spec.startswith("synth"):
            seed, count = _synth_spec(spec)
            if count is None:
                raise DataError(f"'{spec}': synthetic tracklets need a count (synth:SEED:COUNT); for training "
                                f"pre-render them with lprnet-synth --tracklets {frames}")
            return SynthTrackletSource(fmt, seed, count, frames)
        from lprnet_tf.data.tracklets import read_tracklets

        tracks, report = read_tracklets(spec, fmt, k=frames, policy=track_policy, split=split, skip_bad=skip_bad,
                                        verify_images=verify_images)
        if not tracks:
            raise DataError(f"{spec}: no tracklet of {frames} frames ({report.summary()}); lower K or use "
                            f"track_policy repeat/pad_last")
        return TrackletSource(tracks, frames)
    if spec.startswith("synth"):
        return SynthSource(fmt, *_synth_spec(spec))
    samples, _ = read_samples(spec, fmt, skip_bad=skip_bad, verify_images=verify_images, split=split)
    return FileSource(samples)


def open_train_source(spec: str, fmt: PlateFormat, split: str | None = None, mix=(), seed: int = 0,
                      skip_bad: bool = False, frames: int = 0, track_policy: str = "error") -> SampleSource:
    """The training source of a config: :func:`open_source` of ``spec``, or, with ``mix`` (``data.mix``: a
    list of ``{source, weight, split, plate_format}`` mappings), a :class:`MixedSource` in which each listed
    source has its weight and ``spec`` the rest (1 - the sum of the weights). A mixed source's own
    ``plate_format`` (a variant of ``fmt`` with the same alphabet and layout, e.g. other synthetic styles)
    renders or reads that source; labels and images are still encoded with ``fmt``."""
    main = open_source(spec, fmt, split=split, skip_bad=skip_bad, frames=frames, track_policy=track_policy)
    if not mix:
        return main
    parts, weights = [main], [1.0 - sum(float(m["weight"]) for m in mix)]
    for m in mix:
        parts.append(open_source(m["source"], mix_format(m, fmt), split=m.get("split") or None, skip_bad=skip_bad))
        weights.append(float(m["weight"]))
    return MixedSource(parts, weights, seed=seed)


def mix_format(entry: dict, fmt: PlateFormat) -> PlateFormat:
    """The plate format of one ``data.mix`` entry: its ``plate_format`` (a shipped name or a YAML path) if it
    names one, else ``fmt``; refused (DataError) when it differs from ``fmt`` in what the model sees."""
    spec = entry.get("plate_format")
    if not spec:
        return fmt
    try:
        own = load_plate_format(spec)
    except PlateFormatError as e:
        raise DataError(f"data.mix source {entry.get('source')!r}: plate_format: {e}") from None
    diff = layout_differences(own, fmt)
    if diff:
        raise DataError(f"data.mix source {entry.get('source')!r}: plate_format '{own.name}' differs from the "
                        f"run's format '{fmt.name}' in {', '.join(diff)}; a mixed source may change only the "
                        f"synthetic plates (a variant with base: {fmt.name}), not what the model reads")
    return own


def to_model_input(image: np.ndarray, fmt: PlateFormat) -> np.ndarray:
    """A uint8 RGB crop laid out at the format's H x W (uint8; two-row plates side by side); the
    runtime's rule (:func:`lprnet_tf.runtime.fit_crop`), shared."""
    return fit_crop(image, fmt)


@dataclasses.dataclass(frozen=True)
class SampleOptions:
    """What each sample is made of besides its source and the augmentation; the per-sample ``data.*`` options of a
    config (:class:`lprnet_tf.config.DataConfig`), applied by :class:`ExampleMaker` only:

    - ``permute``: probability that a sample is replaced by a character-permuted version of itself
      (``multitask-lowres-lpr.md`` §2.2; :mod:`lprnet_tf.data.permute`).
    - ``pairs``: a value of :data:`PAIR_MODES`, (HR, LR) pairs of every crop for image-to-image and GAN models;
      chosen by the model's kind, not by the config.
    - ``lr_heights``: the crop heights the LR crops are drawn from (empty:
      :data:`lprnet_tf.data.lowres.DEFAULT_HEIGHTS`).
    - ``lowres``, ``degrader``: that share of a recognizer's crops replaced by low-resolution versions made by the
      degrader (:class:`lprnet_tf.data.lowres.Degrader`); ``super_resolve``: every crop then super-resolved by
      that MTGAN's generator.
    - ``loose_crops``: half the crops made looser by up to that many crop heights per side
      (:func:`lprnet_tf.data.augment.loosen`).

    A new per-sample option is a ``DataConfig`` field, a field of the same name here and its branch in
    :class:`ExampleMaker`."""

    permute: float = 0.0
    pairs: str = ""
    lr_heights: tuple = ()
    lowres: float = 0.0
    degrader: str = "bicubic"
    super_resolve: str = ""
    loose_crops: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "lr_heights", tuple(int(h) for h in (self.lr_heights or ())))
        if self.pairs and self.pairs not in PAIR_MODES.values():
            raise ValueError(f"pairs must be one of {sorted(PAIR_MODES.values())} or empty, got {self.pairs!r}")
        for name in ("permute", "lowres"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.loose_crops < 0:
            raise ValueError(f"loose_crops is a margin in crop heights >= 0, got {self.loose_crops}")

    @classmethod
    def from_config(cls, data, pairs: str = "") -> "SampleOptions":
        """The options of a config's ``data`` section (:class:`lprnet_tf.config.DataConfig`): every field but
        ``pairs`` is read from the ``data`` field of the same name; ``pairs`` comes from the model's kind
        (:data:`PAIR_MODES`)."""
        return cls(pairs=pairs, **{f.name: getattr(data, f.name) for f in dataclasses.fields(cls) if f.name != "pairs"})

    @property
    def single_crop(self) -> list[str]:
        """The options set that change a recognizer's single crops (they do not combine with pairs or tracklets)."""
        return [name for name, on in (("data.loose_crops", self.loose_crops), ("data.lowres", self.lowres > 0),
                                      ("data.super_resolve", self.super_resolve)) if on]


class ExampleMaker:
    """Global sample indices -> batches for one source; numpy/cv2 only, shared by the tf.data and
    PyDataset paths. With ``shuffle`` a finite source is visited in a new permutation every pass.
    ``options`` (:class:`SampleOptions`) says what each sample is made of, every random choice decided by
    (seed, global index) only:

    - ``permute`` > 0: each sample is, with that probability, replaced by a character-permuted version of itself.
    - ``pairs``: (HR, LR) pairs of every crop for image-to-image and GAN models (:meth:`_pair_batch`): the LR crop
      is :class:`lprnet_tf.data.lowres.PairedSource`'s, area-downscaled to a crop height drawn from ``lr_heights``.
    - ``loose_crops`` > 0: some single crops made looser (:func:`lprnet_tf.data.augment.loosen`) before anything
      else changes the crop; then ``lowres`` / ``super_resolve`` (:class:`lprnet_tf.data.lowres.Degrader`)."""

    def __init__(self, source: SampleSource, fmt: PlateFormat, augment: str = "none", seed: int = 0,
                 shuffle: bool = False, options: SampleOptions | None = None):
        self.source, self.fmt, self.seed, self.shuffle = source, fmt, int(seed), shuffle
        self.options = o = options if options is not None else SampleOptions()
        if not isinstance(o, SampleOptions):
            raise TypeError(f"options must be a SampleOptions, got {type(o).__name__}")
        self.permute, self.loose_crops, self.pairs = o.permute, o.loose_crops, o.pairs
        self.augment = Augmenter(augment)
        self.n = len(source)
        self._perm_cache: dict[int, np.ndarray] = {}
        self._paired = None
        if self.pairs:
            if self.frames:
                raise DataError("(HR, LR) pairs are made from single crops, not tracklets; set data.frames: 0")
            from lprnet_tf.data.lowres import DEFAULT_HEIGHTS, PairedSource  # lowres imports this module

            lr_size = (fmt.height // 2, fmt.width // 2) if self.pairs == "lr_to_hr" else None
            self._paired = PairedSource(source, fmt, o.lr_heights or DEFAULT_HEIGHTS, lr_size=lr_size, seed=self.seed)
        if o.single_crop and (self.pairs or self.frames):
            raise DataError(f"{' / '.join(o.single_crop)} changes the single training crops of a recognizer and does "
                            "not combine with data.pairs or tracklets (data.frames); remove it or set it to 0")
        self._degrader = None
        if o.lowres > 0 or o.super_resolve:
            from lprnet_tf.data.lowres import DEFAULT_HEIGHTS, Degrader

            self._degrader = Degrader(fmt, o.lowres, o.lr_heights or DEFAULT_HEIGHTS, o.degrader, seed=self.seed,
                                      super_resolve=o.super_resolve)

    def index(self, g: int) -> int:
        if not self.shuffle or isinstance(self.source, SynthSource) or self.n >= SYNTH_STREAM:
            return g % self.n
        epoch, k = divmod(g, self.n)
        perm = self._perm_cache.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, 7, epoch]).permutation(self.n)
            self._perm_cache = {epoch: perm}
        return int(perm[k])

    @property
    def frames(self) -> int:
        """K for a tracklet source, 0 for single crops."""
        return getattr(self.source, "frames", 0)

    def signature(self) -> tuple:
        """``((x shape, x dtype), (y shape, y dtype))`` of a batch, batch dimension None; in the
        ``lr_to_hr`` pair mode y is ``((HR shape, dtype), (labels shape, dtype))`` (see :func:`flat_signature`)."""
        k = self.frames
        h, w = self.fmt.height, self.fmt.width
        if self.pairs == "hr_to_lr":
            return ((None, h, w, 3), "float32"), ((None, h, w, 3), "float32")
        if self.pairs == "lr_to_hr":
            return (((None, h // 2, w // 2, 3), "float32"),
                    (((None, h, w, 3), "float32"), ((None, self.fmt.max_length), "int32")))
        if not k:
            return ((None, self.fmt.height, self.fmt.width, 3), "float32"), ((None, self.fmt.max_length), "int32")
        from lprnet_tf.quality import PATCHES

        return (((None, self.fmt.height, k * self.fmt.width, 3), "float32"),
                ((None, self.fmt.max_length + k * PATCHES), "float32"))

    def input_image(self, i: int) -> np.ndarray:
        """Sample ``i`` laid out as the model reads it (uint8; K frames side by side for tracklets)."""
        item = self.source.get(i)
        return tile_frames(item[0], self.fmt) if self.frames else to_model_input(item[0], self.fmt)

    def _tracklet_batch(self, start: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Tracklets -> (x (n, H, K*W, 3) float32, y (n, L + K*7) float32: class ids then quality map).
        Augmentation is applied to every frame on its own."""
        k = self.frames
        frames, ys = [], []
        for g in range(int(start), int(start) + int(size)):
            images, text, qmap = self.source.get(self.index(g))
            if len(images) != k:
                raise DataError(f"tracklet {self.index(g)} has {len(images)} frames, the model reads {k}")
            frames.extend(to_model_input(im, self.fmt) for im in images)
            ys.append(np.concatenate([self.fmt.pad(self.fmt.encode(text)), qmap]).astype(np.float32))
        frames = self.augment(frames, seed=self.seed * 1_000_003 + int(start))
        x = np.stack([np.concatenate(frames[j:j + k], axis=1) for j in range(0, len(frames), k)])
        return x.astype(np.float32) * (1.0 / 255.0), np.stack(ys)

    def _sample(self, g: int) -> tuple[np.ndarray, str]:
        """The uint8 crop and text of global sample ``g`` (character-permuted with probability ``permute``)."""
        if self.permute > 0:
            from lprnet_tf.data.permute import maybe_permute

            return maybe_permute(self.source, self.index(g), self.fmt, self.permute, self.seed, g)
        return self.source.get(self.index(g))

    def _pair_batch(self, start: int, size: int) -> tuple:
        """Pair modes (``multitask-lowres-lpr.md`` §2.2 DGM, ``mtgan.md`` §2): the source crops are augmented
        (seeded by (seed, start) as every batch), then each crop g gives its HR version (the format's H x W,
        :func:`to_model_input`'s rule) and an LR version area-downscaled to the height
        :meth:`lprnet_tf.data.lowres.PairedSource.lr_height` draws for (seed, g), brought to the LR input size
        with the same rule. ``hr_to_lr`` -> (HR (n, H, W, 3), LR at H x W (n, H, W, 3)); ``lr_to_hr`` ->
        (LR (n, H/2, W/2, 3), (HR (n, H, W, 3), labels int32 (n, L))); images float32 in [0, 1]."""
        gs = range(int(start), int(start) + int(size))
        crops, labels = [], []
        for g in gs:
            image, text = self._sample(g)
            crops.append(image)
            labels.append(self.fmt.pad(self.fmt.encode(text)))
        crops = self.augment(crops, seed=self.seed * 1_000_003 + int(start))
        hr, lr = [], []
        for g, crop in zip(gs, crops):
            a, b, _ = self._paired.pair(crop, g)
            hr.append(a)
            lr.append(b)
        scale = np.float32(1.0 / 255.0)
        hr, lr = np.stack(hr).astype(np.float32) * scale, np.stack(lr).astype(np.float32) * scale
        if self.pairs == "hr_to_lr":
            return hr, lr
        return lr, (hr, np.asarray(labels, np.int32))

    def batch(self, start: int, size: int) -> tuple:
        """Samples ``start .. start+size-1`` -> (x (n, H, W, 3) float32 in [0, 1], y (n, L) int32).
        Tracklet sources: see :meth:`_tracklet_batch`; pair modes: :meth:`_pair_batch`."""
        if self.frames:
            return self._tracklet_batch(start, size)
        if self.pairs:
            return self._pair_batch(start, size)
        gs = range(int(start), int(start) + int(size))
        images, labels = [], []
        for g in gs:
            image, text = self._sample(g)
            if self.loose_crops:
                image = loosen(image, self.loose_crops, np.random.default_rng([self.seed, 11, g]))
            images.append(image if self._degrader else to_model_input(image, self.fmt))
            labels.append(self.fmt.pad(self.fmt.encode(text)))
        if self._degrader:  # some crops replaced by their low-resolution versions (data.lowres), then augmented
            images = self._degrader.apply(images, gs)
        images = self.augment(images, seed=self.seed * 1_000_003 + int(start))
        return np.stack(images).astype(np.float32) * (1.0 / 255.0), np.asarray(labels, np.int32)


def flat_signature(signature) -> list[tuple]:
    """The ``(shape, dtype)`` leaves of :meth:`ExampleMaker.signature`, in order."""
    if len(signature) == 2 and isinstance(signature[1], str):
        return [signature]
    return [leaf for part in signature for leaf in flat_signature(part)]


def flatten_batch(batch, signature) -> list:
    """A batch ``(x, y)`` (y possibly a tuple) -> its arrays in :func:`flat_signature` order."""
    if len(signature) == 2 and isinstance(signature[1], str):
        return [batch]
    return [a for part, sig in zip(batch, signature) for a in flatten_batch(part, sig)]


def nest_batch(flat, signature):
    """Inverse of :func:`flatten_batch`: arrays/tensors in leaf order -> the nested ``(x, y)``."""
    it = iter(flat)

    def build(sig):
        if len(sig) == 2 and isinstance(sig[1], str):
            return next(it)
        return tuple(build(part) for part in sig)
    return build(signature)


# ---- worker processes --------------------------------------------------------------------------
_worker_maker: ExampleMaker | None = None  # the ExampleMaker of this worker process


def _init_worker(payload: bytes):
    """Worker process initializer: ignore Ctrl-C (the parent stops the pool), one cv2 thread (the
    processes are the parallelism), then the maker."""
    global _worker_maker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    _worker_maker = pickle.loads(payload)


def _worker_batch(first: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    return _worker_maker.batch(first, size)


def process_batches(payload: bytes, spans: Iterator[tuple[int, int]], workers: int) -> Iterator:
    """``maker.batch(first, size)`` for each ``(first, size)`` of ``spans``, in order, computed by
    ``workers`` worker processes with at most ``2 * workers`` batches in flight; ``payload`` is the
    pickled :class:`ExampleMaker`.

    A batch depends only on (maker, first, size), so the stream equals the single-process one.
    Processes are started with "spawn" (TensorFlow's threads make "fork" unsafe), so a script that
    uses this needs the usual ``if __name__ == "__main__":`` guard. An exception in a worker is
    re-raised by ``next()`` with its type and message. The processes stop when the generator is
    exhausted, closed or garbage-collected, and at interpreter exit (``concurrent.futures`` joins them).
    """
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(payload,))
    try:
        # A FIFO of futures: results come out in submission order whatever order workers finish in.
        pending = collections.deque(pool.submit(_worker_batch, *span) for span in itertools.islice(spans, 2 * workers))
        while pending:
            result = pending.popleft().result()
            for span in itertools.islice(spans, 1):  # top the read-ahead up again
                pending.append(pool.submit(_worker_batch, *span))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def build_dataset(source: SampleSource, fmt: PlateFormat, batch_size: int = 32, augment: str = "none",
                  shuffle: bool = False, seed: int = 0, start: int = 0, repeat: bool = False,
                  drop_remainder: bool = False, parallel: int | None = None, workers: int = 0,
                  slices: tuple[int, int, int] | None = None, options: SampleOptions | None = None):
    """``tf.data`` pipeline over ``source``: parallel numpy map, batch, prefetch.

    ``start`` is the global index of the first sample (a resumed run passes step * batch_size).
    Without ``repeat`` the dataset makes one pass over the source in order (evaluation).
    ``workers`` = 0 computes batches in tf.data's threads (``parallel`` of them, default autotuned);
    ``workers`` > 0 computes them in that many worker processes (:func:`process_batches`), started
    anew for every iterator over the dataset. The batches are the same either way.
    ``slices=(first, count, parts)`` cuts every batch into ``parts`` equal slices and yields only
    slices ``first .. first+count-1`` of each, one element per slice (with ``repeat`` or
    ``drop_remainder``): a tf.distribute worker's share of every global batch, one slice per local
    replica (:mod:`lprnet_tf.distributed`). A slice is augmented as a batch of its own.
    ``options``: what each sample is made of (:class:`SampleOptions`: permutation, (HR, LR) pairs, whose y is
    nested for ``lr_to_hr``, low-resolution, super-resolved or loosened crops), applied by :class:`ExampleMaker`.
    """
    import tensorflow as tf

    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    maker = ExampleMaker(source, fmt, augment, seed, shuffle, options)
    n = SYNTH_STREAM if repeat else len(source)
    n_batches = n // batch_size if (repeat or drop_remainder) else -(-n // batch_size)

    first_slice, count, size = 0, 1, batch_size  # without slices: one element per whole batch
    if slices is not None:
        first_slice, count, parts = (int(v) for v in slices)
        if batch_size % parts or not 0 <= first_slice < first_slice + count <= parts or not (repeat or drop_remainder):
            raise ValueError(f"slices={slices}: need parts dividing batch_size={batch_size}, "
                             f"0 <= first < first+count <= parts, and repeat or drop_remainder")
        size = batch_size // parts
        n_batches *= count

    def span(e):
        """Element ``e`` (slice ``first_slice + e % count`` of batch ``e // count``) -> (global index
        of its first sample, its size)."""
        b, k = divmod(int(e), count)
        first = start + b * batch_size + (first_slice + k) * size
        return first, min(size, start + n - first)

    options = tf.data.Options()
    options.deterministic = True
    if workers:
        payload = pickle.dumps(maker)  # fail here, not in a worker, if the source cannot be pickled
        sig = maker.signature()
        signature = nest_batch([tf.TensorSpec(shape, dtype) for shape, dtype in flat_signature(sig)], sig)
        ds = tf.data.Dataset.from_generator(
            lambda: process_batches(payload, map(span, range(n_batches)), workers), output_signature=signature)
        # No prefetch, neither ours nor the one tf.data injects by default: the workers already read
        # ahead, and a prefetch thread caught inside the generator when the interpreter exits with
        # an iterator still alive hangs the exit.
        options.experimental_optimization.inject_prefetch = False
        return ds.with_options(options)

    sig = maker.signature()
    leaves = flat_signature(sig)  # (x, y) or, for the lr_to_hr pairs, (x, (hr, labels)): numpy_function is flat

    def mapped(b):
        out = tf.numpy_function(lambda b: flatten_batch(maker.batch(*span(b)), sig), [b],
                                [dtype for _, dtype in leaves], stateful=False)
        for t, (shape, _) in zip(out, leaves):
            t.set_shape(shape)
        return nest_batch(out, sig)

    ds = tf.data.Dataset.range(n_batches).with_options(options)
    ds = ds.map(mapped, num_parallel_calls=parallel or tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_batch_sequence(source: SampleSource, fmt: PlateFormat, batch_size: int, steps: int,
                        augment: str = "none", shuffle: bool = False, seed: int = 0, start: int = 0,
                        workers: int = 1, processes: int = 0, options: SampleOptions | None = None):
    """The same samples as :func:`build_dataset`, as a ``keras.utils.PyDataset`` (any backend) made by
    ``workers`` threads or, with ``processes`` > 0, as a generator of the ``steps`` batches made in that
    many worker processes (:func:`process_batches`): rendering and augmentation hold the GIL, so on a
    many-core GPU host only processes keep the accelerator fed."""
    import keras

    if processes < 0:
        raise ValueError(f"processes must be >= 0, got {processes}")
    maker = ExampleMaker(source, fmt, augment, seed, shuffle, options)
    if processes:
        payload = pickle.dumps(maker)  # fail here, not in a worker, if the source cannot be pickled
        return process_batches(payload, ((start + b * batch_size, batch_size) for b in range(steps)), processes)

    class BatchSequence(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, b):
            return maker.batch(start + b * batch_size, batch_size)

    return BatchSequence(workers=workers, use_multiprocessing=False)
