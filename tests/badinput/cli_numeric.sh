# badinput/cli_numeric.sh — numerical robustness through the real CLI, on copies of stories260K with
# one thing broken: an Inf in the embedding or a NaN in a block is refused when the model is
# opened, naming the file, the tensor and its position, before anything is calibrated or
# written; a finite norm so large that its output overflows is reported with the block
# and the input site, nothing written; a weight beyond fp16's range is refused by every writer that
# would store it as F16 (it would become Inf) and written fine as F32; the dead input
# channels GGUF's FFN padding creates are counted in the log and solved without fallback.
# (Rank-deficient Hessians: vectors/gptq.c and e2e/quantize.sh; all-zero, constant and
# fp16-overflowing groups: badinput/gptq_numeric.c.)
. "$(dirname "$0")/../lib.sh"
# this test works inside its scratch folder: the paths it is given made absolute first
Q=$(realpath "$Q") S=$(realpath "$S")
M=$S/models/stories260K/stories260K.bin CAL=$S/data/tinystories/tinystories_calib.txt
cd "$T" || exit 1
TOK=$S/models/stories260K/tok512.bin
# put_f32 FILE FLOAT-INDEX BYTES: overwrite the float at that index of a llama2.c file
put_f32() { printf "$3" | dd of="$1" bs=1 seek=$((28 + 4 * $2)) conv=notrunc 2>/dev/null; }
# float offsets in stories260K (dim 64, 5 blocks, 8 heads, 4 kv heads, FFN 172, vocab 512)
EMBED=0 RMS_ATT=$((512 * 64)) WQ=$((512 * 64 + 5 * 64))
RMS_FFN=$((WQ + 5 * 64 * 64 + 2 * 5 * 32 * 64 + 5 * 64 * 64))
QUANT="--method gptq --calib $CAL --nsamples 8 --seqlen 64 --tokenizer $TOK --quiet"

# -- an Inf in the embedding: refused when the model is opened (it used to pass to the first
#    block's activations, and --format fake wrote it out)
cp "$M" inf_embed.bin && chmod u+w inf_embed.bin
put_f32 inf_embed.bin $((EMBED + 100 * 64 + 3)) '\000\000\200\377'
expect_fail "-Inf in the embedding refused at load with tensor and position" 1 \
    "inf_embed.bin: weight model.embed_tokens.weight has a non-finite value (-inf) at row 100, column 3" \
    $Q $QUANT --format fake --model inf_embed.bin --out q_inf
check "nothing written after a non-finite embedding" "[ ! -e q_inf ] && [ ! -e q_inf.work ]"
expect_fail "eval refuses it too" 1 "model.embed_tokens.weight has a non-finite value (-inf) at row 100, column 3" \
    $Q eval --model inf_embed.bin --text "$CAL" --seqlen 64 --tokenizer "$TOK" --quiet

# -- a NaN weight in the last block's q projection, row 0, column 5: refused at load, before block 0
cp "$M" nan_w.bin && chmod u+w nan_w.bin
put_f32 nan_w.bin $((WQ + 4 * 64 * 64 + 5)) '\000\000\300\177'
expect_fail "NaN weight reported with file, tensor and position" 1 \
    "nan_w.bin: weight model.layers.4.self_attn.q_proj.weight has a non-finite value (nan) at row 0, column 5" \
    $Q $QUANT --model nan_w.bin --out q_nan
check "nothing written after a NaN weight, not even a checkpoint" "[ ! -e q_nan ] && [ ! -e q_nan.work ]"
check "refused before calibrating (no block was reached)" "! grep -q 'block 0' '$T/err'"

# -- a NaN in a norm: refused naming the element
cp "$M" nan_norm.bin && chmod u+w nan_norm.bin
put_f32 nan_norm.bin $((RMS_FFN + 2 * 64 + 9)) '\000\000\300\177'
expect_fail "NaN in a norm reported with its element" 1 \
    "nan_norm.bin: weight model.layers.2.post_attention_layernorm.weight has a non-finite value (nan) at element 9" \
    $Q $QUANT --model nan_norm.bin --out q_nan_norm

