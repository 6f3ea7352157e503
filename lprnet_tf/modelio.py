"""Saving, loading and locating models.

A model travels as a ``.keras`` file with ``plate_format.yaml`` beside it (a run directory, a
pretrained folder, or any folder). Writes are atomic (:func:`atomic_write`: a hidden temp file
``.tmp-NAME`` in the same folder, flushed to disk, then renamed over the target), so a crash or a
full disk never leaves a half-written file under the real name and never damages the previous
version; a failed write removes its temp file and raises :class:`ModelFileError` naming the file,
the OS reason and the fix. Loads of a truncated or foreign file raise :class:`ModelFileError` with
the file name and the fix. Loading never uses ``safe_mode=False``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import zipfile

import keras

from lprnet_tf.vocab import PlateFormat, load_plate_format

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
FORMAT_FILE = "plate_format.yaml"


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupt, does not fit the plate format, or cannot be written."""


TMP_PREFIX = ".tmp-"  # temp files are hidden and never match the names they stand in for (step_*.keras)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def temp_path(path: str) -> str:
    """The temp name :func:`atomic_write` uses for ``path`` (same folder, so the rename is atomic)."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, TMP_PREFIX + base)


def _fsync_dir(folder: str):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on this platform/file system: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, write) -> str:
    """Write ``path`` atomically: ``write(tmp)`` fills a temp file, which is fsynced and renamed.

    On any failure the temp file is removed and ``path`` keeps its previous content (or stays
    absent). An ``OSError`` (disk full, permissions, ...) becomes a :class:`ModelFileError` that
    names the file and the fix; other exceptions propagate unchanged.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = temp_path(path)
    try:
        os.makedirs(folder, exist_ok=True)
        write(tmp)
        with open(tmp, "rb+") as f:  # flush to disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_error(path, e, "could not be written", "the previous version of the file, if any, "
                              "is unchanged") from None
        raise
    return path


def write_error(path: str, e: OSError, what: str, kept: str) -> ModelFileError:
    """A ModelFileError for a failed write: the file, the OS reason, what is intact, and the fix."""
    fix = ("the disk is full: free space and retry" if e.errno in _DISK_FULL else
           "check the folder exists and is writable, then retry")
    return ModelFileError(f"{path}: {what} ({e.strerror or e}); {kept}; {fix} "
                          f"(a training run: then continue it with --resume)")


def copy_atomic(src: str, dst: str) -> str:
    """Copy ``src`` to ``dst`` with :func:`atomic_write`."""
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def remove_stale_temps(folder: str) -> list[str]:
    """Delete temp files left in ``folder`` by a killed writer; returns their paths.

    Only for folders a single writer owns (a run directory while its run is not running).
    """
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if name.startswith(TMP_PREFIX) and os.path.isfile(p):
            os.remove(p)
            removed.append(p)
    return removed


def _register_custom_objects():
    import lprnet_tf.layers  # noqa: F401  (registers the custom layers)
    import lprnet_tf.losses  # noqa: F401
    import lprnet_tf.optim  # noqa: F401
    import lprnet_tf.models.mtgan  # noqa: F401  (the MTGAN model class is registered serializable)
    import lprnet_tf.models.iq_stan  # noqa: F401  (the IQSTAN model class is registered serializable)
    import lprnet_tf.models.eq_lpr  # noqa: F401  (the EQ-LPR QualityNet class is registered serializable)


def save_model(model: keras.Model, path: str, fmt: PlateFormat | None = None) -> str:
    """Save ``model`` to ``path`` atomically; also write ``plate_format.yaml`` beside it."""
    if not path.endswith(".keras"):
        raise ModelFileError(f"{path}: a model file name must end with .keras")
    atomic_write(path, model.save)  # the temp name ends with .keras too, as model.save requires
    if fmt is not None:
        fpath = os.path.join(os.path.dirname(os.path.abspath(path)), FORMAT_FILE)
        if not os.path.isfile(fpath):
            atomic_write(fpath, fmt.save)
    return path


def check_archive(path: str) -> None:
    """Refuse a model file that is not a zip archive (empty, truncated, another kind of file)."""
    if os.path.getsize(path) == 0 or not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a .keras archive (truncated or corrupt); use an earlier checkpoint "
                             f"from the run's checkpoints/ folder or re-export the model")


