#!/bin/sh
# e2e/cli.sh — qcalib as a user runs it, on the real model: greedy decoding reproduces
# llama2.c's run.c token for token; eval prints the protocol and valid JSON; help and usage
# errors; KL divergence of a model against itself is zero; the HF copy evaluates the same;
# bad input of every kind ends with a message naming the file and exit status 1, never a
# crash, and leaves no output behind.
. tests/lib.sh

# -- exactness against llama2.c's run.c
$Q generate --model "$M" --steps 200 --ids >"$T/ids" 2>"$T/err"
check "generate --steps 200 --ids reproduces greedy_from_bos_200.ids" \
    "cmp -s '$T/ids' '$S/models/stories260K/greedy_from_bos_200.ids' || diff '$T/ids' '$S/models/stories260K/greedy_from_bos_200.ids' >/dev/null"
$Q generate --model "$M" --steps 200 >"$T/txt" 2>&1
check "generate text matches greedy_from_bos_200.txt" "diff -q '$T/txt' '$S/models/stories260K/greedy_from_bos_200.txt' >/dev/null"

# -- eval
$Q eval --model "$M" --text "$EVAL" --seqlen 128 >"$T/eval.txt" 2>"$T/err"
check "eval prints the protocol with the number" "grep -q 'seqlen 128' '$T/eval.txt' && grep -q '^perplexity' '$T/eval.txt'"
$Q eval --model "$M" --text "$EVAL" --seqlen 128 --json >"$T/eval.json" 2>"$T/err"
check "eval --json has ppl, nll, tokens, windows, seqlen" \
    "for k in ppl nll tokens windows seqlen; do grep -q \"\\\"\$k\\\":\" '$T/eval.json' || exit 1; done"
ppl=$(sed 's/.*"ppl":\([0-9.e+-]*\).*/\1/' "$T/eval.json")
check "perplexity is a sane number ($ppl)" "awk 'BEGIN{exit !($ppl > 1 && $ppl < 100)}'"

# -- KL divergence: a model against itself
$Q eval --model "$M" --text "$EVAL" --seqlen 128 --save-logits "$T/base.lp" --quiet >/dev/null 2>"$T/err"
$Q eval --model "$M" --text "$EVAL" --seqlen 128 --kld-base "$T/base.lp" --json >"$T/kld.json" 2>"$T/err"
check "KL divergence of the model against itself is 0, top-1 100%" \
    "grep -q '\"kld_mean\":0,' '$T/kld.json' && grep -q '\"top1_agreement\":1,' '$T/kld.json'"
expect_fail "kld-base with another seqlen is refused" 1 "same text, tokenizer and --seqlen" \
    $Q eval --model "$M" --text "$EVAL" --seqlen 64 --kld-base "$T/base.lp"
head -c 1000 "$T/base.lp" >"$T/trunc.lp"
expect_fail "truncated log-prob file is refused" 1 "trunc.lp" \
    $Q eval --model "$M" --text "$EVAL" --seqlen 128 --kld-base "$T/trunc.lp"

# -- the HF copy evaluates exactly as the original, with the tokenizer.json convert wrote into it
$Q convert --model "$M" --out "$T/hf" --quiet
$Q eval --model "$T/hf" --text "$EVAL" --seqlen 128 --json >"$T/hf.json" 2>"$T/err"
ppl_hf=$(sed 's/.*"ppl":\([0-9.e+-]*\).*/\1/' "$T/hf.json")
# the same weights through the same code path: the same perplexity to the last digit printed
check "HF F32 copy: same perplexity ($ppl_hf vs $ppl)" "[ -n '$ppl' ] && [ '$ppl_hf' = '$ppl' ]"
expect_fail "convert refuses to overwrite (a usage error, before any work)" 2 "already exists" $Q convert --model "$M" --out "$T/hf"

# -- an F32 GGUF evaluates exactly as the original, with the vocabulary it carries
$Q convert --model "$M" --to gguf --out "$T/m.gguf" --quiet
$Q eval --model "$T/m.gguf" --text "$EVAL" --seqlen 128 --json >"$T/gguf.json" 2>"$T/err"
ppl_gguf=$(json_num "$T/gguf.json" ppl)
check "F32 GGUF: same perplexity, no --tokenizer needed ($ppl_gguf)" "[ '$ppl_gguf' = '$ppl' ]"
$Q inspect --model "$T/m.gguf" >"$T/inspect.txt" 2>&1
check "inspect lists the GGUF's format and tensors" "grep -q '^$T/m.gguf: gguf, 260032 parameters' '$T/inspect.txt' && grep -q 'model.layers.4.mlp.down_proj.weight  *\[64, 172\] *F32' '$T/inspect.txt'"