# -- non-finite activations from finite weights: block 0's attention norm all 3e38, so its
#    output (the RMS-normalized row, entries up to sqrt(64) = 8, times 3e38) overflows fp32
cp "$M" big_norm0.bin && chmod u+w big_norm0.bin
for c in $(seq 0 63); do put_f32 big_norm0.bin $((RMS_ATT + c)) '\346\261\141\177'; done
expect_fail "non-finite activations reported with block and site" 1 "block 0, input of qkv: non-finite activation" \
    $Q $QUANT --format fake --model big_norm0.bin --out q_big_norm0
check "nothing written after non-finite activations" "[ ! -e q_big_norm0 ] && [ ! -e q_big_norm0.work ]"

# -- fp16 overflow: 100000 in block 0's q projection, and in block 1's attention norm
cp "$M" big.bin && chmod u+w big.bin
put_f32 big.bin $((WQ + 7)) '\000\120\303\107'
expect_fail "HF F16 export refuses a weight beyond fp16" 1 "q_proj.weight: 100000 at row 0, column 7 is beyond the range of F16" \
    $Q convert --model big.bin --out hf16 --dtype f16 --quiet
expect_fail "GGUF F16 export refuses it" 1 "blk.0.attn_q.weight: 100000 at row 0, column 7 is beyond the range of F16" \
    $Q convert --model big.bin --to gguf --dtype f16 --tokenizer "$TOK" --out f16.gguf --quiet
check "nothing written by the refused exports" "[ ! -e hf16 ] && [ ! -e f16.gguf ] && [ -z \"\$(ls | grep tmp)\" ]"
$Q convert --model big.bin --out hf32 --quiet 2>err.txt
check "the same model exports as F32" "[ -f hf32/model.safetensors ]"
cp "$M" big_embed.bin && chmod u+w big_embed.bin
put_f32 big_embed.bin $((EMBED + 7)) '\000\120\303\107'
cp "$M" bignorm.bin && chmod u+w bignorm.bin
put_f32 bignorm.bin $((RMS_ATT + 64 + 2)) '\000\120\303\107'
expect_fail "GPTQ files (norms in F16) refuse it before calibrating" 2 \
    "--format gptq: bignorm.bin: model.layers.1.input_layernorm.weight: 100000 at element 2 is beyond the range of F16" \
    $Q $QUANT --wbits 4 --groupsize 32 --format gptq --model bignorm.bin --out q_big
check "no output, no checkpoint" "[ ! -e q_big ] && [ ! -e q_big.work ]"
expect_fail "GGUF with an F16 output refuses a classifier beyond fp16 before calibrating" 2 \
    "--format gguf: big_embed.bin: lm_head.weight: 100000 at row 0, column 7 is beyond the range of F16" \
    $Q $QUANT --format gguf --gguf-output-type f16 --model big_embed.bin --out q_big

# -- dead input channels: GGUF pads the FFN from 172 to 192 with zeros, so the down
#    projection's 20 last inputs are never active; logged per block, solved without fallback
$Q $QUANT --model "$M" --format gguf --out q_pad 2>err.txt
check "padded model quantized" "[ -f q_pad/model.gguf ]"
# columns: block,module,name,rows,cols,method,bits,groupsize,sym,loss,rel_err,damp,retries,fallback,dead,seconds
check "every block's down projection has 20 dead inputs" \
    "[ \$(awk -F, '\$2 == \"down\" && \$5 == 192 && \$15 == 20' q_pad/quant_log.csv | wc -l) -eq 5 ]"
check "no other linear has a dead input" "[ \$(awk -F, 'NR > 1 && \$2 != \"down\" && \$15 != 0' q_pad/quant_log.csv | wc -l) -eq 0 ]"
check "no fallback and finite errors" \
    "[ \$(awk -F, 'NR > 1 && (\$14 != \"no\" || \$11 !~ /^[0-9.e+-]+\$/ || \$11 + 0 >= 0.05)' q_pad/quant_log.csv | wc -l) -eq 0 ]"
finish "numeric"
