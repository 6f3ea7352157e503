"""Distributed training (tf.distribute custom loop), the JAX backend, and determinism.

Every run is a subprocess: logical CPU devices and MultiWorkerMirroredStrategy must be set up before
TensorFlow starts, and JAX needs its own backend. Tiny configs: lprnet_reduced, batch 8, 2-4 steps.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import REPO

TINY = {
    "name": "tiny", "plate_format": "cn",
    "model": {"name": "lprnet_reduced", "options": {"dropout": 0.0}},
    "data": {"train": "synth:0", "val": "synth:99:8", "augment": "full"},
    "train": {"batch_size": 8, "steps": 2, "eval_every": 1, "keep_checkpoints": 2, "seed": 0},
}
TIMEOUT = 420


def env(**extra):
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")]), TF_CPP_MIN_LOG_LEVEL="2")
    e.pop("TF_CONFIG", None)
    e.update(extra)
    return e


def write_config(tmp_path, cfg=TINY, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return str(path)


def train_cmd(config, run_dir, *flags):
    return [sys.executable, os.path.join(REPO, "train.py"), "--config", config, "--run_dir", str(run_dir), "--quiet",
            *flags]


def metrics(run_dir):
    return [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8")]


def tail(r):
    return (r.stderr or "")[-3000:]


def reference_first_loss(cfg_dict, parts: int) -> float:
    """The first-step loss of a run whose global batch is cut into ``parts`` replica slices, computed
    on one device: the same initial weights (same builder and seed), each slice's CTC mean in
    training mode (batch norm uses the slice's statistics, as a replica does), averaged."""
    import keras

    from lprnet_tf.config import config_from_dict
    from lprnet_tf.data.pipeline import ExampleMaker, open_source
    from lprnet_tf.losses import CTCLoss
    from lprnet_tf.training import build_training_model
    from lprnet_tf.vocab import load_plate_format

    cfg = config_from_dict(cfg_dict)
    fmt = load_plate_format(cfg.plate_format)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        keras.utils.set_random_seed(cfg.train.seed)
        model = build_training_model(cfg, fmt)
        maker = ExampleMaker(open_source(cfg.data.train, fmt), fmt, cfg.data.augment, cfg.train.seed, shuffle=True)
        size = cfg.train.batch_size // parts
        losses = []
        for k in range(parts):
            x, y = maker.batch(k * size, size)
            losses.append(float(np.mean(keras.ops.convert_to_numpy(CTCLoss().call(y, model(x, training=True))))))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return float(np.mean(losses))


def read_weights(path):
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_weights(a_path, b_path):
    a, b = read_weights(a_path), read_weights(b_path)
    assert len(a) > 50 and sorted(a) == sorted(b)
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differ, f"workers disagree on {differ[:5]}"


# ---- MirroredStrategy ---------------------------------------------------------------------------
def test_mirrored_two_cpu_replicas_trains_and_checkpoints(tmp_path):
    run = tmp_path / "run"
    r = subprocess.run(train_cmd(write_config(tmp_path), run, "--strategy", "mirrored", "--cpu_replicas", "2"),
                       capture_output=True, text=True, env=env(), timeout=TIMEOUT)
    assert r.returncode == 0, tail(r)
    assert "MirroredStrategy, 1 worker(s), 2 replica(s), 4 samples per replica" in r.stderr
    recs = metrics(run)
    assert [m["step"] for m in recs] == [1, 2]
    assert all(np.isfinite(m["loss"]) and m["loss"] > 0 for m in recs)
    for f in ("last.keras", "best.keras", "state.json", "config.yaml", "checkpoints/step_00000001.keras",
              "checkpoints/step_00000002.keras"):
        assert (run / f).is_file(), f
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 2 and state["strategy"] == {"name": "MirroredStrategy", "workers": 1, "replicas": 2}

    from lprnet_tf.modelio import load_model

    model = load_model(str(run / "last.keras"), compile=True)
    assert int(model.optimizer.iterations.numpy()) == 2
    logits = model.predict_on_batch(np.zeros((2, 24, 94, 3), np.float32))
    assert logits.shape[:2] == (2, 18) and np.isfinite(logits).all()
    # Step 1 on 2 replicas is step 1 of a single-device run on the same 8 samples, each replica
    # taking its half (its own batch-norm statistics): this pins the data slices and loss scaling.
    np.testing.assert_allclose(recs[0]["loss"], reference_first_loss(TINY, parts=2), rtol=1e-4)


MIRRORED_CHECKS = r"""
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np

from lprnet_tf.data.pipeline import SynthSource, build_dataset
from lprnet_tf.optim import NoisyAdam
from lprnet_tf.vocab import load_plate_format

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {}

# 1. the replicas' slices of a step are the single-device batch of that step, in order
fmt = load_plate_format("cn")
src = SynthSource(fmt, seed=4)
kw = dict(augment="none", shuffle=True, seed=4, start=16, repeat=True, drop_remainder=True)
whole = list(build_dataset(src, fmt, 8, **kw).take(2).as_numpy_iterator())
dist = strategy.distribute_datasets_from_function(
    lambda ctx: build_dataset(src, fmt, 8, slices=(0, 2, 2), **kw))
it = iter(dist)
same = []
for x_all, y_all in whole:
    xs, ys = next(it)
    x = np.concatenate([t.numpy() for t in strategy.experimental_local_results(xs)])
    y = np.concatenate([t.numpy() for t in strategy.experimental_local_results(ys)])
    same.append(bool(np.array_equal(x, x_all) and np.array_equal(y, y_all)))
out["slices_match"] = same

# 2. gradient noise is added once per step, not once per replica (NoisyAdam under a strategy)
x = np.random.default_rng(0).random((8, 5)).astype("float32")
y = np.random.default_rng(1).random((8, 1)).astype("float32")

def run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
        opt = NoisyAdam(learning_rate=0.1, noise_eta=1.0, noise_seed=3)
        opt.build(m.trainable_variables)
    it = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()))

    def step(a, b):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(tf.reduce_sum((m(a) - b) ** 2, -1), global_batch_size=8)
        opt.apply(tape.gradient(loss, m.trainable_variables), m.trainable_variables)

    @tf.function
    def f(it):
        strategy.run(step, args=next(it))

    for _ in range(3):
        f(it)
    return [v.numpy() for v in m.trainable_variables]

single = run(tf.distribute.get_strategy())
out["noise_max_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(run(strategy), single))
print("RESULT " + json.dumps(out))
"""


def test_mirrored_slices_and_gradient_noise(tmp_path):
    r = subprocess.run([sys.executable, "-c", MIRRORED_CHECKS], capture_output=True, text=True, env=env(),
                       timeout=TIMEOUT)
    assert r.returncode == 0, tail(r)
    out = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert out["slices_match"] == [True, True]
    # noise of std 1 added per replica would move the weights by ~0.4 here; once per step: float noise
    assert out["noise_max_diff"] < 1e-5


@pytest.mark.slow
def test_custom_loop_on_one_replica_equals_fit(tmp_path):
    """The custom loop reproduces model.fit exactly (loss, optimizer, lr schedule, gradient noise)."""
    config = write_config(tmp_path)
    procs = [subprocess.Popen(train_cmd(config, tmp_path / "fit"), env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True),
             subprocess.Popen(train_cmd(config, tmp_path / "loop", "--strategy", "mirrored", "--cpu_replicas", "1"),
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    for p in procs:
        _, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err[-3000:]
    assert [m["loss"] for m in metrics(tmp_path / "fit")] == [m["loss"] for m in metrics(tmp_path / "loop")]


# ---- MultiWorkerMirroredStrategy ----------------------------------------------------------------
def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_workers(config, run_dirs, *flags):
    """Both workers of a 2-worker localhost cluster, each with its own run directory (as on two hosts)."""
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    procs = []
    for i, run_dir in enumerate(run_dirs):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen(train_cmd(config, run_dir, "--strategy", "multiworker", *flags),
                                      env=env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    deadline = time.time() + TIMEOUT
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1, deadline - time.time()))
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rc, _, err in results:
        assert rc == 0, err[-3000:]
    return results


@pytest.mark.slow
def test_two_workers_on_localhost_agree_and_resume(tmp_path):
    config = write_config(tmp_path)
    chief, other = tmp_path / "host0", tmp_path / "host1"
    results = run_workers(config, [chief, other], "--steps", "2")
    assert "chief" in results[0][2] and "the chief writes the run directory" in results[1][1]
    assert [m["step"] for m in metrics(chief)] == [1, 2]
    assert (chief / "last.keras").is_file() and not (other / "last.keras").exists()  # only the chief writes the run
    assert_same_weights(chief / "workers/worker_0/final.weights.h5", other / "workers/worker_1/final.weights.h5")
    # worker 1 computed the second half of every global batch
    np.testing.assert_allclose(metrics(chief)[0]["loss"], reference_first_loss(TINY, parts=2), rtol=1e-4)

    # resume: the chief continues from its checkpoint, worker 1 (no checkpoint on its "host") takes
    # the chief's state by broadcast
    run_workers(config, [chief, other], "--steps", "4", "--resume")
    recs = metrics(chief)
    assert [m["step"] for m in recs] == [1, 2, 3, 4] and all(np.isfinite(m["loss"]) for m in recs)
    assert json.loads((chief / "state.json").read_text())["step"] == 4
    assert json.loads((other / "workers/worker_1/worker.json").read_text())["step"] == 4
    assert_same_weights(chief / "workers/worker_0/final.weights.h5", other / "workers/worker_1/final.weights.h5")


def test_tf_config_is_validated():
    from lprnet_tf.config import UsageError
    from lprnet_tf.distributed import read_tf_config

    ok = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    assert read_tf_config({"TF_CONFIG": json.dumps(ok)}) == ok
    bad = {
        "": "needs the TF_CONFIG",
        "{not json": "not valid JSON",
        json.dumps({"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}): "host:port",
        json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}): "out of range",
        json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}): "'ps'",
        json.dumps({"cluster": {"worker": ["a:1"]}}): "'task'",
    }
    for raw, message in bad.items():
        with pytest.raises(UsageError, match=message):
            read_tf_config({"TF_CONFIG": raw})


