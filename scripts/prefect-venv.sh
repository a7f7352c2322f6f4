#!/usr/bin/env bash
# Prints the path of the cached venv holding the pinned Prefect, creating it first if needed.
# The Rust harness (prefect-testkit/src/venv.rs) uses the same path and the same completion marker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prefect-versions.sh
cache="${PREFECT_CLIENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prefect-client}"
venv="$cache/venv-prefect-$PREFECT_VERSION"
pins=("prefect==$PREFECT_VERSION" "fastapi==$FASTAPI_VERSION" "$SQLALCHEMY_REQUIREMENT")
# The marker holds the pins it was installed with, one per line (as the harness writes it).
expected=$(printf '%s\n' "${pins[@]}")
if [ "$(cat "$venv/.complete" 2>/dev/null)" != "$expected" ]; then
  command -v python3 >/dev/null || { echo "python3 is required to install Prefect $PREFECT_VERSION; install Python 3.9+" >&2; exit 1; }
  mkdir -p "$cache"
  if [ ! -f "$venv/.complete" ]; then
    rm -rf "$venv"
    echo "installing prefect==$PREFECT_VERSION into $venv (about 30 s, once)" >&2
    python3 -m venv "$venv" >&2
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
  printf '%s' "$expected" > "$venv/.complete"
fi
echo "$venv"
