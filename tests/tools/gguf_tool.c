/* gguf_tool.c — a test helper (built as build/tests/tools/gguf_tool; not part of qcalib):
 *
 *   gguf_tool export MODEL TOKENIZER OUT.gguf TYPE [EMBED_TYPE OUTPUT_TYPE]
 *       writes MODEL (any checkpoint qcalib reads) as GGUF through qc_gguf_export. TYPE f32 or
 *       f16: the linears as they are; q4_0, q4_1 or q8_0: the FFN padded to a multiple of 32
 *       and every linear quantized by a TEST-MADE round-to-nearest with fp16 parameters (not
 *       qcalib's solvers), written as those blocks. EMBED_TYPE and OUTPUT_TYPE default to
 *       q8_0 and f16 for quantized TYPEs, to TYPE otherwise.
 *   gguf_tool list FILE.gguf
 *       prints what qcalib's reader finds in any GGUF file, one line per item, in a form a
 *       second parser can reproduce (tests/js/gguf_list.cjs):
 *           header version|tensor_count|kv_count|data_offset N
 *           kv KEY TYPE VALUE        TYPE: the value type's number, "9/E[N]" for an array of E
 *           tensor NAME N_DIMS NE0,NE1,... GGML_TYPE OFFSET
 *       VALUE: integers in decimal, bool 0/1, f32/f64 as the hex of their bits, strings as the
 *       hex of their bytes; array elements joined by ",". */
#include "io/gguf.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float f16r(float x) { return qc_f16_to_f32(qc_f32_to_f16(x)); }


/* Test-made round-to-nearest in GGUF's block shapes (Q4_0: zero 8, Q8_0: zero 128, Q4_1: mins). */
static qc_status rtn(const float *w, int rows, int cols, qc_gguf_type t, qc_qweight *q, qc_err *e) {
    int bits = t == QC_GGUF_Q8_0 ? 8 : 4, maxq = (1 << bits) - 1;
    qc_status st = qc_qweight_init(q, rows, cols, bits, 32, t != QC_GGUF_Q4_1, e);
    if (st) return st;
    if (t == QC_GGUF_Q4_1 && !(q->mins = calloc((size_t)rows * q->ngroups, sizeof(float))))
        return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < q->ngroups; g++) {
            const float *x = w + (size_t)r * cols + g * 32;
            float amax = 0, mn = x[0], mx = x[0], m = 0, zero = t == QC_GGUF_Q8_0 ? 128.0f : 8.0f, d;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j])), mn = fminf(mn, x[j]), mx = fmaxf(mx, x[j]);
            size_t gi = (size_t)r * q->ngroups + g;
            if (t == QC_GGUF_Q4_1) m = f16r(mn), d = f16r((mx - m) / 15), q->mins[gi] = m, zero = 0;
            else d = f16r(amax / (t == QC_GGUF_Q8_0 ? 127.0f : 7.5f));
            if (d == 0) d = 1;
            q->scales[gi] = d;
            q->zeros[gi] = zero;
            for (int j = 0; j < 32; j++) {
                float c = t == QC_GGUF_Q4_1 ? nearbyintf((x[j] - m) / d) : nearbyintf(x[j] / d) + zero;
                q->codes[(size_t)r * cols + g * 32 + j] = (uint8_t)(c < 0 ? 0 : c > maxq ? maxq : c);
            }
        }
    return QC_OK;
}

typedef struct qsource {
    const qc_checkpoint *ck;
    qc_qweight *q; /* (n_layers * QC_W_COUNT); rows == 0: not quantized */
} qsource;

static const qc_qweight *qs_qweight(void *ctx, qc_weight w, int layer) {
    qsource *s = ctx;
    const qc_qweight *q = qc_weight_is_global(w) || !s->q ? NULL : &s->q[(size_t)layer * QC_W_COUNT + w];
    return q && q->rows ? q : NULL;
}

static qc_status qs_read(void *ctx, qc_weight w, int layer, float *out, qc_err *e) {
    const qc_qweight *q = qs_qweight(ctx, w, layer);
    if (!q) return qc_checkpoint_read(((qsource *)ctx)->ck, w, layer, out, e);
    qc_qweight_dequantize(q, out);
    return QC_OK;
}

static void print_msg(void *ctx, qc_log_level level, const char *text) { fprintf(stderr, "%s\n", text); }

