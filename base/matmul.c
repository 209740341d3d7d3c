/* matmul.c — qcalib's large matrix products, through oneDNN's matmul primitive (Debian's
 * libdnnl, its 2.x C API). oneDNN picks its kernels for the CPU at run time (AVX2, AVX-512,
 * AVX512-BF16, AMX), whatever OPENBLAS_CORETYPE says, and runs them on the same GNU OpenMP
 * runtime as qcalib's own loops: called inside an OpenMP region it runs on the calling
 * thread alone.
 *
 * Creating a primitive costs far more than running a small one, so each (shape, layout,
 * alpha, beta, compute type, thread count) gets one, kept in a cache for the life of the process (a run
 * uses a few dozen shapes: the forward's, the strips of XᵀX, GPTQ's updates); beyond its
 * size, a product gets a primitive of its own. Executing a primitive is thread-safe; the
 * cache is guarded by a mutex. The thread count is part of the key because oneDNN divides a
 * product's work among the threads it sees when the primitive is made: a primitive made on
 * one thread and run on two ran at one thread's speed (bench_scaling, 7B block: 2.01 s and
 * 1.97 s).
 *
 * Compute type bf16: oneDNN's reorders round both operands to bf16 (to nearest even) into the
 * layouts its bf16 kernels want, and the product accumulates in fp32; the output stays fp32. Each call names its compute type:
 * the forward's products take the run's (qc_get_compute), statistics such as XᵀX stay fp32.
 * The converted operands go into buffers of the call's own, or (qc_matmul_kept) into a
 * caller's qc_matmul_scratch kept across a forward's products, which can also hold each
 * weight's conversion for as long as the weights stay as they are (qc_matmul_scratch_hold). */
#include "base/base.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SIZE 256

typedef struct mm_key {
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    bool a_t, b_t;
    qc_compute compute;
    int threads;        /* 1 inside an OpenMP region, else OpenMP's thread count */
} mm_key;

typedef struct mm_entry {
    mm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a, b, c;      /* the matmul's operands */
    /* bf16: the caller's fp32 operands (a_f32, b_f32), reordered into a and b, the layouts
     * oneDNN chose for its bf16 kernels; to_a, to_b NULL for fp32 */
    dnnl_memory_desc_t a_f32, b_f32;
    dnnl_primitive_t to_a, to_b;
    /* bf16 where oneDNN has no bf16 matmul for this CPU (AVX2 and older): the operands are
     * rounded to bf16 values here, packed as fp32, and multiplied by the fp32 kernels, the
     * same arithmetic (bf16 operands, fp32 accumulation), only slower */
    bool emulated;
} mm_entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static mm_entry cache[CACHE_SIZE];
static int cached;
static qc_compute compute = QC_COMPUTE_F32;

void qc_set_compute(qc_compute c) { compute = c; }
qc_compute qc_get_compute(void) { return compute; }

const char *qc_compute_name(qc_compute c) { return c == QC_COMPUTE_BF16 ? "bf16" : "f32"; }

bool qc_compute_parse(const char *name, qc_compute *c) {
    if (strcmp(name, "f32") == 0) *c = QC_COMPUTE_F32;
    else if (strcmp(name, "bf16") == 0) *c = QC_COMPUTE_BF16;
    else return false;
    return true;
}

const char *qc_matmul_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse4.1";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

