"""The Keras twins of detl's nets (libs/ml/src/core/models.ts) and the peak-memory probe, shared by
keras-bench.py (speed) and parity-keras.py (accuracy). Import it after the caller has set TensorFlow's
threads: importing keras runs no op, but the caller's settings must come first. Kernels are Keras'
default glorot_uniform with zero biases, which detl sets explicitly (tfjs' own default differs).
"""

from keras import layers


def width(base, multiplier):
    units = round(base * multiplier)
    if units < 1:
        raise SystemExit(f"width multiplier {multiplier} leaves a layer of base {base} without units")
    return units


def small_vgg(inp, w, classes):
    # detl: 4 blocks x 2 (conv3x3 with bias, linear -> BN(momentum 0.9, eps 1.001e-5) -> ReLU), maxpool 2/2,
    # flatten, dense 128 (x width) ReLU, dense classes (logits).
    y = inp
    for index, filters in enumerate((16, 32, 64, 128)):
        for c in (1, 2):
            y = layers.Conv2D(width(filters, w), 3, padding="same", name=f"block{index + 1}_conv{c}")(y)
            y = layers.BatchNormalization(momentum=0.9, epsilon=1.001e-5, name=f"block{index + 1}_bn{c}")(y)
            y = layers.ReLU(name=f"block{index + 1}_relu{c}")(y)
        y = layers.MaxPooling2D(2, 2, name=f"block{index + 1}_pool")(y)
    y = layers.Flatten(name="head_flatten")(y)
    y = layers.Dense(width(128, w), activation="relu", name="head_fc1")(y)
    return layers.Dense(classes, name="head_predictions")(y)


def alexnet(inp, w, classes):
    # detl's AlexNet-3x3: single tower, no LRN, AlexNet's strides and pools, every kernel 3x3, 'same' convs.
    y = layers.Conv2D(width(96, w), 3, strides=4, padding="same", activation="relu", name="block1_conv1")(inp)
    y = layers.MaxPooling2D(3, 2, name="block1_pool")(y)
    y = layers.Conv2D(width(256, w), 3, padding="same", activation="relu", name="block2_conv1")(y)
    y = layers.MaxPooling2D(3, 2, name="block2_pool")(y)
    y = layers.Conv2D(width(384, w), 3, padding="same", activation="relu", name="block3_conv1")(y)
    y = layers.Conv2D(width(384, w), 3, padding="same", activation="relu", name="block4_conv1")(y)
    y = layers.Conv2D(width(256, w), 3, padding="same", activation="relu", name="block5_conv1")(y)
    y = layers.MaxPooling2D(3, 2, name="block5_pool")(y)
    y = layers.Flatten(name="head_flatten")(y)
    y = layers.Dense(width(4096, w), activation="relu", name="head_fc1")(y)
    y = layers.Dense(width(4096, w), activation="relu", name="head_fc2")(y)
    return layers.Dense(classes, name="head_predictions")(y)


def peak_rss_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None
