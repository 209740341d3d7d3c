#!/bin/sh
# e2e/scale.sh — the scale features from the command line: `qcalib synth` writes a loadable,
# labelled SYNTHETIC model that quantizes and evaluates, or its first blocks alone; the memory
# plan is printed and recorded; --max-memory below the plan refuses before any work, naming
# the option and the plan, and leaves no output; the block's activations kept between
# true-sequential sites, or recomputed (the same file) under a budget that does not hold them;
# --act-dtype f16 runs and stays close to fp32 on the real stories260K; bad values of the new
# options are usage errors.
. tests/lib.sh
SMALL="--nsamples 16 --seqlen 128"

# -- synth: a tiny model, labelled, loadable, with a tokenizer that quantize and eval use
$Q synth --shape tiny --out "$T/tiny" --seed 3 --quiet 2>"$T/err"
check "synth writes config.json, model.safetensors, tokenizer.bin" \
    "for f in config.json model.safetensors tokenizer.bin; do [ -s '$T/tiny/'\$f ] || exit 1; done"
check "config.json says synthetic" "grep -q '\"qcalib_synthetic\": true' '$T/tiny/config.json'"
$Q inspect --model "$T/tiny" >"$T/inspect.txt" 2>&1
check "inspect: tiny's shapes (dim 128, FFN 352, 2 blocks, 4 heads, 2 KV heads)" \
    "grep -q 'dim 128, FFN 352, 2 blocks, 4 heads (2 key/value) of 32, vocab 512' '$T/inspect.txt' && grep -q 'model.layers.1.mlp.down_proj.weight *\[128, 352\] *F16' '$T/inspect.txt'"
$Q --method gptq --model "$T/tiny" --calib "$CAL" $SMALL --out "$T/qtiny" --eval "$EVAL" --verify >"$T/q.txt" 2>"$T/qerr"
check "quantize the synthetic model (GPTQ, written file = solver's weights)" "grep -q 'quantized 14 linear layers' '$T/q.txt'"
check "the plan is printed at the start" "grep -q '^memory plan (MB): model tensors 1.0 on disk' '$T/qerr'"
check "summary.json records the plan" "[ -n \"\$(json_num '$T/qtiny/summary.json' peak)\" ]"
check "no scratch file left in the output (9 files and the marker)" "! ls -A '$T/qtiny' | grep -q spill && [ \$(ls -A '$T/qtiny' | wc -l) -eq 10 ]"
# --blocks: the first blocks of the same model (a 7B's per-block rates without its 13.5 GB)
$Q synth --shape tiny --blocks 1 --out "$T/tiny1" --seed 3 --quiet
$Q inspect --model "$T/tiny1" >"$T/inspect1.txt" 2>&1
check "synth --blocks 1: one block of tiny's shapes" \
    "grep -q 'dim 128, FFN 352, 1 blocks, 4 heads (2 key/value) of 32, vocab 512' '$T/inspect1.txt'"
$Q stats --model "$T/tiny" --out "$T/st2" --quiet && $Q stats --model "$T/tiny1" --out "$T/st1" --quiet
check "synth --blocks 1: the embedding, classifier and block 0 of the 2-block model, value for value" \
    "grep -v 'layers\.1\.' '$T/st2/weight_stats.csv' >'$T/st2.csv' && cmp '$T/st2.csv' '$T/st1/weight_stats.csv' && [ \$(wc -l <'$T/st1/weight_stats.csv') -ge 9 ]"
expect_fail "synth: --blocks beyond the shape" 2 "--blocks 3: the tiny shape has 2 blocks" $Q synth --shape tiny --blocks 3 --out "$T/x"
expect_fail "synth: unknown shape" 2 "--shape '13b': expected tiny, tiny256, 1b or 7b" $Q synth --shape 13b --out "$T/x"
expect_fail "synth: bad dtype" 2 "--dtype 'f8'" $Q synth --shape tiny --dtype f8 --out "$T/x"
expect_fail "synth: existing output" 2 "already exists" $Q synth --shape tiny --out "$T/tiny"

# -- --max-memory: refused before any work, nothing written
expect_fail "--max-memory below the plan is a usage error, naming the option and the plan" 2 \
    "but --max-memory allows 1 MB; memory plan (MB):" $Q --method gptq --model "$M" --calib "$CAL" $SMALL --out "$T/refused" --max-memory 1M
check "refused: no output folder, no work folder, no temporary left" "! ls -d '$T'/refused* >/dev/null 2>&1"
expect_fail "--max-memory: not a size" 2 "--max-memory 'lots'" $Q --method gptq --model "$M" --calib "$CAL" --out "$T/x" --max-memory lots
$Q --method gptq --model "$M" --calib "$CAL" $SMALL --out "$T/fits" --max-memory 2G --quiet >/dev/null 2>"$T/err"
check "--max-memory 2G: the run fits" "[ -s '$T/fits/model.safetensors' ]"

# -- true-sequential: the block's activations kept between sites when the budget holds them,
# else recomputed from the block's input; the plan says which, and the files are the same bytes
BIG="--nsamples 256 --seqlen 256 --threads 1"
$Q --method gptq --model "$M" --calib "$CAL" $BIG --out "$T/kept" >/dev/null 2>"$T/kerr"
peak=$(json_num "$T/kept/summary.json" peak)
kept=$(awk "BEGIN{printf \"%.1f\", $(json_num "$T/kept/summary.json" intermediates)}")
budget=$(awk "BEGIN{printf \"%d\", $peak - $kept / 2}")
check "kept: the plan counts them ($kept MB of $peak)" \
    "grep -q 'block activations kept between sites $kept (each linear.s input computed once)' '$T/kerr'"
$Q --method gptq --model "$M" --calib "$CAL" $BIG --out "$T/recomputed" --max-memory ${budget}M >/dev/null 2>"$T/rerr"
check "--max-memory ${budget}M: recomputed instead, and said" \
    "grep -q 'block activations kept between sites 0.0 (recomputed from the block.s input; kept they take $kept)' '$T/rerr' && [ \"\$(json_num '$T/recomputed/summary.json' intermediates)\" = 0 ]"
check "kept or recomputed: the same model.safetensors" "cmp -s '$T/kept/model.safetensors' '$T/recomputed/model.safetensors'"

# -- --act-dtype f16 on stories260K: works, perplexity within 1% of the fp32-activation run
$Q --method gptq --model "$M" --calib "$CAL" $SMALL --out "$T/a32" --eval "$EVAL" --quiet >/dev/null 2>"$T/err"
$Q --method gptq --model "$M" --calib "$CAL" $SMALL --out "$T/a16" --eval "$EVAL" --quiet --act-dtype f16 >/dev/null 2>"$T/err"
p32=$(json_num "$T/a32/summary.json" quant_ppl)
p16=$(json_num "$T/a16/summary.json" quant_ppl)
echo "  (perplexity with fp32 activations $p32, fp16 $p16)"
check "--act-dtype f16: perplexity $p16 within 1% of $p32, and a different file" \
    "[ -n '$p16' ] && awk 'BEGIN{d=($p16-$p32)/$p32; exit !(d < 0.01 && d > -0.01)}' && ! cmp -s '$T/a32/model.safetensors' '$T/a16/model.safetensors'"
expect_fail "--act-dtype: unknown type" 2 "--act-dtype 'f8'" $Q --method gptq --model "$M" --calib "$CAL" --out "$T/x" --act-dtype f8
finish scale
