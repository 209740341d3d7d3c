#!/bin/sh
# e2e/quantize_awq.sh — AWQ, AWQ+GPTQ and SmoothQuant end to end on the real stories260K, as a user
# runs them: AWQ and AWQ+GPTQ w4 g32 beat round-to-nearest on held-out TinyStories and
# WikiText-2 text; the AWQ (and GGUF) files evaluate exactly as the in-memory result
# (--verify); AWQ searches each linear as a recipe sets it; AWQ and AWQ+GPTQ into llama.cpp's
# Q3_K_M mix (padded stories260K) beat its round-to-nearest; the logs carry the chosen grid points, clip factors and smoothing ranges;
# smoothing alone leaves perplexity unchanged; the options switch what they say; eval
# --act-quant; bad options. A small calibration set keeps it fast (the README's table uses
# 128 x 512 tokens).
. tests/lib.sh
SMALL="--nsamples 16 --seqlen 128 --quiet --json"
TINY="--nsamples 8 --seqlen 128 --quiet --json"
head -c 40000 "$EVAL" >"$T/ts.txt"
head -c 40000 "$S/data/wikitext2/wiki.test.raw" >"$T/wt.txt"
EV="--eval $T/ts.txt --eval $T/wt.txt --eval-seqlen 256 --verify"
# nums FILE KEY: every number stored under "KEY", one per line
nums() { grep -o "\"$2\":[[:space:]]*[0-9.e+-]*" "$1" | sed 's/.*:[[:space:]]*//'; }
# nth N: line N of stdin
nth() { sed -n "${1}p"; }

# -- RTN, AWQ, AWQ+GPTQ at w4 g32 in AutoAWQ's format, evaluated on both texts
for m in rtn awq awq+gptq; do
    # shellcheck disable=SC2086
    $Q --method $m --format awq --groupsize 32 --model "$M" --calib "$CAL" $SMALL $EV --out "$T/$m" >"$T/$m.json" 2>"$T/$m.err"
    check "--method $m --format awq exits 0, the file evaluating as the in-memory result (--verify)" \
        "[ -s '$T/$m/model.safetensors' ] && [ \"\$(nums '$T/$m.json' quant_ppl)\" = \"\$(nums '$T/$m.json' memory_ppl)\" ]"
done
for i in 1 2; do
    text=$(if [ $i = 1 ]; then echo TinyStories; else echo WikiText-2; fi)
    r=$(nums "$T/rtn.json" quant_ppl | nth $i) a=$(nums "$T/awq.json" quant_ppl | nth $i) g=$(nums "$T/awq+gptq.json" quant_ppl | nth $i)
    check "$text: AWQ $a and AWQ+GPTQ $g beat RTN $r" "awk 'BEGIN{exit !($a < $r && $g < $r)}'"
done
$Q inspect --model "$T/awq" >"$T/awq.ls" 2>&1
check "inspect lists the AWQ file's down_proj as awq-4bit-g32" "grep 'layers.4.mlp.down_proj' '$T/awq.ls' | grep -q ' awq-4bit-g32\$'"

# -- the logs: AWQ's grid points and clip factors, per linear
L=$T/awq/quant_log.csv
check "quant_log.csv has the AWQ and SmoothQuant columns" "head -1 '$L' | grep -q ',awq_grid,awq_loss,awq_loss0,clip_mean,clip_min,smooth_min,smooth_max,abs_err\$'"
check "every q/k/v/gate/up/down row has a grid point in 0..19 with a loss no worse than the unscaled one's" \
    "awk -F, 'NR > 1 && \$2 != \"o\" { n++; if (\$17 < 0 || \$17 > 19 || \$18 > \$19) bad = 1 } END { exit bad || n != 30 }' '$L'"
check "o has no scaling group (grouped-query attention: v is 32 rows, o 64 columns)" \
    "awk -F, 'NR > 1 && \$2 == \"o\" { n++; if (\$17 != -1) bad = 1 } END { exit bad || n != 5 }' '$L'"