bool qc_matmul_native_bf16(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

static qc_status dnnl_fail(qc_err *e, dnnl_status_t s, const char *what, const mm_key *k) {
    return qc_fail(e, s == dnnl_out_of_memory ? QC_ERR_NOMEM : QC_ERR_UNSUPPORTED,
                   "oneDNN matmul (%lld x %lld x %lld, %s): %s failed with status %d", (long long)k->m,
                   (long long)k->n, (long long)k->k, qc_compute_name(k->compute), what, (int)s);
}

/* Runs a oneDNN call; on failure sets st (naming the product `key` and `what` failed) and
 * jumps to the function's `done`. */
#define DNNL_TRY(call, what, key)                                                                     \
    do {                                                                                              \
        dnnl_status_t s_ = (call);                                                                    \
        if (s_ != dnnl_success) {                                                                     \
            st = dnnl_fail(e, s_, what, key);                                                         \
            goto done;                                                                                \
        }                                                                                             \
    } while (0)

static void destroy(mm_entry *m) {
    if (m->prim) dnnl_primitive_destroy(m->prim);
    if (m->to_a) dnnl_primitive_destroy(m->to_a);
    if (m->to_b) dnnl_primitive_destroy(m->to_b);
    m->prim = m->to_a = m->to_b = NULL;
}

/* A new primitive for k (and with bf16, the conversions of its operands), into *out, which
 * holds none. Called with the lock held. */
static qc_status create(const mm_key *k, mm_entry *out, qc_err *e) {
    qc_status st = QC_OK;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL, ra = NULL, rb = NULL;
    bool bf16 = k->compute == QC_COMPUTE_BF16;
    dnnl_dims_t da = { k->m, k->k }, db = { k->k, k->n }, dc = { k->m, k->n };
    dnnl_dims_t sc = { k->ldc, 1 }; /* a transposed operand is read through its strides */
    dnnl_dims_t sa = { k->a_t ? 1 : k->lda, k->a_t ? k->lda : 1 }, sb = { k->b_t ? 1 : k->ldb, k->b_t ? k->ldb : 1 };
    dnnl_matmul_desc_t md;
    if (!engine) DNNL_TRY(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine creation", k);
    DNNL_TRY(dnnl_memory_desc_init_by_strides(&out->a_f32, 2, da, dnnl_f32, sa), "source layout", k);
    DNNL_TRY(dnnl_memory_desc_init_by_strides(&out->b_f32, 2, db, dnnl_f32, sb), "weights layout", k);
    out->a = out->a_f32, out->b = out->b_f32;
    if (bf16) { /* layouts of oneDNN's choice, known once the primitive is made */
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&out->a, 2, da, dnnl_bf16, dnnl_format_tag_any), "bf16 source layout", k);
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&out->b, 2, db, dnnl_bf16, dnnl_format_tag_any), "bf16 weights layout", k);
    }
    DNNL_TRY(dnnl_memory_desc_init_by_strides(&out->c, 2, dc, dnnl_f32, sc), "destination layout", k);
    DNNL_TRY(dnnl_matmul_desc_init(&md, &out->a, &out->b, NULL, &out->c), "descriptor", k);
    DNNL_TRY(dnnl_primitive_attr_create(&attr), "attributes", k);
    if (k->alpha != 1.0f) DNNL_TRY(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha), "output scale", k);
    if (k->beta != 0.0f) {
        DNNL_TRY(dnnl_post_ops_create(&ops), "post-ops", k);
        DNNL_TRY(dnnl_post_ops_append_sum(ops, k->beta), "accumulation", k);
        DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops", k);
    }
    dnnl_status_t made = dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL);
    if (made == dnnl_unimplemented && bf16) { /* emulated: fp32 kernels on packed, rounded copies */
        dnnl_dims_t pa = { k->a_t ? 1 : k->k, k->a_t ? k->m : 1 }, pb = { k->b_t ? 1 : k->n, k->b_t ? k->k : 1 };
        bf16 = false, out->emulated = true;
        DNNL_TRY(dnnl_memory_desc_init_by_strides(&out->a, 2, da, dnnl_f32, pa), "source layout", k);
        DNNL_TRY(dnnl_memory_desc_init_by_strides(&out->b, 2, db, dnnl_f32, pb), "weights layout", k);
        DNNL_TRY(dnnl_matmul_desc_init(&md, &out->a, &out->b, NULL, &out->c), "descriptor", k);
        made = dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL);
    }
    DNNL_TRY(made, "primitive descriptor", k);
    DNNL_TRY(dnnl_primitive_create(&out->prim, pd), "primitive creation", k);
    out->to_a = out->to_b = NULL;
    if (bf16) {
        out->a = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        out->b = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        DNNL_TRY(dnnl_reorder_primitive_desc_create(&ra, &out->a_f32, engine, &out->a, engine, NULL), "bf16 source conversion", k);
        DNNL_TRY(dnnl_primitive_create(&out->to_a, ra), "bf16 source conversion", k);
        DNNL_TRY(dnnl_reorder_primitive_desc_create(&rb, &out->b_f32, engine, &out->b, engine, NULL), "bf16 weights conversion", k);
        DNNL_TRY(dnnl_primitive_create(&out->to_b, rb), "bf16 weights conversion", k);
    }
    out->key = *k;
done:
    if (st) destroy(out);
    if (ra) dnnl_primitive_desc_destroy(ra);
    if (rb) dnnl_primitive_desc_destroy(rb);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st;
}

/* The cached primitive for k (created on first use), into *out; *owned false. With the cache
 * full, a primitive made for this call alone, *owned true: the caller destroys it (cached
 * primitives are never destroyed while the process runs, as other threads may be running
 * them). */
