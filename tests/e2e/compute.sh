#!/bin/sh
# e2e/compute.sh — --compute f32|bf16, the products' operand type (base/matmul.c, oneDNN):
# - an unknown type is a usage error naming it (quantize, eval, stats);
# - a run says which instruction set oneDNN multiplies on and in which type, and summary.json
#   records both (a resume on another CPU or in another type is refused: e2e/quantize_resume.sh);
# - the stated budgets of bf16 products (README, "--compute"), on both real models: the fp32
#   model evaluated with them within 0.1% of its f32 perplexity; GPTQ calibrated with them at
#   most 1% above GPTQ calibrated at f32, less than what the calibration sample alone moves it
#   (seeds 0, 1, 2 of the default run on tinystories-656K: 41.28, 41.29, 41.85). These are
#   quality budgets, not rounding bounds: the worst-case bound of bf16's 2^-9 relative
#   rounding over a forward's thousands of chained products exceeds the logits themselves,
#   while the independent roundings of the operands mostly cancel in the fp32 sums (about
#   2^-9·sqrt(k) relative per product of length k);
# - on a CPU without native bf16 (oneDNN capped below AVX512_BF16 with ONEDNN_MAX_CPU_ISA),
#   bf16 still works and the run says it will be slow.
. tests/lib.sh
H=$S/models/tinystories-656K
head -c 60000 "$CAL" >"$T/cal.txt"
head -c 20000 "$EVAL" >"$T/ev.txt"

for cmd in "quantize --method rtn --calib $T/cal.txt --out $T/never" "eval --text $T/ev.txt" "stats --calib $T/cal.txt --out $T/never2"; do
    expect_fail "${cmd%% *} --compute fp8 is a usage error naming it" 2 "--compute 'fp8': expected f32 or bf16" \
        $Q $cmd --model "$M" --compute fp8
done
check "nothing written by the refused runs" "[ ! -e '$T/never' ] && [ ! -e '$T/never.work' ] && [ ! -e '$T/never2' ]"

# within FRAC (a fraction) of each other: |a - b| <= FRAC * b
within() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && b > 0 && d <= f * b) }'; }
# at most FRAC above: a <= (1 + FRAC) * b
not_above() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { exit !(a > 0 && b > 0 && a <= (1 + f) * b) }'; }

for model in "$M" "$H"; do
    name=$(basename "$model")
    for c in f32 bf16; do
        $Q eval --model "$model" --text "$T/ev.txt" --seqlen 128 --compute $c --json >"$T/eval_$c.json" 2>"$T/eval_$c.err" ||
            bad "$name: eval --compute $c failed: $(cat "$T/eval_$c.err")"
    done
    pf=$(json_num "$T/eval_f32.json" ppl) pb=$(json_num "$T/eval_bf16.json" ppl)
    echo "  $name: perplexity $pf at f32, $pb at bf16"
    check "$name: eval at bf16 within 0.1% of f32" "within '$pb' '$pf' 0.001"
    check "$name: eval --json says it multiplied in bf16, and on which instruction set" \
        "grep -q '\"compute\":\"bf16\"' '$T/eval_bf16.json' && grep -q '\"matmul_isa\":\"[a-z0-9_.]*\"' '$T/eval_bf16.json'"

    for c in f32 bf16; do
        $Q --method gptq --wbits 4 --groupsize 32 --model "$model" --calib "$T/cal.txt" --nsamples 16 --seqlen 128 \
            --compute $c --format fake --out "$T/q_$c" >"$T/q_$c.out" 2>"$T/q_$c.err" ||
            bad "$name: gptq --compute $c failed: $(cat "$T/q_$c.err")"
        $Q eval --model "$T/q_$c" --text "$T/ev.txt" --seqlen 128 --compute f32 --json >"$T/qeval_$c.json" 2>/dev/null ||
            bad "$name: eval of the --compute $c output failed"
    done
    qf=$(json_num "$T/qeval_f32.json" ppl) qb=$(json_num "$T/qeval_bf16.json" ppl)
    echo "  $name: gptq w4 g32 perplexity $qf calibrated at f32, $qb at bf16"
    check "$name: gptq calibrated at bf16 at most 1% above f32" "not_above '$qb' '$qf' 0.01"
    isa=$(sed -n 's/.*products: oneDNN on \([a-z0-9_.]*\), compute bf16.*/\1/p' "$T/q_bf16.err" | head -n 1)
    check "$name: summary.json records compute bf16 and the instruction set the run printed ($isa)" \
        "[ -n '$isa' ] && grep -q '\"compute\":[[:space:]]*\"bf16\"' '$T/q_bf16/summary.json' && grep -q '\"matmul_isa\":[[:space:]]*\"$isa\"' '$T/q_bf16/summary.json'"
    rm -rf "$T/q_f32" "$T/q_bf16"
done

# a CPU without native bf16: oneDNN emulates, the run warns and still gives the same model
# quality (its kernels convert to fp32 and multiply there: the same bf16 operands)
ONEDNN_MAX_CPU_ISA=AVX2 $Q eval --model "$M" --text "$T/ev.txt" --seqlen 128 --compute bf16 --json >"$T/avx2.json" 2>"$T/avx2.err" ||
    bad "eval --compute bf16 on AVX2 failed: $(cat "$T/avx2.err")"
check "on AVX2 --compute bf16 warns that it is slow" "grep -q 'does not multiply bf16 natively' '$T/avx2.err'"
pe=$(json_num "$T/avx2.json" ppl)
$Q eval --model "$M" --text "$T/ev.txt" --seqlen 128 --compute f32 --json >"$T/f32.json" 2>/dev/null
pf=$(json_num "$T/f32.json" ppl)
check "on AVX2 bf16 is within 0.1% of f32 ($pe against $pf)" "within '$pe' '$pf' 0.001"
# the products themselves on AVX2's emulated bf16 (and fp32): unit/base_matmul's bounds, in a process
# whose oneDNN is capped there
ONEDNN_MAX_CPU_ISA=AVX2 "${QCALIB_BUILD:-build}/tests/unit/base_matmul" >"$T/mm_avx2.out" 2>&1
check "unit/base_matmul's products hold their bounds with oneDNN capped at AVX2" "grep -q ' 0 failed' '$T/mm_avx2.out'"
finish compute
