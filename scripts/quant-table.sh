#!/bin/sh
# quant-table.sh — the README's table: stories260K quantized with RTN and GPTQ in six
# configurations, calibrated on 128 x 512 tokens of tinystories_calib.txt (seed 0), and the
# perplexity of each on tinystories_eval.txt and WikiText-2 test at seqlen 512, next to fp32.
# Prints a Markdown table; the quantized folders stay in $OUT (default build/quant-table).
#   scripts/quant-table.sh [build/qcalib]
set -eu
Q=${1:-build/qcalib}
S=${QCALIB_SHARED:-../shared}
OUT=${OUT:-build/quant-table}
M=$S/models/stories260K/stories260K.bin
TS=$S/data/tinystories/tinystories_eval.txt
WT=$S/data/wikitext2/wiki.test.raw
mkdir -p "$OUT"
ppl() { "$Q" eval --model "$1" --text "$2" --seqlen 512 --json --quiet | sed 's/.*"ppl":\([0-9.]*\).*/\1/'; }
printf '| config | flags | TinyStories RTN | TinyStories GPTQ | WikiText-2 RTN | WikiText-2 GPTQ |\n|---|---|---|---|---|---|\n'
printf '| fp32 | | %.4f | | %.4f | |\n' "$(ppl "$M" "$TS")" "$(ppl "$M" "$WT")"
while read -r name flags; do
    for method in rtn gptq; do
        case "$method:$flags" in rtn:*act-order*) continue ;; esac # RTN has no column order
        # shellcheck disable=SC2086
        "$Q" --method $method $flags --model "$M" --calib "$S/data/tinystories/tinystories_calib.txt" \
            --nsamples 128 --seqlen 512 --seed 0 --out "$OUT/$name-$method" --force --quiet >/dev/null
    done
    rtn=$name-rtn
    [ -d "$OUT/$rtn" ] || rtn=$(echo "$name" | sed 's/-act$//')-rtn # act-order's RTN is plain RTN
    printf '| %s | `%s` | %.4f | %.4f | %.4f | %.4f |\n' "$name" "$flags" \
        "$(ppl "$OUT/$rtn" "$TS")" "$(ppl "$OUT/$name-gptq" "$TS")" "$(ppl "$OUT/$rtn" "$WT")" "$(ppl "$OUT/$name-gptq" "$WT")"
done <<'CONFIGS'
w4-perchannel --wbits 4 --groupsize -1
w4-g32 --wbits 4 --groupsize 32
w4-g64 --wbits 4 --groupsize 64
w3-g32 --wbits 3 --groupsize 32
w4-g32-act --wbits 4 --groupsize 32 --act-order
w4-g32-sym --wbits 4 --groupsize 32 --sym
CONFIGS
