import glob
import os

import pytest

from conftest import REPO
from lprnet_tf.config import ConfigError, config_from_dict, load_config


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "experiments", "*.yaml"))))
def test_every_experiment_loads_with_each_schedule(path):
    cfg = load_config(path)
    from lprnet_tf.vocab import load_plate_format

    load_plate_format(cfg.plate_format)
    for name in cfg.schedules:
        load_config(path, schedule=name)


def test_overrides_and_errors():
    cfg = config_from_dict({"name": "x"}, ["train.steps=12", "model.options={locnet: true}", "data.train=foo"])
    assert cfg.train.steps == 12 and cfg.model.options == {"locnet": True} and cfg.data.train == "foo"
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"name": "x", "trian": {}})
    with pytest.raises(ConfigError, match=r"train.steps: expected int"):
        config_from_dict({"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match="key=value"):
        config_from_dict({}, ["train.steps"])
    with pytest.raises(ConfigError, match="no schedule"):
        config_from_dict({}, schedule="gpu")
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        config_from_dict({"train": {"batch_size": 0}})


def test_split_of_synthetic_plates_is_refused(tiny_csv, br):
    """A split selects rows of a labelled set: with synthetic plates (data.train / data.val / a data.mix source,
    or open_source itself, as lprnet-evaluate --split calls it) it is refused by name instead of ignored."""
    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.data.readers import DataError

    for data, msg in (({"train": "synth:1", "train_split": "train"}, "data.train_split"),
                      ({"val": "synth:2:50", "val_split": "val"}, "data.val_split"),
                      ({"train": str(tiny_csv), "mix": [{"source": "synth:5", "weight": 0.3, "split": "train"}]},
                       r"data.mix\[0\].split")):
        with pytest.raises(ConfigError, match=msg + r".*synthetic plates, which have none"):
            config_from_dict({"plate_format": "br", "data": data})
    config_from_dict({"plate_format": "br", "data": {"train": "synth:1", "val": str(tiny_csv), "val_split": "val"}})
    with pytest.raises(DataError, match="synthetic plates, which have none: drop the split"):
        open_source("synth:3:4", br, split="val")
    assert len(open_source("synth:3:4", br)) == 4 and len(open_source(str(tiny_csv), br, split="val")) == 2
