#!/bin/sh
# e2e/rope_freqs.sh — Llama 3's rope_scaling through GGUF from the command line, on
# tinystories-656K's real weights under a config.json with a rope_scaling block added (a folder
# of symbolic links to ../shared's files; the numbers: unit/io_rope_freqs.c):
# - convert --to gguf writes it, inspect shows the scaled frequencies, and eval of the GGUF
#   prints the HF folder's perplexity;
# - a quantize run on that GGUF into a format with config.json (gptq, awq, fake) is refused before
#   calibrating, naming the missing rope_scaling parameters (exit 2, nothing written); into
#   gguf it runs, and the written file keeps the factors.
. tests/lib.sh
H=$S/models/tinystories-656K
mkdir -p "$T/l3" && ln -sf "$(realpath "$H/model.safetensors")" "$(realpath "$H/tokenizer.json")" "$T/l3/"
sed 's/"rope_scaling": null/"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 256}/' \
    "$H/config.json" >"$T/l3/config.json"
head -c 8000 "$EVAL" >"$T/ev.txt"
TOK="--tokenizer $H/tokenizer.json"

$Q convert --model "$T/l3" --to gguf --out "$T/l3.gguf" --quiet 2>"$T/err" || bad "convert --to gguf: $(cat "$T/err")"
check "inspect: the GGUF's RoPE is scaled per frequency" \
    "$Q inspect --model '$T/l3.gguf' | grep -q 'scaled per frequency'"
ppl() { $Q eval --model "$1" $TOK --text "$T/ev.txt" --seqlen 128 --threads 1 --quiet 2>"$T/err" |
            sed -n 's/^perplexity *\([0-9.]*\) .*/\1/p'; }
a=$(ppl "$T/l3") b=$(ppl "$T/l3.gguf") c=$(ppl "$H")
check "eval: the GGUF's perplexity is the HF folder's ($a, $b), not the unscaled model's ($c)" \
    "[ -n '$a' ] && [ '$a' = '$b' ] && [ '$a' != '$c' ]"

R="--method rtn --model $T/l3.gguf $TOK --calib $CAL --nsamples 2 --seqlen 64 --threads 1 --quiet"
for f in gptq awq fake; do
    expect_fail "--format $f of a GGUF with rope_freqs" 2 "--format $f: $T/l3.gguf: the model's RoPE frequency factors came from a GGUF's rope_freqs tensor" \
        $Q $R --format $f --out "$T/o-$f"
    check "--format $f: nothing written" "[ ! -e '$T/o-$f' ] && [ ! -e '$T/o-$f.work' ]"
done
$Q $R --format gguf --out "$T/o-gguf" >/dev/null 2>"$T/err" || bad "--format gguf: $(cat "$T/err")"
check "--format gguf: the quantized file keeps the factors" \
    "$Q inspect --model '$T/o-gguf/model.gguf' | grep -q 'scaled per frequency'"
finish rope_freqs
