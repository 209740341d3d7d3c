# e2e/quantize_resume.sh — checkpoints and resume: a GPTQ run on stories260K (5 blocks) is killed
# with SIGKILL right after it commits the checkpoint of its second block (tests/preload's shim,
# so the kill lands there on any machine), then resumed with --resume;
# the model it writes is byte-identical to an uninterrupted run's, and its whole quant log,
# recipe.json and summary.json are identical but for measured times. A resume that changes
# any result-affecting setting or input (each option in turn, the calibration text's bytes,
# the model's bytes at the same size and mtime, config.json beside a .safetensors) is
# refused naming it; the same model spelled differently (./m.bin, a symlink) is accepted. A
# run without --resume will not overwrite the checkpoints; the work folder is gone after
# success. The same with the residual stream held in fp16 (--act-dtype f16: the state file
# holds it in fp16, and a resume with f32 is refused).
. "$(dirname "$0")/../lib.sh"
# this test works inside its scratch folder: the paths it is given made absolute first
Q=$(realpath "$Q") S=$(realpath "$S")
cd "$T" || exit 1
T=$(pwd -P)
# the model and the text are copied so that their bytes can be changed (and put back)
cp "$S/models/stories260K/stories260K.bin" "$S/models/stories260K/tok512.bin" . && chmod u+w stories260K.bin tok512.bin
cp "$S/data/tinystories/tinystories_calib.txt" cal.txt && chmod u+w cal.txt
M=$T/stories260K.bin CAL=$T/cal.txt
cp "$M" pristine.bin && cp "$CAL" pristine.txt && touch -r "$M" pristine.bin && touch -r "$CAL" pristine.txt
ARGS="--method gptq --format gguf --wbits 4 --groupsize 32 --sym --nsamples 24 --seqlen 128 --threads 2"
MODEL=$M TEXT=$CAL
run() { $Q $ARGS --model "$MODEL" --calib "$TEXT" "$@"; }
# kill_after OUT N [OPTION...]: a run writing OUT, killed with SIGKILL right after it commits
# the checkpoint of block N; sets rc (its exit status) and at (the blocks checkpointed)
kill_after() {
    out=$1 n=$2
    shift 2
    { preload state:$n $Q $ARGS --model "$MODEL" --calib "$TEXT" --out "$out" --quiet "$@" >/dev/null 2>&1; } 2>/dev/null
    rc=$?
    at=$(done_blocks "$out.work")
}

run --out full --quiet >/dev/null 2>"$T/full.err" || { cat "$T/full.err"; exit 1; }
check "an uninterrupted run leaves no work folder" "[ -d full ] && [ ! -e full.work ]"

kill_after part 2
echo "  killed (exit $rc) with $at of 5 blocks checkpointed"
check "SIGKILL in the middle of the run (exit 137, 2 blocks done)" "[ $rc -eq 137 ] && [ $at -eq 2 ]"
check "nothing at the output path after the kill" "[ ! -e part ]"

expect_fail "without --resume the checkpoints are not overwritten" 1 "pass --resume to continue it" run --out part --quiet
# every result-affecting setting in turn: "FLAGS|what the refusal names (this run's line)"
while IFS='|' read -r flags needle; do
    [ -n "$flags" ] || continue
    expect_fail "resume with $flags refused, naming it" 1 "this run has \"$needle" run --out part --quiet --resume $flags
done <<'FLIPS'
--method rtn|method: rtn
--format fake|format: fake
--wbits 8|gguf_type: Q8_0
--mse|mse: true
--percdamp 0.02|percdamp: 0.0199
--damp-retries 2|damp_retries: 2
--blocksize 64|blocksize: 64
--act-order --static-groups|act_order: true
--no-true-sequential|true_sequential: false
--propagate fp32|propagate: fp32
--gguf-embed-type q8_0|gguf_embed_type: Q8_0
--gguf-output-type f16|gguf_output_type: F16
--gguf-no-pad|gguf_no_pad: true
--act-quant a8|act_quant_bits: 8
--quantize {"model.layers.4.mlp.down_proj":{"bits":8}}|recipe.model.layers.4.mlp.down_proj.bits: 8
--nsamples 16|nsamples: 16
--seqlen 64|seqlen: 64
--seed 1|seed: 1
--threads 1|threads: 1
--compute bf16|compute: bf16
FLIPS
expect_fail "resume with another calibration file refused, naming it" 1 "this run has \"calib[0]: $S/data/tinystories/tinystories_eval.txt" \
    $Q $ARGS --model "$M" --calib "$S/data/tinystories/tinystories_eval.txt" --out part --quiet --resume
expect_fail "resume with a second calibration file refused, naming it" 1 "this run has \"calib[1]: $S/data/tinystories/tinystories_eval.txt" \
    run --calib "$S/data/tinystories/tinystories_eval.txt" --out part --quiet --resume
# a byte of the calibration text changed, the file's size and mtime kept
printf 'X' | dd of="$CAL" bs=1 seek=1000 conv=notrunc 2>/dev/null && touch -r pristine.txt "$CAL"
expect_fail "resume with the calibration text's content changed (same size, mtime) refused" 1 \
    "it had \"inputs.calib_files.$CAL: content hash" run --out part --quiet --resume
