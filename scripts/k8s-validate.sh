#!/usr/bin/env bash
# Validates deploy/kubernetes/ offline, in seconds (scripts/test.sh runs it):
#   1. kubernetes-validate (pinned, from the tools venv, scripts/lib/services.sh) checks every
#      built-in kind against the Kubernetes $K8S_VERSION schemas it carries, strictly
#      (unknown fields are errors);
#   2. scripts/lib/check_manifests.py checks what no bundled schema covers: KEDA's
#      ScaledObject (its CRD's required fields), the kustomization, probes, selectors and the
#      grace periods against the workers' shutdown timeout (also in docker-compose.yml).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
# The oldest Kubernetes these manifests support (policy/v1, batch/v1 ttlSecondsAfterFinished).
K8S_VERSION=${K8S_VERSION:-1.29.0}
DIR=deploy/kubernetes

ensure_tools_venv
manifests=()
for f in "$DIR"/*.yaml; do
  case $(basename "$f") in
    # Not built-in kinds: check_manifests.py checks them.
    kustomization.yaml | keda-scaledobject.yaml) ;;
    *) manifests+=("$f") ;;
  esac
done
out=$("$TAQUILLA_TOOLS_VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${manifests[@]}" 2>&1) || {
  printf '%s\n' "$out" >&2
  echo "error: deploy/kubernetes: kubernetes-validate failed against Kubernetes $K8S_VERSION (above)" >&2
  exit 1
}
# --quiet still prints warnings, e.g. a kind without a schema: treat them as failures too.
if [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  echo "error: deploy/kubernetes: kubernetes-validate warned (above)" >&2
  exit 1
fi
echo "ok: ${#manifests[@]} manifests valid against Kubernetes $K8S_VERSION (strict)"
"$TAQUILLA_TOOLS_VENV/bin/python" scripts/lib/check_manifests.py "$DIR" docker-compose.yml
