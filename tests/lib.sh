# lib.sh — sourced by the shell tests (tests/*/*.sh): where things are, and the checks.
# Q: the qcalib binary; S: the shared folder; T: this test's scratch folder; M: stories260K.
set -u
Q=${QCALIB:-build/qcalib}
S=${QCALIB_SHARED:-../shared}
T=${QCALIB_TMP:-$(mktemp -d)}
M=$S/models/stories260K/stories260K.bin
CAL=$S/data/tinystories/tinystories_calib.txt
EVAL=$S/data/tinystories/tinystories_eval.txt
fails=0
ok() { echo "  ok   $1"; }
bad() { echo "  FAIL $1"; fails=$((fails + 1)); }
# check NAME SHELL-CONDITION
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
# expect_fail NAME EXIT NEEDLE CMD...: exits with EXIT (not a signal) and stderr has NEEDLE
expect_fail() {
    name=$1 want=$2 needle=$3; shift 3
    "$@" >"$T/out" 2>"$T/err"; rc=$?
    if [ "$rc" -eq "$want" ] && grep -qF -- "$needle" "$T/err"; then ok "$name"
    else bad "$name (exit $rc, wanted $want with '$needle'): $(head -c 300 "$T/err")"; fi
}
# json_num FILE KEY: the first number stored under "KEY" in a JSON file
json_num() { sed -n "s/.*\"$2\":[[:space:]]*\([0-9.e+-]*\).*/\1/p" "$1" | head -n 1; }
# done_blocks DIR: the finished blocks a work folder's state records (0: none yet)
done_blocks() { [ -f "$1/state" ] && od -An -tu8 -j8 -N8 "$1/state" | tr -d ' ' || echo 0; }
# preload MODE CMD...: CMD with tests/preload/rename_kill.c (compiled into T on first use)
# preloaded and RENAME_KILL=MODE: a kill at a chosen step, whatever the machine's speed. An
# ASan build accepts a library loaded before it.
LIB_DIR=$(cd "$(dirname "$0")/.." && pwd)
preload() {
    [ -f "$T/rk.so" ] || ${CC:-cc} -shared -fPIC -o "$T/rk.so" "$LIB_DIR/preload/rename_kill.c" -ldl || return 1
    mode=$1; shift
    env LD_PRELOAD="$T/rk.so" RENAME_KILL="$mode" ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" "$@"
}
# finish NAME: the test's exit status
finish() {
    [ $fails -eq 0 ] || { echo "  $fails $1 checks failed"; exit 1; }
    echo "  all $1 checks passed"
}
