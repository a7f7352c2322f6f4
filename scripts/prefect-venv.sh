#!/usr/bin/env bash
# Prints the path of the cached venv holding the pinned Prefect, creating it first if needed.
# The Rust harness (prefect-testkit/src/venv.rs) uses the same path and the same completion marker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prefect-versions.sh
cache="${PREFECT_CLIENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-client}"
venv="$cache/venv-prefect-$PREFECT_VERSION"
if [ ! -f "$venv/.complete" ]; then
  command -v python3 >/dev/null || { echo "python3 is required to install Prefect $PREFECT_VERSION; install Python 3.9+" >&2; exit 1; }
  mkdir -p "$cache"
  rm -rf "$venv"
  echo "installing prefect==$PREFECT_VERSION into $venv (about 30 s, once)" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "prefect==$PREFECT_VERSION" "fastapi==$FASTAPI_VERSION" >&2
  touch "$venv/.complete"
fi
echo "$venv"
