"""Models are built by name from the ``model:`` section of an experiment config.

``register_model(name)`` decorates a builder ``fn(fmt, **options) -> keras.Model``; the plate format
gives the number of classes and the input size, the options come from the YAML.
"""

from __future__ import annotations

from typing import Callable

from lprnet_tf.config import ConfigError

MODELS: dict[str, Callable] = {}


def register_model(name: str):
    def deco(fn):
        MODELS[name] = fn
        return fn
    return deco


def build_model(name: str, fmt, **options):
    """Build model ``name`` for plate format ``fmt`` with the given options."""
    _load_builtin()
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; registered models: {sorted(MODELS)}")
    try:
        return MODELS[name](fmt, **options)
    except TypeError as e:
        raise ConfigError(f"model '{name}': bad option ({e}); check the model: section of the config") from None


def _load_builtin():
    from lprnet_tf.models import lprnet  # noqa: F401  (registers the LPRNet family)


@register_model("lprnet_basic")
def _basic(fmt, **kw):
    from lprnet_tf.models.lprnet import build_lprnet
    return build_lprnet(fmt.num_classes, fmt.height, fmt.width, variant="basic", **kw)


@register_model("lprnet_reduced")
def _reduced(fmt, **kw):
    from lprnet_tf.models.lprnet import build_lprnet
    return build_lprnet(fmt.num_classes, fmt.height, fmt.width, variant="reduced", **kw)


@register_model("lprnet_baseline")
def _baseline(fmt, **kw):
    from lprnet_tf.models.lprnet import build_lprnet
    return build_lprnet(fmt.num_classes, fmt.height, fmt.width, variant="baseline", **kw)
