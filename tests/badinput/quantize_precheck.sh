# badinput/quantize_precheck.sh — what a quantize run can know before it calibrates, it checks before it
# calibrates: each case below is an option, a combination of options or a format's limit on
# this model that the writer would refuse only after the whole calibration. Each must be a
# usage error (exit 2) whose message names the option or format at fault, with nothing
# written beside --out: no OUT, no OUT.work, no OUT.tmp.*, no scratch file.
# (NaN/Inf in the model, refused when it is opened: badinput/cli_numeric.sh and badinput/cli_corrupt.sh.)
. "$(dirname "$0")/../lib.sh"
Q=$(realpath "$Q") S=$(realpath "$S")
M=$S/models/stories260K/stories260K.bin CAL=$S/data/tinystories/tinystories_calib.txt
cd "$T" || exit 1
R="--calib $CAL --nsamples 8 --seqlen 64 --quiet"

# stories260K as a Hugging Face folder with Llama 3's rope_scaling added to its config
$Q convert --model "$M" --out hf --quiet || { echo "  preparing the HF copy failed"; exit 1; }
mkdir rope && cp hf/model.safetensors hf/tokenizer.json hf/tokenizer_config.json rope/
sed 's/"rope_theta": 10000.0,/"rope_theta": 10000.0,\n  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 256},/' \
    hf/config.json >rope/config.json
check "the rope_scaling copy opens (so the refusals below are the formats')" \
    "$Q inspect --model rope >/dev/null 2>&1 && grep -q rope_scaling rope/config.json"
touch a_file before.txt after.txt out err short.txt # the listings compared below, expect_fail's output
mkdir a_folder && ln -s a_folder a_link && ln -s absent a_dangling_link

# refused OUT NAME NEEDLE ARGS...: exit 2 naming NEEDLE, and nothing beside OUT in the scratch
# folder (nor anything new at all: the listing before and after must be the same)
refused() {
    out=$1 name=$2 needle=$3; shift 3
    ls -A >before.txt
    expect_fail "$name" 2 "$needle" $Q "$@" --out "$out"
    ls -A >after.txt
    check "$name: nothing written" "[ ! -e '$out.work' ] && ! ls -d '$out'.tmp.* >/dev/null 2>&1 && cmp -s before.txt after.txt"
}

# -- the issue's cases: each used to end after calibrating, with exit 1 and a kept OUT.work
refused o1 "--percdamp 0 with --format gptq" "--percdamp 0" --method gptq --format gptq --percdamp 0 --model "$M" $R
refused o2 "--percdamp 1 with --format gptq" "--percdamp 1" --method gptq --format gptq --percdamp 1 --model "$M" $R
refused o3 "--format awq with groups of 48 (dim 64)" "--format awq: model.layers.0.self_attn.q_proj: in_features 64 is not a multiple of group size 48" \
    --method rtn --format awq --groupsize 48 --model "$M" $R
refused o4 "--format llama2c with groups of 48 (dim 64)" "--format llama2c: $M: group size 48 does not divide dim 64" \
    --method rtn --format llama2c --groupsize 48 --model "$M" $R
refused o6 "--format llama2c of a Llama 3 rope_scaling model" "--format llama2c: rope: llama2.c's runq.c has no rope_scaling" \
    --method rtn --format llama2c --model rope $R
refused a_file "--force onto a file" "a_file: exists and is not a folder" --method rtn --model "$M" $R --force
refused a_link "--force onto a symbolic link to a folder" "a_link: is a symbolic link" --method rtn --model "$M" $R --force
refused a_dangling_link "a dangling symbolic link" "a_dangling_link: already exists" --method rtn --model "$M" $R
check "--force left the link, the folder and the file alone" "[ -L a_link ] && [ -d a_folder ] && [ -f a_file ] && [ -z \"\$(ls -A a_folder)\" ]"

