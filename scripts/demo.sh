#!/bin/sh
# make demo: the real model in ../shared end to end — what it generates, then GPTQ 4-bit
# (groups of 32) calibrated on TinyStories text, with perplexity before and after on
# held-out TinyStories and on WikiText-2, and the per-block error plot.
set -eu
Q=${1:-build/qcalib}
S=${QCALIB_SHARED:-../shared}
M=$S/models/stories260K/stories260K.bin
OUT=${DEMO_OUT:-build/demo-gptq-w4g32}
echo "== stories260K, fp32: greedy decoding from BOS (200 steps)"
"$Q" generate --model "$M" --steps 200
echo
echo "== GPTQ w4 g32, calibrated on 128 x 512 tokens of tinystories_calib.txt -> $OUT"
"$Q" --method gptq --wbits 4 --groupsize 32 --model "$M" --calib "$S/data/tinystories/tinystories_calib.txt" \
    --nsamples 128 --seqlen 512 --out "$OUT" --force \
    --eval "$S/data/tinystories/tinystories_eval.txt" --eval "$S/data/wikitext2/wiki.test.raw"
echo
echo "== the quantized model: greedy decoding from BOS (200 steps)"
"$Q" generate --model "$OUT" --steps 200
if command -v gnuplot >/dev/null; then
    scripts/plot-quant-log -o "$OUT/errors.png" "$OUT/quant_log.csv:GPTQ w4 g32"
    echo "per-block error plot: $OUT/errors.png"
fi
