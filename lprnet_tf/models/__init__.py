"""Model registry: ``build_model(model_cfg, plate_format)`` builds any model by name."""
from lprnet_tf.models.registry import MODEL_KINDS, MODELS, build_model, model_kind, register_model

__all__ = ["MODEL_KINDS", "MODELS", "build_model", "model_kind", "register_model"]
