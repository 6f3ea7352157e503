"""The one input pipeline: ``read -> decode -> augment -> batch``.

Samples come from a :class:`SampleSource` (files read by :mod:`lprnet_tf.data.readers`, or the
synthetic generator on the fly). :class:`ExampleMaker` turns global sample indices ``start..start+n-1`` into a batch
``(images float32 (n, H, W, 3) in [0, 1], labels int32 (n, max_length))`` with plain numpy/cv2; it
depends only on (seed, start, n): a resumed run sees the same data in the same order. :func:`build_dataset`
wraps it with ``tf.data`` (parallel map, batch, prefetch) for the TensorFlow backend, computing the
batches in threads or, with ``workers``, in worker processes (:func:`process_batches`; the work is
mostly Python, so threads are held back by the GIL); :class:`BatchSequence` wraps the same function
as a ``keras.utils.PyDataset`` for JAX.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import pickle
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator, Sequence

import cv2
import numpy as np

from lprnet_tf.data.augment import Augmenter
from lprnet_tf.data.readers import DataError, Sample, load_image, read_samples
from lprnet_tf.runtime import fit_crop  # the one preprocessing rule, shared with the runtime
from lprnet_tf.vocab import PlateFormat

SYNTH_STREAM = 2**40  # length of an unbounded synthetic stream


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


def open_source(spec: str, fmt: PlateFormat, split: str | None = None, skip_bad: bool = False,
                verify_images: bool = True) -> SampleSource:
    """Open a data spec: ``synth[:SEED[:COUNT]]`` or a path any reader understands."""
    if spec.startswith("synth"):
        parts = spec.split(":")
        try:
            seed = int(parts[1]) if len(parts) > 1 and parts[1] else 0
            count = int(parts[2]) if len(parts) > 2 and parts[2] else None
        except ValueError:
            raise DataError(f"bad synthetic data spec '{spec}'; use synth, synth:SEED or synth:SEED:COUNT") from None
        return SynthSource(fmt, seed, count)
    samples, _ = read_samples(spec, fmt, skip_bad=skip_bad, verify_images=verify_images, split=split)
    return FileSource(samples)


def to_model_input(image: np.ndarray, fmt: PlateFormat) -> np.ndarray:
    """A uint8 RGB crop laid out at the format's H x W (uint8; two-row plates side by side); the
    runtime's rule (:func:`lprnet_tf.runtime.fit_crop`), shared."""
    return fit_crop(image, fmt)


class ExampleMaker:
    """Global sample indices -> batches for one source; numpy/cv2 only, shared by the tf.data and
    PyDataset paths. With ``shuffle`` a finite source is visited in a new permutation every pass.
    With ``permute`` > 0 each sample is, with that probability, replaced by a character-permuted
    version of itself (:mod:`lprnet_tf.data.permute`), decided by (seed, global index) only."""

    def __init__(self, source: SampleSource, fmt: PlateFormat, augment: str = "none", seed: int = 0,
                 shuffle: bool = False, permute: float = 0.0):
        self.source, self.fmt, self.seed, self.shuffle = source, fmt, int(seed), shuffle
        self.permute = float(permute)
        self.augment = Augmenter(augment)
        self.n = len(source)
        self._perm_cache: dict[int, np.ndarray] = {}

    def index(self, g: int) -> int:
        if not self.shuffle or isinstance(self.source, SynthSource):
            return g % self.n
        epoch, k = divmod(g, self.n)
        perm = self._perm_cache.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, 7, epoch]).permutation(self.n)
            self._perm_cache = {epoch: perm}
        return int(perm[k])

    def batch(self, start: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples ``start .. start+size-1`` -> (x (n, H, W, 3) float32 in [0, 1], y (n, L) int32)."""
        images, labels = [], []
        for g in range(int(start), int(start) + int(size)):
            if self.permute > 0:
                from lprnet_tf.data.permute import maybe_permute

                image, text = maybe_permute(self.source, self.index(g), self.fmt, self.permute, self.seed, g)
            else:
                image, text = self.source.get(self.index(g))
            images.append(to_model_input(image, self.fmt))
            labels.append(self.fmt.pad(self.fmt.encode(text)))
        images = self.augment(images, seed=self.seed * 1_000_003 + int(start))
        return np.stack(images).astype(np.float32) * (1.0 / 255.0), np.asarray(labels, np.int32)


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
                  slices: tuple[int, int, int] | None = None, permute: float = 0.0):
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
    ``permute``: character-permutation probability (:class:`ExampleMaker`).
    """
    import tensorflow as tf

    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    maker = ExampleMaker(source, fmt, augment, seed, shuffle, permute)
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
        signature = (tf.TensorSpec((None, fmt.height, fmt.width, 3), tf.float32),
                     tf.TensorSpec((None, fmt.max_length), tf.int32))
        ds = tf.data.Dataset.from_generator(
            lambda: process_batches(payload, map(span, range(n_batches)), workers), output_signature=signature)
        # No prefetch, neither ours nor the one tf.data injects by default: the workers already read
        # ahead, and a prefetch thread caught inside the generator when the interpreter exits with
        # an iterator still alive hangs the exit.
        options.experimental_optimization.inject_prefetch = False
        return ds.with_options(options)

    def mapped(b):
        x, y = tf.numpy_function(lambda b: maker.batch(*span(b)), [b], [tf.float32, tf.int32], stateful=False)
        x.set_shape((None, fmt.height, fmt.width, 3))
        y.set_shape((None, fmt.max_length))
        return x, y

    ds = tf.data.Dataset.range(n_batches).with_options(options)
    ds = ds.map(mapped, num_parallel_calls=parallel or tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_batch_sequence(source: SampleSource, fmt: PlateFormat, batch_size: int, steps: int,
                        augment: str = "none", shuffle: bool = False, seed: int = 0, start: int = 0,
                        workers: int = 1, permute: float = 0.0):
    """The same samples as :func:`build_dataset`, as a ``keras.utils.PyDataset`` (any backend)."""
    import keras

    maker = ExampleMaker(source, fmt, augment, seed, shuffle, permute)

    class BatchSequence(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, b):
            return maker.batch(start + b * batch_size, batch_size)

    return BatchSequence(workers=workers, use_multiprocessing=False)
