#!/bin/sh
# Runs every fuzz target for SECONDS each, one at a time at the lowest priority, after
# building the seed corpora and fixtures from the shared folder (fuzz/seeds):
#     fuzz/run.sh BUILD SECONDS [TARGET...]
# New inputs libFuzzer finds are kept in BUILD/fuzz-corpus/<target> (so later runs go on
# from them), crashes in BUILD/fuzz-crashes/. Prints one line per target with its executions
# per second; fails if any target found a crash, leak, sanitizer report, timeout or
# out-of-memory.
set -u
BUILD=$1
SECS=$2
shift 2
SHARED=${QCALIB_SHARED:-../shared}
DATA=$BUILD/fuzz-data
rm -rf "$DATA"
"$BUILD/fuzz/seeds" "$SHARED" "$DATA" || { echo "fuzz: building the seeds failed" >&2; exit 1; }
export QCALIB_FUZZ_FIXTURES="$DATA/fixtures"
# OpenMP and OpenBLAS on one thread: the fuzzer runs one input at a time.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# the inputs are written to files: in memory (/dev/shm) where there is one
base=${TMPDIR:-/tmp}
[ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
SCRATCH=$(mktemp -d "$base/qcalib-fuzz-run.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
targets=${*:-$(cd "$BUILD/fuzz" && ls fuzz_* | grep -v '\.[od]$')}
mkdir -p "$BUILD/fuzz-crashes"
failed=""
for t in $targets; do
    name=${t#fuzz_}
    corpus=$BUILD/fuzz-corpus/$name
    mkdir -p "$corpus"
    log=$BUILD/fuzz-crashes/$t.log
    # -timeout: an input taking 10 s is a hang; -malloc_limit_mb: one allocation over 1 GiB
    # (no input here, at most 64 KiB, should need that much) is a crash; -max_len: inputs of
    # up to 64 KiB (the tiny models whole, the real stories260K.bin cut to its first 64 KiB).
    TMPDIR=$SCRATCH nice -n 19 "$BUILD/fuzz/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-crashes/$t-" \
        "$corpus" "$DATA/seeds/$name" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "$t: ${SECS} s, ${runs:-?} runs, ${rate:-?} exec/s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs"
    if [ $rc -ne 0 ]; then
        failed="$failed $t"
        echo "!! $t failed (exit $rc); log: $log" >&2
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 8 >&2
    fi
    rm -rf "${SCRATCH:?}"/*
done
[ -z "$failed" ] || { echo "fuzz: FAILED:$failed"; exit 1; }
echo "fuzz: every target ran ${SECS} s without a finding"