def load_model(path: str, compile: bool = False) -> keras.Model:
    """Load a ``.keras`` file; corrupt or foreign files raise ModelFileError naming the file."""
    _register_custom_objects()
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: model file not found")
    check_archive(path)
    unsafe = unsafe_objects(path)
    if unsafe:
        raise ModelFileError(f"{path}: refused: unsafe model file: its config holds {', '.join(unsafe)} (Python "
                             f"code that loading would run); only models made of Keras and lprnet_tf layers are "
                             f"loaded (safe mode). Rebuild it without Lambda layers or foreign modules")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as e:  # keras raises many types for corrupt/foreign archives
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        if "safe_mode" in str(e) or "arbitrary code" in str(e):
            raise ModelFileError(f"{path}: refused: unsafe model file ({msg[:160]}); safe mode never runs code from "
                                 f"a model file. Rebuild it without Lambda layers") from None
        raise ModelFileError(f"{path}: cannot load model ({msg}); the file is corrupt or was written by "
                             f"another model/version: use an earlier checkpoint or re-export it") from None


SAFE_MODULES = ("keras", "lprnet_tf")  # the only Python packages a model's config may name
_UNSAFE_CLASSES = ("Lambda", "__lambda__")  # Python code (bytecode or a function reference) in the config
_MAX_CONFIG_BYTES = 64 << 20


def unsafe_objects(path: str) -> list[str]:
    """What in a ``.keras`` archive's ``config.json`` safe loading refuses: Lambda layers / Python
    lambdas and objects from modules outside :data:`SAFE_MODULES` (``builtins``, ``os``, ``__main__``,
    another package). Checked before Keras reads the file, on top of Keras' own ``safe_mode=True``.
    A corrupt archive raises ModelFileError."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("config.json") if "config.json" in z.namelist() else None
            if info is None:
                raise ModelFileError(f"{path}: not a Keras model archive (no config.json inside); pass a .keras "
                                     f"file written by model.save / lprnet-train")
            if info.file_size > _MAX_CONFIG_BYTES:
                raise ModelFileError(f"{path}: config.json inside is {info.file_size} bytes, not a model config")
            config = json.loads(z.read(info).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{path}: corrupt .keras archive ({e}); use an earlier checkpoint or re-export "
                             f"the model") from None
    found = set()
    stack = [config]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            cls, mod = o.get("class_name"), o.get("module")
            if cls in _UNSAFE_CLASSES:
                found.add(f"a {'Lambda layer' if cls == 'Lambda' else 'Python lambda'}")
            if isinstance(mod, str) and mod.split(".")[0] not in SAFE_MODULES:
                found.add(f"'{cls}' from module '{mod}'")
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return sorted(found)


def pretrained_names(kinds: tuple | None = None) -> list[str]:
    """Names of the shipped models; ``kinds``: only models of these kinds (:func:`lprnet_tf.models.model_kind`
    of the ``model.name`` in the folder's ``config.yaml``: ``ctc``, ``slot``, ``attn``, ``quality`` …)."""
    if not os.path.isdir(PRETRAINED_DIR):
        return []
    names = sorted(d for d in os.listdir(PRETRAINED_DIR) if os.path.isfile(os.path.join(PRETRAINED_DIR, d, "model.keras")))
    if kinds is None:
        return names
    import yaml

    from lprnet_tf.models import model_kind

    def kind(name):
        try:
            with open(os.path.join(PRETRAINED_DIR, name, "config.yaml"), encoding="utf-8") as f:
                return model_kind(((yaml.safe_load(f) or {}).get("model") or {}).get("name", ""))
        except OSError:
            return "ctc"
    return [n for n in names if kind(n) in kinds]


def model_file(spec: str) -> str:
    """The ``.keras`` file of a model spec: a ``.keras`` file, a run directory (its ``best.keras``,
    else ``last.keras``), a folder with ``model.keras``, or a shipped pretrained name."""
    path = spec
    if not os.path.exists(path) and os.path.isdir(os.path.join(PRETRAINED_DIR, spec)):
        path = os.path.join(PRETRAINED_DIR, spec)
    if os.path.isdir(path):
        for name in ("best.keras", "model.keras", "last.keras"):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise ModelFileError(f"{spec}: folder has no best.keras, model.keras or last.keras; "
                                 f"train first or pass a .keras file")
    elif not os.path.isfile(path):
        raise ModelFileError(f"{spec}: no such model file, run directory or pretrained model "
                             f"(pretrained: {pretrained_names()})")
    return path


def model_exists(spec: str | None) -> bool:
    """Whether a model spec (``.keras`` file, run directory, folder or shipped name) resolves to a file
    (:func:`model_file`); an empty spec does not."""
    if not spec:
        return False
    try:
        model_file(spec)
        return True
    except ModelFileError:
        return False


def resolve_model(spec: str, fmt: str | PlateFormat | None = None) -> tuple[str, PlateFormat]:
    """Find the ``.keras`` file (:func:`model_file`) and plate format for a model spec. The plate
    format is ``fmt`` if given, else the ``plate_format.yaml`` next to the model."""
    path = model_file(spec)
    if os.path.isfile(path):
        check_archive(path)  # a corrupt file is reported as such before a missing plate format is
    if fmt is None:
        fpath = os.path.join(os.path.dirname(os.path.abspath(path)), FORMAT_FILE)
        if not os.path.isfile(fpath):
            raise ModelFileError(f"{path}: no {FORMAT_FILE} beside the model; pass --format NAME")
        fmt = fpath
    return path, load_plate_format(fmt)


def load_for_inference(spec: str, fmt=None) -> tuple[keras.Model, PlateFormat, str]:
    """Resolve, load and check a model against its plate format -> (model, fmt, path)."""
    path, pf = resolve_model(spec, fmt)
    model = load_model(path)
    check_model_format(model, pf, path)
    saved = os.path.join(os.path.dirname(os.path.abspath(path)), FORMAT_FILE)
    if fmt is not None and os.path.isfile(saved):  # same class count is not enough: the characters must match
        trained = load_plate_format(saved)
        if trained.alphabet != pf.alphabet:
            raise ModelFileError(f"{path}: trained with plate format '{trained.name}' ({saved}), whose alphabet "
                                 f"differs from the given format '{pf.name}': class ids would decode as the wrong "
                                 f"characters; drop --format or pass one with the same alphabet")
    return model, pf, path


def check_architecture(model: keras.Model, expected: keras.Model, path: str, fix: str, shapes: bool = True):
    """Refuse a loaded ``model`` that is not the architecture of ``expected`` (a freshly built model
    from the config): another model name, or (``shapes``) layers missing or with other weight shapes."""
    if model.name != expected.name:
        raise ModelFileError(f"{path}: holds a {model.name} model but the config's model.name is {expected.name}; "
                             f"{fix}")
    if not shapes:
        return
    got = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in model.layers}
    want = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in expected.layers}
    diff = sorted(n for n in set(got) | set(want) if got.get(n) != want.get(n) and (got.get(n) or want.get(n)))
    if diff:
        raise ModelFileError(f"{path}: its {model.name} differs from the configured one in layer(s) {diff[:6]} "
                             f"(another alphabet or other model.options?); {fix}")


