#!/bin/sh
# awq-table.sh — the README's AWQ and SmoothQuant tables on stories260K, calibrated on 128 x 512
# tokens of tinystories_calib.txt (seed 0), perplexity at seqlen 512 on tinystories_eval.txt and
# WikiText-2 test:
#   1. w4 g32 in AutoAWQ's format (--format awq): RTN, GPTQ, AWQ, AWQ+GPTQ;
#   2. W8A8 (8-bit symmetric per-channel weights, `qcalib eval --act-quant a8`): without
#      smoothing and with SmoothQuant at α 0.25, 0.5, 0.75, 0.85.
# Every quantization, then every evaluation, runs as its own single-threaded process, all at
# once (the figures do not depend on it). Prints Markdown tables; the quantized folders and
# the figures stay in $OUT (default build/awq-table).
#   scripts/awq-table.sh [build/qcalib]
set -eu
Q=${1:-build/qcalib}
S=${QCALIB_SHARED:-../shared}
OUT=${OUT:-build/awq-table}
M=$S/models/stories260K/stories260K.bin
CAL=$S/data/tinystories/tinystories_calib.txt
TS=$S/data/tinystories/tinystories_eval.txt
WT=$S/data/wikitext2/wiki.test.raw
W8="--wbits 8 --groupsize -1 --sym --format fake"
mkdir -p "$OUT"
# quant NAME FLAGS...: a quantized folder $OUT/NAME
quant() { name=$1; shift; "$Q" "$@" --model "$M" --calib "$CAL" --nsamples 128 --seqlen 512 --seed 0 --out "$OUT/$name" --force --quiet --threads 1 >/dev/null; }
# ppl MODEL TEXT [eval options]: the perplexity
ppl() { m=$1 t=$2; shift 2; "$Q" eval --model "$m" --text "$t" --seqlen 512 --json --quiet --threads 1 "$@" | sed 's/.*"ppl":\([0-9.]*\).*/\1/'; }

for m in rtn gptq awq awq+gptq; do quant "w4-$m" --method "$m" --format awq --wbits 4 --groupsize 32 & done
# shellcheck disable=SC2086
quant w8-none --method rtn $W8 &
for a in 0.25 0.5 0.75 0.85; do
    # shellcheck disable=SC2086
    quant "w8-sq$a" --method smoothquant --alpha "$a" $W8 &
done
wait
for t in ts wt; do
    text=$TS; [ $t = wt ] && text=$WT
    ppl "$M" "$text" >"$OUT/fp32.$t" &
    ppl "$M" "$text" --act-quant a8 >"$OUT/fp32-a8.$t" &
    for m in rtn gptq awq awq+gptq; do ppl "$OUT/w4-$m" "$text" >"$OUT/w4-$m.$t" & done
    for w in none sq0.25 sq0.5 sq0.75 sq0.85; do ppl "$OUT/w8-$w" "$text" --act-quant a8 >"$OUT/w8-$w.$t" & done
done
wait
row() { printf '| %s | %s | %.4f | %.4f |\n' "$1" "$2" "$(cat "$OUT/$3.ts")" "$(cat "$OUT/$3.wt")"; }
printf '| w4 g32 | flags | TinyStories | WikiText-2 |\n|---|---|---|---|\n'
row fp32 "" fp32
for m in rtn gptq awq awq+gptq; do row "$m" "\`--method $m --format awq --wbits 4 --groupsize 32\`" "w4-$m"; done
printf '\n| W8A8 (eval --act-quant a8) | flags | TinyStories | WikiText-2 |\n|---|---|---|---|\n'
row "fp32 weights" "" fp32-a8
row "no smoothing" "\`--method rtn $W8\`" w8-none
for a in 0.25 0.5 0.75 0.85; do row "SmoothQuant α $a" "\`--method smoothquant --alpha $a $W8\`" "w8-sq$a"; done