# -- help and usage
for c in eval generate convert tokenize; do
    check "qcalib $c --help" "$Q $c --help | grep -q 'usage: qcalib $c'"
done
check "qcalib --help lists the commands" "$Q --help | grep -q 'eval' && $Q --help | grep -q 'generate'"
expect_fail "unknown command" 2 "unknown command" $Q frobnicate
expect_fail "unknown option" 2 "unknown option '--sequence'" $Q eval --model "$M" --text "$EVAL" --sequence 3
expect_fail "missing --model" 2 "--model is required" $Q eval --text "$EVAL"
expect_fail "non-numeric --seqlen" 2 "--seqlen expects an integer" $Q eval --model "$M" --text "$EVAL" --seqlen 12x
expect_fail "--seqlen out of range" 2 "out of range" $Q eval --model "$M" --text "$EVAL" --seqlen 1
expect_fail "option without value" 2 "needs a value" $Q eval --model "$M" --text

# -- bad input: each names the file, exits 1 (no crash), writes nothing
expect_fail "missing model" 1 "$T/nope.bin" $Q eval --model "$T/nope.bin" --text "$EVAL"
head -c 5000 "$M" >"$T/short.bin"
expect_fail "truncated model" 1 "short.bin" $Q eval --model "$T/short.bin" --text "$EVAL" --tokenizer "$S/models/stories260K/tok512.bin"
printf '\000\000\000\100\100\000\000\000' | cat - "$M" | head -c 1056540 >"$T/absurd.bin"
expect_fail "absurd header" 1 "absurd.bin" $Q eval --model "$T/absurd.bin" --text "$EVAL" --tokenizer "$S/models/stories260K/tok512.bin"
: >"$T/empty.txt"
expect_fail "empty text" 1 "empty.txt" $Q eval --model "$M" --text "$T/empty.txt"
expect_fail "missing text" 1 "nothere.txt" $Q eval --model "$M" --text "$T/nothere.txt"
head -c 20000 "$S/data/c4/c4-validation-2k.json.gz" >"$T/cut.json.gz"
expect_fail "truncated gzip" 1 "cut.json.gz" $Q eval --model "$M" --text "$T/cut.json.gz"
printf '{"text": "a"}\n{"txt": 3}\n' >"$T/bad.jsonl"
expect_fail "JSONL line without text" 1 "bad.jsonl" $Q eval --model "$M" --text "$T/bad.jsonl"
head -c 3000 "$S/models/stories260K/tok512.bin" >"$T/tok.bin"
expect_fail "truncated tokenizer" 1 "tok.bin" $Q eval --model "$M" --text "$EVAL" --tokenizer "$T/tok.bin"
printf 'short' >"$T/tiny.txt"
expect_fail "text shorter than one window" 1 "tiny.txt" $Q eval --model "$M" --text "$T/tiny.txt"
mkdir -p "$T/hfbad" && cp "$T/hf/model.safetensors" "$T/hfbad/" && printf '{"model_type": "llama", "hidden_size": ' >"$T/hfbad/config.json"
expect_fail "malformed config.json" 1 "config.json" $Q eval --model "$T/hfbad" --text "$EVAL" --tokenizer "$S/models/stories260K/tok512.bin"
chmod 555 "$T" 2>/dev/null
if [ "$(id -u)" -ne 0 ]; then
    expect_fail "unwritable output folder" 1 "cannot" $Q convert --model "$M" --out "$T/x"
fi
chmod 755 "$T"
expect_fail "no output left by a failed convert" 1 "short.bin" $Q convert --model "$T/short.bin" --out "$T/never"
# a full disk, simulated by a file-size limit (64 KiB): every writer fails cleanly
expect_fail "full disk: GGUF" 1 "File too large" sh -c "ulimit -f 64; exec $Q convert --model '$M' --to gguf --out '$T/never.gguf' --quiet"
expect_fail "full disk: HF folder" 1 "File too large" sh -c "ulimit -f 64; exec $Q convert --model '$M' --out '$T/never_hf' --quiet"
expect_fail "full disk: quantize output" 1 "File too large" \
    sh -c "ulimit -f 64; exec $Q --method rtn --model '$M' --calib '$S/data/tinystories/tinystories_calib.txt' --nsamples 2 --seqlen 64 --out '$T/never_q' --quiet"
check "full disk: no output and no temporaries left" "[ ! -e '$T/never.gguf' ] && [ ! -e '$T/never_hf' ] && [ ! -e '$T/never_q' ]"
check "nothing at the failed output path, no temporaries" "[ ! -e '$T/never' ] && ! ls '$T' | grep -q 'tmp\.'"

finish CLI
