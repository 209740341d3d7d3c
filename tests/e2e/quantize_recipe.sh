#!/bin/sh
# e2e/quantize_recipe.sh — JSON recipes (--quantize), embedding quantization, --target-bpw and
# --observe on the real stories260K: each torchchat-style example writes the same bytes as
# the flags it abbreviates; per-module overrides and the skip list reach the right linears;
# malformed recipes are refused naming the key; mixed precision stays within its budget and
# beats uniform 4-bit at no more bits; --observe improves on its first pass.
. tests/lib.sh
SMALL="--nsamples 16 --seqlen 128 --quiet --model $M --calib $CAL"

# same_run NAME RECIPE FLAGS...: the recipe and the flags give the same effective recipe and
# the same model file (written as --format gptq unless FLAGS say otherwise)
same_run() {
    name=$1 recipe=$2; shift 2
    $Q $SMALL --format gptq --quantize "$recipe" --out "$T/r_$name" "$@" >/dev/null 2>"$T/err" || cat "$T/err"
    $Q $SMALL --format gptq --out "$T/f_$name" "$@" $FLAGS >/dev/null 2>"$T/err" || cat "$T/err"
    f=model.safetensors; [ -f "$T/f_$name/$f" ] || f=model.bin
    check "$name: recipe and flags write the same $f" "[ -s '$T/r_$name/$f' ] && cmp -s '$T/r_$name/$f' '$T/f_$name/$f'"
    check "$name: the same recipe.json" "cmp -s '$T/r_$name/recipe.json' '$T/f_$name/recipe.json'"
}

FLAGS="--method gptq --wbits 4 --groupsize 128"
same_run int4 '{"method": "gptq", "linear:int4": {"groupsize": 128}}'
FLAGS="--wbits 8 --groupsize 0 --sym"
same_run int8 '{"linear:int8": {"groupsize": 0}}'
FLAGS="--wbits 4 --groupsize 32 --sym --act-quant a8"
same_run a8w4dq '{"linear:a8w4dq": {"groupsize": 32}}' --eval "$EVAL"
check "a8w4dq: the same perplexity, with 8-bit activations" \
    "[ \"\$(json_num '$T/r_a8w4dq/summary.json' quant_ppl)\" = \"\$(json_num '$T/f_a8w4dq/summary.json' quant_ppl)\" ] && grep -q '\"act_quant_bits\":[[:space:]]*8' '$T/r_a8w4dq/summary.json'"
$Q $SMALL --format gptq --wbits 4 --groupsize 32 --sym --out "$T/w4sym" --eval "$EVAL" >/dev/null 2>&1
check "a8w4dq: the activations change the perplexity" \
    "[ \"\$(json_num '$T/w4sym/summary.json' quant_ppl)\" != \"\$(json_num '$T/r_a8w4dq/summary.json' quant_ppl)\" ]"
FLAGS="--embed-bits 8 --embed-groupsize 0 --wbits 4 --groupsize 32"
same_run embedding '{"embedding": {"bitwidth": 8, "groupsize": 0}, "linear:int4": {"groupsize": 32}}' --format fake
check "embedding: the fake file's token embedding differs from the fp32 one" \
    "! cmp -s -n 65536 -i 28:28 '$M' '$T/r_embedding/model.bin'"
FLAGS="--percdamp 0.1 --act-order --wbits 3 --groupsize 64"
same_run gptq_opts '{"gptq": {"percdamp": 0.1, "act_order": true}, "linear:int3": {"groupsize": 64}}'

# -- a recipe with flags laid over it: the flags win
$Q --model "$M" --format gptq --quantize '{"linear:int4": {"groupsize": 32}, "method": "rtn"}' --wbits 8 --dump-recipe >"$T/over.json" 2>"$T/err"
check "flags laid over a recipe win (--wbits 8 over linear:int4)" "grep -q '\"linear:int8\"' '$T/over.json' && grep -q '\"groupsize\":[[:space:]]*32' '$T/over.json' && grep -q '\"rtn\"' '$T/over.json'"
# -- the dump reads back to itself
$Q --model "$M" --format fake --quantize '{"linear:int4": {"groupsize": 32}, "model.layers.*.mlp.down_proj": {"bits": 8}, "skip": ["model.layers.0.self_attn.q_proj"], "embedding": {"bitwidth": 4, "groupsize": 32}}' --dump-recipe >"$T/d1.json" 2>"$T/err"
$Q --model "$M" --format fake --quantize "$T/d1.json" --dump-recipe >"$T/d2.json" 2>"$T/err"
check "--dump-recipe's output, read back from a file, dumps the same" "[ -s '$T/d1.json' ] && cmp -s '$T/d1.json' '$T/d2.json'"

