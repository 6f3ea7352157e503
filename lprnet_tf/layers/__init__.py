"""Custom Keras layers (all registered serializable under the ``lprnet_tf`` package)."""
from lprnet_tf.layers.blocks import ChannelMaxPool, GlobalContext, SmallBasicBlock, conv_bn_relu
from lprnet_tf.layers.spatial_transformer import LocNet, affine_grid_sample, locnet_enabled, set_locnet_enabled

__all__ = ["ChannelMaxPool", "GlobalContext", "SmallBasicBlock", "conv_bn_relu", "LocNet",
           "affine_grid_sample", "locnet_enabled", "set_locnet_enabled"]

from lprnet_tf.layers.lowres import ResidualBlock, SlotDense  # noqa: E402  (multitask CNN, MTGAN)

__all__ += ["ResidualBlock", "SlotDense"]

from lprnet_tf.layers.iq_stan import AttentionDecoder, IQDeconvAttention, PatchQuality  # noqa: E402  (IQ-STAN)

__all__ += ["AttentionDecoder", "IQDeconvAttention", "PatchQuality"]
