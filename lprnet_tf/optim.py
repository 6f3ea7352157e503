"""Optimizer of the paper's recipe (``lprnet.md`` §3.2): Adam, lr 1e-3 dropped x0.1 every 100k
steps, with gradient noise of scale 0.001.

Gradient noise follows Neelakantan et al. (2015), the usual reading of "gradient noise scale":
Gaussian noise with variance ``eta / (1 + t) ** 0.55`` is added to every gradient at step t.
"""

from __future__ import annotations

import keras
from keras import ops


_NOISE_STRIDE = 1024  # seed-state stride per step: room for 1,024 gradient draws a step


@keras.saving.register_keras_serializable(package="lprnet_tf")
class NoisyAdam(keras.optimizers.Adam):
    """Adam with annealed Gaussian gradient noise (``noise_eta`` = 0 turns it off)."""

    def __init__(self, noise_eta: float = 1e-3, noise_gamma: float = 0.55, noise_seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.noise_eta = float(noise_eta)
        self.noise_gamma = float(noise_gamma)
        self.noise_seed = int(noise_seed)
        self._noise_gen = keras.random.SeedGenerator(self.noise_seed) if self.noise_eta > 0 else None

    def apply(self, grads, trainable_variables=None):
        if self._noise_gen is not None:
            t = ops.cast(self.iterations, "float32")
            std = ops.sqrt(self.noise_eta / ops.power(1.0 + t, self.noise_gamma))
            # Under tf.distribute each of the N replicas draws the same noise (same seed state) and
            # adds it before the gradients are summed: add 1/N of it so the sum carries it once.
            std = std / _replicas_in_sync()
            # The noise of step t is a function of (noise_seed, t): the generator's state is set from the
            # step counter before the draws (the k-th gradient draws with state [seed, t * STRIDE + k]).
            # The counter is an optimizer variable, so this holds where the generator's own state is not
            # carried between steps (JAX's jitted stateless step: its state, untracked by the optimizer,
            # was a constant there, which added the same noise every step and drifted the weights) and
            # after a resume (the state is not checkpointed; the counter is).
            if len(grads) >= _NOISE_STRIDE:
                raise ValueError(f"gradient noise supports fewer than {_NOISE_STRIDE} gradients, got {len(grads)}")
            state = self._noise_gen.state
            t_seed = ops.cast(self.iterations, state.dtype) * ops.cast(_NOISE_STRIDE, state.dtype)
            state.assign(ops.stack([ops.cast(self.noise_seed, state.dtype), t_seed]))
            grads = [g if g is None else g + ops.cast(std, g.dtype) * keras.random.normal(
                ops.shape(g), dtype=g.dtype, seed=self._noise_gen) for g in grads]
        return super().apply(grads, trainable_variables)

    def get_config(self):
        return {**super().get_config(), "noise_eta": self.noise_eta, "noise_gamma": self.noise_gamma,
                "noise_seed": self.noise_seed}


def _replicas_in_sync() -> int:
    """Replicas whose gradients the optimizer sums (tf.distribute); 1 outside a strategy."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    return ctx.num_replicas_in_sync if ctx is not None else 1


def make_optimizer(train_cfg) -> NoisyAdam:
    """Adam + step decay + gradient noise (+ optional EMA) from a :class:`TrainConfig`."""
    lr = keras.optimizers.schedules.ExponentialDecay(
        train_cfg.learning_rate, decay_steps=train_cfg.lr_decay_steps,
        decay_rate=train_cfg.lr_decay_factor, staircase=True)
    return NoisyAdam(learning_rate=lr, noise_eta=train_cfg.gradient_noise, noise_seed=train_cfg.seed,
                     use_ema=train_cfg.ema, ema_momentum=0.999)
