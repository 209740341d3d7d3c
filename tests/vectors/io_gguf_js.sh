#!/bin/sh
# vectors/io_gguf_js.sh — a second, independent GGUF parser reads what qcalib writes: Hugging Face's
# @huggingface/gguf (npm; installed into this test's scratch folder, never globally) parses
# GGUF files of stories260K written by qc_gguf_export (F32, F16, and test-made Q4_0 / Q4_1 /
# Q8_0 linears with reference-quantized embeddings), and must list exactly the header, the
# metadata (keys, value types, values) and the tensor infos (names, shapes, types, offsets)
# that qcalib's own reader lists (build/tests/tools/gguf_tool list). Needs node and npm.
. tests/lib.sh
TOOL=${QCALIB_BUILD:-build}/tests/tools/gguf_tool
TOK=$S/models/stories260K/tok512.bin
JS=tests/js/gguf_list.cjs

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    bad "node and npm are needed to run @huggingface/gguf (Debian: apt-get install nodejs npm)"
    finish gguf-js
fi
if [ ! -x "$TOOL" ]; then
    bad "$TOOL is missing (make test builds it)"
    finish gguf-js
fi
if npm install --prefix "$T/npm" --no-audit --no-fund --loglevel=error "@huggingface/gguf@^0.4.6" >"$T/npm.log" 2>&1; then
    ok "npm installed @huggingface/gguf $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$T/npm/node_modules/@huggingface/gguf/package.json")"
else
    bad "npm install @huggingface/gguf failed: $(tail -n 3 "$T/npm.log")"
    finish gguf-js
fi

# name, then gguf_tool export's type arguments
for spec in "f32 f32" "f16 f16" "q4_0 q4_0" "q4_1 q4_1 q4_1 q8_0" "q8_0 q8_0 q4_0 f32"; do
    set -- $spec
    name=$1; shift
    f="$T/stories_$name.gguf"
    if ! "$TOOL" export "$M" "$TOK" "$f" "$@" 2>"$T/err"; then
        bad "$name: export failed: $(head -c 300 "$T/err")"
        continue
    fi
    "$TOOL" list "$f" >"$T/qcalib_$name.txt" 2>"$T/err" || bad "$name: qcalib's reader refused its own file: $(head -c 300 "$T/err")"
    node "$JS" "$T/npm" "$f" >"$T/js_$name.txt" 2>"$T/err" || bad "$name: @huggingface/gguf failed: $(head -c 300 "$T/err")"
    check "$name: @huggingface/gguf lists the same header, metadata and tensors ($(wc -l <"$T/js_$name.txt") lines)" \
        "[ -s '$T/js_$name.txt' ] && cmp -s '$T/qcalib_$name.txt' '$T/js_$name.txt'"
    cmp -s "$T/qcalib_$name.txt" "$T/js_$name.txt" || diff "$T/qcalib_$name.txt" "$T/js_$name.txt" | cut -c1-200 | head -n 10
done

# what the listings hold, spot-checked against what was written
L=$T/js_q4_0.txt
check "llama architecture, 48 tensors, 24 metadata entries" \
    "grep -qx 'kv general.architecture 8 6c6c616d61' '$L' && grep -qx 'header tensor_count 48' '$L' && [ \$(grep -c '^tensor ' '$L') -eq 48 ] && grep -qx 'header kv_count 24' '$L' && [ \$(grep -c '^kv ' '$L') -eq 24 ]"
check "Q4_0 linears: ggml type 2, ne = [in, out], FFN padded to 192; general.file_type 2" \
    "grep -qx 'tensor blk.0.ffn_up.weight 2 64,192 2 [0-9]*' '$L' && grep -qx 'tensor blk.4.ffn_down.weight 2 192,64 2 [0-9]*' '$L' && grep -qx 'kv general.file_type 4 2' '$L'"
check "embedding Q8_0 (type 8), output F16 (type 1), norms F32 vectors" \
    "grep -qx 'tensor token_embd.weight 2 64,512 8 0' '$L' && grep -q '^tensor output.weight 2 64,512 1 ' '$L' && grep -q '^tensor blk.3.ffn_norm.weight 1 64 0 ' '$L'"
check "rms epsilon f32 1e-5 (0x3727c5ac), 512 tokens / scores / token types" \
    "grep -qx 'kv llama.attention.layer_norm_rms_epsilon 6 3727c5ac' '$L' && grep -q '^kv tokenizer.ggml.tokens 9/8\[512\] ' '$L' && grep -q '^kv tokenizer.ggml.scores 9/6\[512\] ' '$L' && grep -q '^kv tokenizer.ggml.token_type 9/5\[512\] 2,3,3,6,' '$L'"
check "unpadded F32: FFN width 172 kept" "grep -qx 'kv llama.feed_forward_length 4 172' '$T/js_f32.txt'"

finish gguf-js
