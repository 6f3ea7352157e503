"""Models are built by name from the ``model:`` section of an experiment config.

``register_model(name)`` decorates a builder ``fn(fmt, **options) -> keras.Model``; the plate format
gives the number of classes and the input size, the options come from the YAML.
"""

from __future__ import annotations

from typing import Callable

from lprnet_tf.config import ConfigError

MODELS: dict[str, Callable] = {}
# What a model outputs, which decides its loss and decoder: "ctc" (logits (B, T, C), CTC loss and
# decoders), "slot" (one class per character slot (B, S, C), class 0 = no character; per-slot
# cross-entropy, arg-max per slot), "image" (an image-to-image model), "gan" (a model with its own
# adversarial train_step), "attn" (a multi-frame attention-decoder model computing its own loss:
# IQ-STAN; logits (B, S, C) with class 0 = end of plate), "quality" (a crop -> quality score network
# learning a recognizer's confidence, computing its own loss: EQ-LPR).
MODEL_KINDS: dict[str, str] = {}
KINDS = ("ctc", "slot", "image", "gan", "attn", "quality")


def register_model(name: str, kind: str = "ctc"):
    if kind not in KINDS:
        raise ValueError(f"model kind must be one of {KINDS}, got {kind!r}")

    def deco(fn):
        MODELS[name] = fn
        MODEL_KINDS[name] = kind
        return fn
    return deco


def model_kind(model_or_name) -> str:
    """The kind of a registered model name or of a built/loaded model (looked up by its name, which
    is the registered name); unregistered names are CTC models."""
    name = model_or_name if isinstance(model_or_name, str) else getattr(model_or_name, "name", "")
    return MODEL_KINDS.get(name, "ctc")


def build_model(name: str, fmt, *, options_from: str = "the model: section of the config", **options):
    """Build model ``name`` for plate format ``fmt`` with the given options. An unknown option or a value the
    model refuses raises ConfigError naming the model and ``options_from`` (where the options came from)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; registered models: {sorted(MODELS)}")
    try:
        return MODELS[name](fmt, **options)
    except ConfigError:
        raise
    except TypeError as e:
        raise ConfigError(f"model '{name}': bad option ({e}); check {options_from}") from None
    except ValueError as e:
        raise ConfigError(f"model '{name}': {e}; check {options_from}") from None


def _lprnet_builder(variant: str):
    def build(fmt, **kw):
        from lprnet_tf.models.lprnet import build_lprnet  # lazy: keras is loaded on first build

        return build_lprnet(fmt.num_classes, fmt.height, fmt.width, variant=variant, **kw)
    return build


for _variant in ("basic", "reduced", "baseline"):  # lprnet.md Table 4
    register_model(f"lprnet_{_variant}")(_lprnet_builder(_variant))


@register_model("multitask_cnn", kind="slot")
def _multitask_cnn(fmt, **kw):
    """multitask-lowres-lpr.md Table 1: one slot per character of ``max_length``, input from the format."""
    from lprnet_tf.models.multitask_cnn import build_multitask_cnn

    return build_multitask_cnn(fmt.num_classes, fmt.max_length, fmt.height, fmt.width, **kw)


@register_model("dgm", kind="image")
def _dgm(fmt, **kw):
    """multitask-lowres-lpr.md Fig. 2: HR -> LR autoencoder at the format's input size."""
    from lprnet_tf.models.dgm import build_dgm

    return build_dgm(fmt.height, fmt.width, **kw)


@register_model("mtgan", kind="gan")
def _mtgan(fmt, **kw):
    """mtgan.md: HR = the format's H x W, LR = half of it; recognition head with ``max_length`` slots."""
    from lprnet_tf.models.mtgan import MTGAN

    return MTGAN(fmt.num_classes, fmt.max_length, fmt.height, fmt.width, name="mtgan", **kw)


@register_model("iq_stan", kind="attn")
def _iq_stan(fmt, **kw):
    """iq-stan.md Fig. 2: K frames (option ``frames``, 5) of the format's H x W side by side."""
    from lprnet_tf.models.iq_stan import build_iq_stan

    return build_iq_stan(fmt.num_classes, fmt.max_length, fmt.height, fmt.width, **kw)


def _eq_lpr_builder(variant: str):
    def build(fmt, recognizer: str = "", **kw):
        """eq-lpr.md Fig. 2: quality network ``variant`` for ``recognizer`` (required), at the format's size."""
        from lprnet_tf.models.eq_lpr import QualityNet

        if not recognizer:
            raise ConfigError(f"model 'eq_lpr_{variant}': set model.options.recognizer to the recognizer whose "
                              f"confidence it learns (a shipped name such as cn_lprnet_basic, a run dir or .keras)")
        return QualityNet(variant, recognizer, fmt.height, fmt.width, name=f"eq_lpr_{variant}", **kw)
    return build


for _variant in ("p", "s", "e"):  # eq-lpr.md Fig. 2 (a), (b), (c)
    register_model(f"eq_lpr_{_variant}", kind="quality")(_eq_lpr_builder(_variant))