def test_cli_strategy_errors(tmp_path):
    config = write_config(tmp_path)
    r = subprocess.run(train_cmd(config, tmp_path / "a", "--strategy", "multiworker"), capture_output=True,
                       text=True, env=env(), timeout=TIMEOUT)
    assert r.returncode == 2 and "error:" in r.stderr and "TF_CONFIG" in r.stderr, tail(r)
    r = subprocess.run(train_cmd(config, tmp_path / "b", "--cpu_replicas", "2"), capture_output=True, text=True,
                       env=env(), timeout=TIMEOUT)
    assert r.returncode == 2 and "--strategy mirrored" in r.stderr, tail(r)


# ---- JAX backend --------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed (pip install -e '.[jax]'; the CPU wheel is ~90 MB)")
def test_jax_backend_trains_one_step_of_lprnet_basic(tmp_path):
    cfg = {**TINY, "model": {"name": "lprnet_basic", "options": {}}}
    run = tmp_path / "run"
    r = subprocess.run(train_cmd(write_config(tmp_path, cfg), run, "--steps", "1"), capture_output=True, text=True,
                       env=env(KERAS_BACKEND="jax"), timeout=TIMEOUT)
    assert r.returncode == 0, tail(r)
    [rec] = metrics(run)
    assert rec["step"] == 1 and np.isfinite(rec["loss"]) and rec["loss"] > 0
    # the checkpoint written under JAX is an ordinary .keras file: it loads and runs under TensorFlow
    from lprnet_tf.modelio import load_model

    model = load_model(str(run / "last.keras"))
    assert model.name == "lprnet_basic"
    logits = model.predict_on_batch(np.zeros((2, 24, 94, 3), np.float32))
    assert logits.shape[:2] == (2, 18) and np.isfinite(logits).all()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed (pip install -e '.[jax]'; the CPU wheel is ~90 MB)")
