"""Experiment configuration: frozen dataclasses loaded from YAML and validated.

Unknown keys and wrong types are errors that name the key. ``--set train.steps=500`` style
overrides and named ``schedules`` (``paper``, ``cpu``: dotted-key overrides inside the YAML) are
applied on top; the resolved config is written to the run directory.
"""

from __future__ import annotations

import dataclasses
import os
import typing

import yaml

from lprnet_tf.vocab import read_yaml


class ConfigError(ValueError):
    """An experiment config is invalid; the message names the key and the fix."""


class UsageError(ValueError):
    """A command was called wrongly (missing or contradictory flags); the message says how to call it."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "lprnet_basic"
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    train: str = "synth:0"  # synth[:SEED[:COUNT]] or a path any reader understands
    train_split: str = ""  # rows of this split when train is a CSV with a split column
    # mix: more training sources drawn from in fixed proportions, a list of {source, weight[, split, plate_format]}
    # (e.g. [{source: "synth:5", weight: 0.3}]: 30 % synthetic plates); train gets 1 - the sum of the weights
    mix: list = dataclasses.field(default_factory=list)
    val: str = "synth:1000003:512"  # held-apart synthetic set (another seed) or a path
    val_split: str = ""
    augment: str = "full"  # none | light | full
    permute: float = 0.0  # probability of a character-permuted sample (multitask-lowres-lpr.md §2.2)
    # loose_crops > 0: half the training crops made looser than their box, each side extended by up to this many
    # crop heights (edges repeated or mirrored; lprnet_tf.data.augment.loosen), for detectors with loose boxes
    loose_crops: float = 0.0
    skip_bad: bool = False
    workers: int = 0  # training batches made in this many worker processes (any backend); 0 = threads
    frames: int = 0  # K > 0: the sources are tracklets of K frames (multi-frame models, e.g. iq_stan)
    track_policy: str = "error"  # tracks shorter than K: error | skip | repeat | pad_last
    # lowres: (HR, LR) pairs of every crop, for the image-to-image and GAN models (dgm, mtgan); the LR crop
    # is area-downscaled (lprnet_tf.data.lowres) to a crop height drawn per sample from lr_heights
    pairs: str = ""
    lr_heights: list = dataclasses.field(default_factory=lambda: [8, 12, 16])
    # lowres > 0: that fraction of a recognizer's training crops replaced by low-resolution versions
    # (heights from lr_heights), made by degrader: area | bicubic | bilinear (plain downsampling) or a
    # trained DGM (.keras file, run directory or shipped name); lprnet_tf.data.lowres.Degrader
    lowres: float = 0.0
    degrader: str = "bicubic"
    # super_resolve: an MTGAN (.keras file, run directory or shipped name); every training crop of a
    # recognizer (after lowres) goes through its generator, as lprnet-recognize --sr does at inference
    super_resolve: str = ""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32
    steps: int = 250_000
    learning_rate: float = 1e-3
    lr_decay_steps: int = 100_000  # lr x lr_decay_factor every lr_decay_steps
    lr_decay_factor: float = 0.1
    gradient_noise: float = 1e-3  # eta of the annealed Gaussian gradient noise; 0 disables
    locnet_start_step: int = 5_000  # LocNet gate switches on at this step (if the model has one)
    eval_every: int = 1_000  # steps per "epoch": validation + checkpoint
    keep_checkpoints: int = 3
    mixed_precision: bool = False
    ema: bool = False
    seed: int = 0
    init_from: str = ""  # .keras file / run dir / shipped model name to start from
    backend_workers: int = 2  # PyDataset workers on non-TF backends
    steps_per_execution: int = 1  # train steps per compiled call (less Python overhead per step)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    plate_format: str = "cn"
    description: str = ""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    schedules: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _from_dict(cls, d, where: str):
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{where or 'the file'}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(d) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} {'in section ' + repr(where) if where else 'at the top level'}; "
                          f"allowed: {sorted(fields)} (check the spelling)")
    kw = {}
    for k, v in d.items():
        t = hints[k]
        key = f"{where}.{k}" if where else k
        if dataclasses.is_dataclass(t):
            kw[k] = _from_dict(t, v, key)
            continue
        if t is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if t is str and v is None:
            v = ""
        if not isinstance(v, t) or (t in (int, float) and isinstance(v, bool)):
            raise ConfigError(f"{key}: expected {t.__name__}, got {type(v).__name__} ({v!r})")
        kw[k] = v
    return cls(**kw)


def _set_dotted(d: dict, key: str, value, where: str):
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{where}: '{key}': '{p}' is not a section")
        cur = nxt
    cur[parts[-1]] = value


def parse_override(item: str):
    """``'train.steps=500'`` -> ('train.steps', 500) (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key=value (e.g. train.steps=500)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str, overrides: typing.Sequence[str] = (), schedule: str | None = None) -> ExperimentConfig:
    """Load and validate an experiment YAML, then apply a named schedule and ``key=value`` overrides."""
    raw = read_yaml(path, ConfigError, "shipped experiments are in configs/experiments/")
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else type(raw).__name__
        raise ConfigError(f"{path}: an experiment config must be a mapping, got {got}; start from one in "
                          f"configs/experiments/")
    return config_from_dict(raw, overrides, schedule, where=path)


