#!/usr/bin/env bash
# Starts Prefect's multi-replica layout (PostgreSQL + Redis + 2 API replicas + services +
# HAProxy, all on free 127.0.0.1 ports) and keeps it running until Ctrl-C or SIGTERM:
#   scripts/multi-replica-server.sh [--without-redis]
# Prints PREFECT_API_URL (the load balancer). Every process it started stops with it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p prefect-testkit --example multi_replica_server
exec "${CARGO_TARGET_DIR:-target}/debug/examples/multi_replica_server" "$@"