def test_jax_locnet_gate_switches_inside_a_jitted_epoch(tmp_path):
    """Under JAX the jitted step keeps the training state outside the model inside an epoch: the LocNet
    switched on mid-epoch (the gate counts steps, not reading the model) must reach the next step (its weights
    then train; without gradient noise a LocNet that stays off keeps its initial weights)."""
    train = {**TINY["train"], "steps": 4, "eval_every": 4, "gradient_noise": 0.0}
    weights = {}
    for start in (2, 100):
        cfg = {**TINY, "model": {"name": "lprnet_basic", "options": {"locnet": True}},
               "train": {**train, "locnet_start_step": start}}
        run = tmp_path / f"run{start}"
        r = subprocess.run(train_cmd(write_config(tmp_path, cfg, f"c{start}.yaml"), run, "--set", "data.workers=2"),
                           capture_output=True, text=True, env=env(KERAS_BACKEND="jax"), timeout=TIMEOUT)
        assert r.returncode == 0, tail(r)
        assert ("LocNet switched on" in r.stderr + r.stdout) == (start == 2)
        from lprnet_tf.layers import LocNet
        from lprnet_tf.modelio import load_model

        model = load_model(str(run / "last.keras"))
        [loc] = [layer for layer in model.layers if isinstance(layer, LocNet)]
        weights[start] = [np.array(w) for w in loc.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(weights[2], weights[100]))