cp pristine.txt "$CAL" && touch -r pristine.txt "$CAL"
# a byte of block 0's attention norm (after the 28-byte header, the 512 x 64 embedding and
# 2 floats of the norm), then of the token embedding; size and mtime kept
flip_model() { printf '\177' | dd of="$M" bs=1 seek="$1" conv=notrunc 2>/dev/null && touch -r pristine.bin "$M"; }
flip_model $((28 + 512 * 64 * 4 + 8))
expect_fail "resume with block 0's weights changed (same size, mtime) refused" 1 "block 0 of the model differs" \
    run --out part --quiet --resume
cp pristine.bin "$M" && touch -r pristine.bin "$M"
flip_model $((28 + 4 * 64 * 10))
expect_fail "resume with the token embedding changed (same size, mtime) refused" 1 "token embedding differs" \
    run --out part --quiet --resume
cp pristine.bin "$M" && touch -r pristine.bin "$M"
check "refusals keep the checkpoints" "[ \"\$(done_blocks part.work)\" -eq $at ]"

# the same inputs spelled otherwise: the model through a relative symlink, the text as ./cal.txt
ln -s "$M" link.bin
MODEL=./link.bin TEXT=./cal.txt
run --out part --resume >"$T/resume.out" 2>"$T/resume.err"
check "the resumed run succeeds (model given as ./link.bin, a symlink; text as ./cal.txt)" "[ $? -eq 0 ]"
MODEL=$M TEXT=$CAL
check "it continues after block $at" "grep -q 'blocks 1..$at of 5 were finished' '$T/resume.err'"
check "resumed model byte-identical to the uninterrupted run's" "cmp -s full/model.gguf part/model.gguf"
# the seconds column is the 16th of the CSV; each JSON line's "seconds" field
check "resumed quant log identical but for the seconds column" \
    "cut -d, -f1-15,17- full/quant_log.csv >a && cut -d, -f1-15,17- part/quant_log.csv >b && cmp -s a b && [ \$(wc -l <a) -eq 36 ] && head -1 full/quant_log.csv | cut -d, -f16 | grep -qx seconds"
check "resumed quant_log.jsonl identical but for seconds" \
    "sed 's/\"seconds\": *[0-9.e+-]*//' full/quant_log.jsonl >a && sed 's/\"seconds\": *[0-9.e+-]*//' part/quant_log.jsonl >b && cmp -s a b && [ \$(wc -l <a) -eq 35 ]"
check "resumed recipe.json identical" "cmp -s full/recipe.json part/recipe.json"
check "resumed summary identical but for seconds" \
    "grep -v 'seconds\"' full/summary.json >a && grep -v 'seconds\"' part/summary.json >b && cmp -s a b"
check "work folder removed after the resumed run" "[ ! -e part.work ]"

# config.json beside a model given as a .safetensors file: its content is part of the run
mkdir hf && cp "$S/models/tinystories-656K/config.json" "$S/models/tinystories-656K/model.safetensors" \
    "$S/models/tinystories-656K/tokenizer.json" "$S/models/tinystories-656K/tokenizer_config.json" hf/ && chmod u+w hf/*
MODEL=hf/model.safetensors
kill_after hfo 1 # a finished block: a resume
MODEL=$M
# (rope_theta changed: a rope_scaling, the issue's example, is now refused before any work
# by GGUF, this run's format; the same bytes' length keeps the size)
sed 's/"rope_theta": 10000.0/"rope_theta": 50000.0/' hf/config.json >c && mv c hf/config.json
check "(config.json given another rope_theta)" "grep -q '\"rope_theta\": 50000.0' hf/config.json && [ -f hfo.work/state ]"
expect_fail "resume with config.json changed beside a .safetensors refused, naming it" 1 \
    "it had \"inputs.model_files.$T/hf/config.json: 649 bytes, content hash" \
    $Q $ARGS --model "$T/hf/model.safetensors" --calib "$CAL" --out hfo --quiet --resume

# the residual stream in fp16: checkpointed as it is held
run --out full16 --quiet --act-dtype f16 >/dev/null 2>"$T/full16.err" || { cat "$T/full16.err"; exit 1; }
kill_after part16 2 --act-dtype f16
echo "  killed (exit $rc) with $at of 5 blocks checkpointed (--act-dtype f16)"
check "f16: killed in the middle" "[ $rc -eq 137 ] && [ $at -eq 2 ]"
check "f16: the state holds the fp16 stream (24 x 128 x 64 x 2 bytes)" \
    "[ \$(od -An -tu8 -j24 -N8 part16.work/state | tr -d ' ') -eq $((24 * 128 * 64 * 2)) ]"
expect_fail "f16 checkpoints refused for an f32 resume" 1 'it had "act_dtype: f16"' run --out part16 --quiet --resume
check "f16: resumed run succeeds" "run --out part16 --quiet --resume --act-dtype f16 >/dev/null 2>&1"
check "f16: resumed model byte-identical to the uninterrupted f16 run's" "cmp -s full16/model.gguf part16/model.gguf"
check "f16 and f32 runs differ (the stream really was fp16)" "! cmp -s full/model.gguf full16/model.gguf"

# a damaged checkpoint is an error naming it, not a crash
kill_after dmg 1
head -c 2000 dmg.work/block-0000 >cut && mv cut dmg.work/block-0000
expect_fail "a truncated block checkpoint is refused" 1 "block-0000: truncated" run --out dmg --quiet --resume
check "... naming the fix, --restart" "grep -q 'pass --restart' '$T/err'"
check "the damaged checkpoints are left as they were" "[ \$(wc -c <dmg.work/block-0000) -eq 2000 ] && [ ! -e dmg ]"
finish "resume"
