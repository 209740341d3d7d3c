#!/bin/sh
# make demo: the real model in ../shared end to end — what it generates, and its fp32
# perplexity on held-out TinyStories and on WikiText-2, each with its protocol.
set -eu
Q=${1:-build/qcalib}
S=${QCALIB_SHARED:-../shared}
M=$S/models/stories260K/stories260K.bin
echo "== greedy decoding from BOS (200 steps)"
"$Q" generate --model "$M" --steps 200
echo
echo "== fp32 perplexity, TinyStories held-out text"
"$Q" eval --model "$M" --text "$S/data/tinystories/tinystories_eval.txt" --seqlen 512 --quiet
echo
echo "== fp32 perplexity, WikiText-2 test"
"$Q" eval --model "$M" --text "$S/data/wikitext2/wiki.test.raw" --seqlen 512 --quiet