# -- per-module overrides and the skip list, with RTN on fp32 block inputs (each linear's
# result then depends on nothing but its own setting): block 0's log rows equal the
# uniform runs' rows of the same setting
NOSEQ='"method": "rtn", "gptq": {"true_sequential": false}'
$Q $SMALL --format fake --quantize "{$NOSEQ, \"linear:int4\": {\"groupsize\": 32}, \"model.layers.*.mlp.down_proj\": {\"bits\": 8}, \"skip\": [\"model.layers.0.self_attn.[qk]_proj\"]}" --out "$T/mix" >/dev/null 2>"$T/err" || cat "$T/err"
$Q $SMALL --format fake --method rtn --no-true-sequential --wbits 4 --groupsize 32 --out "$T/u4" >/dev/null 2>&1
$Q $SMALL --format fake --method rtn --no-true-sequential --wbits 8 --groupsize 32 --out "$T/u8" >/dev/null 2>&1
row() { grep "^0,$2," "$1/quant_log.csv" | cut -d, -f1-15; }
check "override: every down_proj at 8 bits, the rest at 4" \
    "[ \$(awk -F, 'NR > 1 && \$2 == \"down\" && \$7 == 8' '$T/mix/quant_log.csv' | wc -l) -eq 5 ] && [ \$(awk -F, 'NR > 1 && \$2 != \"down\" && \$6 != \"f16\" && \$7 == 4' '$T/mix/quant_log.csv' | wc -l) -eq 28 ]"
check "override: block 0's down_proj row equals the uniform 8-bit run's" "[ -n \"\$(row '$T/mix' down)\" ] && [ \"\$(row '$T/mix' down)\" = \"\$(row '$T/u8' down)\" ]"
check "override: block 0's v_proj row equals the uniform 4-bit run's" "[ -n \"\$(row '$T/mix' v)\" ] && [ \"\$(row '$T/mix' v)\" = \"\$(row '$T/u4' v)\" ]"
check "skip: block 0's q_proj and k_proj are left in fp16, nothing else" \
    "[ \$(awk -F, 'NR > 1 && \$6 == \"f16\"' '$T/mix/quant_log.csv' | wc -l) -eq 2 ] && row '$T/mix' q | grep -q ',f16,' && row '$T/mix' k | grep -q ',f16,'"

# -- malformed recipes: exit 1, the key named, nothing written
bad_recipe() {
    expect_fail "$1" 1 "$3" $Q $SMALL --format gptq --quantize "$2" --out "$T/never"
    check "$1: no output folder" "[ ! -e '$T/never' ]"
}
bad_recipe "unknown key, valid ones listed" '{"linear:int4": {}, "methd": "gptq"}' 'unknown key "methd" (valid: "method"'
bad_recipe "unknown key inside linear:int4" '{"linear:int4": {"group_size": 32}}' 'linear:int4: unknown key "group_size" (valid: "groupsize", "sym")'
bad_recipe "unknown scheme" '{"linear:int9": {}}' 'unknown linear scheme'
bad_recipe "two linear keys" '{"linear:int4": {}, "linear:int8": {}}' 'one "linear:..." key'
bad_recipe "wrong type" '{"linear:int4": {"groupsize": "32"}}' '"groupsize" must be an integer'
bad_recipe "embedding without bitwidth" '{"embedding": {"groupsize": 32}}' '"bitwidth" (4 or 8) is required'
bad_recipe "not JSON" '{"linear:int4": {"groupsize": 32}' 'not valid JSON'
bad_recipe "a key twice" '{"method": "rtn", "method": "gptq"}' '"method" is given twice'
# -- well-formed rules the model or the format cannot take: usage errors (exit 2), found
#    before calibrating, nothing written
bad_rule() {
    expect_fail "$1" 2 "$3" $Q $SMALL --format gptq --quantize "$2" --out "$T/never"
    check "$1: no output folder, no work folder" "[ ! -e '$T/never' ] && [ ! -e '$T/never.work' ]"
}
bad_rule "a pattern matching no linear" '{"model.layer.*.mlp.down_proj": {"bits": 8}}' 'matches none of the model'"'"'s linears'
bad_rule "an override the format cannot store" '{"model.layers.0.mlp.up_proj": {"bits": 5}}' '--format gptq stores 2, 3, 4 or 8 bits, not 5'
# a NUL inside a key or value would cut it short ("model.layers.*" would take all 35 linears)
bad_recipe "a NUL in a module pattern is refused, the key named" '{"model.layers.*\u0000.mlp.down_proj": {"bits": 8}}' \
    'the key "model.layers.*\u0000.mlp.down_proj" at byte 1 holds a NUL character'
