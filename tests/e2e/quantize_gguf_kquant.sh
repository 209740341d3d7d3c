# e2e/quantize_gguf_kquant.sh — GGUF K-quant output through the CLI: a SYNTHETIC 256-wide model
# (qcalib synth --shape tiny256; its numbers mean nothing) quantized as llama.cpp's Q4_K_M mix
# by round-to-nearest, read back by inspect and eval; stories260K (64 wide: no tensor fits a
# 256-value super-block) as Q6_K falling back to Q8_0, reported on the console and in
# summary.json, and by GPTQ as Q4_K_M falling back to Q5_0 and Q8_0; and the refusals (the
# one of a width not even the fallbacks tile is tests/unit/io_gguf_mix.c's): act-order without
# static groups, and contradicting settings, each a usage error (exit 2); --observe's upgrades as Q8_0
# with nothing written; and GPTQ into K-quants on the synthetic model, with and without
# act-order, written in the same types and read back by eval with the solver's weights, and
# killed and resumed (the super-blocks' parameters go through the checkpoints).
. "$(dirname "$0")/../lib.sh"
Q=$(realpath "$Q") S=$(realpath "$S")
M=$S/models/stories260K/stories260K.bin CAL=$S/data/tinystories/tinystories_calib.txt
cd "$T" || exit 1
R="--calib $CAL --nsamples 4 --seqlen 64 --quiet"

$Q synth --shape tiny256 --out syn --quiet || { echo "  synth failed"; exit 1; }
$Q --method rtn --gguf-type q4_k_m --model syn $R --out km >log 2>&1
check "synthetic tiny256 as q4_k_m (implies --format gguf)" "[ -f km/model.gguf ]"
$Q inspect --model km >insp 2>&1
# llama.cpp's Q4_K_M on 8 blocks: attn_v and ffn_down of blocks 0, 3, 6, 7 are Q6_K ("more bits")
check "inspect: block 3's v_proj Q6_K, block 1's Q4_K, the classifier Q6_K, the embedding Q4_K" \
    "grep -q 'layers.3.self_attn.v_proj.weight .*Q6_K' insp && grep -q 'layers.1.self_attn.v_proj.weight .*Q4_K' insp &&
     grep -q 'lm_head.weight .*Q6_K' insp && grep -q 'embed_tokens.weight .*Q4_K' insp"
check "summary.json records the mix" "grep -q '\"gguf_mix\":[[:space:]]*\"Q4_K_M\"' km/summary.json"
head -c 2000 "$CAL" >short.txt
check "eval reads the K-quant file" "$Q eval --model km --text short.txt --seqlen 64 --quiet >/dev/null 2>&1"

$Q --method gptq --gguf-type q4_k_m --model syn $R --eval short.txt --eval-seqlen 64 --verify --out kg >logg 2>&1
$Q inspect --model kg >inspg 2>&1
check "GPTQ into q4_k_m: the same types, and the written file evaluates as the solver's weights (--verify)" \
    "[ -f kg/model.gguf ] && grep -q 'layers.3.self_attn.v_proj.weight .*Q6_K' inspg && grep -q 'layers.1.self_attn.v_proj.weight .*Q4_K' inspg &&
     grep -q memory_ppl kg/summary.json"