static qc_status lookup(const mm_key *k, mm_entry *out, bool *owned, qc_err *e) {
    pthread_mutex_lock(&lock);
    qc_status st = QC_OK;
    int i = 0;
    while (i < cached && memcmp(&cache[i].key, k, sizeof *k) != 0) i++;
    *owned = i == CACHE_SIZE;
    if (*owned) {
        memset(out, 0, sizeof *out);
        st = create(k, out, e);
    } else if (i == cached) {
        memset(&cache[i], 0, sizeof cache[i]);
        st = create(k, &cache[i], e);
        if (!st) cached++;
    }
    if (!st && !*owned) *out = cache[i];
    pthread_mutex_unlock(&lock);
    return st;
}

/* rows × cols of x (leading dimension ld) rounded to bf16 values (to nearest even), packed in
 * fp32, into a new buffer (NULL: out of memory). */
static float *rounded_bf16(const float *x, int64_t rows, int64_t cols, int64_t ld) {
    float *y = malloc((size_t)rows * (size_t)cols * sizeof *y);
    if (!y) return NULL;
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && rows * cols > (1 << 16))
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) y[r * cols + c] = qc_bf16_to_f32(qc_f32_to_bf16(x[r * ld + c]));
    return y;
}

/* A weights operand converted while a scratch holds: the caller's fp32 data and view of it,
 * and its bf16 copy in the layout `to`. */
struct qc_matmul_held {
    const void *from;
    dnnl_memory_desc_t from_md, to_md;
    void *buf;
};

static void drop_held(qc_matmul_scratch *s) {
    for (int i = 0; i < s->nheld; i++) free(s->held[i].buf);
    free(s->held);
    s->held = NULL, s->nheld = 0;
}

void qc_matmul_scratch_free(qc_matmul_scratch *s) {
    if (!s) return;
    drop_held(s);
    free(s->p[0]), free(s->p[1]);
    memset(s, 0, sizeof *s);
}

void qc_matmul_scratch_hold(qc_matmul_scratch *s, bool on) {
    drop_held(s);
    if (on) { /* the held copies take the weights buffer's place */
        free(s->p[1]);
        s->p[1] = NULL, s->cap[1] = 0;
    }
    s->holding = on;
}

size_t qc_matmul_operand_bytes(qc_compute ct, int64_t rows, int64_t cols) {
    if (ct != QC_COMPUTE_BF16) return 0;
    return (size_t)((rows + 63) / 64 * 64) * (size_t)((cols + 63) / 64 * 64) * 2;
}

/* Buffer `which` (0 source, 1 weights) of s grown to hold bytes, or with s NULL a new one
 * (the caller frees it); NULL: out of memory. */
static void *operand_buffer(qc_matmul_scratch *s, int which, size_t bytes) {
    if (!s) return malloc(bytes);
    if (s->cap[which] < bytes) {
        free(s->p[which]);
        s->p[which] = malloc(bytes);
        s->cap[which] = s->p[which] ? bytes : 0;
    }
    return s->p[which];
}

/* Runs the reorder r from src (layout from, data p) into buffer `which` of s (see
 * operand_buffer) of layout to, into *out. */
static qc_status convert(dnnl_primitive_t r, const dnnl_memory_desc_t *from, const void *p, const dnnl_memory_desc_t *to,
                         dnnl_stream_t stream, qc_matmul_scratch *s, int which, void **out, const char *what,
                         const mm_key *key, qc_err *e) {
    qc_status st = QC_OK;
    dnnl_memory_t mf = NULL, mt = NULL;
    if (!(*out = operand_buffer(s, which, dnnl_memory_desc_get_size(to))))
        return qc_fail(e, QC_ERR_NOMEM, "out of memory for the bf16 %s of a %lld x %lld x %lld product", what,
                       (long long)key->m, (long long)key->n, (long long)key->k);
    DNNL_TRY(dnnl_memory_create(&mf, from, engine, (void *)p), what, key);
    DNNL_TRY(dnnl_memory_create(&mt, to, engine, *out), what, key);
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, mf }, { DNNL_ARG_TO, mt } };
    DNNL_TRY(dnnl_primitive_execute(r, stream, 2, args), what, key);
done:
    if (mf) dnnl_memory_destroy(mf);
    if (mt) dnnl_memory_destroy(mt);
    return st;
}

/* The held conversion of the weights b for the product ent (the same address, view and bf16
 * layout), or a new one, converted and held; *out its buffer. */