def input_shape_of(model: keras.Model) -> tuple:
    """``(H, W, channels)`` of one input sample: a multi-frame model (IQ-STAN) reads its K frames side
    by side ``(H, K * W, 3)``; a model wrapping a functional ``net`` (EQ-LPR quality networks) reads
    that net's input; a super-resolution GAN (MTGAN) reads low-resolution crops ``(H/2, W/2, 3)``."""
    if hasattr(model, "input_size"):
        return (*model.input_size, 3)
    if hasattr(model, "lr_shape"):
        return tuple(model.lr_shape)
    net = getattr(model, "net", None)
    return tuple((net if net is not None else model).input_shape[1:])


def model_io(model: keras.Model) -> tuple[tuple, int]:
    """``((H, W) of one crop, number of classes)`` of a recognizer; a multi-frame model (IQ-STAN)
    reads K crops of that size side by side; a quality network and an image-to-image model (DGM) have
    no classes (None); a super-resolution GAN (MTGAN) gives its HR size (the plate format's; it reads
    crops of half that size) and its recognition head's classes."""
    if hasattr(model, "frame_height"):
        return (model.frame_height, model.frame_width), model.num_classes
    if hasattr(model, "lr_shape"):  # MTGAN: LR (H/2, W/2) in, HR (H, W) = the plate format's size out
        return (model.height, model.width), model.num_classes
    if hasattr(model, "net"):  # an EQ-LPR quality network: one score per crop, no classes
        return input_shape_of(model)[:2], None
    from lprnet_tf.models import model_kind

    if model_kind(model) == "image":  # DGM: an image out, no classes
        return tuple(model.input_shape[1:3]), None
    return tuple(model.input_shape[1:3]), model.output_shape[-1]


def check_model_format(model: keras.Model, fmt: PlateFormat, where: str = "model"):
    in_hw, classes = model_io(model)
    if classes is not None and classes != fmt.num_classes:
        raise ModelFileError(f"{where}: model outputs {classes} classes but plate format '{fmt.name}' has "
                             f"{fmt.num_classes} (alphabet {len(fmt.alphabet)} + blank); use the format it was "
                             f"trained with")
    if in_hw != (fmt.height, fmt.width):
        raise ModelFileError(f"{where}: model input is {in_hw} but plate format '{fmt.name}' says "
                             f"{(fmt.height, fmt.width)}")


def transfer_weights(src: keras.Model, dst: keras.Model) -> tuple[int, list[str]]:
    """Copy weights layer by layer (same name and shapes). Returns (copied count, skipped names).

    Used for fine-tuning from another model: with a different alphabet the head's shapes differ,
    so the head stays freshly initialised and the backbone is kept.
    """
    src_layers = {layer.name: layer for layer in src.layers}
    copied, skipped = 0, []
    for layer in dst.layers:
        s = src_layers.get(layer.name)
        if s is None or not layer.weights:
            continue
        sw, dw = s.get_weights(), layer.get_weights()
        if len(sw) == len(dw) and all(a.shape == b.shape for a, b in zip(sw, dw)):
            layer.set_weights(sw)
            copied += 1
        else:
            skipped.append(layer.name)
    return copied, skipped