# -- other limits of the writers and combinations found late before (a recipe's rules against
#    the model and the format: e2e/quantize_recipe.sh, also refused before calibrating)
refused o8 "--format gptq: a recipe skipping every linear" "--format gptq: no linear is quantized" \
    --method rtn --format gptq --quantize '{"skip": ["*"]}' --model "$M" $R
refused o11 "--observe with q4_1 GGUF (8-bit q8_0 is symmetric)" "--observe requantizes linears at 8 bits" \
    --method gptq --gguf-type q4_1 --observe 2 --model "$M" $R
refused o12 "--observe with --format awq (4-bit only)" "which --format awq cannot store" \
    --method gptq --format awq --groupsize 32 --observe 2 --model "$M" $R
refused o13 "--observe with --format llama2c" "which --format llama2c cannot store" \
    --method gptq --format llama2c --observe 2 --model "$M" $R
refused o14 "--target-bpw with --format awq" "--target-bpw: --format awq stores none of the candidate settings" \
    --method gptq --format awq --groupsize 32 --target-bpw 4 --model "$M" $R
refused o15 "--target-bpw below what the cheapest candidate gives" "--target-bpw 2 is below what the cheapest candidate gives" \
    --method gptq --format gptq --target-bpw 2 --model "$M" $R
refused o16 "--eval of a missing file" "--eval $T/absent.txt: cannot open" --method rtn --model "$M" $R --eval "$T/absent.txt"
refused o17 "--eval of a folder" "--eval $T/a_folder: is a folder" --method rtn --model "$M" $R --eval "$T/a_folder"
head -c 100 "$S/data/tinystories/tinystories_eval.txt" >short.txt
refused o21 "--eval of a text shorter than one --eval-seqlen window" "--eval short.txt (--eval-seqlen 64): sequential windows:" \
    --method rtn --model "$M" $R --eval short.txt
refused o22 "--compute of an unknown type" "--compute 'fp8': expected f32 or bf16" --method rtn --model "$M" $R --compute fp8
refused absent/o18 "--out in a folder that does not exist" "absent/o18: its folder absent cannot hold it" --method rtn --model "$M" $R
cp "$S/models/stories260K/tok512.bin" tok_nan.bin && chmod u+w tok_nan.bin # token 0's score (bytes 4..7) NaN
printf '\000\000\300\177' | dd of=tok_nan.bin bs=1 seek=4 conv=notrunc 2>/dev/null
refused o20 "--format gptq with a tokenizer whose vocabulary cannot become tokenizer.json" "tok_nan.bin: token 0 has a NaN score" \
    --method rtn --format gptq --tokenizer tok_nan.bin --model "$M" $R
mkdir ro && chmod a-w ro
if [ -w ro ]; then echo "  skip --out in a read-only folder (running as a user who can write anyway)"
else refused ro/o19 "--out in a read-only folder" "ro/o19: cannot write in its folder ro" --method rtn --model "$M" $R; fi
chmod u+w ro

# -- and what is allowed still runs: the same formats on settings they hold
$Q --method rtn --format awq --groupsize 32 --model "$M" $R --out ok_awq >/dev/null 2>err.txt
check "--format awq with groups of 32 is written" "[ -f ok_awq/model.safetensors ] && [ ! -e ok_awq.work ]"
$Q --method rtn --format llama2c --groupsize 32 --model "$M" $R --out ok_l2c >/dev/null 2>err.txt
check "--format llama2c with groups of 32 is written" "[ -f ok_l2c/model.bin ]"
$Q --method rtn --format fake --model rope $R --out ok_rope >/dev/null 2>err.txt
check "the rope_scaling model is written as fake (its own HF format, rope_scaling kept)" \
    "grep -q rope_scaling ok_rope/config.json"
$Q --method rtn --model "$M" $R --out replace_me >/dev/null 2>err.txt && rm replace_me/summary.json &&
    $Q --method rtn --model "$M" $R --out replace_me --force >/dev/null 2>err.txt
check "--force onto a folder qcalib wrote still replaces it (what else it refuses: e2e/quantize_force.sh)" "[ -f replace_me/summary.json ]"
finish "precheck"
