# test_corrupt.sh — the corrupt-input corpus: for each kind of input qcalib reads, a real
# file (from the shared folder, or written by qcalib from it) is cut at many offsets and has
# single bytes replaced at seeded random places (a third each in the first 64 bytes, the
# first 4 KiB — where the headers are — and anywhere), and each broken copy goes through the
# real CLI. Every case must end either with exit 1 and a message naming the broken file,
# or — a change that leaves the file valid (a weight's byte, a letter of a text) — with exit
# 0; never with a signal or a hang (20 s), and never with anything left in the output
# folder after a failure. Prints the number of cases per kind (17 kinds).
# QCALIB_CORRUPT_CASES (default 24) is the number of cuts and of flips per kind.
. "$(dirname "$0")/lib.sh"
N=${QCALIB_CORRUPT_CASES:-24}
SEED=6
W=$T/work
O=$T/out
mkdir -p "$W" "$O"
TOK=$S/models/stories260K/tok512.bin
TINY=$T/tiny.txt
head -c 2000 "$EVAL" >"$TINY"

# ---- the valid inputs -------------------------------------------------------------------------
quiet() { "$@" >/dev/null 2>"$T/prep.err" || { echo "  preparing failed: $*"; cat "$T/prep.err"; exit 1; }; }
quiet $Q convert --model "$M" --to gguf --dtype f16 --tokenizer "$TOK" --out "$T/m.gguf" --quiet
quiet $Q convert --model "$M" --out "$T/hf" --quiet # with tokenizer.json and tokenizer_config.json (SentencePiece-BPE) of tok512
# an index naming the one shard for every tensor (stories260K fits in one 1 MB shard)
quiet $Q convert --model "$M" --out "$T/sharded" --quiet
SHARD=model-00001-of-00001.safetensors
mv "$T/sharded/model.safetensors" "$T/sharded/$SHARD"
names=$(head -c 8192 "$T/sharded/$SHARD" | grep -ao '"[^"]*":{"dtype"' | sed 's/:{"dtype"//')
{
    printf '{"metadata": {"total_size": %s}, "weight_map": {' "$(($(wc -c <"$T/sharded/$SHARD") - 8))"
    sep=""
    for n in $names; do printf '%s\n  %s: "%s"' "$sep" "$n" "$SHARD"; sep=","; done
    printf '\n}}\n'
} >"$T/sharded/model.safetensors.index.json"
# TinyStories-656K as published: the tied embedding stored as lm_head.weight, with a "__metadata__"
# alias model.embed_tokens.weight -> lm_head.weight
mkdir -p "$T/ts656"
cp "$S/models/tinystories-656K/config.json" "$S/models/tinystories-656K/model.safetensors" "$T/ts656/"
quiet $Q --method rtn --wbits 4 --groupsize 32 --format gptq --model "$M" --calib "$TINY" --nsamples 2 \
    --seqlen 32 --out "$T/gptq" --quiet
quiet $Q --method rtn --wbits 4 --groupsize 32 --format awq --model "$M" --calib "$TINY" --nsamples 2 \
    --seqlen 32 --out "$T/awq" --quiet
quiet $Q --method rtn --format llama2c --groupsize 32 --model "$M" --calib "$TINY" --nsamples 2 --seqlen 32 \
    --out "$T/q8" --quiet
quiet $Q eval --model "$M" --text "$TINY" --seqlen 64 --save-logits "$T/base.lp" --quiet
gunzip -c "$S/data/c4/c4-validation-2k.json.gz" | head -n 4 >"$T/c4.jsonl"
gzip -9 -c "$T/c4.jsonl" >"$T/c4.json.gz"
# .npy windows: 2 × 32 int32 token ids of the evaluation text
ids=$($Q tokenize --tokenizer "$TOK" --vocab 512 --text "$TINY" --bos | tr ' ' '\n' | head -n 64)
{
    printf '\223NUMPY\001\000\166\000'
    printf "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 32), }%57s\n" ''
    for id in $ids; do
        printf "\\$(printf %o $((id & 255)))\\$(printf %o $((id >> 8 & 255)))\\000\\000"
    done
} >"$T/w.npy"

