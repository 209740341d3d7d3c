# badinput/cli_leftovers.sh — nothing left behind (issue 17, item 5). SIGTERM and SIGINT while
# the written output waits in its temporary folder (a full model copy) for --eval's
# evaluation remove that folder and end the run as the signal does (exit 143, 130); the
# finished blocks stay in OUT.work for --resume. After a SIGKILL there the next run on OUT
# clears the dead run's OUT.tmp.* and says so. Every signal lands at a chosen step on any
# machine (tests/preload's shim), none after a wait. A
# work folder left by a run killed before its first checkpoint (no state: here, a
# fingerprint's temporary) is reused by a plain run and by --resume; one whose fingerprint
# is gone is reported with --restart, which discards it. A second run on an output in use
# is refused naming the first one's pid. AWQ and --target-bpw runs treat a stale OUT.work as
# every run does: refused with --resume / --restart, never ignored and left behind.
. "$(dirname "$0")/../lib.sh"
Q=$(realpath "$Q") S=$(realpath "$S")
M=$S/models/stories260K/stories260K.bin CAL=$S/data/tinystories/tinystories_calib.txt
EVAL=$S/data/tinystories/tinystories_eval.txt
cd "$T" || exit 1
R="--method gptq --nsamples 8 --seqlen 128 --threads 2 --quiet"
q() { $Q $R --model "$M" --calib "$CAL" "$@"; }
# signal_in_eval SIG OUT: a run with --eval (SIGINT not ignored, as from a terminal) gets SIG
# once its output is written into OUT.tmp.* and waits there for the evaluation (the moment
# its last file, recipe.json, is in place: tests/preload's shim); rc: its exit status
signal_in_eval() {
    { preload "file:recipe.json:$1" env --default-signal=INT $Q $R --model "$M" --calib "$CAL" --eval "$EVAL" \
          --out "$2" >/dev/null 2>&1; } 2>/dev/null
    rc=$?
}

signal_in_eval TERM e1
check "SIGTERM with the output waiting for --eval: exit 143" "[ $rc -eq 143 ]"
check "SIGTERM: no e1.tmp.*, no e1" "! ls -d e1.tmp.* >/dev/null 2>&1 && [ ! -e e1 ]"
check "SIGTERM: the 5 finished blocks stay in e1.work" "[ \$(done_blocks e1.work) -eq 5 ]"
check "... and resume at once (the lock died with the run)" "q --out e1 --resume >/dev/null 2>&1 && [ -f e1/summary.json ] && [ ! -e e1.work ]"
signal_in_eval INT e2
check "SIGINT there: exit 130, no e2.tmp.*" "[ $rc -eq 130 ] && ! ls -d e2.tmp.* >/dev/null 2>&1 && [ ! -e e2 ]"
signal_in_eval KILL e3
check "SIGKILL there leaves e3.tmp.* (exit $rc)" "[ $rc -eq 137 ] && ls -d e3.tmp.* >/dev/null 2>&1"
q --out e3 --resume >/dev/null 2>err
check "the next run on e3 clears it and says so" \
    "[ $? -eq 0 ] && grep -q '1 temporary of e3 left by a qcalib run that died' err && ! ls -d e3.tmp.* >/dev/null 2>&1"

# a kill while the fingerprint was written: the folder holds its temporary, no fingerprint
mkdir w.work && echo partial >w.work/fingerprint.tmp.Ab12Cd
check "a work folder without checkpoints does not block a plain run" "q --out w >/dev/null 2>&1 && [ -f w/summary.json ] && [ ! -e w.work ]"
mkdir w2.work && echo partial >w2.work/fingerprint.tmp.Ab12Cd
check "... nor a --resume (nothing to resume: from the start)" "q --out w2 --resume >/dev/null 2>&1 && [ -f w2/summary.json ] && [ ! -e w2.work ]"

# a run that checkpointed blocks, killed right after its first checkpoint (tests/preload's shim)
kill_after() { # OUT
    { preload state:1 $Q $R --model "$M" --calib "$CAL" --out "$1" >/dev/null 2>&1; } 2>/dev/null
}
kill_after k
rm k.work/fingerprint
expect_fail "a work folder with blocks but no fingerprint: --resume names --restart" 1 "pass --restart" q --out k --resume
check "--restart discards it and runs afresh" "q --out k --restart >/dev/null 2>&1 && [ -f k/summary.json ] && [ ! -e k.work ]"

kill_after a
expect_fail "AWQ refuses a stale work folder" 1 "a.work holds the checkpoints of an interrupted run" \
    $Q --method awq --nsamples 8 --seqlen 128 --quiet --model "$M" --calib "$CAL" --out a
check "AWQ with --restart runs and leaves no work folder" \
    "$Q --method awq --nsamples 8 --seqlen 128 --quiet --model $M --calib $CAL --out a --restart >/dev/null 2>&1 && [ -f a/summary.json ] && [ ! -e a.work ]"
kill_after b
expect_fail "--target-bpw refuses a stale work folder" 1 "b.work holds the checkpoints of an interrupted run" \
    q --target-bpw 5 --out b
check "... and leaves it as it was" "[ \$(done_blocks b.work) -ge 1 ] && [ ! -e b ]"

# two runs on one output: the first stopped (SIGSTOP, by the shim) after its first block;
# its pid is the one its lock holds
preload file:state:STOP $Q $R --model "$M" --calib "$CAL" --out busy >/dev/null 2>&1 &
bg=$! pid=
while kill -0 $bg 2>/dev/null; do
    pid=$(cat busy.work/lock 2>/dev/null)
    [ -n "$pid" ] && case $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) in T*) break ;; esac # stopped
    sleep 0.01
done
expect_fail "a second run on an output in use names the first one's pid" 1 "in use by another qcalib run (pid $pid)" q --out busy
kill -TERM $pid
kill -CONT $pid
{ wait $bg; } 2>/dev/null
check "the first run, stopped (SIGTERM), left no busy.tmp.*" "! ls -d busy.tmp.* >/dev/null 2>&1 && [ ! -e busy ]"
finish "leftovers"
