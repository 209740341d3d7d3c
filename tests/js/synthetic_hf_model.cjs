// synthetic_hf_model.cjs — writes a tiny Hugging Face Llama folder (config.json, model.safetensors)
// with small random F32 weights and a given vocabulary size, so that tests can pair real
// tokenizer.json files of large vocabularies with a model cheaply.
//   node tests/js/synthetic_hf_model.cjs OUT_DIR VOCAB_SIZE
// 1 layer, hidden 8, 2 heads, FFN 16, tied embeddings (no lm_head tensor).
"use strict";
const fs = require("fs");
const path = require("path");

const [outDir, vocabArg] = process.argv.slice(2);
const vocab = Number(vocabArg), dim = 8, hidden = 16, heads = 2;
const shapes = [
    ["model.embed_tokens.weight", [vocab, dim]],
    ["model.norm.weight", [dim]],
    ["model.layers.0.input_layernorm.weight", [dim]],
    ["model.layers.0.self_attn.q_proj.weight", [dim, dim]],
    ["model.layers.0.self_attn.k_proj.weight", [dim, dim]],
    ["model.layers.0.self_attn.v_proj.weight", [dim, dim]],
    ["model.layers.0.self_attn.o_proj.weight", [dim, dim]],
    ["model.layers.0.post_attention_layernorm.weight", [dim]],
    ["model.layers.0.mlp.gate_proj.weight", [hidden, dim]],
    ["model.layers.0.mlp.up_proj.weight", [hidden, dim]],
    ["model.layers.0.mlp.down_proj.weight", [dim, hidden]],
];
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
const header = {};
const parts = [];
let off = 0;
for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n).map(() => (shape.length === 1 ? 1 : 0.5 * rand()));
    header[name] = { dtype: "F32", shape, data_offsets: [off, off + 4 * n] };
    parts.push(Buffer.from(data.buffer));
    off += 4 * n;
}
let json = JSON.stringify(header);
json += " ".repeat((8 - (json.length % 8)) % 8);
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(json.length));
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "model.safetensors"), Buffer.concat([len, Buffer.from(json), ...parts]));
fs.writeFileSync(path.join(outDir, "config.json"), JSON.stringify({
    model_type: "llama", hidden_size: dim, intermediate_size: hidden, num_hidden_layers: 1, num_attention_heads: heads,
    num_key_value_heads: heads, vocab_size: vocab, max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
    tie_word_embeddings: true,
}));
