#!/bin/sh
# e2e/quantize.sh — `qcalib quantize` end to end on the real stories260K, as a user runs it:
# the output folder and its logs; the quantized model evaluates as the summary says; GPTQ
# beats round-to-nearest on held-out text; the same command writes the same bytes; a Hessian
# that cannot be factorized does not stop the run; the plot script renders a PNG from real
# logs; every output format evaluates exactly as the solver's weights held in memory
# (--verify) and lists as it should (inspect); Hugging Face input and .npy windows; bad
# options and inputs.
. tests/lib.sh
# A small calibration set keeps the suite fast; the README's table uses the full 128 x 512.
SMALL="--nsamples 32 --seqlen 256 --quiet"

# -- GPTQ w4 g32 into a folder; evaluated on held-out text
$Q --method gptq --wbits 4 --groupsize 32 --model "$M" --calib "$CAL" $SMALL --out "$T/gptq" --eval "$EVAL" >"$T/gptq.txt" 2>"$T/err"
check "quantize exits 0 and reports" "grep -q 'quantized 35 linear layers' '$T/gptq.txt'"
check "output folder holds GPTQ safetensors (the default for every input), logs, summary" \
    "for f in config.json model.safetensors quant_log.csv quant_log.jsonl summary.json; do [ -s '$T/gptq/'\$f ] || exit 1; done"
check "w4 g32 as asked: asymmetric groups of 32 in the config and in every log row (not GGUF's Q4_0)" \
    "grep -q '\"group_size\": 32,' '$T/gptq/config.json' && grep -q '\"sym\": false' '$T/gptq/config.json' && [ \$(awk -F, 'NR > 1 && \$8 == 32 && \$9 == 0' '$T/gptq/quant_log.csv' | wc -l) -eq 35 ]"
$Q inspect --model "$T/gptq" >"$T/gptq.ls" 2>&1
check "the token embedding is not quantized (F16), as nothing asked for it" \
    "grep 'model.embed_tokens.weight' '$T/gptq.ls' | grep -q ' F16\$'"
check "quant_log.csv: header + 35 rows, every module of every block" \
    "[ \$(wc -l <'$T/gptq/quant_log.csv') -eq 36 ] && [ \$(grep -c ',down,' '$T/gptq/quant_log.csv') -eq 5 ]"
check "summary.json names the written format, why, and the model's, each once" \
    "[ \$(grep -c '\"format\":' '$T/gptq/summary.json') -eq 1 ] && grep -q '\"format\":[[:space:]]*\"gptq\"' '$T/gptq/summary.json' && grep -q '\"format_reason\":[[:space:]]*\"the default: GPTQ safetensors hold every setting' '$T/gptq/summary.json' && grep -q '\"model_format\":[[:space:]]*\"llama2.c\"' '$T/gptq/summary.json'"
check "quant_log.jsonl: 35 objects with rel_err" "[ \$(grep -c '\"rel_err\":' '$T/gptq/quant_log.jsonl') -eq 35 ]"
qppl=$(json_num "$T/gptq/summary.json" quant_ppl)
$Q eval --model "$T/gptq" --text "$EVAL" --seqlen 256 --json >"$T/evalq.json" 2>"$T/err"
eppl=$(json_num "$T/evalq.json" ppl)
check "qcalib eval --model DIR gives the summary's perplexity ($eppl = $qppl)" "[ -n '$eppl' ] && [ '$eppl' = '$qppl' ]"

# -- the headline command (README's first line) on the llama2.c model: asymmetric w4 g128 GPTQ,
#    the choice printed with its reason
$Q --method gptq --wbits 4 --groupsize 128 --model "$M" --calib "$CAL" --nsamples 8 --seqlen 128 --out "$T/head" \
    >"$T/head.txt" 2>"$T/head.err"
check "the headline command succeeds on stories260K.bin (exit $?) and says why GPTQ" \
    "grep -q '^output format gptq: the default' '$T/head.err' && grep -q 'quantized 35 linear layers (gptq w4g128)' '$T/head.txt'"
