"""Saving, loading and locating models.

A model travels as a ``.keras`` file with ``plate_format.yaml`` beside it (a run directory, a
pretrained folder, or any folder). Writes are atomic (temp file + rename), so a crash never
leaves a half-written checkpoint in place; loads of a truncated or foreign file raise
:class:`ModelFileError` with the file name and the fix. Loading never uses ``safe_mode=False``.
"""

from __future__ import annotations

import os
import zipfile

import keras

from lprnet_tf.vocab import PlateFormat, load_plate_format

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
FORMAT_FILE = "plate_format.yaml"


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupt or does not fit the plate format."""


def _register_custom_objects():
    import lprnet_tf.layers  # noqa: F401  (registers the custom layers)
    import lprnet_tf.losses  # noqa: F401
    import lprnet_tf.optim  # noqa: F401


def save_model(model: keras.Model, path: str, fmt: PlateFormat | None = None) -> str:
    """Save ``model`` to ``path`` atomically; also write ``plate_format.yaml`` beside it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    tmp = path + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)
    if fmt is not None:
        fpath = os.path.join(os.path.dirname(os.path.abspath(path)), FORMAT_FILE)
        if not os.path.isfile(fpath):
            ftmp = fpath + ".tmp"
            fmt.save(ftmp)
            os.replace(ftmp, fpath)
    return path


def load_model(path: str, compile: bool = False) -> keras.Model:
    """Load a ``.keras`` file; corrupt or foreign files raise ModelFileError naming the file."""
    _register_custom_objects()
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: model file not found")
    if os.path.getsize(path) == 0 or not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a .keras archive (truncated or corrupt); use an earlier checkpoint "
                             f"from the run's checkpoints/ folder or re-export the model")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as e:  # keras raises many types for corrupt/foreign archives
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise ModelFileError(f"{path}: cannot load model ({msg}); the file is corrupt or was written by "
                             f"another model/version: use an earlier checkpoint or re-export it") from None


def pretrained_names() -> list[str]:
    if not os.path.isdir(PRETRAINED_DIR):
        return []
    return sorted(d for d in os.listdir(PRETRAINED_DIR) if os.path.isfile(os.path.join(PRETRAINED_DIR, d, "model.keras")))


def resolve_model(spec: str, fmt: str | PlateFormat | None = None) -> tuple[str, PlateFormat]:
    """Find the ``.keras`` file and plate format for a model spec.

    ``spec``: a ``.keras`` file, a run directory (its ``best.keras``, else ``last.keras``), a folder
    with ``model.keras``, or a shipped pretrained name (``cn_lprnet_basic``). The plate format is
    ``fmt`` if given, else the ``plate_format.yaml`` next to the model.
    """
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
    return model, pf, path


def check_model_format(model: keras.Model, fmt: PlateFormat, where: str = "model"):
    out = model.output_shape
    in_shape = model.input_shape
    if out[-1] != fmt.num_classes:
        raise ModelFileError(f"{where}: model outputs {out[-1]} classes but plate format '{fmt.name}' has "
                             f"{fmt.num_classes} (alphabet {len(fmt.alphabet)} + blank); use the format it was "
                             f"trained with")
    if tuple(in_shape[1:3]) != (fmt.height, fmt.width):
        raise ModelFileError(f"{where}: model input is {in_shape[1:3]} but plate format '{fmt.name}' says "
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