check "q and k are not clipped (factor 1); v, o, gate, up, down are, some below 1" \
    "awk -F, 'NR > 1 { if ((\$2 == \"q\" || \$2 == \"k\") && (\$20 != 1 || \$21 != 1)) bad = 1; if (\$2 != \"q\" && \$2 != \"k\" && \$21 < 1) low++ } END { exit bad || low < 20 }' '$L'"
check "AWQ+GPTQ's log says so and has GPTQ's losses" \
    "awk -F, 'NR > 1 { n++; if (\$6 != \"awq+gptq\" || \$10 <= 0) bad = 1 } END { exit bad || n != 35 }' '$T/awq+gptq/quant_log.csv'"

# -- the options do what they say
$Q --method awq --format awq --groupsize 32 --model "$M" --calib "$CAL" $TINY --out "$T/base" >"$T/base.json" 2>"$T/err"
$Q --method awq --format awq --groupsize 32 --awq-duo-scaling --model "$M" --calib "$CAL" $TINY --out "$T/duo" >"$T/duo.json" 2>"$T/err"
check "--awq-duo-scaling: recorded, other scales" \
    "grep -q '\"awq_duo_scaling\":[[:space:]]*true' '$T/duo.json' && ! cmp -s '$T/base/model.safetensors' '$T/duo/model.safetensors'"
$Q --method awq --format awq --groupsize 32 --no-awq-clip --model "$M" --calib "$CAL" $TINY --out "$T/noclip" >/dev/null 2>"$T/err"
check "--no-awq-clip: every clip factor is 1" "awk -F, 'NR > 1 && (\$20 != 1 || \$21 != 1) { bad = 1 } END { exit bad }' '$T/noclip/quant_log.csv'"
$Q --method awq --format awq --groupsize 32 --propagate quantized --model "$M" --calib "$CAL" $TINY --out "$T/propq" >"$T/propq.json" 2>"$T/err"
check "--propagate quantized: recorded (fp32 is AWQ's default); block 0 as before, later blocks differ" \
    "grep -q '\"propagate\":[[:space:]]*\"quantized\"' '$T/propq.json' && grep -q '\"propagate\":[[:space:]]*\"fp32\"' '$T/base.json' && \
     [ \"\$(grep '^0,' '$T/base/quant_log.csv' | cut -d, -f1-15)\" = \"\$(grep '^0,' '$T/propq/quant_log.csv' | cut -d, -f1-15)\" ] && \
     [ \"\$(grep '^4,' '$T/base/quant_log.csv' | cut -d, -f1-15)\" != \"\$(grep '^4,' '$T/propq/quant_log.csv' | cut -d, -f1-15)\" ]"
$Q --method awq --format gguf --model "$M" --calib "$CAL" $TINY --eval "$T/ts.txt" --eval-seqlen 256 --verify --out "$T/gguf" >"$T/gguf.json" 2>"$T/err"
check "--method awq --format gguf (Q4_0): the file evaluates as the in-memory result" \
    "[ -n \"\$(nums '$T/gguf.json' memory_ppl)\" ] && [ \"\$(nums '$T/gguf.json' quant_ppl)\" = \"\$(nums '$T/gguf.json' memory_ppl)\" ]"

# -- per-module settings: the searches simulate each linear's own. Block 0's search inputs are
# the same fp32 activations in every run, so its down_proj at 8 bits by a recipe chooses the
# grid point, losses and clip factors (the log's columns 17-21) of a uniform 8-bit run, and its
# q_proj those of a uniform 4-bit run
for b in 4 8; do
    $Q --method awq --format fake --wbits $b --groupsize 32 --model "$M" --calib "$CAL" $TINY --out "$T/u$b" >/dev/null 2>"$T/err"
done
$Q --method awq --format fake --model "$M" --calib "$CAL" $TINY --out "$T/rec" \
    --quantize '{"linear:int4": {"groupsize": 32}, "model.layers.*.mlp.down_proj": {"bits": 8}}' >/dev/null 2>"$T/err"
