#!/usr/bin/env bash
# Runs the concurrency, slot-guard, core-resource and tolerant-reader suites against each
# Prefect release listed (each installed into a cached venv of its own by the test kit) and
# writes the results to COMPATIBILITY.md:
#   scripts/compatibility-matrix.sh [release ...]      # default: the releases below
# A release's extra pins go after a colon, space-separated: "3.4.25:fastapi==0.115.14".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prefect-versions.sh

releases=("$@")
if [ ${#releases[@]} -eq 0 ]; then
    releases=(
        "3.4.25:fastapi==0.115.14 importlib_metadata==10.2.0"
        # The oldest FastAPI each allows: newer ones changed routers and removed `min_items`.
        "3.6.29:fastapi==0.115.14"
        "3.7.8:fastapi==0.139.0"
        "$PREFECT_VERSION"
        "3.9.1"
    )
fi
suites=(concurrency_slots slot_guard_edges core_resources tolerant_reader)
log_dir=$(mktemp -d)

cargo build --tests -p prefect-client -p prefect-testkit >/dev/null

{
    echo "# Compatibility"
    echo
    echo "The SDK (built from Prefect $PREFECT_VERSION's schema) against other Prefect server releases,"
    echo "written by \`scripts/compatibility-matrix.sh\` on $(date -u +%Y-%m-%d). Each cell: tests passed / run."
    echo
    printf '| Prefect |'
    for suite in "${suites[@]}"; do printf ' %s |' "$suite"; done
    echo
    printf '|---|'
    for _ in "${suites[@]}"; do printf -- '---|'; done
    echo
} > COMPATIBILITY.md.new
failures=""
for entry in "${releases[@]}"; do
    release="${entry%%:*}"
    requirements=""
    [[ "$entry" == *:* ]] && requirements="${entry#*:}"
    printf '| %s |' "$release" >> COMPATIBILITY.md.new
    for suite in "${suites[@]}"; do
        log="$log_dir/$release-$suite.log"
        echo "Prefect $release: $suite..." >&2
        PREFECT_CLIENT_TEST_PREFECT_RELEASE="$release" PREFECT_CLIENT_TEST_REQUIREMENTS="$requirements" \
            cargo test -q -p prefect-client --test "$suite" > "$log" 2>&1 || true
        summary=$(grep -E '^test result:' "$log" | tail -1 || true)
        passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<< "$summary")
        failed=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<< "$summary")
        if [ -z "$summary" ]; then
            printf ' did not run |' >> COMPATIBILITY.md.new
            failures+="\n- $release, $suite: did not run: $(grep -m1 -E 'panicked|error' "$log" | cut -c1-200)"
        else
            printf ' %s / %s |' "$passed" "$((passed + failed))" >> COMPATIBILITY.md.new
            for name in $(grep -E '^test .* FAILED$' "$log" | awk '{print $2}'); do
                failures+="\n- $release, $suite: \`$name\`"
            done
        fi
    done
    echo >> COMPATIBILITY.md.new
done
{
    echo
    if [ -n "$failures" ]; then
        echo "Failures (logs in $log_dir while it exists):"
        echo -e "$failures"
    else
        echo "No failures."
    fi
} >> COMPATIBILITY.md.new
mv COMPATIBILITY.md.new COMPATIBILITY.md
cat COMPATIBILITY.md
