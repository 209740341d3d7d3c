#!/bin/sh
# e2e/convert_pad.sh — `qcalib convert --pad-to N` from the command line, on both real models:
# - convert --pad-to 256 to an HF folder and to a GGUF (F32): the written config's widths are
#   multiples of 256 with head_dim kept, and `qcalib eval` prints the same perplexity as the
#   original's to the printed digits (the logits agree within fp32 rounding: unit/io_pad.c);
# - bad input: --pad-to 0, 100 or not a number is a usage error (exit 2) and writes nothing;
#   a padded model llama2.c's format cannot hold (its fixed eps 1e-5) and an input that is not
#   a model fail with a message naming them, leaving nothing behind.
. tests/lib.sh
head -c 20000 "$EVAL" >"$T/ev.txt"

# ppl MODEL TOKENIZER: the printed perplexity line, without its speed
ppl() { $Q eval --model "$1" --tokenizer "$2" --text "$T/ev.txt" --seqlen 128 --threads 1 --quiet 2>"$T/err" |
            sed -n 's/^perplexity *\([0-9.]*\) *(mean NLL \([0-9.]*\) nats.*/\1 \2/p'; }

for pair in "260k:$M:$S/models/stories260K/tok512.bin" \
            "656k:$S/models/tinystories-656K:$S/models/tinystories-656K/tokenizer.json"; do
    n=${pair%%:*} rest=${pair#*:}; model=${rest%%:*} tok=${rest#*:}
    base=$(ppl "$model" "$tok")
    check "$n: fp32 perplexity ($base)" "[ -n '$base' ]"
    $Q convert --model "$model" --tokenizer "$tok" --out "$T/$n-hf" --pad-to 256 --quiet 2>"$T/err" ||
        bad "$n: convert --pad-to 256: $(cat "$T/err")"
    $Q convert --model "$model" --tokenizer "$tok" --out "$T/$n.gguf" --to gguf --pad-to 256 --quiet 2>"$T/err" ||
        bad "$n: convert --to gguf --pad-to 256: $(cat "$T/err")"
    check "$n: padded config: hidden_size and intermediate_size multiples of 256, head_dim kept" \
        "tr -d ' \n' <'$T/$n-hf/config.json' | grep -Eq '\"hidden_size\":256,\"intermediate_size\":(256|512),' &&
         ! grep -q '\"head_dim\"' '$T/$n-hf/config.json'"
    for out in "$T/$n-hf" "$T/$n.gguf"; do
        got=$(ppl "$out" "$tok")
        check "$n: eval of $(basename "$out") prints the original's perplexity and mean NLL ($got, $base)" \
            "echo '$got $base' | awk '{ d = \$2 - \$4; r = \$1 / \$3; exit !(NF == 4 && d <= 2.8e-3 && -d <= 2.8e-3 && r <= exp(2.8e-3) && r >= exp(-2.8e-3)) }'"
    done
done

# -- bad input
for v in 0 100 x; do
    expect_fail "--pad-to $v is a usage error" 2 "--pad-to" $Q convert --model "$M" --out "$T/bad-$v" --pad-to "$v"
    check "--pad-to $v: nothing written" "[ ! -e '$T/bad-$v' ]"
done
expect_fail "--to llama2c --pad-to 256: llama2.c's eps is fixed" 1 "--pad-to 256: $T/bad.bin: llama2.c's run.c hard-codes norm_eps 1e-5" \
    $Q convert --model "$M" --out "$T/bad.bin" --to llama2c --pad-to 256 --quiet
check "llama2c: nothing written" "[ -z \"\$(ls '$T' | grep bad.bin)\" ]"
expect_fail "--pad-to on a file that is no model" 1 "tok512.bin" \
    $Q convert --model "$S/models/stories260K/tok512.bin" --out "$T/bad-tok" --pad-to 256 --quiet
check "no model: nothing written" "[ ! -e '$T/bad-tok' ]"
finish pad
