# badinput/cli_corrupt.sh — the corrupt-input corpus: for each kind of input qcalib reads, a real
# file (from the shared folder, or written by qcalib from it) is cut at many offsets and has
# single bytes replaced at seeded random places (a third each in the first 64 bytes, the
# first 4 KiB — where the headers are — and anywhere), and each broken copy goes through the
# real CLI. Every case must end either with exit 1 and a message naming the broken file,
# or — a change that leaves the file valid (a weight's byte, a letter of a text) — with exit
# 0; never with a signal or a hang (20 s), and never with anything left in the output
# folder after a failure. Prints the number of cases per kind (17 kinds). Then one NaN or Inf
# placed in a copy of each kind of model, refused when it is opened, naming tensor and position.
# QCALIB_CORRUPT_CASES (default 24) is the number of cuts and of flips per kind.
. "$(dirname "$0")/../lib.sh"
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

# ---- non-finite values: one hostile copy per reader, refused when the model is opened ------------
# Each valid file above gets a NaN or an Inf at a known place (a norm, the embedding, a block, the
# classifier; a stored value or a quantized file's scale); quantizing it must fail with exit 1 before
# anything is calibrated, naming the tensor and the position, with nothing in the output folder.
TOOL=${QCALIB_BUILD:-build}/tests/tools/gguf_tool
# put FILE BYTE-OFFSET BYTES (printf escapes)
put() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }
# st_data FILE TENSOR: the byte offset of a safetensors tensor's data
st_data() {
    hl=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    b=$(head -c $((8 + hl)) "$1" | tr -d '\n' | grep -ao "\"$2\":{[^}]*}" | sed 's/.*"data_offsets":\[\([0-9]*\),.*/\1/')
    echo $((8 + hl + b))
}
# gguf_data FILE TENSOR: the byte offset of a GGUF tensor's data
gguf_data() {
    base=$("$TOOL" list "$1" | awk '$1 == "header" && $2 == "data_offset" { print $3 }')
    off=$("$TOOL" list "$1" | awk -v n="$2" '$1 == "tensor" && $2 == n { print $6 }')
    echo $((base + off))
}
# nonfinite NAME MODEL NEEDLE: quantizing MODEL fails with exit 1 naming NEEDLE, before calibrating,
# nothing written (lib.sh's expect_fail writes to $T/out, which is the output folder here)
nonfinite() {
    $Q --method rtn --model "$2" --calib "$TINY" --nsamples 2 --seqlen 32 --tokenizer "$TOK" --out "$O/q" --quiet \
        >"$T/nf.out" 2>"$T/nf.err"
    rc=$?
    check "non-finite: $1 (exit $rc: $(head -c 200 "$T/nf.err"))" "[ $rc -eq 1 ] && grep -qF -- '$3' '$T/nf.err'"
    check "non-finite: $1: refused before calibrating, nothing written" \
        "! grep -q 'block 0' '$T/nf.err' && [ -z \"\$(ls -A '$O')\" ]"
    rm -rf "${O:?}"/* "$O"/.[!.]* 2>/dev/null
}
NF=$T/nonfinite
mkdir -p "$NF"
cp "$M" "$NF/l2c.bin" # llama2.c legacy: +inf in the final norm, element 9 (after the embedding, the blocks' weights)
put "$NF/l2c.bin" $((28 + 4 * (512 * 64 + 5 * 64 + 5 * 64 * 64 + 2 * 5 * 32 * 64 + 5 * 64 * 64 + 5 * 64 + 3 * 5 * 172 * 64 + 9))) '\000\000\200\177'
nonfinite "llama2.c legacy, final norm" "$NF/l2c.bin" "weight model.norm.weight has a non-finite value (inf) at element 9"
cp "$T/q8/model.bin" "$NF/q8.bin" # llama2.c int8 v2: the embedding's first scale NaN (codes at 256 + norms, 512 × 64 bytes)
put "$NF/q8.bin" $((256 + 4 * (2 * 5 * 64 + 64) + 512 * 64)) '\000\000\300\177'
nonfinite "llama2.c int8, an embedding scale" "$NF/q8.bin" "weight model.embed_tokens.weight has a non-finite value (nan) at row 0, column 0"
cp "$T/m.gguf" "$NF/m.gguf" # GGUF F16: NaN (0x7e00) in blk.1.ffn_down.weight row 3, column 10, and -inf in output.weight
put "$NF/m.gguf" $(($(gguf_data "$NF/m.gguf" blk.1.ffn_down.weight) + 2 * (3 * 172 + 10))) '\000\176'
nonfinite "GGUF F16, a block's weight" "$NF/m.gguf" "weight model.layers.1.mlp.down_proj.weight has a non-finite value (nan) at row 3, column 10"
cp "$T/m.gguf" "$NF/m.gguf"
put "$NF/m.gguf" $(($(gguf_data "$NF/m.gguf" output.weight) + 2 * (511 * 64 + 63))) '\000\374'
nonfinite "GGUF F16, the classifier" "$NF/m.gguf" "weight lm_head.weight has a non-finite value (-inf) at row 511, column 63"
mkdir -p "$NF/hf" && cp "$T/hf/config.json" "$T/hf/tokenizer.json" "$T/hf/tokenizer_config.json" "$T/hf/model.safetensors" "$NF/hf/"
# HF F32: -inf in k_proj at row 5 of the file (HF's rotate-half order; the message gives the file's row), column 2
K=model.layers.3.self_attn.k_proj.weight
put "$NF/hf/model.safetensors" $(($(st_data "$NF/hf/model.safetensors" $K) + 4 * (5 * 64 + 2))) '\000\000\200\377'
nonfinite "HF safetensors, k_proj (row in the file's order)" "$NF/hf" "weight $K has a non-finite value (-inf) at row 5, column 2"
mkdir -p "$NF/gptq" && cp "$T/gptq/"*.json "$NF/gptq/" && cp "$T/gptq/model.safetensors" "$NF/gptq/"
# GPTQ: the first F16 scale of block 2's up_proj NaN: its first group of row 0 decodes to NaN
put "$NF/gptq/model.safetensors" "$(st_data "$NF/gptq/model.safetensors" model.layers.2.mlp.up_proj.scales)" '\000\176'
nonfinite "GPTQ safetensors, a scale" "$NF/gptq" "weight model.layers.2.mlp.up_proj.weight has a non-finite value (nan) at row 0, column 0"

echo "  $cases cases in all ($valid left their file valid)"
check "every kind was corrupted ($cases cases)" "[ $cases -ge $((17 * 2 * N)) ]"
finish "corrupt-input"