static int do_export(int argc, char **argv) {
    qc_gguf_type t, et, ot;
    if (argc != 6 && argc != 8)
        return fprintf(stderr, "usage: gguf_tool export MODEL TOKENIZER OUT TYPE [EMBED OUTPUT]\n"), 2;
    if (!qc_gguf_type_parse(argv[5], &t)) return fprintf(stderr, "unknown type %s\n", argv[5]), 2;
    bool quant = t != QC_GGUF_F32 && t != QC_GGUF_F16;
    et = quant ? QC_GGUF_Q8_0 : t, ot = quant ? QC_GGUF_F16 : t;
    if (argc == 8 && (!qc_gguf_type_parse(argv[6], &et) || !qc_gguf_type_parse(argv[7], &ot)))
        return fprintf(stderr, "unknown embed/output type\n"), 2;
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    qc_tokenizer tok = { 0 };
    qsource s = { 0 };
    float *buf = NULL;
    qc_status st = qc_checkpoint_open(&ck, argv[2], &e);
    if (!st) st = qc_tokenizer_load(&tok, argv[3], qc_checkpoint_config(ck)->vocab_size, &e);
    if (!st && quant) st = qc_checkpoint_pad_ffn(ck, 32, &e);
    const qc_config *c = ck ? qc_checkpoint_config(ck) : NULL;
    if (!st && quant) {
        s.q = calloc((size_t)c->n_layers * QC_W_COUNT, sizeof *s.q);
        buf = malloc(((size_t)c->dim * c->hidden_dim + (size_t)c->dim * c->n_heads * c->head_dim) * sizeof *buf);
        if (!s.q || !buf) st = qc_fail(&e, QC_ERR_NOMEM, "out of memory");
        for (int l = 0; l < c->n_layers && !st; l++)
            for (int w = 0; w < QC_W_COUNT && !st; w++) {
                if (!qc_weight_is_linear((qc_weight)w)) continue;
                int rows, cols;
                qc_weight_shape(c, (qc_weight)w, &rows, &cols);
                if (!(st = qc_checkpoint_read(ck, (qc_weight)w, l, buf, &e)))
                    st = rtn(buf, rows, cols, t, &s.q[(size_t)l * QC_W_COUNT + w], &e);
            }
    }
    s.ck = ck;
    if (!st) {
        qc_weight_source src = { .cfg = c, .read = qs_read, .qweight = qs_qweight, .ctx = &s };
        qc_gguf_export_opts o = { .float_type = quant ? QC_GGUF_F32 : t, .embed_type = et, .output_type = ot,
                                  .tok = &tok, .name = "stories260K (qcalib test)" };
        qc_log log = { .message = print_msg };
        st = qc_gguf_export(&src, argv[4], &o, &log, &e);
    }
    if (st) fprintf(stderr, "gguf_tool: %s\n", e.msg);
    for (int i = 0; s.q && i < c->n_layers * QC_W_COUNT; i++) qc_qweight_free(&s.q[i]);
    free(s.q);
    free(buf);
    qc_tokenizer_free(&tok);
    qc_checkpoint_close(ck);
    return st ? 1 : 0;
}

static void print_hex(const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) printf("%02x", p[i]);
}

/* Element i of a value (data at p), as described in the header comment; returns the next element. */
static const uint8_t *print_elem(uint32_t type, const uint8_t *p) {
    int64_t v;
    qc_gguf_kv one = { .elem_type = type, .count = 1, .data = p };
    if (type == QC_GGUF_V_STRING) {
        const char *s;
        uint64_t n;
        const uint8_t *next = qc_gguf_string_at(p, &s, &n);
        print_hex((const uint8_t *)s, n);
        return next;
    }
    if (type == QC_GGUF_V_F32) printf("%08" PRIx32, qc_le32(p));
    else if (type == QC_GGUF_V_F64) printf("%016" PRIx64, qc_le64(p));
    else if (type == QC_GGUF_V_BOOL) printf("%d", p[0] != 0);
    else if (type == QC_GGUF_V_U64) printf("%" PRIu64, qc_le64(p));
    else if (qc_gguf_kv_int(&one, 0, &v)) printf("%" PRId64, v);
    return p + qc_gguf_vtype_size(type);
}

static int do_list(const char *path) {
    qc_gguf_file f;
    qc_err e = { "" };
    if (qc_gguf_file_open(&f, path, &e)) return fprintf(stderr, "gguf_tool: %s\n", e.msg), 1;
    printf("header version %u\nheader tensor_count %" PRId64 "\nheader kv_count %" PRId64 "\nheader data_offset %zu\n",
           f.version, f.n_tensors, f.n_kv, f.data_start);
    for (int64_t i = 0; i < f.n_kv; i++) {
        const qc_gguf_kv *kv = &f.kv[i];
        printf("kv %.*s ", kv->key_len, kv->key);
        if (kv->type == QC_GGUF_V_ARRAY) printf("9/%u[%" PRIu64 "] ", kv->elem_type, kv->count);
        else printf("%u ", kv->type);
        const uint8_t *p = kv->data;
        for (uint64_t k = 0; k < kv->count; k++) {
            if (k) putchar(',');
            p = print_elem(kv->elem_type, p);
        }
        putchar('\n');
    }
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const qc_gguf_tensor *t = &f.tensors[i];
        printf("tensor %.*s %d ", t->name_len, t->name, t->n_dims);
        for (int d = 0; d < t->n_dims; d++) printf("%s%" PRId64, d ? "," : "", t->ne[d]);
        printf(" %u %" PRIu64 "\n", t->type->id, t->offset);
    }
    qc_gguf_file_close(&f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "export") == 0) return do_export(argc, argv);
    if (argc == 3 && strcmp(argv[1], "list") == 0) return do_list(argv[2]);
    fprintf(stderr, "usage: gguf_tool export MODEL TOKENIZER OUT.gguf TYPE [EMBED OUTPUT]\n"
                    "       gguf_tool list FILE.gguf\n");
    return 2;
}
