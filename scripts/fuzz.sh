#!/usr/bin/env bash
# Fuzzes the decoding of response types and settings for a bounded time (default 60 s):
#   scripts/fuzz.sh [seconds]
# Installs cargo-fuzz if missing. Uses a nightly toolchain when one is installed, else the
# stable one with RUSTC_BOOTSTRAP=1 (libFuzzer needs unstable compiler flags).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "installing cargo-fuzz (once)..." >&2
    cargo install --locked cargo-fuzz
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

mkdir -p corpus/decode_responses
# Seeds: a real ConcurrencyLimit answer, behind each selector byte.
seed='{"id":"5e0f8c4b-6e3a-4c52-9a0d-3f1b2c4d5e6f","created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z","tag":"db","concurrency_limit":3,"active_slots":[]}'
for selector in $(seq 0 13); do
    printf "\\x$(printf %02x "$selector")%s" "$seed" > "corpus/decode_responses/seed-$selector"
done

cargo "${toolchain[@]}" fuzz run decode_responses corpus/decode_responses -- \
    -max_total_time="$seconds" -max_len=65536 2>&1 | tee fuzz.log | grep -E '^(#|Done|==|SUMMARY)' | tail -5
echo "executions: $(grep -oE 'Done [0-9]+ runs' fuzz.log | tail -1)"