bad_recipe "a NUL in a value is refused" '{"method": "gptq\u0000rtn"}' 'the string "gptq\u0000rtn" at byte 11 holds a NUL'
bad_recipe "a NUL in a skip entry is refused" '{"skip": ["*.o_proj\u0000x"]}' 'holds a NUL character'
# raw control bytes of a recipe reach the terminal escaped, never as they are
bad_recipe "a terminal escape in a key is shown escaped" "$(printf '{"x\033[2J": 1}')" 'unknown key "x\x1B[2J"'
check "a terminal escape in a key: no raw ESC byte in the message" "! grep -q \"\$(printf '\\033')\" '$T/err'"
echo '{"linear:int4": [' >"$T/broken.json"
bad_recipe "a broken recipe file is named" "$T/broken.json" "$T/broken.json: not valid JSON"
bad_recipe "a missing recipe file is named" "$T/absent.json" "$T/absent.json"
expect_fail "--embed-bits with --format gptq is refused" 2 "keep the token embedding in fp16" \
    $Q $SMALL --format gptq --embed-bits 8 --out "$T/never"

# -- mixed precision: within the budget (the written file's own bits), better than every
# uniform 4-bit grid at no more bits (g128, g64), and the choice logged
MID="--nsamples 32 --seqlen 256 --quiet --model $M --calib $CAL --eval $EVAL --format gptq"
for g in 128 64 32; do
    $Q $MID --wbits 4 --groupsize $g --out "$T/w4g$g" >/dev/null 2>"$T/err" || cat "$T/err"
done
$Q $MID --target-bpw 4.5 --out "$T/bpw" >/dev/null 2>"$T/err" || cat "$T/err"
bpw=$(json_num "$T/bpw/summary.json" file_bits_per_weight)
ubpw=$(json_num "$T/w4g128/summary.json" file_bits_per_weight)
mppl=$(json_num "$T/bpw/summary.json" quant_ppl)
uppl=$(json_num "$T/w4g128/summary.json" quant_ppl)
check "--target-bpw 4.5: the file's linears hold $bpw bits per weight (<= 4.5; w4g128: $ubpw)" \
    "[ -n '$bpw' ] && awk 'BEGIN { exit !($bpw <= 4.5 && $bpw > $ubpw) }'"
check "--target-bpw 4.5: perplexity $mppl < uniform w4 g128's $uppl" "awk 'BEGIN { exit !($mppl < $uppl) }'"
ppl64=$(json_num "$T/w4g64/summary.json" quant_ppl) bpw64=$(json_num "$T/w4g64/summary.json" file_bits_per_weight)
check "--target-bpw 4.5: perplexity $mppl < uniform w4 g64's $ppl64 ($bpw64 bits)" \
    "awk 'BEGIN { exit !($mppl < $ppl64 && $bpw64 <= 4.5) }'"
check "--target-bpw: mixed_precision.csv has a row per linear and more than one setting chosen" \
    "[ \$(wc -l <'$T/bpw/mixed_precision.csv') -eq 36 ] && [ \$(cut -d, -f6 '$T/bpw/mixed_precision.csv' | sort -u | wc -l) -gt 2 ]"
# vLLM runs a block's q, k, v (gate, up) as one layer: a GPTQ file gives them one setting,
# and the "dynamic" entry of such a group names vLLM's fused layer too
fused_alike() {
    awk -F, 'NR > 1 { g = $2 ~ /^(q|k|v)$/ ? "qkv" : $2 ~ /^(gate|up)$/ ? "gate_up" : $2; k = $1 "," g
                      if ((k in s) && s[k] != $7 "/" $8) bad = 1; s[k] = $7 "/" $8 } END { exit bad }' "$1/quant_log.csv"
}
check "--target-bpw (gptq): each block's q, k, v share a setting, and its gate, up" "fused_alike '$T/bpw'"
check "--target-bpw (gptq): a group's dynamic entry names vLLM's fused layer" \
    "grep -q '(?:q|k|v|qkv)_proj\\$\\|(?:gate|up|gate_up)_proj\\$' '$T/bpw/config.json'"
# --per-linear: each linear its own setting (fused groups apart, with a warning), and the
# choice below the line from uniform w4 g128 to w4 g32 at its bits (by 0.09% here)
$Q $MID --target-bpw 4.5 --per-linear --out "$T/bpwl" >/dev/null 2>"$T/bpwl_log"
lbpw=$(json_num "$T/bpwl/summary.json" file_bits_per_weight) lppl=$(json_num "$T/bpwl/summary.json" quant_ppl)
ppl32=$(json_num "$T/w4g32/summary.json" quant_ppl) bpw32=$(json_num "$T/w4g32/summary.json" file_bits_per_weight)
check "--target-bpw 4.5 --per-linear: $lppl at $lbpw bits, below the line from w4 g128 ($ubpw, $uppl) to w4 g32 ($bpw32, $ppl32)" \
    "[ -n '$lppl' ] && awk 'BEGIN { exit !($lbpw <= 4.5 && $lppl < $uppl + ($ppl32 - $uppl) * ($lbpw - $ubpw) / ($bpw32 - $ubpw)) }'"
