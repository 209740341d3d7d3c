// llama2c_tokenizer_json.cjs — writes a llama2.c tokenizer (tok512.bin) as a Hugging Face
// tokenizer.json of the SentencePiece-BPE kind (Llama 2's layout: Prepend "▁" and Replace " " by
// "▁", no pre-tokenizer, byte fallback, merges by rank), plus its tokenizer_config.json, the way
// transformers' converter turns a SentencePiece BPE model into merges: every split of a piece
// into two pieces, ranked by the merged piece's score (highest first). Encoding with it is then
// llama2.c's encode, done by a different algorithm (merge ranks instead of scores), which is what
// tests/test_hf_tokenizer.sh checks, and lets a real model be evaluated through tokenizer.json.
//   node tests/js/llama2c_tokenizer_json.cjs TOKENIZER.bin VOCAB_SIZE OUT_DIR
"use strict";
const fs = require("fs");
const path = require("path");

const [file, vocabArg, outDir] = process.argv.slice(2);
const n = Number(vocabArg);
const buf = fs.readFileSync(file);
const pieces = [], scores = [];
let off = 4;
for (let i = 0; i < n; i++) {
    scores.push(buf.readFloatLE(off));
    const len = buf.readInt32LE(off + 4);
    pieces.push(buf.toString("utf8", off + 8, off + 8 + len).replaceAll(" ", "\u2581"));
    off += 8 + len;
}
const vocab = {};
pieces.forEach((p, i) => { if (!(p in vocab)) vocab[p] = i; });
const merges = [];
pieces.forEach((p, id) => {
    if (id < 3 || /^<0x[0-9A-F]{2}>$/.test(p)) return;
    const cps = Array.from(p);
    for (let k = 1; k < cps.length; k++) {
        const a = cps.slice(0, k).join(""), b = cps.slice(k).join("");
        if (a in vocab && b in vocab) merges.push({ a, b, score: scores[id], id });
    }
});
merges.sort((x, y) => y.score - x.score || x.id - y.id || vocab[x.a] - vocab[y.a]);
const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const tokenizer = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [special(0, pieces[0]), special(1, pieces[1]), special(2, pieces[2])],
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
    model: { type: "BPE", dropout: null, unk_token: pieces[0], continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges: merges.map((m) => `${m.a} ${m.b}`) },
};
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "tokenizer.json"), JSON.stringify(tokenizer));
fs.writeFileSync(path.join(outDir, "tokenizer_config.json"),
    JSON.stringify({ add_bos_token: true, add_eos_token: false, bos_token: pieces[1], eos_token: pieces[2], unk_token: pieces[0] }));
console.log(merges.length);
