// hf_documents.cjs — cuts the plain texts of the shared folder into documents, written as JSON
// lines ({"text": ...}) for tests/vectors/datasets_hf_tokenizer.sh, so that qcalib and the reference
// tokenizer see the same strings:
//   node tests/js/hf_documents.cjs wikitext FILE OUT   one document per article: a new one starts
//       at each top-level heading line " = Title = " (second-level " = = ... = = " stay inside);
//   node tests/js/hf_documents.cjs paragraphs FILE OUT one document per paragraph, each keeping
//       the blank line that ends it (TinyStories: stories and their paragraphs are separated
//       by blank lines).
// Either way the documents concatenated are the file, byte for byte (CRLF kept).
"use strict";
const fs = require("fs");

const [mode, file, outFile] = process.argv.slice(2);
const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(fs.readFileSync(file));
let docs;
if (mode === "wikitext") {
    docs = text.split(/(?=^ = [^=].* = \r?$)/m);
} else if (mode === "paragraphs") {
    docs = text.split(/(?<=\n\n)/);
} else {
    console.error("usage: node hf_documents.cjs wikitext|paragraphs FILE OUT");
    process.exit(2);
}
if (docs.join("") !== text) throw new Error("documents do not add up to the file");
fs.writeFileSync(outFile, docs.filter((d) => d.length > 0).map((d) => JSON.stringify({ text: d })).join("\n") + "\n");
console.log(docs.length);
