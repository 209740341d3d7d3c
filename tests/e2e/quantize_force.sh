# e2e/quantize_force.sh — what --force replaces, and how (issue 17, item 1). Every output folder
# carries qcalib's marker (.qcalib-output); --force replaces such a folder and refuses,
# naming the path, a folder without it (its files untouched), a symbolic link, a file, the
# folder of an input of the run (the model, a calibration or evaluation text) or a folder
# containing one, the home folder and the root folder; convert and stats follow the same
# rule. A replace is one renameat2(RENAME_EXCHANGE): a SIGKILL right after it leaves the new
# output at the path and the old one at OUT.tmp.*, which the next run on OUT clears. Where
# the filesystem cannot exchange (simulated), a SIGKILL between the two renames leaves the
# old output at OUT.old.*, and the next run on OUT puts it back. The kills and the missing
# exchange are played by tests/preload/rename_kill.c, an LD_PRELOAD shim (lib.sh's preload).
. "$(dirname "$0")/../lib.sh"
Q=$(realpath "$Q") S=$(realpath "$S")
M=$S/models/stories260K/stories260K.bin CAL=$S/data/tinystories/tinystories_calib.txt
cd "$T" || exit 1
R="--method gptq --nsamples 8 --seqlen 128 --quiet"
q() { $Q $R --model "$M" --calib "$CAL" "$@"; }

# -- what --force will and will not replace
mkdir -p p/sub && echo x >p/sub/t.txt
expect_fail "a folder qcalib did not write is refused, naming it" 2 "p: not a folder qcalib wrote" q --out p --force
check "its files are untouched, nothing written beside it" "[ \"\$(ls -A p)\" = sub ] && [ \"\$(cat p/sub/t.txt)\" = x ] && ! ls -d p.* >/dev/null 2>&1"
q --out o >/dev/null 2>err || cat err
check "an output folder carries the marker" "[ -f o/.qcalib-output ] && [ -f o/summary.json ]"
ino=$(stat -c %i o)
check "qcalib's own output folder is replaced" "q --out o --force --seed 1 >/dev/null 2>&1 && [ -f o/summary.json ] && [ \$(stat -c %i o) != $ino ]"
ln -s o lnk
expect_fail "a symbolic link is refused" 2 "lnk: is a symbolic link" q --out lnk --force
echo x >f
expect_fail "a file is refused" 2 "f: exists and is not a folder" q --out f --force
check "the link and the file are untouched" "[ -L lnk ] && [ \"\$(cat f)\" = x ]"

q --out m --format fake >/dev/null 2>err || cat err
expect_fail "the input model's folder is refused" 2 "m: holds m/model.bin, an input of this run" \
    $Q $R --model m/model.bin --calib "$CAL" --out m --force
mkdir -p outer && q --out outer/m --format fake >/dev/null 2>err || cat err
: >outer/.qcalib-output # marked as qcalib's, yet it holds an input
expect_fail "a folder containing the model is refused" 2 "outer: holds outer/m/model.bin, an input" \
    $Q $R --model outer/m/model.bin --calib "$CAL" --out outer --force
yes "Once upon a time, a little dog ran to the park with his friend." | head -n 600 >o/story.txt
expect_fail "a calibration text's folder is refused" 2 "o: holds o/story.txt, an input" q --calib o/story.txt --out o --force
rm o/story.txt && yes "The cat sat in the sun." | head -n 300 >o/eval.txt
expect_fail "an evaluation text's folder is refused" 2 "o: holds o/eval.txt, an input" q --eval o/eval.txt --out o --force
check "the refused folders are all still there" "[ -f m/model.bin ] && [ -f outer/m/model.bin ] && [ -f o/eval.txt ]"
expect_fail "the home folder is refused (resolved: HOME=o/.)" 2 "is the home folder" env HOME="$T/o/." $Q $R --model "$M" --calib "$CAL" --out o --force
expect_fail "the root folder is refused" 2 "/: is the root folder" q --out / --force
check "nothing written at the root" "[ ! -e /.work ]"

expect_fail "convert --force follows the same rule" 2 "p: not a folder qcalib wrote" $Q convert --model "$M" --out p --force
check "convert replaces its own output" "$Q convert --model $M --out hf --quiet && $Q convert --model $M --out hf --force --quiet && [ -f hf/.qcalib-output ]"
# single files (--to gguf, llama2c) carry no marker: --force replaces only a regular file that
# qcalib reads as a model of the format being written, and never an input or a link
echo "not a model" >notes.gguf && cp notes.gguf notes.bak
expect_fail "convert --to gguf --force onto a file that is no GGUF model" 2 "notes.gguf: not a gguf model file qcalib can read" \
    $Q convert --model "$M" --to gguf --out notes.gguf --force
check "that file is untouched" "cmp -s notes.gguf notes.bak"
$Q convert --model "$M" --to gguf --out m.gguf --quiet
expect_fail "convert --to llama2c --force onto a GGUF model" 2 "m.gguf: not a llama2.c model file" \
    $Q convert --model "$M" --to llama2c --out m.gguf --force
expect_fail "convert --force onto its own input" 2 "m.gguf: is m.gguf, an input of this run" \
    $Q convert --model m.gguf --to gguf --out m.gguf --force
ln -s m.gguf link.gguf
expect_fail "convert --force onto a symbolic link" 2 "link.gguf: is a symbolic link" $Q convert --model "$M" --to gguf --out link.gguf --force
check "convert --to gguf --force replaces a GGUF model" \
    "$Q convert --model $M --to gguf --dtype f16 --out m.gguf --force --quiet && [ -L link.gguf ] && $Q inspect --model m.gguf | grep -q F16"
expect_fail "stats --force follows the same rule" 2 "p: not a folder qcalib wrote" $Q stats --model "$M" --out p --force --quiet

# -- a kill inside the replace
q --out r >/dev/null 2>err || cat err
cp r/summary.json old.json
preload exchange $Q $R --model "$M" --calib "$CAL" --seed 2 --out r --force >/dev/null 2>&1
rc=$?
check "killed inside the replace (exit $rc)" "[ $rc -eq 137 ]"
check "the path holds the new output (exchange: never neither)" "[ -f r/summary.json ] && [ -f r/model.safetensors ] && ! cmp -s r/summary.json old.json"
check "the old output waits at r.tmp.*" "ls -d r.tmp.* >/dev/null 2>&1"
q --out r --force --seed 2 --resume >/dev/null 2>err # (r.work kept the killed run's blocks)
check "the next run on r clears it, and says so" "[ $? -eq 0 ] && grep -q 'left by a qcalib run that died' err && ! ls -d r.tmp.* >/dev/null 2>&1"

cp r/summary.json old.json
preload noexchange $Q $R --model "$M" --calib "$CAL" --out r --force >/dev/null 2>&1
check "without RENAME_EXCHANGE the replace takes two renames, nothing left" \
    "[ $? -eq 0 ] && ! cmp -s r/summary.json old.json && ! ls -d r.old.* r.tmp.* >/dev/null 2>&1"
cp r/summary.json old.json
preload noexchange-kill $Q $R --model "$M" --calib "$CAL" --seed 3 --out r --force >/dev/null 2>&1
rc=$?
check "killed between the two renames (exit $rc): the old output at r.old.*" "[ $rc -eq 137 ] && [ ! -e r ] && ls -d r.old.* >/dev/null 2>&1"
expect_fail "the next run on r puts the old output back (and stops: r exists)" 2 "already exists" q --out r
check "r is the old output again, no r.old.* left" "cmp -s r/summary.json old.json && ! ls -d r.old.* >/dev/null 2>&1"
finish "force"