# ---- one case ---------------------------------------------------------------------------------
# run_case KIND FILE CMD...: runs CMD (which reads FILE, writing only into $O) with a 20 s limit
cases=0 valid=0
run_case() {
    what=$1 file=$2; shift 2
    cases=$((cases + 1))
    timeout -s KILL 20 "$@" >"$T/out.txt" 2>"$T/err.txt"
    rc=$?
    left=$(ls -A "$O")
    if [ $rc -eq 0 ]; then
        valid=$((valid + 1))
        rm -rf "${O:?}"/* "$O"/.[!.]* 2>/dev/null
        return
    fi
    if [ $rc -ne 1 ]; then
        bad "$what: exit $rc ($([ $rc -eq 137 ] && echo 'a hang, killed after 20 s' || echo 'a crash or signal')): $(head -c 300 "$T/err.txt")"
        cp "$file" "$T/failed-$cases" 2>/dev/null
    elif ! grep -qF "$(basename "$file")" "$T/err.txt"; then
        bad "$what: exit 1 without a message naming it: $(head -c 300 "$T/err.txt")"
    elif [ -n "$left" ]; then
        bad "$what: failed but left output: $left"
    fi
    rm -rf "${O:?}"/* "$O"/.[!.]* 2>/dev/null
}

# cut_offsets SIZE: N cut points, half of them in the first bytes (0..15, then every 13th),
# half spread evenly over the file; flips SIZE SEED: N seeded (offset, byte) pairs
cut_offsets() { awk -v n="$N" -v s="$1" 'BEGIN { h = int(n / 2); for (i = 0; i < h; i++) print i * (i < 16 ? 1 : 13);
                                                  for (i = 1; i <= n - h; i++) print int(s * i / (n - h + 1)) }'; }
flips() { awk -v n="$N" -v s="$1" -v seed="$2" 'BEGIN { srand(seed); for (i = 0; i < n; i++) {
              r = rand(); lim = r < 0.33 ? 64 : r < 0.67 ? 4096 : s; if (lim > s) lim = s
              print int(rand() * lim), int(rand() * 256) } }'; }

# corrupt KIND FILE CMD...: every cut and flip of FILE, in place (restored after each), through CMD
corrupt() {
    kind=$1 file=$2; shift 2
    size=$(wc -c <"$file")
    cp "$file" "$W/orig"
    before=$cases valid_before=$valid
    for off in $(cut_offsets "$size"); do
        head -c "$off" "$W/orig" >"$file"
        run_case "$kind (cut at $off)" "$file" "$@"
    done
    flips "$size" "$SEED" >"$W/flips"
    while read -r off byte; do
        cp "$W/orig" "$file"
        printf "\\$(printf %o "$byte")" | dd of="$file" bs=1 seek="$off" conv=notrunc 2>/dev/null
        run_case "$kind (byte $off = $byte)" "$file" "$@"
    done <"$W/flips"
    cp "$W/orig" "$file"
    echo "  $kind: $((cases - before)) cases ($((valid - valid_before)) left the file valid)"
}

MODEL_OUT="$O/out.bin"
cp "$M" "$W/stories260K.bin"
corrupt "llama2.c legacy checkpoint" "$W/stories260K.bin" $Q convert --model "$W/stories260K.bin" --to llama2c --out "$MODEL_OUT" --quiet
corrupt "llama2.c int8 (version 2) checkpoint" "$T/q8/model.bin" $Q convert --model "$T/q8/model.bin" --to llama2c --out "$MODEL_OUT" --quiet
corrupt "GGUF" "$T/m.gguf" $Q convert --model "$T/m.gguf" --to llama2c --out "$MODEL_OUT" --quiet
corrupt "safetensors" "$T/hf/model.safetensors" $Q convert --model "$T/hf" --to llama2c --out "$MODEL_OUT" --quiet
corrupt "safetensors with a __metadata__ alias (TinyStories-656K)" "$T/ts656/model.safetensors" \
    $Q convert --model "$T/ts656" --out "$O/hf" --quiet
corrupt "config.json" "$T/hf/config.json" $Q convert --model "$T/hf" --to llama2c --out "$MODEL_OUT" --quiet
corrupt "safetensors index" "$T/sharded/model.safetensors.index.json" $Q convert --model "$T/sharded" --to llama2c --out "$MODEL_OUT" --quiet
corrupt "GPTQ safetensors" "$T/gptq/model.safetensors" $Q convert --model "$T/gptq" --to llama2c --out "$MODEL_OUT" --quiet
corrupt "AWQ safetensors" "$T/awq/model.safetensors" $Q convert --model "$T/awq" --to llama2c --out "$MODEL_OUT" --quiet
corrupt "GPTQ config.json" "$T/gptq/config.json" $Q convert --model "$T/gptq" --to llama2c --out "$MODEL_OUT" --quiet
cp "$TOK" "$W/tok512.bin"
corrupt "tokenizer" "$W/tok512.bin" $Q tokenize --tokenizer "$W/tok512.bin" --vocab 512 --text "$TINY"
corrupt "tokenizer.json" "$T/hf/tokenizer.json" $Q tokenize --tokenizer "$T/hf/tokenizer.json" --text "$TINY"
corrupt "tokenizer_config.json" "$T/hf/tokenizer_config.json" $Q tokenize --tokenizer "$T/hf/tokenizer.json" --text "$TINY"
corrupt "JSONL corpus" "$T/c4.jsonl" $Q tokenize --tokenizer "$TOK" --vocab 512 --text "$T/c4.jsonl"
corrupt "gzip'd JSONL corpus" "$T/c4.json.gz" $Q tokenize --tokenizer "$TOK" --vocab 512 --text "$T/c4.json.gz"
corrupt "log-probability file (--kld-base)" "$T/base.lp" $Q eval --model "$M" --text "$TINY" --seqlen 64 --kld-base "$T/base.lp" --quiet
corrupt ".npy windows" "$T/w.npy" $Q --method rtn --model "$M" --calib-tokens "$T/w.npy" --out "$O/q" --quiet

echo "  $cases cases in all ($valid left their file valid)"
check "every kind was corrupted ($cases cases)" "[ $cases -ge $((17 * 2 * N)) ]"
finish "corrupt-input"
