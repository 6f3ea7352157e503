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
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; registered models: {sorted(MODELS)}")
    try:
        return MODELS[name](fmt, **options)
    except TypeError as e:
        raise ConfigError(f"model '{name}': bad option ({e}); check the model: section of the config") from None


def _lprnet_builder(variant: str):
    def build(fmt, **kw):
        from lprnet_tf.models.lprnet import build_lprnet  # lazy: keras is loaded on first build

        return build_lprnet(fmt.num_classes, fmt.height, fmt.width, variant=variant, **kw)
    return build


for _variant in ("basic", "reduced", "baseline"):  # lprnet.md Table 4
    register_model(f"lprnet_{_variant}")(_lprnet_builder(_variant))
