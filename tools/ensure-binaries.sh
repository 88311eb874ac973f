#!/usr/bin/env bash
# Makes the `temporal` and `minio` binaries the embedded services need exist in
# ${DETL_TOOLS_DIR:-$HOME/.cache/detl-tools}/bin, building them with `go install` when missing or
# built from another version. Safe to run repeatedly and concurrently.
#
# stdout: `DETL_TEMPORAL_BIN=<path>` and `DETL_MINIO_BIN=<path>`, so callers can
#   eval "$(tools/ensure-binaries.sh)"
# stderr: progress.
set -euo pipefail

# The only place the versions are pinned. The Temporal CLI stops at v1.5.1 because later tags carry a
# `replace` directive in go.mod, which `go install pkg@version` refuses; the MinIO pseudo-version is
# one whose go.mod has none either.
readonly TEMPORAL_PKG='github.com/temporalio/cli/cmd/temporal'
readonly TEMPORAL_MOD='github.com/temporalio/cli'
readonly TEMPORAL_VERSION='v1.5.1'
readonly MINIO_PKG='github.com/minio/minio'
readonly MINIO_MOD='github.com/minio/minio'
readonly MINIO_VERSION='v0.0.0-20260212201848-7aac2a2c5b7c'

tools_dir="${DETL_TOOLS_DIR:-$HOME/.cache/detl-tools}"
bin_dir="$tools_dir/bin"
mkdir -p "$bin_dir"

log() { printf 'ensure-binaries: %s\n' "$*" >&2; }

# True when $1 exists and was built from module $2 at version $3. The stamp file is the fast path;
# the Go build info embedded in the binary is the fallback, so binaries built by hand with the right
# version are accepted too.
is_current() {
  local bin="$1" mod="$2" version="$3" stamp="$1.version"
  [[ -x "$bin" ]] || return 1
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$mod@$version" ]]; then
    return 0
  fi
  if command -v go >/dev/null 2>&1 \
    && go version -m "$bin" 2>/dev/null | awk -v m="$mod" -v v="$version" '$1 == "mod" && $2 == m && $3 == v { found = 1 } END { exit !found }'; then
    printf '%s@%s\n' "$mod" "$version" >"$stamp"
    return 0
  fi
  return 1
}

# Seconds between "still building" lines (DETL_BUILD_PROGRESS_SECONDS; tests shorten it).
readonly progress_every="${DETL_BUILD_PROGRESS_SECONDS:-30}"

elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# Builds into a private GOBIN and renames into place, so a reader never sees a half-written binary.
# A first build takes minutes of silence otherwise: every $progress_every s it says how long it has
# run and how many packages `go install -v` has compiled (one log line each).
build() {
  local name="$1" pkg="$2" mod="$3" version="$4"
  local staging log_file="$tools_dir/$name-build.log" started=$SECONDS
  staging="$(mktemp -d "$tools_dir/.build-$name.XXXXXX")"
  log "building $name from $pkg@$version with go on $cores cores (several minutes the first time; log: $log_file)"
  GOBIN="$staging" GOFLAGS="${GOFLAGS:-} -trimpath" go install -v "$pkg@$version" >"$log_file" 2>&1 &
  local go_pid=$! status=0 waited=0
  while kill -0 "$go_pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    if ((waited % progress_every == 0)) && kill -0 "$go_pid" 2>/dev/null; then
      local downloads packages
      downloads="$(grep -c '^go: downloading' "$log_file" || true)"
      packages="$(grep -vc '^go: ' "$log_file" || true)"
      log "still building $name: $(elapsed $((SECONDS - started))), $downloads modules downloaded, $packages packages compiled"
    fi
  done
  wait "$go_pid" || status=$?
  if ((status != 0)); then
    rm -rf "$staging"
    log "building $name failed after $(elapsed $((SECONDS - started))); last lines of $log_file:"
    tail -n 30 "$log_file" >&2
    return 1
  fi
  mv -f "$staging/$name" "$bin_dir/$name"
  printf '%s@%s\n' "$mod" "$version" >"$bin_dir/$name.version"
  rm -rf "$staging"
  log "built $bin_dir/$name in $(elapsed $((SECONDS - started)))"
}

# Two concurrent callers (a CI step and a test, two workers) would otherwise build the same thing twice.
exec 9>"$tools_dir/.ensure-binaries.lock"
if ! flock -n 9; then
  log "another ensure-binaries is building; waiting for it (see $tools_dir/*-build.log)"
  flock 9
fi

# go build compiles -p packages at once, GOMAXPROCS of them by default: every core unless the
# environment lowers GOMAXPROCS. The two builds run side by side as well.
cores="${GOMAXPROCS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}"

pids=()
names=()
if ! is_current "$bin_dir/temporal" "$TEMPORAL_MOD" "$TEMPORAL_VERSION"; then
  command -v go >/dev/null 2>&1 || { log "temporal is missing and Go is not installed: install Go (https://go.dev/dl/) and rerun"; exit 1; }
  build temporal "$TEMPORAL_PKG" "$TEMPORAL_MOD" "$TEMPORAL_VERSION" &
  pids+=("$!"); names+=(temporal)
fi
if ! is_current "$bin_dir/minio" "$MINIO_MOD" "$MINIO_VERSION"; then
  command -v go >/dev/null 2>&1 || { log "minio is missing and Go is not installed: install Go (https://go.dev/dl/) and rerun"; exit 1; }
  build minio "$MINIO_PKG" "$MINIO_MOD" "$MINIO_VERSION" &
  pids+=("$!"); names+=(minio)
fi

failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    log "could not build ${names[$i]}"
    failed=1
  fi
done
[[ "$failed" -eq 0 ]] || exit 1

printf 'DETL_TEMPORAL_BIN=%s\n' "$bin_dir/temporal"
printf 'DETL_MINIO_BIN=%s\n' "$bin_dir/minio"
