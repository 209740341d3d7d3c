# test_resume.sh — checkpoints and resume: a GPTQ run on stories260K (5 blocks) is killed
# with SIGKILL once its work folder says 2 blocks are finished, then resumed with --resume;
# the model it writes is byte-identical to an uninterrupted run's, and its logs and summary
# are identical but for measured times. A resume with other options or other calibration
# windows is refused naming the difference; a run without --resume will not overwrite the
# checkpoints; the work folder is gone after success. The same with the residual stream held
# in fp16 (--act-dtype f16: the state file holds it in fp16, and a resume with f32 is refused).
. "$(dirname "$0")/lib.sh"
# this test works inside its scratch folder: the paths it is given made absolute first
Q=$(realpath "$Q") S=$(realpath "$S")
M=$S/models/stories260K/stories260K.bin CAL=$S/data/tinystories/tinystories_calib.txt
cd "$T" || exit 1
ARGS="--method gptq --format gguf --wbits 4 --groupsize 32 --sym --model $M --calib $CAL --nsamples 24 --seqlen 128 --threads 2"
run() { $Q $ARGS "$@"; }
# the number of finished blocks recorded in a work folder's state (0 if none yet)
done_blocks() { [ -f "$1/state" ] && od -An -tu8 -j8 -N8 "$1/state" | tr -d ' ' || echo 0; }
# kill_after OUT N [OPTION...]: starts a run writing OUT and kills it with SIGKILL once N
# blocks are checkpointed; sets rc (its exit status) and at (the blocks checkpointed)
kill_after() {
    out=$1 n=$2
    shift 2
    $Q $ARGS --out "$out" --quiet "$@" >/dev/null 2>&1 & # directly: $! must be qcalib itself
    pid=$!
    while kill -0 $pid 2>/dev/null && [ "$(done_blocks "$out.work")" -lt "$n" ]; do sleep 0.01; done
    kill -9 $pid 2>/dev/null
    { wait $pid; } 2>/dev/null # (no "Killed" from the shell)
    rc=$?
    at=$(done_blocks "$out.work")
}

run --out full --quiet >/dev/null 2>"$T/full.err" || { cat "$T/full.err"; exit 1; }
check "an uninterrupted run leaves no work folder" "[ -d full ] && [ ! -e full.work ]"

kill_after part 2
echo "  killed (exit $rc) with $at of 5 blocks checkpointed"
check "SIGKILL in the middle of the run (exit 137, 2..4 blocks done)" "[ $rc -eq 137 ] && [ $at -ge 2 ] && [ $at -le 4 ]"
check "nothing at the output path after the kill" "[ ! -e part ]"

expect_fail "without --resume the checkpoints are not overwritten" 1 "pass --resume to continue it" run --out part --quiet
expect_fail "resume with another quantizer refused" 1 "it had \"quantizer: bits 4, groupsize 32, sym 1, mse 0" \
    run --out part --quiet --resume --mse
expect_fail "resume with other calibration windows refused" 1 "it had \"windows: 24 of 128 tokens" \
    run --out part --quiet --resume --seed 1
check "refusals keep the checkpoints" "[ \"\$(done_blocks part.work)\" -eq $at ]"

run --out part --resume >"$T/resume.out" 2>"$T/resume.err"
check "the resumed run succeeds" "[ $? -eq 0 ]"
check "it continues after block $at" "grep -q 'blocks 1..$at of 5 were finished' '$T/resume.err'"
check "resumed model byte-identical to the uninterrupted run's" "cmp -s full/model.gguf part/model.gguf"
check "resumed log identical but for the seconds column" \
    "cut -d, -f1-15 full/quant_log.csv >a && cut -d, -f1-15 part/quant_log.csv >b && cmp -s a b && [ \$(wc -l <a) -eq 36 ]"
check "resumed summary identical but for seconds" \
    "grep -v '\"seconds\"' full/summary.json >a && grep -v '\"seconds\"' part/summary.json >b && cmp -s a b"
check "work folder removed after the resumed run" "[ ! -e part.work ]"

# the residual stream in fp16: checkpointed as it is held
run --out full16 --quiet --act-dtype f16 >/dev/null 2>"$T/full16.err" || { cat "$T/full16.err"; exit 1; }
kill_after part16 2 --act-dtype f16
echo "  killed (exit $rc) with $at of 5 blocks checkpointed (--act-dtype f16)"
check "f16: killed in the middle" "[ $rc -eq 137 ] && [ $at -ge 2 ] && [ $at -le 4 ]"
check "f16: the state holds the fp16 stream (24 x 128 x 64 x 2 bytes)" \
    "[ \$(od -An -tu8 -j16 -N8 part16.work/state | tr -d ' ') -eq $((24 * 128 * 64 * 2)) ]"
expect_fail "f16 checkpoints refused for an f32 resume" 1 'it had "activations: F16"' run --out part16 --quiet --resume
check "f16: resumed run succeeds" "run --out part16 --quiet --resume --act-dtype f16 >/dev/null 2>&1"
check "f16: resumed model byte-identical to the uninterrupted f16 run's" "cmp -s full16/model.gguf part16/model.gguf"
check "f16 and f32 runs differ (the stream really was fp16)" "! cmp -s full/model.gguf full16/model.gguf"

# a damaged checkpoint is an error naming it, not a crash
kill_after dmg 1
head -c 1000 dmg.work/block-0000 >cut && mv cut dmg.work/block-0000
expect_fail "a truncated block checkpoint is refused" 1 "block-0000: truncated" run --out dmg --quiet --resume
check "... naming the fix, --restart" "grep -q 'pass --restart' '$T/err'"
check "the damaged checkpoints are left as they were" "[ \$(wc -c <dmg.work/block-0000) -eq 1000 ] && [ ! -e dmg ]"
finish "resume"
