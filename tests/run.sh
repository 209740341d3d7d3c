#!/bin/sh
# Runs every test, kind by kind, each with a fresh scratch folder; prints one line per test and
# fails if any test fails. The four kinds, one folder each (a test's name starts with the folder
# of qcalib it covers: unit/io_gguf.c covers io/gguf_*.c; e2e and badinput shell tests name the
# command or cli/):
#   unit/      a folder's behaviour, checked against values the test computes itself (C)
#   vectors/   against the reference implementations: the recorded outputs of the GPTQ, AWQ and
#              SmoothQuant code in ../shared/testvectors, or an independent implementation run
#              beside qcalib (Hugging Face's tokenizers, @huggingface/gguf)
#   badinput/  broken, hostile, degenerate or interrupted input: a clear error, nothing written
#   e2e/       qcalib as a user runs it, on the real models (shell)
# A kind's C tests are built to build/tests/<kind>/<name>; its shell tests run from tests/<kind>.
# Shared by all: check.h, bounds.h, vectors.h, gptq_exact.h (C), lib.sh (shell), js/, preload/,
# tools/ (programs the shell tests call).
#
# One test at a time, on purpose: the tests are bound by qcalib's own computing, which uses
# every core. Two at a time on a 2-core machine (2026-12-06, each test given
# OMP_NUM_THREADS=1, longest first) took 536 s against 575 s one at a time; with each
# test's two threads left spinning, 921 s.
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
# run_one KIND FILE: one test binary or shell script, in its own scratch folder.
run_one() {
    name=$1/$(basename "$2")
    export QCALIB_TMP="$SCRATCH/$name"
    mkdir -p "$QCALIB_TMP"
    total=$((total + 1))
    echo "== $name"
    t0=$(date +%s)
    if [ "${2%.sh}" != "$2" ]; then sh "$2"; else "$2"; fi
    rc=$?
    echo "   ($(( $(date +%s) - t0 )) s)"
    [ $rc -eq 0 ] || { failed="$failed $name"; echo "!! $name FAILED (exit $rc)"; }
}
for kind in unit vectors badinput e2e; do
    for t in "$BUILD/tests/$kind"/* "tests/$kind"/*.sh; do
        case "$t" in *.o|*.d) continue ;; esac
        [ -f "$t" ] && run_one "$kind" "$t"
    done
done
echo
if [ -n "$failed" ]; then
    echo "FAILED:$failed ($total tests, $(( $(date +%s) - start )) s)"
    exit 1
fi
echo "all $total tests passed ($(( $(date +%s) - start )) s)"