check "... writing asymmetric 4-bit groups of 128" \
    "grep -q '\"bits\": 4,' '$T/head/config.json' && grep -q '\"group_size\": 128,' '$T/head/config.json' && grep -q '\"sym\": false' '$T/head/config.json'"
# torchchat's recipe (int4 g32 linears, the embedding 8-bit per row): GPTQ keeps embeddings
# fp16, so fake, which holds both; a --gguf-* option alone means GGUF
$Q --method rtn --quantize '{"linear:int4": {"groupsize": 32}, "embedding": {"bitwidth": 8, "groupsize": 0}}' \
    --model "$M" --calib "$CAL" --nsamples 2 --seqlen 64 --quiet --out "$T/tc" >/dev/null 2>"$T/err"
check "torchchat's int4 + embedding recipe: written as fake, the reason naming the embedding" \
    "grep -q '\"format\":[[:space:]]*\"fake\"' '$T/tc/summary.json' && grep -q '\"format_reason\":[[:space:]]*\"the recipe.s embedding bitwidth 8 quantizes the token embedding' '$T/tc/summary.json' && [ \$(awk -F, 'NR > 1 && \$7 == 4 && \$8 == 32 && \$9 == 0' '$T/tc/quant_log.csv' | wc -l) -eq 35 ]"
$Q --method rtn --gguf-type q4_1 --model "$M" --calib "$CAL" --nsamples 2 --seqlen 64 --quiet --out "$T/g41" >/dev/null 2>"$T/err"
check "--gguf-type q4_1 alone: GGUF Q4_1" \
    "[ -s '$T/g41/model.gguf' ] && grep -q '\"gguf_type\":[[:space:]]*\"Q4_1\"' '$T/g41/summary.json' && grep -q '\"format_reason\":[[:space:]]*\"--gguf-type names' '$T/g41/summary.json'"

# -- RTN baseline with the same settings: GPTQ must do better
$Q --method rtn --wbits 4 --groupsize 32 --model "$M" --calib "$CAL" $SMALL --out "$T/rtn" --eval "$EVAL" >/dev/null 2>"$T/err"
rppl=$(json_num "$T/rtn/summary.json" quant_ppl)
fppl=$(json_num "$T/gptq/summary.json" fp32_ppl)
check "perplexity fp32 $fppl < GPTQ $qppl < RTN $rppl" "awk 'BEGIN{exit !($fppl < $qppl && $qppl < $rppl)}'"

# -- the same command twice: the same bytes (measured times aside)
$Q --method gptq --wbits 4 --groupsize 32 --model "$M" --calib "$CAL" $SMALL --out "$T/gptq2" --eval "$EVAL" >/dev/null 2>&1
check "same command, byte-identical model" "cmp -s '$T/gptq/model.safetensors' '$T/gptq2/model.safetensors'"
check "same command, identical logs but for the seconds column" \
    "cut -d, -f1-15 '$T/gptq/quant_log.csv' >'$T/a' && cut -d, -f1-15 '$T/gptq2/quant_log.csv' >'$T/b' && cmp -s '$T/a' '$T/b'"
check "same command, identical summary but for seconds" \
    "grep -v 'seconds\"' '$T/gptq/summary.json' >'$T/a' && grep -v 'seconds\"' '$T/gptq2/summary.json' >'$T/b' && cmp -s '$T/a' '$T/b'"
# the time split: the parts of calibration add up to its seconds (each printed to 15 digits by
# cJSON, the sum's rounding far below 1e-6 s), the solves are the quant log's
sec=$(json_num "$T/gptq/summary.json" seconds) fw=$(json_num "$T/gptq/summary.json" forward_seconds)
stt=$(json_num "$T/gptq/summary.json" statistics_seconds) sol=$(json_num "$T/gptq/summary.json" solve_seconds)
wr=$(json_num "$T/gptq/summary.json" write_seconds)
logsum=$(awk -F, 'NR > 1 { s += $16 } END { printf "%.9f", s }' "$T/gptq/quant_log.csv")
check "summary.json splits calibration's $sec s into forward $fw + statistics $stt + solve $sol s (the quant log's $logsum), and writing $wr s" \
    "awk 'BEGIN { d = $fw + $stt + $sol - $sec; l = $sol - $logsum; exit !($fw > 0 && $stt > 0 && $sol > 0 && $wr > 0 && d < 1e-6 && d > -1e-6 && l < 1e-3 && l > -1e-3) }'"