check "--per-linear: fused groups set apart, with the warning" \
    "! fused_alike '$T/bpwl' && grep -q 'warning: --per-linear gives [0-9]* groups of q, k, v or gate, up' '$T/bpwl_log'"
expect_fail "--per-linear without --format gptq is a usage error" 2 "--per-linear is for --format gptq" \
    $Q $SMALL --format gguf --target-bpw 4.5 --per-linear --out "$T/never"
$Q eval --model "$T/bpw" --text "$EVAL" --seqlen 256 --json >"$T/bpw_eval.json" 2>"$T/err"
check "--target-bpw: the mixed GPTQ file evaluates as the summary says" \
    "[ \"\$(json_num '$T/bpw_eval.json' ppl)\" = '$mppl' ]"
expect_fail "--target-bpw below the cheapest candidate is refused before measuring" 2 "is below what the cheapest candidate gives" \
    $Q $MID --target-bpw 3 --out "$T/never"

# -- --observe: the worst linears at 8 bits improve on the first pass
$Q $MID --wbits 4 --groupsize 128 --observe 4 --out "$T/obs" >/dev/null 2>"$T/err" || cat "$T/err"
oppl=$(json_num "$T/obs/summary.json" quant_ppl)
fppl=$(json_num "$T/obs/summary.json" first_pass_ppl)
check "--observe 4: perplexity $oppl < the first pass's $fppl (= uniform w4 g128's $uppl)" \
    "[ -n '$oppl' ] && awk 'BEGIN { exit !($oppl < $fppl) }' && [ '$fppl' = '$uppl' ]"
check "--observe 4 (gptq): four picks at 8 bits, each with its fused group" \
    "fused_alike '$T/obs' && [ \$(awk -F, 'NR > 1 && \$7 == 8 { print \$1, (\$2 ~ /^(q|k|v)\$/ ? \"qkv\" : \$2 ~ /^(gate|up)\$/ ? \"gate_up\" : \$2) }' '$T/obs/quant_log.csv' | sort -u | wc -l) -eq 4 ]"
$Q $SMALL --format gptq --quantize '{"model.layers.0.self_attn.q_proj": {"bits": 8}}' --out "$T/split" >/dev/null 2>"$T/split_log"
check "a recipe setting q_proj apart from k, v warns that vLLM cannot load the file" \
    "grep -q 'warning: the recipe gives 1 group of q, k, v or gate, up of one block different settings' '$T/split_log'"

# -- vLLM's Marlin rule: a 4-bit symmetric base (Marlin's) with one linear at 3 bits is written
#    "sym": false (vLLM's plain kernels then, which read the stored zero points); the file
#    evaluates exactly as the solver's weights (--verify); the dynamic section is warned about
$Q $SMALL --format gptq --wbits 4 --groupsize 128 --sym --quantize '{"model.layers.0.mlp.down_proj": {"bits": 3}}' \
    --eval "$EVAL" --eval-seqlen 128 --verify --out "$T/marlin" >/dev/null 2>"$T/marlin_log"
check "4-bit sym base, a 3-bit override: config and quantize_config say sym false, the entry keeps sym true" \
    "for f in config.json quantize_config.json; do [ \$(grep -c '\"sym\": false' '$T/marlin/'\$f) -eq 1 ] && grep -q '\"bits\": 3, \"group_size\": 128, \"sym\": true' '$T/marlin/'\$f || exit 1; done"
check "the written file gives the in-memory perplexity (--verify) and the quant log says sym" \
    "grep -q '\"memory_ppl\"' '$T/marlin/summary.json' && [ \$(awk -F, 'NR > 1 && \$9 == 1' '$T/marlin/quant_log.csv' | wc -l) -eq 35 ]"
check "a file with a dynamic section is warned about: transformers and optimum ignore it" \
    "grep -q 'warning: .*transformers and optimum ignore it' '$T/marlin_log'"
$Q $SMALL --format gptq --wbits 4 --groupsize 128 --sym --quantize '{"model.layers.0.mlp.down_proj": {"bits": 8}}' \
    --out "$T/marlin8" >/dev/null 2>&1
check "an 8-bit symmetric override (Marlin takes it) keeps sym true" \
    "grep -q '\"sym\": true,' '$T/marlin8/config.json' && ! grep -q '\"sym\": false' '$T/marlin8/config.json'"
finish recipe