static qc_status convert_held(const mm_entry *ent, const float *b, dnnl_stream_t stream, qc_matmul_scratch *s,
                              void **out, const mm_key *key, qc_err *e) {
    for (int i = 0; i < s->nheld; i++) {
        const struct qc_matmul_held *h = &s->held[i];
        if (h->from == (const void *)b && dnnl_memory_desc_equal(&h->from_md, &ent->b_f32) &&
            dnnl_memory_desc_equal(&h->to_md, &ent->b))
            return *out = h->buf, QC_OK;
    }
    struct qc_matmul_held *grown = realloc(s->held, (size_t)(s->nheld + 1) * sizeof *grown);
    if (!grown)
        return qc_fail(e, QC_ERR_NOMEM, "out of memory for the held bf16 weights of a %lld x %lld x %lld product",
                       (long long)key->m, (long long)key->n, (long long)key->k);
    s->held = grown;
    void *buf = NULL;
    qc_status st = convert(ent->to_b, &ent->b_f32, b, &ent->b, stream, NULL, 1, &buf, "weights", key, e);
    if (st) {
        free(buf);
        return st;
    }
    s->held[s->nheld++] = (struct qc_matmul_held){ b, ent->b_f32, ent->b, buf };
    *out = buf;
    return QC_OK;
}

qc_status qc_matmul(qc_compute ct, bool a_t, bool b_t, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc, qc_err *e) {
    return qc_matmul_kept(ct, a_t, b_t, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, e);
}

qc_status qc_matmul_kept(qc_compute ct, bool a_t, bool b_t, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                         qc_matmul_scratch *s, qc_err *e) {
    if (m == 0 || n == 0) return QC_OK;
    mm_key key;
    memset(&key, 0, sizeof key); /* the cache compares keys bytewise, padding included */
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.alpha = alpha, key.beta = beta, key.a_t = a_t, key.b_t = b_t, key.compute = ct;
    key.threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    mm_entry ent;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL;
    void *ah = NULL, *bh = NULL; /* bf16: the converted operands (owned: this call's own) */
    bool owned_ops = false;
    bool owned = false;
    qc_status st = lookup(&key, &ent, &owned, e);
    if (st) {
        owned = false; /* a failed creation leaves nothing to destroy */
        goto done;
    }
    DNNL_TRY(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags), "stream", &key);
    if (ent.emulated) {
        owned_ops = true;
        ah = a_t ? rounded_bf16(a, k, m, lda) : rounded_bf16(a, m, k, lda);
        bh = b_t ? rounded_bf16(b, n, k, ldb) : rounded_bf16(b, k, n, ldb);
        if (!ah || !bh) {
            st = qc_fail(e, QC_ERR_NOMEM, "out of memory for the bf16 operands of a %lld x %lld x %lld product",
                         (long long)m, (long long)n, (long long)k);
            goto done;
        }
    } else if (ent.to_a) { /* bf16: both operands converted (rounded to nearest even) */
        owned_ops = !s;
        if ((st = convert(ent.to_a, &ent.a_f32, a, &ent.a, stream, s, 0, &ah, "source", &key, e))) goto done;
        st = s && s->holding ? convert_held(&ent, b, stream, s, &bh, &key, e)
                             : convert(ent.to_b, &ent.b_f32, b, &ent.b, stream, s, 1, &bh, "weights", &key, e);
        if (st) goto done;
    }
    DNNL_TRY(dnnl_memory_create(&ma, &ent.a, engine, ah ? ah : (void *)a), "source", &key);
    DNNL_TRY(dnnl_memory_create(&mb, &ent.b, engine, bh ? bh : (void *)b), "weights", &key);
    DNNL_TRY(dnnl_memory_create(&mc, &ent.c, engine, c), "destination", &key);
    dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, ma }, { DNNL_ARG_WEIGHTS, mb }, { DNNL_ARG_DST, mc } };
    DNNL_TRY(dnnl_primitive_execute(ent.prim, stream, 3, args), "execution", &key);
    DNNL_TRY(dnnl_stream_wait(stream), "execution", &key);
done:
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (stream) dnnl_stream_destroy(stream);
    if (owned) destroy(&ent);
    if (owned_ops) free(ah), free(bh);
    return st;
}

/* Tiles of 64 × 64 keep both sides in cache: row by row, each transposed read of a wide
 * matrix's column would miss. OpenMP threads take whole tile rows. */
void qc_mirror_upper(float *a, int n) {
    const int T = 64;
#pragma omp parallel for schedule(dynamic) if ((int64_t)n * n > (1 << 15))
    for (int ib = 0; ib < n; ib += T)
        for (int jb = 0; jb <= ib; jb += T)
            for (int i = ib; i < ib + T && i < n; i++)
                for (int j = jb; j < jb + T && j < i; j++) a[(size_t)i * n + j] = a[(size_t)j * n + i];
}
