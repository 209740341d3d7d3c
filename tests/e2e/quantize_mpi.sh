# e2e/quantize_mpi.sh — calibration over MPI ranks (docs/distributed.md), on stories260K and
# tinystories-656K. Bytes: one rank under mpirun writes what a plain run writes; two ranks
# write the same bytes on every run. Across N (1, 2, 3), results differ only by the order of
# the statistics' sums: every linear's output error stays within 5% of the plain run's (a
# rank's windows lost or counted twice would halve or double it) and the quantized model's
# perplexity on held-out text within 1%, for GPTQ, AWQ, SmoothQuant and (on stories260K)
# --target-bpw;
# GPTQ into Q4_K_M (padded stories260K) on 2 ranks writes what it holds (--verify), the same
# on every run.
# Failures: a rank that cannot open the model, a rank with other options, more ranks than
# windows and a rank with another binary are refused before calibrating, naming the rank and
# the cause; a rank killed mid-run ends the run with no output and the checkpoints kept;
# --resume then finishes it with 2 ranks (the bytes of an uninterrupted 2-rank run) or with
# 3 ranks. Rank 0 alone prints. Skipped (and said so) when the build has MPI off.
. "$(dirname "$0")/../lib.sh"
if ! "$Q" --version | grep -q "^MPI: on"; then
    echo "  SKIPPED: this qcalib was built without MPI (no mpicc)"
    exit 0
fi
# Under the sanitizers (make asan), the ranks skip the leak check: Open MPI never frees what
# MPI_Init allocates, and unloads its components at MPI_Finalize, so the reports cannot be
# suppressed by name. Every plain run keeps the leak check. (verify_asan_link_order=0 lets
# the killed-rank run preload its shim.)
MPIRUN="env ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0:verify_asan_link_order=0 mpirun --oversubscribe --allow-run-as-root"
H=$S/models/tinystories-656K
head -c 40000 "$EVAL" >"$T/eval.txt" # held-out text: the eval split's first 40 kB (about 80 windows)
RUN="--nsamples 12 --seqlen 128 --threads 1 --quiet --eval $T/eval.txt --eval-seqlen 128"
# ppl FOLDER: the quantized model's perplexity that summary.json records
ppl() { json_num "$1/summary.json" quant_ppl; }
# Why not closer: the sums' order is rounding, but a rounding can flip a code at a tie (or an
# arg-min of AWQ's grid), and the flip spreads through the row's compensation and every later
# block. Measured (tinystories-656K, GPTQ w4 g32, 12 × 128 tokens, OPENBLAS_CORETYPE=Sandybridge):
# the plain run and 2 ranks 0.29% apart in perplexity, each linear's output error at most 0.9%
# apart; calibration seeds 0 and 1 give perplexities 1.4% apart.
# close A B: |A - B| <= 1% of B
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 0.01 * b) }'; }
# same_errors A B: every linear's output error tr(ΔW·H·ΔWᵀ) (quant_log.csv's abs_err, a sum
# over the calibration tokens) in run A within 5% of run B's
same_errors() {
    paste -d, "$T/$1/quant_log.csv" "$T/$2/quant_log.csv" | awk -F, '
        NR == 1 { n = NF / 2; for (i = 1; i <= n; i++) if ($i == "abs_err") c = i; next }
        { a = $c; b = $(c + n); d = a - b; if (d < 0) d = -d; rows++; if (!(b > 0) || d > 0.05 * b) bad = 1 }
        END { exit bad || !c || !rows }'
}
# ranks N OUT ARGS...: the run on N ranks (N = 0: plain, without mpirun)
ranks() {
    n=$1 out=$2
    shift 2
    if [ "$n" -eq 0 ]; then "$Q" "$@" $RUN --out "$T/$out" >"$T/$out.out" 2>"$T/$out.err" </dev/null
    else $MPIRUN -np "$n" "$Q" "$@" $RUN --out "$T/$out" >"$T/$out.out" 2>"$T/$out.err" </dev/null; fi
    rc=$?
    [ $rc -eq 0 ] || echo "  (run $out exited $rc: $(tail -c 400 "$T/$out.err"))"
}

