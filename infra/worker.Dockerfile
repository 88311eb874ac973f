# detl worker image. Build from the repository root:
#   docker build -f infra/worker.Dockerfile -t detl-worker .
# The same image runs the CLI (e.g. `bin/detl db migrate` in the migration Job).
FROM node:20-bookworm-slim

WORKDIR /app
ENV NX_NO_CLOUD=true \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    DETL_HOME=/var/lib/detl

# Manifests and what the postinstall step (prisma generate) needs first, so dependency layers are
# cached across source-only changes.
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
# The postinstall step also runs tools/setup-native.ts, which imports this library. Without Python
# in this image it reports the native engine unavailable and the wasm backend runs.
COPY libs/native-tensorflow libs/native-tensorflow
# Dev dependencies stay: prisma generates the client at install time, and tsx runs the sources.
RUN npm ci --no-audit --no-fund && npm cache clean --force

COPY . .
RUN mkdir -p "$DETL_HOME" && chown node:node "$DETL_HOME"
USER node

# Equivalent to `npx tsx apps/worker/src/main.ts`, without npm in between so SIGTERM reaches tsx,
# which forwards it to the worker for a graceful shutdown.
CMD ["node_modules/.bin/tsx", "apps/worker/src/main.ts"]