# the lowest kernel cosine between two models that may be averaged: checkpoints of one run and fine-tunes of one start
# measured 0.88-1.0; new heads drawn under two seeds 0.005-0.06; UZ fine-tunes of two CN bases 50,000 steps apart 0.13
# (LocNet fc2; their mean lost 8 points on the synthetic set)
_RELATED_COSINE = 0.5


def _unrelated_kernel(a: keras.Model, b: keras.Model) -> tuple | None:
    """(variable path, cosine) of the first kernel (a float variable of rank >= 2 and >= 64 values) whose values in
    models ``a`` and ``b`` (same architecture) have a cosine similarity below ``_RELATED_COSINE``, or None. Two
    fine-tunes of one set of weights keep every kernel close to where it started; a layer initialised at random
    in each (a new head under another seed) gives two independent directions, cosine near 0."""
    import numpy as np

    for va, vb in zip(a.weights, b.weights):
        if "float" not in str(va.dtype) or len(va.shape) < 2 or int(np.prod(va.shape)) < 64:
            continue
        x = np.ravel(np.asarray(va.numpy(), np.float64))
        y = np.ravel(np.asarray(vb.numpy(), np.float64))
        nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
        if nx == 0.0 or ny == 0.0:
            continue  # an all-zero kernel has no direction to compare
        cos = float(x @ y) / (nx * ny)
        if cos < _RELATED_COSINE:
            return vb.path, cos
    return None


def average_models(paths: list, names: list | None = None) -> keras.Model:
    """The mean of the weights of several checkpoints of one run (checkpoint averaging), or of several
    fine-tunes of one base (a uniform model soup, ``lprnet-package --soup``).

    ``paths`` are model files or already loaded models (``names``: what errors call them; default the paths). The
    last one's model is kept and its float variables -- trainable weights and the BatchNorm moving statistics
    alike -- are replaced by the element-wise mean over all of them; integer and bool variables (counters, seeds)
    keep the last one's values. Every model must have the same architecture (same variable paths and shapes), else
    ModelFileError names the first difference; so does a model whose weights do not start from the same ones as
    the last's (a kernel pointing another way, :func:`_unrelated_kernel`: a soup of fine-tunes whose re-initialised
    heads were drawn under different seeds reads almost nothing). Averaging the last few checkpoints of a run at a
    constant learning rate evens out the step-to-step swing of what the weights read (used for ``cn_lprnet_basic``,
    see its README).
    """
    import numpy as np

    if not paths:
        raise ModelFileError("average_models: no checkpoint given")
    if names is not None and len(names) != len(paths):
        raise ValueError(f"average_models: {len(names)} names for {len(paths)} models")
    models = [load_model(p, compile=False) if isinstance(p, (str, os.PathLike)) else p for p in paths]
    paths = list(names) if names is not None else [
        p if isinstance(p, (str, os.PathLike)) else f"model {i + 1} of {len(paths)}" for i, p in enumerate(paths)]
    last = models[-1]
    ref = [tuple(v.shape) for v in last.weights]  # in order (variable paths get per-load counters)
    for p, m in zip(paths, models):
        got = [tuple(v.shape) for v in m.weights]
        if m.name != last.name or got != ref:
            i = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), min(len(got), len(ref)))
            where = last.weights[i].path if i < len(ref) else "the variable count"
            raise ModelFileError(f"{p}: not the architecture of {paths[-1]} ({m.name} vs {last.name}, first "
                                 f"difference at {where}); average checkpoints of one run or fine-tunes of one base")
    for p, m in zip(paths[:-1], models[:-1]):
        low = _unrelated_kernel(m, last)
        if low is not None:
            raise ModelFileError(
                f"{p}: its weights do not start from the same weights as {paths[-1]} ({low[0]} points another way: "
                f"cosine {low[1]:.2f} between the two, where checkpoints of one run or fine-tunes of one base score "
                f"above {_RELATED_COSINE}), so their mean is neither model (two BR fine-tunes whose new heads were "
                f"drawn under two seeds averaged to a model reading 4 % of what each read). Average checkpoints of one "
                f"run, or soup fine-tunes that start from the same weights: the same train.init_from and, where "
                f"init_from re-initialises layers (another alphabet's head), the same train.seed")
    for i, v in enumerate(last.weights):
        if "float" not in str(v.dtype):
            continue
        v.assign(np.mean([np.asarray(m.weights[i].numpy(), np.float64) for m in models], axis=0).astype(v.dtype))
    return last