def config_from_dict(raw: dict, overrides=(), schedule: str | None = None, where: str = "<config>") -> ExperimentConfig:
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy
    if schedule:
        scheds = raw.get("schedules") or {}
        if schedule not in scheds:
            raise ConfigError(f"{where}: no schedule '{schedule}'; this config has {sorted(scheds)}")
        for k, v in (scheds[schedule] or {}).items():
            _set_dotted(raw, k, v, where)
    base = yaml.safe_load(yaml.safe_dump(raw)) if overrides else None
    for item in overrides:
        k, v = parse_override(item)
        _set_dotted(raw, k, v, f"--set {item}")
    try:
        return _parse_config(raw, where)
    except ConfigError as e:
        if not overrides:
            raise
        error = e
    # name the --set that broke a config which is valid without it (not the file, which is fine)
    try:
        _parse_config(base, where)
    except ConfigError:
        raise error from None
    for item in overrides:
        k, v = parse_override(item)
        _set_dotted(base, k, v, f"--set {item}")
        try:
            _parse_config(base, "")
        except ConfigError as e:
            raise ConfigError(f"--set {item}: {str(e).removeprefix(': ')}") from None
    raise error  # not reached: the loop meets the failing override


def _parse_config(raw: dict, where: str) -> ExperimentConfig:
    try:
        cfg = _from_dict(ExperimentConfig, raw, "")
    except ConfigError as e:  # name the file (the messages above name the key)
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None
    _check_values(cfg, where)
    return cfg


def _check_values(cfg: ExperimentConfig, where: str):
    t = cfg.train
    for key, v in (("train.batch_size", t.batch_size), ("train.steps", t.steps), ("train.eval_every", t.eval_every),
                   ("train.lr_decay_steps", t.lr_decay_steps), ("train.keep_checkpoints", t.keep_checkpoints)):
        if v < 1:
            raise ConfigError(f"{where}: {key} must be >= 1, got {v}")
    if t.steps_per_execution < 1 or t.eval_every % t.steps_per_execution:
        raise ConfigError(f"{where}: train.eval_every ({t.eval_every}) must be a multiple of "
                          f"train.steps_per_execution ({t.steps_per_execution})")
    if t.learning_rate <= 0:
        raise ConfigError(f"{where}: train.learning_rate must be > 0, got {t.learning_rate}")
    if cfg.data.augment not in ("none", "light", "full"):
        raise ConfigError(f"{where}: data.augment must be none, light or full, got '{cfg.data.augment}'")
    if not 0.0 <= cfg.data.permute <= 1.0:
        raise ConfigError(f"{where}: data.permute is a probability in [0, 1], got {cfg.data.permute}")
    if not 0.0 <= cfg.data.loose_crops <= 1.0:
        raise ConfigError(f"{where}: data.loose_crops is a margin per side in crop heights, in [0, 1] (e.g. 0.4), "
                          f"got {cfg.data.loose_crops}")
    if cfg.data.frames < 0:
        raise ConfigError(f"{where}: data.frames is the number of frames K of a tracklet (0 = single crops), "
                          f"got {cfg.data.frames}")
    if cfg.data.track_policy not in ("error", "skip", "repeat", "pad_last"):
        raise ConfigError(f"{where}: data.track_policy must be error, skip, repeat or pad_last, "
                          f"got '{cfg.data.track_policy}'")
    if cfg.data.pairs not in ("", "lowres"):
        raise ConfigError(f"{where}: data.pairs must be lowres (HR/LR pairs for dgm and mtgan) or empty, "
                          f"got '{cfg.data.pairs}'")
    if not cfg.data.lr_heights or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                                          for h in cfg.data.lr_heights):
        raise ConfigError(f"{where}: data.lr_heights is a list of LR crop heights in pixels (e.g. [8, 12, 16]), "
                          f"got {cfg.data.lr_heights!r}")
    if not 0.0 <= cfg.data.lowres <= 1.0:
        raise ConfigError(f"{where}: data.lowres is the fraction of training crops made low-resolution, in [0, 1]; "
                          f"got {cfg.data.lowres}")
    if cfg.data.lowres:
        if cfg.data.pairs or cfg.data.frames:
            raise ConfigError(f"{where}: data.lowres degrades single training crops of a recognizer; remove it or "
                              f"data.pairs / data.frames")
        from lprnet_tf.data.lowres import INTERPOLATIONS
        from lprnet_tf.modelio import ModelFileError, model_file

        if cfg.data.degrader not in INTERPOLATIONS:
            try:
                model_file(cfg.data.degrader)
            except ModelFileError as e:
                raise ConfigError(f"{where}: data.degrader must be {' | '.join(INTERPOLATIONS)} or a trained DGM "
                                  f"(train one with configs/experiments/dgm_*.yaml): {e}") from None
    if cfg.data.super_resolve and (cfg.data.pairs or cfg.data.frames):
        raise ConfigError(f"{where}: data.super_resolve feeds a recognizer the MTGAN's output for single crops; "
                          f"remove it or data.pairs / data.frames")
    if cfg.data.pairs and cfg.data.frames:
        raise ConfigError(f"{where}: data.pairs makes HR/LR pairs of single crops; set data.frames: 0")
    if cfg.data.workers < 0:
        raise ConfigError(f"{where}: data.workers must be >= 0 (0 = threads), got {cfg.data.workers}")
    from lprnet_tf.data.pipeline import synthetic_split_error

    for key in ("train", "val"):
        refusal = synthetic_split_error(getattr(cfg.data, key), getattr(cfg.data, f"{key}_split"), f"data.{key}_split")
        if refusal:
            raise ConfigError(f"{where}: {refusal}")
    from lprnet_tf.models import MODELS, model_kind  # light: the builders import keras only when they build
    from lprnet_tf.vocab import PlateFormatError, load_plate_format

    if cfg.model.name not in MODELS:
        raise ConfigError(f"{where}: model.name: unknown model '{cfg.model.name}'; registered models: {sorted(MODELS)}")
    kind = model_kind(cfg.model.name)
    if kind in ("image", "gan") and cfg.data.pairs != "lowres":
        raise ConfigError(f"{where}: model {cfg.model.name} is an {kind!r} model trained on (HR, LR) pairs of each "
                          f"crop; set data.pairs: lowres")
    if kind not in ("image", "gan") and cfg.data.pairs:
        raise ConfigError(f"{where}: data.pairs is for the image-to-image and GAN models (dgm, mtgan); remove it "
                          f"for {cfg.model.name}")
    try:
        fmt = load_plate_format(cfg.plate_format)
    except PlateFormatError as e:
        raise ConfigError(f"{where}: plate_format: {e}") from None
    _check_mix(cfg.data.mix, cfg.data.frames, where, fmt)


