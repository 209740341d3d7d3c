// hf_tokenize.cjs — token ids by Hugging Face's own JavaScript tokenizers (@huggingface/tokenizers),
// the reference tests/vectors/datasets_hf_tokenizer.sh compares `qcalib tokenize` with.
//   node tests/js/hf_tokenize.cjs NODE_PREFIX TOKENIZER_DIR TEXT...
// NODE_PREFIX: the folder `npm install --prefix` put node_modules in; TOKENIZER_DIR holds
// tokenizer.json and tokenizer_config.json. Each TEXT is read as qcalib reads it and one line
// of space-separated ids (no BOS/EOS: add_special_tokens false) is printed per document:
//   *.jsonl, *.json.gz   one document per non-blank line, its "text" (gzip by magic bytes);
//   anything else        the whole file, bytes as stored, is one document.
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const [prefix, dir, ...texts] = process.argv.slice(2);
if (!prefix || !dir || texts.length === 0) {
    console.error("usage: node hf_tokenize.cjs NODE_PREFIX TOKENIZER_DIR TEXT...");
    process.exit(2);
}
const { Tokenizer } = require(path.join(path.resolve(prefix), "node_modules", "@huggingface", "tokenizers"));
const json = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const config = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
const tok = new Tokenizer(json, config);

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // bytes as stored
const out = [];
for (const file of texts) {
    let bytes = fs.readFileSync(file);
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = zlib.gunzipSync(bytes);
    const text = decoder.decode(bytes);
    const docs = /\.jsonl$|\.json(\.gz)?$/.test(file)
        ? text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l).text)
        : [text];
    for (const d of docs) out.push(tok.encode(d, { add_special_tokens: false }).ids.join(" "));
}
process.stdout.write(out.join("\n") + "\n");
