"""Keras side of `npm run bench -- parity` (tools/bench/parity.ts).

Trains one cross-validation fold with the recipe detl's scratch fine-tune uses, on the tensors detl
exported (tools/bench/parity.ts writes them once for both peers), and prints one JSON line:

- data: `<export>/images.u8` (N x S x S uint8, Data-B in manifest order, exactly the pixels detl's
  shards hold after its own preprocessing) and `<export>/items.json` (label and fold per image);
  train = every other fold, test = this fold, both in manifest order; pixels / 255 as detl does;
- net: detl's small-vgg written out layer by layer (the same as tools/bench/keras-bench.py):
  conv 3x3 with bias, glorot-uniform kernels and zero biases (detl's initialiser family), batch
  norm with detl's momentum 0.9 and epsilon 1.001e-5, ReLU, max-pool; dense 128 ReLU; logits;
- step: softmax cross-entropy on the logits, mean over the batch; Adam beta 0.9/0.999 eps 1e-7;
  learning rate annealed per step by a cosine from `learningRate` to 0 over every step of the run
  (Keras' CosineDecay(alpha=0) is detl's learningRateAt); a fresh shuffle every epoch; the last
  batch of an epoch is partial, as in detl;
- evaluation: the weights after the last epoch (detl's fold jobs have no validation set, so they
  keep the last weights too), batch norm in inference mode.

usage: parity-keras.py '<json: exportDir, fold, epochs, batchSize, learningRate, schedule, modelSeed,
                         shuffleSeed, widthMultiplier, threads ("1" | "default"), augmentation,
                         sharedInit (start from detl's initial weights in initDir), initDir,
                         lockstep (the lockstep check)>'
"""

import json
import os
import sys
import time

