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