awq_cols() { grep "^0,$2," "$1/quant_log.csv" | cut -d, -f7,17-21; }
check "AWQ with a recipe: block 0's down_proj searched as 8-bit ($(awq_cols "$T/rec" down)), its q_proj as 4-bit" \
    "[ -n \"\$(awq_cols '$T/rec' down)\" ] && [ \"\$(awq_cols '$T/rec' down)\" = \"\$(awq_cols '$T/u8' down)\" ] &&
     [ \"\$(awq_cols '$T/rec' q)\" = \"\$(awq_cols '$T/u4' q)\" ] && [ \"\$(awq_cols '$T/u4' down)\" != \"\$(awq_cols '$T/u8' down)\" ]"

# -- AWQ into K-quants: stories260K padded to 256 (convert --pad-to) as llama.cpp's Q3_K_M mix,
# whose types differ per linear (v Q5_K, o and down Q4_K, the rest Q3_K in block 0): the
# searches simulate each linear's own type, clip ranges are per 256-value super-block
$Q convert --model "$M" --pad-to 256 --out "$T/pad" --quiet 2>"$T/err"
for m in rtn awq awq+gptq; do
    $Q --method $m --gguf-type q3_k_m --model "$T/pad" --calib "$CAL" $TINY --eval "$T/ts.txt" --eval-seqlen 256 --verify \
        --out "$T/k-$m" >"$T/k-$m.json" 2>"$T/k-$m.err"
    check "--method $m --gguf-type q3_k_m on padded stories260K: the file evaluates as the in-memory result" \
        "[ -s '$T/k-$m/model.gguf' ] && [ -n \"\$(nums '$T/k-$m.json' memory_ppl)\" ] &&
         [ \"\$(nums '$T/k-$m.json' quant_ppl)\" = \"\$(nums '$T/k-$m.json' memory_ppl)\" ]"
done
r=$(nums "$T/k-rtn.json" quant_ppl) a=$(nums "$T/k-awq.json" quant_ppl) g=$(nums "$T/k-awq+gptq.json" quant_ppl)
check "Q3_K_M on held-out TinyStories: AWQ $a and AWQ+GPTQ $g beat RTN $r" "awk 'BEGIN{exit !($a < $r && $g < $r)}'"
check "the K-quant AWQ log: the mix's bits per linear, grid points on q..down but o, super-blocks clipped below 1" \
    "awk -F, 'NR > 1 && \$1 == 0 { t[\$2] = \$7 \"/\" \$8; if (\$2 != \"o\" && (\$17 < 0 || \$17 > 19)) bad = 1; if (\$2 == \"gate\" && \$21 < 1) low = 1 }
         END { exit bad || !low || t[\"q\"] != \"3/16\" || t[\"v\"] != \"5/32\" || t[\"down\"] != \"4/32\" }' '$T/k-awq/quant_log.csv'"

# -- SmoothQuant: smoothing alone is the same function; as a pre-step it is logged
$Q --method smoothquant --alpha 0.5 --model "$M" --calib "$CAL" $TINY --eval "$T/ts.txt" --eval-seqlen 256 --verify --out "$T/sq" >"$T/sq.json" 2>"$T/err"
f=$(nums "$T/sq.json" fp32_ppl) s=$(nums "$T/sq.json" quant_ppl)
# The same function in fp32, so the perplexities differ by rounding only. Each logit of either
# model is within gamma~(K)·L of exact (tests/bounds.h: K = 5188, the forward's chain of sums
# for stories260K at 256 tokens; L the largest |logit|, from eval), and the smoothed one also
# by one more rounding of each scaled weight and norm, 3u per block: |dlogit| <= D =
# (2·gamma~(K) + 15u)·L. A token's NLL then moves by at most 2D, perplexity by expm1(2D).
L=$($Q eval --model "$M" --text "$T/ts.txt" --seqlen 256 --json --quiet | grep -o '"max_abs_logit":[0-9.e+-]*' | cut -d: -f2)
check "smoothquant without --wbits: an fp32 model.bin with the same perplexity ($s vs $f; largest logit $L)" \
    "[ -s '$T/sq/model.bin' ] && [ -n '$L' ] && awk 'BEGIN{u = 2^-24; g = exp(8 * sqrt(5188) * u + 5188 * u * u / (1 - u)) - 1;
        D = (2 * g + 15 * u) * $L; d = $s - $f; if (d < 0) d = -d; exit !(d <= (exp(2 * D) - 1) * $f)}'"
check "its log: method fp32, smoothing ranges on q..up's norms, none on o and down" \
    "awk -F, 'NR > 1 { if (\$6 != \"fp32\") bad = 1; if (\$2 == \"o\" || \$2 == \"down\") { if (\$22 != 0) bad = 1 } else if (!(\$22 > 0 && \$23 >= \$22)) bad = 1 } END { exit bad }' '$T/sq/quant_log.csv'"
$Q --method gptq --smooth 0.5 --format gguf --model "$M" --calib "$CAL" $TINY --out "$T/gsq" >"$T/gsq.json" 2>"$T/err"
check "--method gptq --smooth 0.5: smoothed, then GPTQ" \
    "grep -q '\"smooth_alpha\":[[:space:]]*0.5' '$T/gsq.json' && awk -F, 'NR == 2 { exit !(\$6 == \"gptq\" && \$22 > 0) }' '$T/gsq/quant_log.csv'"

# -- activation quantization in eval
$Q eval --model "$M" --text "$T/ts.txt" --seqlen 256 --json >"$T/e32.json" 2>"$T/err"
$Q eval --model "$M" --text "$T/ts.txt" --seqlen 256 --json --act-quant a8 >"$T/e8.json" 2>"$T/err"
$Q eval --model "$M" --text "$T/ts.txt" --seqlen 256 --json --act-quant a4 >"$T/e4.json" 2>"$T/err"
p32=$(json_num "$T/e32.json" ppl) p8=$(json_num "$T/e8.json" ppl) p4=$(json_num "$T/e4.json" ppl)
check "--act-quant a8 changes perplexity a little ($p32 -> $p8), a4 much more ($p4)" \
    "grep -q '\"act_quant\":\"a8\"' '$T/e8.json' && awk 'BEGIN{d = $p8 - $p32; if (d < 0) d = -d; exit !(d > 0 && d < 0.05 * $p32 && $p4 > $p32 * 1.1)}'"

# -- bad options: clear message, no output folder
expect_fail "duo scaling belongs to AWQ" 2 "--awq-duo-scaling" $Q --method gptq --awq-duo-scaling --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "--act-dtype f16 with AWQ" 2 "--act-dtype f16 is for gptq and rtn" $Q --method awq --act-dtype f16 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "--act-dtype bf16 with --smooth" 2 "--act-dtype bf16 is for gptq and rtn" $Q --method gptq --smooth 0.5 --act-dtype bf16 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "--mse with AWQ" 2 "AWQ has its own" $Q --method awq --mse --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "--alpha is smoothquant's" 2 "--alpha is --method smoothquant's" $Q --method gptq --alpha 0.7 --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "bad --propagate" 2 "--propagate 'both'" $Q --method awq --propagate both --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "smoothquant without --wbits writes fp32 only" 2 "--format fake" $Q --method smoothquant --format gguf --model "$M" --calib "$CAL" --out "$T/x"
expect_fail "bad --act-quant" 2 "--act-quant 'int8'" $Q eval --model "$M" --text "$T/ts.txt" --act-quant int8
expect_fail "--resume is refused for AWQ (its scales are not checkpointed)" 2 "not checkpointed" $Q --method awq --resume --model "$M" --calib "$CAL" --out "$T/x"
check "no output folder (nor work folder) after failures" "[ ! -e '$T/x' ] && [ ! -e '$T/x.work' ]"

finish awq