job = json.loads(sys.argv[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Threads must be set before TensorFlow runs its first op.
if job["threads"] == "1":
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402
from keras_nets import peak_rss_bytes, small_vgg  # noqa: E402


def small_vgg_model(size, w, classes):
    inp = keras.Input(shape=(size, size, 1), name="input")
    return keras.Model(inp, small_vgg(inp, w, classes), name="small_vgg")


export = job["exportDir"]
with open(os.path.join(export, "items.json")) as f:
    meta = json.load(f)
size, classes = meta["imageSize"], len(meta["classes"])
folds = np.array([item["fold"] for item in meta["items"]], dtype=np.int32)
labels = np.array([item["label"] for item in meta["items"]], dtype=np.int32)
pixels = np.fromfile(os.path.join(export, "images.u8"), dtype=np.uint8)
if pixels.size != len(labels) * size * size:
    raise SystemExit(f"images.u8 has {pixels.size} bytes, expected {len(labels)} x {size} x {size}")
images = (pixels.reshape(len(labels), size, size, 1).astype(np.float32)) / 255.0

fold = job["fold"]


def load_detl_weights(model, folder, spec_file):
    """Loads the initial weights detl wrote (`<folder>/weights.f32` + the names and shapes in
    `<folder>/<spec_file>`: `lockstep.json` for the lockstep check, `weights.json` for a seed's
    shared start) into the Keras model, by name: tfjs lists every trainable weight before the
    batch-norm moving statistics, Keras keeps each layer's weights together; the names
    (layer/weight) are the same in both."""
    with open(os.path.join(folder, spec_file)) as f:
        spec = json.load(f)
    flat = np.fromfile(os.path.join(folder, "weights.f32"), dtype=np.float32)
    if len(model.weights) != len(spec["weights"]):
        raise SystemExit(f"Keras has {len(model.weights)} weight tensors, detl {len(spec['weights'])}")
    by_name, offset = {}, 0
    for entry in spec["weights"]:
        n = int(np.prod(entry["shape"]))
        by_name[entry["name"]] = flat[offset : offset + n].reshape(entry["shape"])
        offset += n
    for variable in model.weights:
        value = by_name.get(variable.path)
        if value is None or list(value.shape) != list(variable.shape):
            raise SystemExit(f"Keras weight {variable.path} {list(variable.shape)} has no detl weight of that name and shape")
        variable.assign(value)
    return spec


def lockstep():
    """Same start, same batches: detl's initial weights and batch order (tools/bench/parity.ts wrote
    them), `steps` Adam steps with train_on_batch, the loss of every step (before its update, as
    detl's optimizer.minimize returns it) and the logits of the first test images afterwards."""
    model = small_vgg_model(size, job["widthMultiplier"], classes)
    spec = load_detl_weights(model, os.path.join(export, "lockstep"), "lockstep.json")
    batch, steps = spec["batchSize"], spec["steps"]
    rate = keras.optimizers.schedules.CosineDecay(initial_learning_rate=spec["learningRate"], decay_steps=steps, alpha=0.0)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    train_images = images[np.array(spec["trainIndices"], dtype=np.int64)]
    train_labels = labels[np.array(spec["trainIndices"], dtype=np.int64)]
    order = np.array(spec["order"], dtype=np.int64)
    losses = []
    for step in range(steps):
        idx = order[step * batch : (step + 1) * batch]
        losses.append(float(model.train_on_batch(train_images[idx], train_labels[idx])))
    test = images[np.array(spec["testIndices"], dtype=np.int64)]
    logits = model.predict(test, batch_size=64, verbose=0)
    print(json.dumps({"losses": losses, "testLogits": logits.astype(float).tolist()}))


if job.get("lockstep"):
    lockstep()
    sys.exit(0)

train_idx = np.flatnonzero(folds != fold)
test_idx = np.flatnonzero(folds == fold)
x_train, y_train = images[train_idx], labels[train_idx]
x_test, y_test = images[test_idx], labels[test_idx]

augmentation = job.get("augmentation") or {"rotationDegrees": 0, "scale": 0, "horizontalFlip": False}
if augmentation["rotationDegrees"] or augmentation["scale"] or augmentation["horizontalFlip"]:
    raise SystemExit("the parity recipe trains without augmentation (detl's and Keras' random draws could not be the same); got " + json.dumps(augmentation))

# The same initial weights for every fold, as detl builds every fold's model from config.seed;
# shuffling then follows the fold's own seed (detl: config.seed + fold + 1).
keras.utils.set_random_seed(job["modelSeed"])
model = small_vgg_model(size, job["widthMultiplier"], classes)
if job.get("sharedInit"):
    # Starts from detl's own initial weights for this seed (every fold does, as in detl), so the two
    # peers differ only in training, not in their draw from the initialiser.
    load_detl_weights(model, job["initDir"], "weights.json")
batch, epochs = job["batchSize"], job["epochs"]
steps_per_epoch = -(-len(train_idx) // batch)
total_steps = steps_per_epoch * epochs
rate = job["learningRate"]
if job["schedule"] == "cosine":
    rate = keras.optimizers.schedules.CosineDecay(initial_learning_rate=job["learningRate"], decay_steps=total_steps, alpha=0.0)
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    jit_compile=False,
)

rng = np.random.default_rng(job["shuffleSeed"])
history = []
wall_start, cpu_start = time.perf_counter(), time.process_time()
for epoch in range(1, epochs + 1):
    started = time.perf_counter()
    order = rng.permutation(len(train_idx))
    h = model.fit(x_train[order], y_train[order], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    history.append(
        {
            "epoch": epoch,
            "trainLoss": float(h.history["loss"][-1]),
            "trainAccuracy": float(h.history["accuracy"][-1]),
            "learningRate": float(job["learningRate"] if job["schedule"] != "cosine" else rate((epoch - 1) * steps_per_epoch)),
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
train_seconds = time.perf_counter() - wall_start
train_cpu_seconds = time.process_time() - cpu_start

logits = model.predict(x_test, batch_size=batch * 2, verbose=0)
predicted = np.argmax(logits, axis=1)
loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_test, logits))

print(
    json.dumps(
        {
            "fold": fold,
            "trainCount": int(len(train_idx)),
            "testCount": int(len(test_idx)),
            "accuracy": float(np.mean(predicted == y_test)),
            "testLoss": loss,
            "actual": y_test.tolist(),
            "predicted": predicted.tolist(),
            "epochs": history,
            "params": int(model.count_params()),
            "trainableParams": int(sum(int(np.prod(v.shape)) for v in model.trainable_weights)),
            "trainSeconds": round(train_seconds, 1),
            "trainCpuSeconds": round(train_cpu_seconds, 1),
            "peakRssBytes": peak_rss_bytes(),
            "intraOpThreads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        }
    )
)
