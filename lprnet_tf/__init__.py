"""lprnet_tf: train, evaluate and deploy license-plate recognizers (LPRNet family)."""
__version__ = "0.1.0"