# -- a Hessian from 8 tokens (rank <= 8 < 64 inputs) with no damping cannot be factorized:
#    the damping is raised and the run goes on; with no retries allowed, round-to-nearest
$Q --method gptq --model "$M" --calib "$CAL" --nsamples 1 --seqlen 8 --percdamp 0 --out "$T/tiny" >"$T/tiny.txt" 2>"$T/tiny.err"
rc=$?
check "an unfactorizable Hessian does not stop the run (exit $rc)" "[ $rc -eq 0 ] && [ -s '$T/tiny/model.bin' ]"
check "--percdamp 0, which a GPTQ config cannot record, is written as fake, saying so" \
    "grep -q '\"format_reason\":[[:space:]]*\"GPTQ configs record a damping 0 < damp_percent < 1 (AutoGPTQ.s rule), not --percdamp 0' '$T/tiny/summary.json'"
check "damping escalation shows in the log (retries > 0, damping raised)" \
    "awk -F, 'NR > 1 && \$13 > 0 && \$12 > 0 {found = 1} END {exit !found}' '$T/tiny/quant_log.csv' && grep -q 'raising the damping' '$T/tiny.err'"
$Q --method gptq --model "$M" --calib "$CAL" --nsamples 1 --seqlen 8 --percdamp 0 --damp-retries 0 --out "$T/tiny0" >"$T/tiny0.txt" 2>"$T/tiny0.err"
rc=$?
check "no retries: the run goes on (exit $rc) and falls back to round-to-nearest, in the log and on the console" \
    "[ $rc -eq 0 ] && grep -q ',yes,' '$T/tiny0/quant_log.csv' && grep -q 'round-to-nearest' '$T/tiny0.err'"
check "the summary counts the fallbacks" "[ \"\$(json_num '$T/tiny0/summary.json' fallbacks)\" -gt 0 ]"

# -- plots from real logs: one log, and RTN vs GPTQ on one figure
scripts/plot-quant-log -o "$T/cmp.png" "$T/rtn/quant_log.csv:RTN" "$T/gptq/quant_log.csv:GPTQ" 2>"$T/err"
check "plot of RTN vs GPTQ is a valid PNG" "[ \"\$(head -c 8 '$T/cmp.png' | od -An -c | tr -d ' \n')\" = '211PNG\r\n032\n' ] && [ \$(wc -c <'$T/cmp.png') -gt 10000 ]"
expect_fail "plot refuses a file that is not a quant log" 1 "not a qcalib quant log" scripts/plot-quant-log -o "$T/x.png" "$EVAL"

