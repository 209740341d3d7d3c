// gguf_list.cjs — prints a GGUF file's header, metadata and tensor infos as parsed by
// Hugging Face's @huggingface/gguf, in the listing format of tests/tools/gguf_tool.c ("list"),
// so that tests/vectors/io_gguf_js.sh can compare a second, independent parser with what qcalib wrote.
//   node tests/js/gguf_list.cjs NODE_PREFIX FILE.gguf
// NODE_PREFIX: the folder `npm install --prefix` put node_modules in.
"use strict";
const path = require("path");

const [prefix, file] = process.argv.slice(2);
if (!prefix || !file) {
    console.error("usage: node gguf_list.cjs NODE_PREFIX FILE.gguf");
    process.exit(2);
}
const { gguf } = require(path.join(path.resolve(prefix), "node_modules", "@huggingface", "gguf"));

const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 };

function hexBytes(bytes) {
    return Buffer.from(bytes).toString("hex");
}

function elem(type, v) {
    switch (type) {
        case T.STRING:
            return hexBytes(Buffer.from(v, "utf8"));
        case T.F32: {
            const dv = new DataView(new ArrayBuffer(4));
            dv.setFloat32(0, v, true);
            return dv.getUint32(0, true).toString(16).padStart(8, "0");
        }
        case T.F64: {
            const dv = new DataView(new ArrayBuffer(8));
            dv.setFloat64(0, v, true);
            return dv.getBigUint64(0, true).toString(16).padStart(16, "0");
        }
        case T.BOOL:
            return v ? "1" : "0";
        default:
            return BigInt(v).toString();
    }
}

(async () => {
    const r = await gguf(path.resolve(file), { allowLocalFile: true, typedMetadata: true });
    const md = r.typedMetadata;
    const out = [];
    out.push(`header version ${md.version.value}`);
    out.push(`header tensor_count ${md.tensor_count.value}`);
    out.push(`header kv_count ${md.kv_count.value}`);
    out.push(`header data_offset ${r.tensorDataOffset}`);
    for (const [key, e] of Object.entries(md)) {
        if (key === "version" || key === "tensor_count" || key === "kv_count") continue;
        if (e.type === T.ARRAY) {
            const vals = e.value.map((v) => elem(e.subType, v));
            out.push(`kv ${key} 9/${e.subType}[${vals.length}] ${vals.join(",")}`);
        } else {
            out.push(`kv ${key} ${e.type} ${elem(e.type, e.value)}`);
        }
    }
    for (const t of r.tensorInfos)
        out.push(`tensor ${t.name} ${t.n_dims} ${t.shape.map((d) => d.toString()).join(",")} ${t.dtype} ${t.offset}`);
    process.stdout.write(out.join("\n") + "\n");
})().catch((err) => {
    console.error(`gguf_list.cjs: ${file}: ${err && err.message ? err.message : err}`);
    process.exit(1);
});