for model in "s260k $M" "t656k $H"; do
    set -- $model
    tag=$1 mp=$2
    G="--method gptq --wbits 4 --groupsize 32 --model $mp --calib $CAL"
    ranks 0 $tag-plain $G
    ranks 2 $tag-n2 $G
    ranks 3 $tag-n3 $G
    if [ $tag = s260k ]; then # the bytes: on one model
        ranks 1 $tag-n1 $G
        ranks 2 $tag-n2b $G
        check "$tag gptq: one rank under mpirun writes the plain run's bytes" \
            "cmp -s $T/$tag-plain/model.safetensors $T/$tag-n1/model.safetensors"
        check "$tag gptq: two ranks write the same bytes on every run" \
            "cmp -s $T/$tag-n2/model.safetensors $T/$tag-n2b/model.safetensors"
    fi
    check "$tag gptq: summary.json says 2 ranks, rank 0 pushed 6 of the 12 windows" \
        "grep -q '\"ranks\":[[:space:]]*2' $T/$tag-n2/summary.json && [ \"\$(json_num $T/$tag-n2/summary.json rank0_windows)\" = 6 ]"
    p0=$(ppl $T/$tag-plain)
    for n in 2 3; do
        check "$tag gptq on $n ranks: perplexity $(ppl $T/$tag-n$n) within 1% of the plain run's $p0" \
            "close \"\$(ppl $T/$tag-n$n)\" $p0"
        check "$tag gptq on $n ranks: every linear's output error within 5% of the plain run's" "same_errors $tag-n$n $tag-plain"
    done
    methods="awq --format awq --wbits 4 --groupsize 32|smoothquant --format fake --wbits 8 --groupsize 32"
    # the measuring pass (its sums of KL over every rank's windows): on stories260K, 8 times cheaper
    [ $tag = s260k ] && methods="$methods|gptq --target-bpw 4.5 --groupsize 32"
    echo "$methods" | tr '|' '\n' >"$T/methods"
    while read -r method; do
        set -- $method
        name=$1-${3#--}
        ranks 0 $tag-$name-plain --method $method --model $mp --calib $CAL
        ranks 2 $tag-$name-n2 --method $method --model $mp --calib $CAL
        a=$(ppl $T/$tag-$name-plain) b=$(ppl $T/$tag-$name-n2)
        check "$tag --method $method on 2 ranks: perplexity $b within 1% of the plain run's $a" "close \"$b\" \"$a\""
        check "$tag --method $method on 2 ranks: every linear's output error within 5% of the plain run's" \
            "same_errors $tag-$name-n2 $tag-$name-plain"
    done <"$T/methods"
done
# K-quants: each result carries its super-blocks to the other ranks. --verify: the file rank 0
# wrote computes what the results it holds (half of them received) compute. (Against the plain
# run no bound is asserted: the sub-block scales are chosen by an arg-min, which the Hessian's
# rounding can flip; measured 0.0% and 0.2% apart in two builds.)
"$Q" convert --model "$M" --pad-to 256 --out "$T/pad" --quiet >/dev/null 2>"$T/err" || bad "convert --pad-to 256: $(cat "$T/err")"
KQ="--method gptq --format gguf --gguf-type q4_k_m --model $T/pad --calib $CAL"
ranks 2 kq-n2 $KQ --verify
check "gptq into q4_k_m on 2 ranks (padded stories260K): --verify holds, perplexity $(ppl $T/kq-n2)" "[ $rc -eq 0 ] && [ -f $T/kq-n2/model.gguf ]"
ranks 2 kq-n2b $KQ
check "gptq into q4_k_m on 2 ranks: the same bytes on every run" "cmp -s $T/kq-n2/model.gguf $T/kq-n2b/model.gguf"
check "rank 0 alone prints: one 'wrote' line from two ranks" "[ \"\$(grep -c '^wrote' $T/s260k-n2.out)\" = 1 ]"

# refused before calibrating, naming the rank and the cause; nothing written
G="--method gptq --model $M --calib $CAL --nsamples 4 --seqlen 64 --threads 1 --quiet"
expect_fail_mpi() { # NAME NEEDLE: the last run failed, its output names NEEDLE, and wrote no OUT
    if [ "$rc" -ne 0 ] && grep -qF -- "$2" "$T/err" "$T/out" && [ ! -e "$T/refused" ]; then ok "$1"
    else bad "$1 (exit $rc): $(head -c 400 "$T/err")"; fi
}
$MPIRUN -np 2 sh -c 'm=$1; [ "$OMPI_COMM_WORLD_RANK" = 1 ] && m=$2; shift 2; exec "$@" --model "$m"' sh "$M" "$T/missing.bin" \
    "$Q" --method gptq --calib "$CAL" --nsamples 4 --seqlen 64 --threads 1 --out "$T/refused" >"$T/out" 2>"$T/err"
rc=$?
expect_fail_mpi "a rank that cannot open the model: the run ends, naming rank 1 and the file" "rank 1: $T/missing.bin"
$MPIRUN -np 2 sh -c 'b=4; [ "$OMPI_COMM_WORLD_RANK" = 1 ] && b=3; exec "$@" --wbits $b' sh \
    "$Q" $G --out "$T/refused" >"$T/out" 2>"$T/err"
rc=$?
expect_fail_mpi "a rank with other options is refused, naming rank 1 and the option" 'rank 1: this rank'"'"'s run (settings and inputs) differs from rank 0'"'"'s: rank 0 has "wbits: 4", this rank "wbits: 3"'
cp "$Q" "$T/qcalib-other" && printf 'x' >>"$T/qcalib-other"
$MPIRUN -np 2 sh -c 'q=$1; [ "$OMPI_COMM_WORLD_RANK" = 1 ] && q=$2; shift 2; exec "$q" "$@"' sh "$Q" "$T/qcalib-other" \
    $G --out "$T/refused" >"$T/out" 2>"$T/err"
rc=$?
expect_fail_mpi "a rank running another binary is refused, naming rank 1" "rank 1: this rank's qcalib binary"
$MPIRUN -np 3 "$Q" --method gptq --model "$M" --calib "$CAL" --nsamples 2 --seqlen 64 --out "$T/refused" >"$T/out" 2>"$T/err"
rc=$?
expect_fail_mpi "more ranks than windows is refused, naming both" "3 ranks but only 2 calibration windows"

# a rank killed mid-run, then resumed: rank 1 is killed right after rank 0 commits the
# checkpoint of block 2 (tests/preload's shim, so on any machine at the same step)
K="--method gptq --wbits 4 --groupsize 32 --model $M --calib $CAL --nsamples 24 --seqlen 128 --threads 1 --quiet"
$MPIRUN -np 2 "$Q" $K --out "$T/kfull" >/dev/null 2>&1 || bad "the uninterrupted 2-rank run failed"
for again in 2 3; do
    rm -rf "$T/kpart" "$T/kpart.work"
    preload state:2:rank:1 $MPIRUN -np 2 "$Q" $K --out "$T/kpart" >"$T/out" 2>"$T/err"
    rc=$?
    at=$(done_blocks "$T/kpart.work")
    check "rank 1 killed after $at of 5 blocks: the run fails, mpirun naming rank 1, no output, checkpoints kept" \
        "[ $rc -ne 0 ] && grep -q 'rank 1' $T/err $T/out && [ ! -e $T/kpart ] && [ $at -eq 2 ]"
    $MPIRUN -np $again "$Q" $K --out "$T/kpart" --resume >"$T/out" 2>"$T/err" || bad "--resume on $again ranks failed: $(tail -c 300 "$T/err")"
    if [ $again -eq 2 ]; then
        check "resumed on 2 ranks: the bytes of the uninterrupted 2-rank run" "cmp -s $T/kpart/model.safetensors $T/kfull/model.safetensors"
    else
        check "resumed on 3 ranks (a checkpoint holds every window): finished, work folder gone" \
            "[ -f $T/kpart/model.safetensors ] && [ ! -e $T/kpart.work ]"
    fi
done
finish "MPI"
