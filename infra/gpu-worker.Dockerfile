# detl GPU worker image: the worker image plus the native TensorFlow engine for NVIDIA GPUs, built
# by tools/setup-native.ts --gpu against the PyPI `tensorflow` 2.21 wheel and the CUDA 12 / cuDNN 9
# wheels of its `and-cuda` extra (see README "GPU hosts"). Build from the repository root:
#   docker build -f infra/gpu-worker.Dockerfile -t detl-gpu-worker .
# Building needs no GPU. Running needs an NVIDIA driver for CUDA 12 (>= 525) on the host and the NVIDIA
# container toolkit, which mounts the driver's libcuda.so.1 into the container:
#   docker run --gpus all --env-file detl.env detl-gpu-worker
# Untested on a GPU so far (built and checked with ldd only, on machines without one).
FROM node:20-bookworm-slim

# Python with pip fetches the wheels; g++ and make compile tfjs-node's binding (node-gyp comes with npm).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip g++ make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NX_NO_CLOUD=true \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DETL_HOME=/var/lib/detl \
    DETL_TOOLS_DIR=/opt/detl-tools

# Manifests and what the postinstall step needs first, so dependency layers are cached across
# source-only changes (same list as worker.Dockerfile).
COPY package.json package-lock.json ./
COPY apps/cli/package.json apps/cli/package.json
COPY apps/dashboard/package.json apps/dashboard/package.json
COPY apps/worker/package.json apps/worker/package.json
COPY libs/activities/package.json libs/activities/package.json
COPY libs/config/package.json libs/config/package.json
COPY libs/data/package.json libs/data/package.json
COPY libs/ml/package.json libs/ml/package.json
COPY libs/native-tensorflow/package.json libs/native-tensorflow/package.json
COPY libs/services/package.json libs/services/package.json
COPY libs/storage/package.json libs/storage/package.json
COPY libs/tracking/package.json libs/tracking/package.json
COPY libs/workflows/package.json libs/workflows/package.json
COPY prisma prisma
COPY prisma.config.ts ./
COPY tools tools
COPY libs/native-tensorflow libs/native-tensorflow
# DETL_SKIP_NATIVE: the postinstall would build the cpu engine, which this image does not use.
RUN DETL_SKIP_NATIVE=1 npm ci --no-audit --no-fund && npm cache clean --force

# ~3.4 GB of wheels through pip, unpacked to ~5.4 GB under $DETL_TOOLS_DIR/tfjs-native and wired into
# node_modules/@tensorflow/tfjs-node-gpu. Without a driver at build time the build is verified with
# ldd (everything but libcuda.so.1 must resolve); the wheels are dropped in the same layer.
RUN node_modules/.bin/tsx tools/setup-native.ts --gpu \
    && rm -rf "$DETL_TOOLS_DIR/wheels"

# TensorFlow dlopens the CUDA libraries by soname. Its RUNPATH finds most of them in this layout but
# not cuSOLVER, so every CUDA lib folder of the build goes on LD_LIBRARY_PATH (what
# gpuRuntimeEnvironment() in libs/native-tensorflow returns; gpu-build.test.ts checks the list),
# after /usr/local/nvidia/lib64, where GKE-style device plugins mount the driver.
ENV DETL_TF_BACKEND=tensorflow-gpu \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cublas/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cuda_cupti/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cuda_nvrtc/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cuda_runtime/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cudnn/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cufft/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/curand/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cusolver/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/cusparse/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/nccl/lib:/app/node_modules/@tensorflow/tfjs-node-gpu/deps/nvidia/nvjitlink/lib

COPY . .
RUN mkdir -p "$DETL_HOME" && chown node:node "$DETL_HOME"
USER node

# Equivalent to `npx tsx apps/worker/src/main.ts`, without npm in between so SIGTERM reaches tsx,
# which forwards it to the worker for a graceful shutdown.
CMD ["node_modules/.bin/tsx", "apps/worker/src/main.ts"]
