#!/usr/bin/env bash
# Runs the whole test suite. Installs what the end-to-end tests need when it
# is missing (Debian's redis-server, prometheus (with promtool, which
# backfills the rollback gate's scripted past), openssl to make the fleet
# store's TLS test certificates, chromium and chromium-driver for the status
# page's browser test), then runs cargo's tests.
# Extra arguments go to `cargo test` (for example: ./scripts/test.sh -p lumen-sidecar).
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
have redis-server || missing+=(redis-server)
have prometheus || missing+=(prometheus)
have openssl || missing+=(openssl)
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (apt-get)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A one-off build has no use for incremental state (gigabytes on disk).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo test --workspace "$@"

# Both crates stay publishable: packaged and built as a registry would see
# them (no file outside the crate, every dependency resolvable).
if [ $# -eq 0 ]; then
  # Cargo treats the packaged middleware as an immutable registry crate: its
  # unpacked source and its build from an earlier run would verify the
  # sidecar against stale code. Start both afresh, in a target dir of their own.
  rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/lumen-middleware-* target/package-check
  # The README crate's build (first_hour test) is done with: its disk goes first.
  rm -rf target/readme-crate
  CARGO_TARGET_DIR=target/package-check CARGO_PROFILE_DEV_DEBUG=false \
    cargo package -p lumen-middleware -p lumen-sidecar --allow-dirty --quiet
  rm -rf target/package-check
  echo "test.sh: lumen-middleware and lumen-sidecar package cleanly"
fi
