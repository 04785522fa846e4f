#!/usr/bin/env bash
# Checks and tests the workspace the way CI does: Postgres and Redis (installed from the OS
# packages and started when missing), the Kubernetes manifests (scripts/k8s-validate.sh),
# then cargo fmt --check, clippy with warnings denied, cargo-machete (no unused dependency),
# the tests (cargo nextest when installed, else cargo test), then schemathesis against the
# served OpenAPI document (scripts/fuzz-api.sh). Stops at the first failure.
#
#   scripts/test.sh [test runner arguments...]     e.g. scripts/test.sh -p taquilla-jobs
#
# TEST_DATABASE_URL (default postgres://postgres:postgres@127.0.0.1:5432/taquilla_test) and
# TEST_REDIS_URL (default $REDIS_URL, else redis://127.0.0.1:6379) point the tests at the
# servers; every test works in its own schema and Redis key prefix. SMTP_SINK_PYTHON names a
# python with aiosmtpd, TEST_S3_ENDPOINT (+ TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY) an S3
# server; by default both come from a venv under ~/.cache/taquilla, installed when missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo was not found; install Rust with rustup (https://rustup.rs) and run again" >&2
  exit 1
fi

if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  CARGO_TARGET_DIR="${HOME:-$ROOT}/.cache/taquilla/target"
fi
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR" ;; esac
export CARGO_TARGET_DIR

export TAQUILLA_ENV=development
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/taquilla_test}
export TEST_REDIS_URL=${TEST_REDIS_URL:-${REDIS_URL:-$TAQUILLA_DEFAULT_REDIS_URL}}

step "services: Postgres for $TEST_DATABASE_URL, Redis for $TEST_REDIS_URL"
DATABASE_URL=$TEST_DATABASE_URL ensure_postgres
ensure_database "$TEST_DATABASE_URL"
REDIS_URL=$TEST_REDIS_URL ensure_redis
ensure_redis_server_binary
ensure_build_tools
step "browser: chromium and chromedriver (the console's browser test)"
ensure_chromium

# The real S3 server and SMTP sink of the export and e-mail tests (DESIGN §7): SeaweedFS
# and aiosmtpd from a venv. The S3 server runs for this script only; the e-mail tests start
# their own sinks on free ports. TAQUILLA_REQUIRE_SERVICES makes a test that cannot reach
# them fail instead of reporting SKIPPED.
step "services: S3 server (SeaweedFS) and SMTP sink (aiosmtpd)"
ensure_tools_venv
export SMTP_SINK_PYTHON=${SMTP_SINK_PYTHON:-$TAQUILLA_TOOLS_VENV/bin/python}
if [ -z "${TEST_S3_ENDPOINT:-}" ]; then
  start_s3_server "${TMPDIR:-/tmp}/taquilla-test-s3"
  trap stop_s3_server EXIT
  export TEST_S3_ENDPOINT="http://127.0.0.1:$TAQUILLA_S3_PORT" TEST_S3_ACCESS_KEY=testkey TEST_S3_SECRET_KEY=testsecret
fi
export TAQUILLA_REQUIRE_SERVICES=1

# Offline, a few seconds: kubernetes-validate (from the venv above) and the checks no bundled
# schema covers (KEDA's ScaledObject, grace periods against the workers' shutdown timeout).
step "Kubernetes manifests (scripts/k8s-validate.sh)"
bash scripts/k8s-validate.sh

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# Unused dependencies fail the run (cargo-machete reads the sources, so it needs no build);
# pinned, installed from the crate registry when missing.
MACHETE_VERSION=0.9.2
if [ "$(cargo machete --version 2>/dev/null)" != "$MACHETE_VERSION" ]; then
  step "installing cargo-machete $MACHETE_VERSION"
  cargo install --locked --quiet --version "$MACHETE_VERSION" cargo-machete
fi
step "cargo machete (unused dependencies)"
cargo machete

if cargo nextest --version >/dev/null 2>&1; then
  step "cargo nextest run --workspace --no-fail-fast $*"
  cargo nextest run --workspace --no-fail-fast "$@"
else
  step "cargo test --workspace --no-fail-fast $* (cargo-nextest not installed)"
  cargo test --workspace --no-fail-fast "$@"
fi

# The served OpenAPI document against the server (DESIGN §8): schemathesis with every check,
# for a requester and an admin token. Skipped when the run was narrowed with arguments, or
# with TAQUILLA_SKIP_FUZZ=1.
if [ "$#" -eq 0 ] && [ "${TAQUILLA_SKIP_FUZZ:-0}" != 1 ]; then
  step "scripts/fuzz-api.sh (schemathesis against /openapi.json)"
  bash scripts/fuzz-api.sh
fi
