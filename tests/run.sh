#!/bin/sh
# Runs every test binary (build/tests/test_*) and every shell test (tests/test_*.sh) with a
# fresh scratch folder each; prints one line per test and fails if any test fails.
set -u
BUILD=${1:-build}
export QCALIB_SHARED="${QCALIB_SHARED:-../shared}"
export QCALIB="$BUILD/qcalib"
export QCALIB_BUILD="$BUILD"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
if [ ! -d "$QCALIB_SHARED/models/stories260K" ]; then
    echo "tests: $QCALIB_SHARED/models/stories260K not found (set QCALIB_SHARED to the shared folder)" >&2
    exit 1
fi
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/qcalib-tests.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
failed=""
total=0
start=$(date +%s)
for t in "$BUILD"/tests/test_* tests/test_*.sh; do
    case "$t" in *.o|*.d) continue ;; esac
    [ -f "$t" ] || continue
    name=$(basename "$t")
    export QCALIB_TMP="$SCRATCH/$name"
    mkdir -p "$QCALIB_TMP"
    total=$((total + 1))
    echo "== $name"
    t0=$(date +%s)
    if [ "${t%.sh}" != "$t" ]; then sh "$t"; else "$t"; fi
    rc=$?
    echo "   ($(( $(date +%s) - t0 )) s)"
    [ $rc -eq 0 ] || { failed="$failed $name"; echo "!! $name FAILED (exit $rc)"; }
done
echo
if [ -n "$failed" ]; then
    echo "FAILED:$failed ($total tests, $(( $(date +%s) - start )) s)"
    exit 1
fi
echo "all $total tests passed ($(( $(date +%s) - start )) s)"
