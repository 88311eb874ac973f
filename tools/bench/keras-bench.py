"""Keras (tensorflow-cpu) reference for `npm run bench -- ml`.

One process per case: builds the same architecture detl's libs/ml/src/core/models.ts builds
(small-vgg and AlexNet-3x3 written out layer by layer; VGG-16 and ResNet-50 are
keras.applications' own), trains with the same step (softmax cross-entropy on logits against
one-hot labels, Adam beta 0.9/0.999 eps 1e-7) on random inputs in [0, 1], and prints one JSON
line: parameter counts, per-batch img/s, peak RSS (VmHWM).

usage: keras-bench.py '<json: architecture, widthMultiplier, imageSize, channels, numClasses,
                        batchSize, warmup, iterations, threads ("1" | "default")>'
"""

import json
import os
import sys
import time

case = json.loads(sys.argv[1])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Threads must be set before TensorFlow runs its first op.
if case["threads"] == "1":
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402
from keras_nets import alexnet, peak_rss_bytes, small_vgg  # noqa: E402


def build(case):
    arch, w, size, ch, classes = (case[k] for k in ("architecture", "widthMultiplier", "imageSize", "channels", "numClasses"))
    shape = (size, size, ch)
    if arch in ("vgg16", "resnet50"):
        if w != 1:
            raise SystemExit(f"{arch}: the reference is keras.applications' own network, width 1 only (got {w})")
        app = keras.applications.VGG16 if arch == "vgg16" else keras.applications.ResNet50
        return app(include_top=True, weights=None, input_shape=shape, classes=classes, classifier_activation=None)
    inp = keras.Input(shape=shape, name="input")
    out = (small_vgg if arch == "small-vgg" else alexnet)(inp, w, classes)
    return keras.Model(inp, out, name=arch.replace("-", "_"))


model = build(case)
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    loss=keras.losses.CategoricalCrossentropy(from_logits=True),
)
batch, classes = case["batchSize"], case["numClasses"]
rng = np.random.default_rng(1)
x = rng.random((batch, case["imageSize"], case["imageSize"], case["channels"]), dtype=np.float32)
y = np.eye(classes, dtype=np.float32)[np.arange(batch) % classes]
xt, yt = tf.constant(x), tf.constant(y)

train, infer, train_cpu, infer_cpu = [], [], [], []
cpu_before, wall_before = os.times(), time.perf_counter()
for i in range(case["warmup"] + case["iterations"]):
    start, cpu_start = time.perf_counter(), time.process_time()
    float(model.train_on_batch(xt, yt))  # returns the loss as a host value: the step has finished
    if i >= case["warmup"]:
        train.append(batch / (time.perf_counter() - start))
        train_cpu.append(batch / (time.process_time() - cpu_start))
for i in range(case["warmup"] + case["iterations"]):
    start, cpu_start = time.perf_counter(), time.process_time()
    model.predict_on_batch(xt)
    if i >= case["warmup"]:
        infer.append(batch / (time.perf_counter() - start))
        infer_cpu.append(batch / (time.process_time() - cpu_start))

cpu_after = os.times()
cpu_seconds = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)

print(
    json.dumps(
        {
            "params": int(model.count_params()),
            "trainableParams": int(sum(int(np.prod(v.shape)) for v in model.trainable_weights)),
            "trainImagesPerSecond": float(np.median(train)),
            "inferImagesPerSecond": float(np.median(infer)),
            # Images per CPU-second of the process (all threads): on one thread, barely affected by other load.
            "trainImagesPerCpuSecond": float(np.median(train_cpu)),
            "inferImagesPerCpuSecond": float(np.median(infer_cpu)),
            "trainSamples": train,
            "inferSamples": infer,
            "peakRssBytes": peak_rss_bytes(),
            # CPU time over wall time of the timed loops: ~1 when pinned to one thread, up to the core count otherwise.
            "cpuUtilisation": round(cpu_seconds / (time.perf_counter() - wall_before), 2),
            "intraOpThreads": tf.config.threading.get_intra_op_parallelism_threads(),
            "interOpThreads": tf.config.threading.get_inter_op_parallelism_threads(),
            "jitCompile": bool(model.jit_compile),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "oneDnn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 CPU builds)"),
        }
    )
)