NOISE_STEPS = r"""
import json
import numpy as np
import keras
from lprnet_tf.optim import NoisyAdam

x = keras.Input((4,))
model = keras.Model(x, keras.layers.Dense(3, use_bias=False)(x))
# a loss without gradient: the noise is the whole gradient; the same noise every step would move every weight
# by exactly lr * sign(noise) every step (Adam's m / sqrt(v) of a constant), fresh noise by varying amounts
model.compile(optimizer=NoisyAdam(noise_eta=1.0, learning_rate=1e-3),
              loss=lambda y, p: 0.0 * keras.ops.sum(p, axis=-1), jit_compile=True)
seen = [model.get_weights()[0].copy()]
cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(model.get_weights()[0].copy()))
model.fit(np.ones((2, 4), "float32"), np.zeros((2,), "float32"), batch_size=2, epochs=4, verbose=0, callbacks=[cb])
print("RESULT " + json.dumps([(b - a).tolist() for a, b in zip(seen, seen[1:])]))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_gradient_noise_differs_from_step_to_step_in_a_compiled_step(backend):
    """The noise of step t is drawn from (noise_seed, t). Under JAX's jitted step the seed generator's own
    state was a constant: the same noise every step (a fixed drift that wrecked a 16k-step GPU run)."""
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install -e '.[jax]')")
    r = subprocess.run([sys.executable, "-c", NOISE_STEPS], capture_output=True, text=True,
                       env=env(KERAS_BACKEND=backend), timeout=TIMEOUT)
    assert r.returncode == 0, tail(r)
    deltas = np.array(json.loads(r.stdout.split("RESULT ", 1)[1]))  # (4 steps, 4, 3)
    assert np.allclose(np.abs(deltas[0]), 1e-3, rtol=1e-2)  # step 1: lr * sign(noise), whatever the noise
    assert all(not np.allclose(deltas[i], deltas[i + 1], rtol=1e-2) for i in range(3))


# ---- determinism --------------------------------------------------------------------------------
DETERMINISM = r"""
import sys
import numpy as np
from lprnet_tf.data.pipeline import build_dataset, open_source
from lprnet_tf.vocab import load_plate_format

out, config, run_dir = sys.argv[1:4]
fmt = load_plate_format("cn")
batches = {}
for synth_seed, seed in ((0, 0), (0, 1), (1, 0)):  # (data.train synth seed, train.seed)
    ds = build_dataset(open_source(f"synth:{synth_seed}", fmt), fmt, 8, augment="full", shuffle=True, seed=seed,
                       repeat=True, drop_remainder=True)
    x, y = next(iter(ds))
    batches[f"x_{synth_seed}_{seed}"], batches[f"y_{synth_seed}_{seed}"] = x.numpy(), y.numpy()
np.savez(out, **batches)

sys.argv = ["train.py", "--config", config, "--run_dir", run_dir, "--quiet", "--deterministic"]
from lprnet_tf.cli.train import main
main()
"""


def test_same_seed_same_data_and_first_losses_across_processes(tmp_path):
    cfg = {**TINY, "model": {"name": "lprnet_reduced", "options": {}},  # dropout and gradient noise on
           "data": {**TINY["data"], "val": ""}, "train": {**TINY["train"], "steps": 3}}
    config = write_config(tmp_path, cfg)
    procs = [subprocess.Popen([sys.executable, "-c", DETERMINISM, str(tmp_path / f"data{i}.npz"), config,
                               str(tmp_path / f"run{i}")], env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err[-3000:]
    a, b = np.load(tmp_path / "data0.npz"), np.load(tmp_path / "data1.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])  # same seed -> same synthetic batch, bit for bit
    assert not np.array_equal(a["x_0_0"], a["x_0_1"])  # another train.seed: other augmentation
    assert not np.array_equal(a["x_0_0"], a["x_1_0"])  # another synthetic seed: other plates
    assert not np.array_equal(a["y_0_0"], a["y_1_0"])
    la = [m["loss"] for m in metrics(tmp_path / "run0")]
    lb = [m["loss"] for m in metrics(tmp_path / "run1")]
    assert len(la) == 3 and la == lb  # the first 3 step losses, bit for bit
