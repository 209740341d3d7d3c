#!/bin/sh
# badinput/cli_bounds.sh — hostile inputs end to end (issue 17, "Bounded inputs"): a gzip bomb given
# as calibration text is refused at once under the bound the memory budget sets, with the bound
# and --max-memory named; the memory plan counts the calibration text; a tokenizer.json whose
# split regex is built to backtrack fails fast naming the file and the pattern. The bomb is built
# here, in the scratch folder (never committed).
. tests/lib.sh
SMALL="--nsamples 8 --seqlen 128 --threads 1"

# -- a gzip bomb: one JSON line of 200 MiB of text, about 200 KiB on disk
python3 -c '
import gzip, sys
with gzip.open(sys.argv[1], "wb", 9) as g:
    g.write(b"{\"text\": \"")
    chunk = b"a" * (1 << 20)
    for _ in range(200):
        g.write(chunk)
    g.write(b"\"}\n")
' "$T/bomb.json.gz"
check "the bomb is small on disk" "[ \$(wc -c <'$T/bomb.json.gz') -lt 1048576 ]"
# --max-memory 1G, one thread: the runtime allowance is 32 + 16 MiB (calib/plan.c), and each byte
# of calibration text may take 48 bytes (datasets/calib_set.c): (1024 - 48) / 48 = 20.3 MB of text
bound=$(awk 'BEGIN { printf "%.1f", (1024 - 48) / 48 }')
expect_fail "a gzip bomb as calibration text is refused under the budget's bound" 1 \
    "decompresses to more than" timeout 60 $Q --method gptq --model "$M" --calib "$T/bomb.json.gz" $SMALL \
    --out "$T/bombed" --max-memory 1G
check "the refusal names the file, the bound ($bound MB) and --max-memory" \
    "grep -q '$T/bomb.json.gz' '$T/err' && grep -q 'bounds each source to $bound MB of text' '$T/err' && grep -q -- '--max-memory' '$T/err'"
# (unbounded, the text was tokenized whole: minutes and many GB, 13.9 GB RSS for 1 GB of text;
# the refusal's own message, naming the bound, shows it stopped there)
check "refused: no output folder" "! ls -d '$T'/bombed* >/dev/null 2>&1"
expect_fail "stats --calib of the bomb is refused under the same bound" 1 \
    "bounds each source to $bound MB of text" timeout 60 $Q stats --model "$M" --calib "$T/bomb.json.gz" --nsamples 4 \
    --seqlen 64 --threads 1 --quiet --out "$T/bombed_stats" --max-memory 1G
check "stats refused: no output folder" "! ls -d '$T'/bombed_stats* >/dev/null 2>&1"

# -- the plan counts the calibration text: 48 bytes per byte of the 635575 read
$Q --method gptq --model "$M" --calib "$CAL" $SMALL --out "$T/fits" --max-memory 2G >/dev/null 2>"$T/plan"
text=$(awk 'BEGIN { printf "%.1f", 48 * 635575 / 1048576 }')
read=$(awk 'BEGIN { printf "%.1f", 635575 / 1048576 }')
cap=$(awk 'BEGIN { printf "%.1f", (2048 - 48) / 48 }')
check "the plan counts the text: calibration text $text MB (48 × $read read), $cap MB allowed" \
    "grep -q 'calibration text $text (48 × $read read; one source may hold $cap of text under this budget)' '$T/plan'"
check "the run under that plan writes its model" "[ -s '$T/fits/model.safetensors' ]"

# -- a split regex built to backtrack: 201^3 steps per position, about 5 ms per byte unbounded
cat >"$T/backtrack.json" <<'EOF'
{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []},
 "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[^Z]{0,200}[^Z]{0,200}[^Z]{0,200}Z|."}, "behavior": "Isolated"}}
EOF
head -c 6000 /dev/zero | tr '\0' 'a' >"$T/a6k.txt"
expect_fail "a backtracking split regex fails, naming the file and the pattern" 1 \
    "needs too many backtracking steps" timeout 60 $Q tokenize --tokenizer "$T/backtrack.json" --text "$T/a6k.txt"
check "the message names $T/backtrack.json and the pattern" \
    "grep -qF '$T/backtrack.json: pre_tokenizer' '$T/err' && grep -qF '/[^Z]{0,200}[^Z]{0,200}[^Z]{0,200}Z|./' '$T/err'"
# (unbounded it ran to the end, about 30 s for these 6 kB: the limit's message is the proof it
# was cut short)
finish input-bounds
