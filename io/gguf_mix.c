/* gguf_mix.c — llama.cpp's K-quant mixes (llama-quantize's Q2_K, Q3_K_S/M/L, Q4_K_S/M,
 * Q5_K_S/M, Q6_K "ftypes") and qcalib's single-type K-quant settings, as one table: one row
 * per mix, its llama_ftype (general.file_type), its default type, and its per-tensor-kind rules
 * for the Llama architecture; plus llama.cpp's shape fallbacks.
 *
 * Why in io/ and not in job/'s format table: a mix is a property of the GGUF format (which
 * ggml type each tensor of a llama.cpp model gets, and the ftype written in the file), next to
 * the types it names (gguf_blocks.c), and it needs nothing of a run; job/'s gguf row asks it
 * for each tensor's type, as any other GGUF writer could.
 *
 * The rules, read from llama.cpp's src/llama-quant.cpp (llama_tensor_get_type_impl and
 * tensor_type_fallback; the local tree at /work/peers/llama.cpp, December 2026), for a dense
 * Llama (no experts: the n_expert rules never apply; no fused attn_qkv tensor):
 *   attn_v       per mix, first matching rule (layer i of n, n_gqa = n_heads / n_kv_heads):
 *                Q2_K: n_gqa >= 4 → Q4_K, else Q3_K;  Q3_K_M: i < 2 → Q5_K, else Q4_K;
 *                Q3_K_L: Q5_K;  Q4_K_S: i < 4 → Q5_K;  Q4_K_M, Q5_K_M: more_bits(i, n) → Q6_K;
 *                then, for a 70B (80 blocks with grouped-query attention, llama.cpp's
 *                LLM_TYPE_70B), Q3_K or Q4_K becomes Q5_K.
 *   ffn_down     Q2_K: Q3_K;  Q3_K_M: i < n/16 → Q5_K, else Q4_K;  Q3_K_L: Q5_K;
 *                Q4_K_S: i < n/8 → Q5_K;  Q4_K_M, Q5_K_M: more_bits(i, n) → Q6_K.
 *   attn_output  Q2_K: Q3_K;  Q3_K_M: Q4_K;  Q3_K_L: Q5_K.
 *   output       Q8_0 when its rows are not whole blocks of the default type, else Q6_K
 *                (Q8_0 stays Q8_0).
 *   token_embd   the default type (qcalib always writes output.weight, so llama-quantize
 *                never sees a tied embedding, whose rule would be output's).
 *   every other linear: the default type.
 *   more_bits(i, n) = i < n/8 || i >= 7n/8 || (i − n/8) % 3 == 2 (integer arithmetic).
 * The single-type rows (q3_k, q4_k, q5_k) are `llama-quantize --pure`: every tensor, output
 * and token_embd too, the one type. Q2_K and Q6_K are both a mix's name and a type's; the
 * names mean the mix, as in llama-quantize (Q6_K's mix gives every tensor Q6_K anyway).
 * Shapes (tensor_type_fallback): a tensor whose rows are not whole blocks of its type falls
 * back to Q4_0 (Q2_K, Q3_K), Q5_0 (Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K), and to F16 when not
 * even that fits; llama.cpp does so in every mix (not with --pure, where it fails). qcalib
 * applies the fallbacks to its single types too, and refuses the F16 case (job/formats.c). */
#include "io/gguf.h"

#include <strings.h>

typedef enum when { WHEN_NONE, WHEN_ALWAYS, WHEN_GQA4, WHEN_FIRST, WHEN_FIRST_FRAC, WHEN_MORE_BITS } when;

typedef struct mix_rule {
    when when;
    int arg;            /* WHEN_FIRST: i < arg; WHEN_FIRST_FRAC: i < n / arg */
    qc_gguf_type type;
} mix_rule;

enum { KIND_ATTN_V, KIND_FFN_DOWN, KIND_ATTN_OUTPUT, KIND_COUNT };

struct qc_gguf_mix {
    const char *name;   /* llama-quantize's spelling */
    int ftype;          /* llama_ftype */
    qc_gguf_type type;  /* the default */
    bool pure;          /* every tensor the default type (--pure): no rule, output included */
    mix_rule rules[KIND_COUNT][2]; /* per tensor kind, the first matching; WHEN_NONE ends */
};