def _check_mix(mix: list, frames: int, where: str, fmt):
    """``data.mix``: a list of ``{source: spec, weight: (0, 1), split: name, plate_format: variant}`` whose
    weights leave the main source a share > 0 and whose formats keep the alphabet and layout of ``fmt``, the
    run's (loaded) plate format."""
    example = "e.g. mix: [{source: 'synth:5', weight: 0.3}]"
    if mix and frames:
        raise ConfigError(f"{where}: data.mix mixes single crops; remove it or data.frames")
    from lprnet_tf.data.pipeline import synthetic_split_error

    total = 0.0
    for i, m in enumerate(mix):
        key = f"data.mix[{i}]"
        if not isinstance(m, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping with source and weight ({example}), got {m!r}")
        unknown = sorted(set(m) - {"source", "weight", "split", "plate_format"}, key=str)
        if unknown:
            raise ConfigError(f"{where}: {key}: unknown key(s) {unknown}; allowed: source, weight, split, "
                              f"plate_format")
        if not isinstance(m.get("source"), str) or not m["source"]:
            raise ConfigError(f"{where}: {key}.source: a data spec (synth:SEED or a path) is required ({example})")
        w = m.get("weight")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 < w < 1.0:
            raise ConfigError(f"{where}: {key}.weight: the share of training samples from this source, in (0, 1); "
                              f"got {w!r}")
        if not isinstance(m.get("split", ""), (str, type(None))):
            raise ConfigError(f"{where}: {key}.split: expected a split name, got {m['split']!r}")
        refusal = synthetic_split_error(m["source"], m.get("split"), f"{key}.split")
        if refusal:
            raise ConfigError(f"{where}: {refusal}")
        if "plate_format" in m:
            from lprnet_tf.data.pipeline import mix_format
            from lprnet_tf.data.readers import DataError

            if not isinstance(m["plate_format"], str) or not m["plate_format"]:
                raise ConfigError(f"{where}: {key}.plate_format: a format name or YAML path, e.g. "
                                  f"configs/variants/cn_province_warp.yaml; got {m['plate_format']!r}")
            try:
                mix_format(m, fmt)  # loads it (its errors become DataError) and compares it with the run's
            except DataError as e:
                raise ConfigError(f"{where}: {key}.plate_format: {e}") from None
        total += float(w)
    if mix and total >= 1.0:
        raise ConfigError(f"{where}: data.mix weights sum to {total:g}; they must leave data.train a share "
                          f"(sum < 1)")


def save_config(cfg: ExperimentConfig, path: str):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg.to_dict(), f, allow_unicode=True, sort_keys=False)
    os.replace(tmp, path)


def check_model_inputs(cfg: ExperimentConfig):
    """Models a run reads besides its own that are made by other runs, checked when training starts (not
    when the config loads: the config of an experiment stays valid before its inputs are trained):
    ``data.super_resolve`` must name an existing MTGAN (``.keras`` file, run directory or shipped name)."""
    if cfg.data.super_resolve:
        from lprnet_tf.modelio import ModelFileError, model_file

        try:
            model_file(cfg.data.super_resolve)
        except ModelFileError as e:
            raise ConfigError(f"data.super_resolve must be a trained MTGAN (train one first with "
                              f"lprnet-train --config configs/experiments/mtgan_*.yaml): {e}") from None
