#!/usr/bin/env bash
# Checks and tests the workspace the way CI does: Postgres and Redis (installed from the OS
# packages and started when missing), then cargo fmt --check, clippy with warnings denied,
# and the tests (cargo nextest when installed, else cargo test). Stops at the first failure.
#
#   scripts/test.sh [test runner arguments...]     e.g. scripts/test.sh -p taquilla-jobs
#
# TEST_DATABASE_URL (default postgres://postgres:postgres@127.0.0.1:5432/taquilla_test) and
# TEST_REDIS_URL (default $REDIS_URL, else redis://127.0.0.1:6379) point the tests at the
# servers; every test works in its own schema and Redis key prefix. SMTP_SINK_PYTHON names a
# python with aiosmtpd (default: a venv under ~/.cache/taquilla, installed when missing).
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

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/taquilla_test}
export TEST_REDIS_URL=${TEST_REDIS_URL:-${REDIS_URL:-$TAQUILLA_DEFAULT_REDIS_URL}}

step "services: Postgres for $TEST_DATABASE_URL, Redis for $TEST_REDIS_URL"
DATABASE_URL=$TEST_DATABASE_URL ensure_postgres
ensure_database "$TEST_DATABASE_URL"
REDIS_URL=$TEST_REDIS_URL ensure_redis
ensure_redis_server_binary

# The SMTP sink of the e-mail tests: aiosmtpd in a venv (the tests start their own server
# on a free port; without it that test reports SKIPPED).
SMTP_VENV="${HOME:-$ROOT}/.cache/taquilla/venv"
if [ -z "${SMTP_SINK_PYTHON:-}" ]; then
  if ! "$SMTP_VENV/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    step "installing aiosmtpd (SMTP sink for the e-mail tests) into $SMTP_VENV"
    { python3 -m venv "$SMTP_VENV" && "$SMTP_VENV/bin/pip" install -q 'aiosmtpd==1.4.6'; } ||
      echo "warning: aiosmtpd could not be installed; the SMTP test will be skipped" >&2
  fi
  export SMTP_SINK_PYTHON="$SMTP_VENV/bin/python"
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  step "cargo nextest run --workspace --no-fail-fast $*"
  cargo nextest run --workspace --no-fail-fast "$@"
else
  step "cargo test --workspace --no-fail-fast $* (cargo-nextest not installed)"
  cargo test --workspace --no-fail-fast "$@"
fi