# -- every format: the file evaluates exactly as the solver's linears held in memory
head -c 30000 "$EVAL" >"$T/eval_small.txt"
TINY="--nsamples 16 --seqlen 128 --quiet --json --eval $T/eval_small.txt --verify"
for spec in "gguf:Q4_0" "gguf --gguf-type q4_1:Q4_1" "gguf --gguf-type q8_0:Q8_0" "gptq --groupsize 32:gptq-4bit-g32" \
            "gptq --wbits 3 --groupsize 32 --checkpoint-format v2:gptq-3bit-g32" "gptq --wbits 2 --groupsize 16:gptq-2bit-g16" \
            "gptq --wbits 8 --groupsize -1 --act-order:gptq-8bit-gch" "awq --groupsize 32:awq-4bit-g32" "llama2c:q8_0-g64" \
            "gguf --gguf-no-pad:F16" "fake:F32"; do
    f=${spec%%:*} want=${spec#*:} dir="$T/fmt_$(printf %s "$f" | tr -c 'a-z0-9' _)"
    # shellcheck disable=SC2086
    $Q --method gptq --format $f --model "$M" --calib "$CAL" $TINY --out "$dir" >"$dir.json" 2>"$dir.err"
    check "--format $f: written file = in-memory solver (ppl $(json_num "$dir.json" quant_ppl))" \
        "grep -q '\"memory_ppl\"' '$dir.json' && [ \"\$(json_num '$dir.json' quant_ppl)\" = \"\$(json_num '$dir.json' memory_ppl)\" ]"
    $Q inspect --model "$dir" >"$dir.ls" 2>&1
    check "inspect --format $f lists down_proj as $want" "grep 'layers.4.mlp.down_proj' '$dir.ls' | grep -q ' $want\$'"
done
check "GPTQ folder has quantize_config.json and quantization_config" \
    "[ -s '$T/fmt_gptq___groupsize_32/quantize_config.json' ] && grep -q quantization_config '$T/fmt_gptq___groupsize_32/config.json'"
check "--gguf-no-pad keeps down_proj F16, said in the log and on the console" \
    "grep -q ',down,.*,f16,' '$T/fmt_gguf___gguf_no_pad/quant_log.csv' && grep -q 'kept as F16' '$T/fmt_gguf___gguf_no_pad.err'"
check "the GGUF generates text with its own vocabulary" "$Q generate --model '$T/gptq' --steps 40 | grep -q 'Once upon a time'"

# -- every folder carries the vocabulary as its consumer reads it: Hugging Face-style folders
# tokenizer.json + tokenizer_config.json (made from tok512.bin), which eval finds by itself;
# llama2.c folders tokenizer.bin, byte for byte; GGUF its own keys (datasets/tokenizer_write.c)
TOK512=$S/models/stories260K/tok512.bin
G=$T/fmt_gptq___groupsize_32 A=$T/fmt_awq___groupsize_32
for d in "$G" "$A"; do
    $Q eval --model "$d" --text "$T/eval_small.txt" --seqlen 128 --quiet --json >"$d.own.json" 2>&1
    $Q eval --model "$d" --tokenizer "$TOK512" --text "$T/eval_small.txt" --seqlen 128 --quiet --json >"$d.tok.json" 2>&1
done
hf_tokenizer_ok() { # DIR: both files, no tokenizer.bin, and eval finds them (the same ppl as with tok512.bin)
    [ -s "$1/tokenizer.json" ] && [ -s "$1/tokenizer_config.json" ] && [ ! -e "$1/tokenizer.bin" ] && grep -q '"ppl":' "$1.own.json" &&
        [ "$(json_num "$1.own.json" ppl)" = "$(json_num "$1.tok.json" ppl)" ]
}
check "GPTQ, AWQ folders: tokenizer.json and tokenizer_config.json, no tokenizer.bin; eval without --tokenizer = with tok512.bin (ppl $(json_num "$G.own.json" ppl), $(json_num "$A.own.json" ppl))" \
    "hf_tokenizer_ok '$G' && hf_tokenizer_ok '$A'"
check "llama2c, fake (llama2.c input) folders: tokenizer.bin = tok512.bin, no tokenizer.json; GGUF folder: no tokenizer file" \
    "cmp -s '$T/fmt_llama2c/tokenizer.bin' '$TOK512' && cmp -s '$T/fmt_fake/tokenizer.bin' '$TOK512' && [ ! -e '$T/fmt_llama2c/tokenizer.json' ] && \
     [ -z \"\$(ls '$T/fmt_gguf' | grep tokenizer)\" ]"

# -- Hugging Face input (F16): GPTQ safetensors out, evaluated through the same path
$Q convert --model "$M" --out "$T/hf16" --dtype f16 --quiet
$Q quantize --method rtn --model "$T/hf16" --tokenizer "$S/models/stories260K/tok512.bin" --calib "$CAL" $SMALL --out "$T/hfq" >/dev/null 2>"$T/err"
check "HF input gives GPTQ safetensors by default" "[ -s '$T/hfq/config.json' ] && [ -s '$T/hfq/model.safetensors' ] && grep -q '\"quant_method\"' '$T/hfq/config.json'"
$Q eval --model "$T/hfq" --text "$EVAL" --seqlen 256 --json >"$T/hfq.json" 2>"$T/err"
check "the HF output evaluates" "grep -q '\"ppl\":' '$T/hfq.json'"

# -- calibration windows from a .npy file (int32, 2 x 8), used as they are
{ printf '\223NUMPY\001\000v\000'; printf "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 8), }"; printf '%*s\n' 58 ''; } >"$T/w.npy"
for i in 1 403 407 261 378 432 383 286 1 261 376 298 315 421 395 317; do printf "$(printf '\\%03o\\%03o\\000\\000' $((i % 256)) $((i / 256)))"; done >>"$T/w.npy"
$Q --method rtn --model "$M" --calib-tokens "$T/w.npy" --out "$T/npyq" --json >"$T/npy.json" 2>"$T/err"
check "--calib-tokens: 2 windows of 8 tokens from the .npy" "[ \"\$(json_num '$T/npy.json' nsamples)\" = 2 ] && [ \"\$(json_num '$T/npy.json' seqlen)\" = 8 ]"
check "--calib-tokens without --eval: the folder still carries the vocabulary found beside the model" \
    "[ -s '$T/npyq/tokenizer.json' ] && [ -s '$T/npyq/tokenizer_config.json' ]"

# -- bad options and inputs: clear message, no output folder
expect_fail "--wbits 9 is refused" 2 "--wbits 9 is out of range" $Q --model "$M" --calib "$CAL" --out "$T/x" --wbits 9
expect_fail "unknown method" 2 "--method 'hqq'" $Q --method hqq --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "no calibration text" 2 "--calib" $Q --method gptq --model "$M" --out "$T/x"
expect_fail "existing output folder" 2 "already exists" $Q --model "$M" --calib "$CAL" --out "$T/gptq"
expect_fail "act-order with rtn" 2 "GPTQ options" $Q --method rtn --act-order --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "gguf with 3 bits" 2 "--format gguf stores 4 or 8 bits (q4_0, q4_1, q8_0): --wbits 3 contradicts it" $Q --format gguf --wbits 3 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "gguf with groups of 128: both named" 2 "--format gguf stores blocks of 32: --groupsize 128 contradicts it" $Q --format gguf --groupsize 128 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "q4_1 with --sym: both named" 2 "--gguf-type q4_1 is asymmetric: --sym contradicts it" $Q --gguf-type q4_1 --sym --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "q4_0 with --wbits 8: both named" 2 "--gguf-type q4_0 is 4-bit: --wbits 8 contradicts it" $Q --gguf-type q4_0 --wbits 8 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "a GGUF option with --format gptq: both named" 2 "--gguf-type applies to --format gguf: --format gptq contradicts it" $Q --format gptq --gguf-type q4_0 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "--format gptq with --percdamp 0: both named, before calibrating" 2 "--percdamp 0 contradicts it" $Q --format gptq --percdamp 0 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "gguf with act-order alone" 2 "--act-order needs --static-groups" $Q --format gguf --act-order --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "awq with act-order" 2 "no g_idx" $Q --format awq --act-order --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "gguf f16 is not a quantized type" 2 "qcalib convert" $Q --format gguf --gguf-type f16 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "unknown format" 2 "--format 'onnx'" $Q --format onnx --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "missing calibration file" 1 "nothere.txt" $Q --model "$M" --calib "$T/nothere.txt" --out "$T/x"
expect_fail "seqlen longer than the calibration text" 1 "tokens" $Q --model "$M" --calib "$S/models/stories260K/greedy_from_bos_200.txt" --seqlen 512 --out "$T/x"
check "no output folder and no temporaries after failures" "[ ! -e '$T/x' ] && ! ls '$T' | grep -q 'tmp\.'"

finish quantize