#define ALWAYS(t) { WHEN_ALWAYS, 0, t }
static const struct qc_gguf_mix mixes[] = {
    { "Q2_K", 10, QC_GGUF_Q2_K, false,
      { [KIND_ATTN_V] = { { WHEN_GQA4, 0, QC_GGUF_Q4_K }, ALWAYS(QC_GGUF_Q3_K) },
        [KIND_FFN_DOWN] = { ALWAYS(QC_GGUF_Q3_K) }, [KIND_ATTN_OUTPUT] = { ALWAYS(QC_GGUF_Q3_K) } } },
    { "Q3_K_S", 11, QC_GGUF_Q3_K, false, { { { 0 } } } },
    { "Q3_K_M", 12, QC_GGUF_Q3_K, false,
      { [KIND_ATTN_V] = { { WHEN_FIRST, 2, QC_GGUF_Q5_K }, ALWAYS(QC_GGUF_Q4_K) },
        [KIND_FFN_DOWN] = { { WHEN_FIRST_FRAC, 16, QC_GGUF_Q5_K }, ALWAYS(QC_GGUF_Q4_K) },
        [KIND_ATTN_OUTPUT] = { ALWAYS(QC_GGUF_Q4_K) } } },
    { "Q3_K_L", 13, QC_GGUF_Q3_K, false,
      { [KIND_ATTN_V] = { ALWAYS(QC_GGUF_Q5_K) }, [KIND_FFN_DOWN] = { ALWAYS(QC_GGUF_Q5_K) },
        [KIND_ATTN_OUTPUT] = { ALWAYS(QC_GGUF_Q5_K) } } },
    { "Q4_K_S", 14, QC_GGUF_Q4_K, false,
      { [KIND_ATTN_V] = { { WHEN_FIRST, 4, QC_GGUF_Q5_K } }, [KIND_FFN_DOWN] = { { WHEN_FIRST_FRAC, 8, QC_GGUF_Q5_K } } } },
    { "Q4_K_M", 15, QC_GGUF_Q4_K, false,
      { [KIND_ATTN_V] = { { WHEN_MORE_BITS, 0, QC_GGUF_Q6_K } }, [KIND_FFN_DOWN] = { { WHEN_MORE_BITS, 0, QC_GGUF_Q6_K } } } },
    { "Q5_K_S", 16, QC_GGUF_Q5_K, false, { { { 0 } } } },
    { "Q5_K_M", 17, QC_GGUF_Q5_K, false,
      { [KIND_ATTN_V] = { { WHEN_MORE_BITS, 0, QC_GGUF_Q6_K } }, [KIND_FFN_DOWN] = { { WHEN_MORE_BITS, 0, QC_GGUF_Q6_K } } } },
    { "Q6_K", 18, QC_GGUF_Q6_K, false, { { { 0 } } } },
    /* single types: general.file_type is what `llama-quantize --pure IN OUT Q4_K` writes (its
     * "Q3_K", "Q4_K", "Q5_K" are aliases of the _M mixes) */
    { "Q3_K", 12, QC_GGUF_Q3_K, true, { { { 0 } } } },
    { "Q4_K", 15, QC_GGUF_Q4_K, true, { { { 0 } } } },
    { "Q5_K", 17, QC_GGUF_Q5_K, true, { { { 0 } } } },
};
#undef ALWAYS

const qc_gguf_mix *qc_gguf_mix_find(const char *name) {
    for (size_t i = 0; name && i < sizeof mixes / sizeof mixes[0]; i++)
        if (!strcasecmp(name, mixes[i].name)) return &mixes[i];
    return NULL;
}

const char *qc_gguf_mix_name(const qc_gguf_mix *m) { return m->name; }
int qc_gguf_mix_ftype(const qc_gguf_mix *m) { return m->ftype; }
qc_gguf_type qc_gguf_mix_default(const qc_gguf_mix *m) { return m->type; }

/* llama.cpp's use_more_bits: the first and last eighth of the blocks, and every third between. */
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool holds(const mix_rule *r, const qc_config *c, int i, int n) {
    switch (r->when) {
    case WHEN_ALWAYS: return true;
    case WHEN_GQA4: return c->n_heads / c->n_kv_heads >= 4;
    case WHEN_FIRST: return i < r->arg;
    case WHEN_FIRST_FRAC: return i < n / r->arg;
    case WHEN_MORE_BITS: return more_bits(i, n);
    default: return false;
    }
}

qc_gguf_type qc_gguf_mix_type(const qc_gguf_mix *m, const qc_config *c, qc_weight w, int layer) {
    if (m->pure) return m->type;
    if (w == QC_W_CLASSIFIER) return c->dim % QC_KQ_SUPER != 0 ? QC_GGUF_Q8_0 : QC_GGUF_Q6_K;
    int kind = w == QC_W_V ? KIND_ATTN_V : w == QC_W_DOWN ? KIND_FFN_DOWN : w == QC_W_O ? KIND_ATTN_OUTPUT : -1;
    qc_gguf_type t = m->type;
    for (int k = 0; kind >= 0 && k < 2 && m->rules[kind][k].when != WHEN_NONE; k++)
        if (holds(&m->rules[kind][k], c, layer, c->n_layers)) {
            t = m->rules[kind][k].type;
            break;
        }
    bool is_70b = c->n_layers == 80 && c->n_heads != c->n_kv_heads;
    if (kind == KIND_ATTN_V && is_70b && (t == QC_GGUF_Q3_K || t == QC_GGUF_Q4_K)) t = QC_GGUF_Q5_K;
    return t;
}

int qc_gguf_fallback(qc_gguf_type t, int cols, const char **name) {
    int block = qc_gguf_type_block(t), f = (int)t;
    if (block > 0 && cols % block == 0) {
        *name = qc_gguf_type_name(t);
        return f;
    }
    switch (t) {
    case QC_GGUF_Q2_K:
    case QC_GGUF_Q3_K: f = QC_GGUF_Q4_0; break;
    case QC_GGUF_Q4_K: f = 6; break; /* Q5_0 */
    case QC_GGUF_Q5_K: f = 7; break; /* Q5_1 */
    case QC_GGUF_Q6_K: f = QC_GGUF_Q8_0; break;
    default: return -1;
    }
    *name = qc_gguf_ggml_type_name((uint32_t)f);
    return cols % 32 == 0 ? f : -1; /* every fallback type has blocks of 32 */
}
