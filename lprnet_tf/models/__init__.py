"""Model registry: ``build_model(model_cfg, plate_format)`` builds any model by name."""
from lprnet_tf.models.registry import MODELS, build_model, register_model

__all__ = ["MODELS", "build_model", "register_model"]