# a GPTQ run killed after 3 of its 8 blocks and resumed writes the same bytes as one that was not
A="--method gptq --gguf-type q4_k_m --model syn --calib $CAL --nsamples 16 --seqlen 128 --threads 1 --quiet"
$Q $A --out rfull >/dev/null 2>&1
{ preload state:3 $Q $A --out rk >/dev/null 2>&1; } 2>/dev/null # killed right after block 3's checkpoint
n=$(done_blocks rk.work)
$Q $A --out rk --resume >/dev/null 2>&1
check "GPTQ q4_k_m killed after $n blocks and resumed: the same model.gguf" "[ $n -eq 3 ] && cmp -s rfull/model.gguf rk/model.gguf"
$Q --method rtn --gguf-type q4_k_m --target-bpw 4.5 --model syn $R --out kb >logb 2>&1
bpw=$(json_num kb/summary.json file_bits_per_weight)
check "--target-bpw 4.5 among Q3_K..Q6_K: the file's linears at most 4.5 bits per weight ($bpw), more than one type" \
    "[ -f kb/model.gguf ] && awk 'BEGIN { exit !($bpw <= 4.5 && $bpw > 3.4375) }' &&
     \$Q inspect --model kb >inspb 2>&1 && [ \$(grep -c 'proj.weight .*Q[3456]_K' inspb) -eq 56 ] &&
     [ \$(grep -o 'proj.weight .*Q[3456]_K' inspb | awk '{print \$NF}' | sort -u | wc -l) -gt 1 ]"
$Q --method rtn --gguf-type q4_k_m --observe 2 --model syn $R --out ko >logo 2>&1
check "--observe 2 with a K-quant mix: two linears requantized as Q8_0 (the mix itself has none)" \
    "[ \"\$(json_num ko/summary.json observe_upgraded)\" = 2 ] && \$Q inspect --model ko >inspo 2>&1 &&
     [ \$(grep -c 'proj.weight .*Q8_0' inspo) -eq 2 ] && [ \$(grep -c 'proj.weight .*Q8_0' insp) -eq 0 ]"
$Q --method gptq --act-order --static-groups --gguf-type q3_k_m --model syn $R --out ka >loga 2>&1
check "GPTQ with act-order and static groups into q3_k_m" "[ -f ka/model.gguf ]"

$Q --method gptq --gguf-type q4_k_m --model "$M" $R --out k4 >log4 2>&1
$Q inspect --model k4 >insp4 2>&1
check "stories260K as GPTQ q4_k_m: Q4_K falls back to Q5_0, the more-bits blocks' Q6_K to Q8_0" \
    "grep -q 'layers.1.self_attn.q_proj.weight .*Q5_0' insp4 && grep -q 'layers.2.self_attn.v_proj.weight .*Q8_0' insp4 &&
     grep -q 'blk.1.attn_q.weight: rows of 64 are not whole 256-blocks of Q4_K: Q5_0 instead' log4"
$Q --method rtn --gguf-type q6_k --model "$M" $R --out k6 >log6 2>&1
check "stories260K as q6_k: written, each tensor falling back to Q8_0" \
    "[ -f k6/model.gguf ] && grep -q 'blk.0.attn_q.weight: rows of 64 are not whole 256-blocks of Q6_K: Q8_0 instead' log6"
check "summary.json lists the fallbacks" \
    "grep -q '\"gguf_fallbacks\"' k6/summary.json && grep -q '\"fallback\":[[:space:]]*\"Q8_0\"' k6/summary.json"

refused() {
    out=$1 name=$2 needle=$3; shift 3
    expect_fail "$name" 2 "$needle" $Q "$@" --out "$out"
    check "$name: nothing written" "[ ! -e '$out' ] && [ ! -e '$out.work' ] && ! ls -d '$out'.tmp.* >/dev/null 2>&1"
}
refused r5 "act-order without static groups into K-quants" "256-wide K-quant super-blocks: --act-order needs --static-groups" \
    --method gptq --act-order --gguf-type q4_k_m --model syn $R
refused r3 "q4_k_m with --wbits 3" "--gguf-type q4_k_m's linears are Q4_K by default" \
    --method rtn --gguf-type q4_k_m --wbits 3 --model syn $R
refused r6 "--target-bpw with K-quants on 64-wide rows" "blk.0.attn_q.weight has rows of 64 (qcalib convert --pad-to 256)" \
    --method rtn --gguf-type q4_k_m --target-bpw 4.5 --model "$M" $R
refused r4 "an unknown mix" "expected q4_0, q4_1, q8_0, a K-quant" --method rtn --gguf-type q4_k_x --model syn $R
finish gguf_kquant
