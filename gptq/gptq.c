/* gptq.c — GPTQ for one linear layer (QUANT-SPEC §3): the IST-DASLab reference's
 * fasterquant step for step, so that its test vectors are reproduced code for code:
 *
 *   1. per-row parameters (no groups) from the whole ORIGINAL W;
 *   2. dead inputs (H[i,i] == 0): H[i,i] = 1, W[:,i] = 0;
 *   3. static groups: every group's parameters from W now, in original column order;
 *   4. act-order: columns by decreasing diag(H), ties lower index first (a stable sort;
 *      torch.argsort is not stable, but orders the reference's vectors the same way);
 *   5. damping percdamp·mean(diag H) on the diagonal;
 *   6. U, the upper Cholesky factor of H⁻¹ (two routes, below);
 *   7. blocks of `blocksize` columns: column i of a block is quantized, err = (w − q)/U[i,i]
 *      and w[:, i+1:block end] −= err·U[i, i+1:block end]; dynamic group parameters come
 *      from the full W, which lacks the in-block corrections of the same block (as in the
 *      reference); after the block, the lazy update W[:, i2:] −= Err·U[i1:i2, i2:];
 *   8. codes back in original column order; g_idx, perm.
 *
 * Two routes to U. Below 1024 columns: the reference's own LAPACK calls on one thread
 * (potrf 'L', potri 'L', potrf 'U': torch's cholesky, cholesky_inverse, cholesky upper),
 * which reproduce its single-threaded run bit for bit in milliseconds. From 1024 columns
 * on: potrf and trtri of the Hessian in reverse order, with OpenBLAS's threads, the same U
 * up to rounding for half the flops (4096 columns: 0.3 s instead of 0.6 s). Bit-exactness
 * is out of reach there in any case: OpenBLAS's threaded potrf and potri round differently
 * from its single-threaded ones, and differently again with another thread count.
 *
 * The column loop. Each row's quantization, in-block updates and lazy updates involve only
 * that row and U, so the rows are cut into chunks (sized by the shape alone) that OpenMP
 * threads take whole, each running every block on its chunk: tiles of 16 rows copied out
 * transposed, (count, 16), so that quantizing a column and updating each later column are
 * runs of 16 floats the compiler vectorizes across rows; then the block's lazy update of
 * the chunk, one single-threaded sgemm. No thread waits for another, and the result does
 * not depend on the thread count. (One threaded sgemm per block over all rows, between
 * OpenMP loops, made the loop 60% slower at 4096×4096: OpenBLAS's threads spin after a
 * call, on the cores the OpenMP loop needs.) Without FMA contraction (ISO C mode), each
 * operation is the reference's fp32 operation.
 *
 * K-quants (a spec with kquant; docs/kquant-gptq.md): groups are the type's sub-blocks, and
 * a super-block of 256 columns gets all its sub-blocks' scales and mins at once, as the file
 * stores them (fp16 d, dmin, integer sub-block scales), by the spec's importance-weighted
 * fitter (llama.cpp's imatrix quantizer) with importances diag(H): dynamically when the
 * column loop reaches the super-block, from the W compensated for every earlier column (the
 * block size dividing 256), or with static groups from the original W before any column.
 * GPTQ then rounds each column against those fixed scales and spreads the error as always.
 * A sub-block whose scale is 0 gets code 0 (or its zero point): every code has its value.
 * After the loop, every super-block's stored scales are refitted to the original W under H
 * given the codes, where that lowers the row's output error (kquant_refit.c).
 *
 * Escalation (qcalib's addition, QUANT-SPEC §3 step 6): a factorization that fails (or a
 * factor whose diagonal is not finite and positive) is retried from the original H with ten
 * times the damping (0.01 if it was 0), at most max_retries times; after that the layer
 * gets round-to-nearest and info->fallback is set. */
#include "gptq/gptq.h"
#include "gptq/internal.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many weights a loop runs on one thread: waking the others costs more. */
#define PAR_MIN_WORK (1 << 15)
/* From this many columns on, U takes the fast route with OpenBLAS's threads (see above). */
#define FAST_MIN_N 1024
/* Rows per tile of the in-block column loop. */
#define TILE 16

qc_gptq_opts qc_gptq_defaults(void) {
    return (qc_gptq_opts){ .percdamp = 0.01f, .blocksize = 128, .act_order = false, .static_groups = false,
                           .max_retries = 4 };
}

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The index of the first non-finite entry of a[0..n), or -1. Chunks of 4096 are tested
 * on the exponent bits (a loop the compiler vectorizes) before any is searched. */
static int64_t find_nonfinite(const float *a, size_t n) {
    for (size_t c0 = 0; c0 < n; c0 += 4096) {
        size_t c1 = c0 + 4096 < n ? c0 + 4096 : n;
        uint32_t bad = 0;
        for (size_t i = c0; i < c1; i++) {
            uint32_t u;
            memcpy(&u, &a[i], 4);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (bad)
            for (size_t i = c0; i < c1; i++)
                if (!isfinite(a[i])) return (int64_t)(i);
    }
    return -1;
}

/* A column and its diag(H) entry, for the act-order sort. */
typedef struct keyed {
    float key;
    int32_t col;
} keyed;

/* Decreasing key, equal keys by increasing column: a total order, so qsort is stable here. */
static int cmp_desc(const void *pa, const void *pb) {
    const keyed *a = pa, *b = pb;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return (a->col > b->col) - (a->col < b->col);
}

/* The working copy a = H[p][:, p] + damp·I of the original h (p: perm, or the identity),
 * or with `reversed` the same matrix in reverse order, a[i][j] = H[p[n-1-i]][p[n-1-j]] +
 * damp·δij. a's upper triangle is filled (all LAPACK reads) and its strict lower one
 * zeroed. Without perm only h's upper triangle is read; with perm, h must be mirrored. */
static void build_hessian(float *a, const float *h, const int32_t *perm, int n, float damp, bool reversed) {
    if (!perm && reversed) {
        /* a[i][j] = H[n-1-j][n-1-i] for j >= i: h's upper triangle transposed and
         * reversed, in tiles of 64 so that reads and writes stay in cache */
        const int T = 64;
#pragma omp parallel for schedule(dynamic) if ((int64_t)n * n > PAR_MIN_WORK)
        for (int ib = 0; ib < n; ib += T) {
            for (int i = ib; i < ib + T && i < n; i++) memset(a + (size_t)i * n, 0, (size_t)i * sizeof(float));
            for (int jb = ib; jb < n; jb += T)
                for (int j = jb; j < jb + T && j < n; j++) {
                    const float *src = h + (size_t)(n - 1 - j) * n + (n - 1);
                    for (int i = ib; i < ib + T && i <= j; i++) a[(size_t)i * n + j] = src[-i];
                }
        }
    } else {
#pragma omp parallel for schedule(static) if ((int64_t)n * n > PAR_MIN_WORK)
        for (int i = 0; i < n; i++) {
            float *dst = a + (size_t)i * n;
            memset(dst, 0, (size_t)i * sizeof(float));
            if (!perm) {
                memcpy(dst + i, h + (size_t)i * n + i, (size_t)(n - i) * sizeof(float));
            } else if (reversed) {
                const float *src = h + (size_t)perm[n - 1 - i] * n;
                for (int j = i; j < n; j++) dst[j] = src[perm[n - 1 - j]];
            } else {
                const float *src = h + (size_t)perm[i] * n;
                for (int j = i; j < n; j++) dst[j] = src[perm[j]];
            }
        }
    }
    for (int i = 0; i < n; i++) a[(size_t)i * n + i] += damp;
}

/* The reference's route, for a (n, n) = H: cholesky (potrf 'L'), cholesky_inverse (potri
 * 'L'), cholesky upper (potrf 'U'), as torch calls them. Row-major a read as column-major is
 * the same symmetric matrix, so LAPACK's lower triangle is our upper one: after potri the
 * inverse is in our upper triangle; mirrored into the lower one, potrf 'U' factors it and
 * leaves U transposed in our lower triangle, U[i][j] = a[j*n + i] (i <= j). */
static bool factor_reference(float *a, int n) {
    if (LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, a, n) != 0) return false;
    if (LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'L', n, a, n) != 0) return false;
    qc_mirror_upper(a, n);
    return LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', n, a, n) == 0;
}

/* The fast route, for a (n, n) = JHJ (J reverses the order): half the flops of the chain.
 * With JHJ = M·Mᵀ (M lower), H = R·Rᵀ for the upper R = JMJ, so H⁻¹ = R⁻ᵀR⁻¹ and the upper
 * Cholesky factor of H⁻¹ is U = R⁻¹ = J·M⁻¹·J. potrf 'L' and trtri 'L' leave M⁻¹ in our
 * upper triangle, a[j*n + i] = M⁻¹[i][j] (i >= j); reversing the whole array then puts
 * U[i][j] = M⁻¹[n-1-i][n-1-j] at a[j*n + i], the reference route's layout. Equal to that
 * route up to rounding. */
static bool factor_fast(float *a, int n) {
    if (LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, a, n) != 0) return false;
    if (LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'L', 'N', n, a, n) != 0) return false;
    const size_t nn = (size_t)n * n;
#pragma omp parallel for schedule(static) if (nn > PAR_MIN_WORK)
    for (size_t k = 0; k < nn / 2; k++) {
        float t = a[k];
        a[k] = a[nn - 1 - k];
        a[nn - 1 - k] = t;
    }
    return true;
}

/* mean(x[p[0..n)]) (p: NULL for the identity) summed as torch 1.13's CPU kernel sums a
 * contiguous fp32 vector with its AVX2 build (vectorized_inner_sum: 8-lane vectors into 4
 * accumulators, leftover vectors into the first, the accumulators added lane-wise, then the
 * scalar tail and the lanes in order; below 1024 elements there is no cascade), then
 * divided by n in fp32. The reference takes mean(diag(H)) after the act-order permutation,
 * so p is the processing order. This decides the last bit of the damping: with it all 141
 * reference vectors are reproduced bit for bit (with a double sum, 139). The reference
 * route only; the fast route, not bit-exact anyway, sums in double. */
static float torch_mean(const float *x, const int32_t *p, int n) {
    enum { LANES = 8, ACC = 4 };
    float acc[ACC][LANES] = { { 0 } }, sum = 0.0f;
    const int nv = n / LANES;
    for (int v = 0; v < nv; v++)
        for (int l = 0; l < LANES; l++) {
            int i = v * LANES + l;
            acc[v < nv / ACC * ACC ? v % ACC : 0][l] += x[p ? p[i] : i];
        }
    for (int k = 1; k < ACC; k++)
        for (int l = 0; l < LANES; l++) acc[0][l] += acc[k][l];
    for (int i = nv * LANES; i < n; i++) sum += x[p ? p[i] : i];
    for (int l = 0; l < LANES; l++) sum += acc[0][l];
    return sum / (float)n;
}

static int fast_route_min = FAST_MIN_N;

int qc_gptq_set_fast_route_min(int cols) {
    int old = fast_route_min;
    fast_route_min = cols;
    return old;
}

/* What the column loop shares. */
typedef struct solver {
    float *w;            /* (rows, n) the weights in processing order, lazily updated */
    int rows, n;
    const qc_quant_spec *s;
    int gs;              /* groupsize, 0: one group per row */
    bool static_groups;
    const int32_t *perm; /* processing order, NULL: identity */
    const float *imp;    /* K-quants: (n) diag(H), the importances the super-blocks' scales are
                            fitted with (original order; K-quants are never permuted dynamically) */
    qc_qweight *out;
    double *row_loss;    /* (rows) */
} solver;

/* A K-quant super-block's parameters for row r, from x (QC_KQ_SUPER values of the row from
 * column c0 on, original order): the spec's fitter weighted by imp, its codes discarded (GPTQ
 * makes its own against the scales). */
static void fit_super(const qc_quant_spec *s, const float *x, const float *imp, qc_qweight *out, int r, int c0) {
    uint8_t codes[QC_KQ_SUPER];
    int nsb = out->cols / QC_KQ_SUPER, b = c0 / QC_KQ_SUPER;
    size_t g = (size_t)r * out->ngroups + (size_t)c0 / (size_t)s->groupsize;
    s->kquant(s->bits, x, imp + c0, codes, &out->scales[g], &out->zeros[g], out->mins ? &out->mins[g] : NULL,
              out->super + ((size_t)r * nsb + b) * QC_KQ_SB_FLOATS(s->groupsize));
}

/* One tile row: the same column of TILE weight rows. Lane-wise IEEE operations, exactly the
 * scalar ones (generic vectors: SSE2 on baseline x86-64, wider where the target has it). */
typedef float vtile __attribute__((vector_size(TILE * sizeof(float))));
typedef int32_t vmask __attribute__((vector_size(TILE * sizeof(float))));
typedef double vloss __attribute__((vector_size(TILE * sizeof(double))));

/* m ? a : b lane by lane (m: all ones or all zeros). A macro: 64-byte vectors passed by
 * value would tie the ABI to the instruction set. */
#define VSELECT(m, a, b) ((vtile)(((vmask)(a) & (m)) | ((vmask)(b) & ~(m))))

/* Columns [i1, i1+count) of rows [r0, r0+nr): x (count) holds them transposed on entry
 * and the errors err = (w − q)/U[i,i] on exit; codes (count) their codes. ub (count,
 * count) is U[i1:, i1:] row-major. */
QC_VECTOR_CLONES
static void solve_tile(const solver *sv, int i1, int count, const float *ub, int r0, int nr, vtile *x, vtile *codes) {
    const int n = sv->n, ng = sv->out->ngroups, gs = sv->gs;
    const vtile zero = { 0 }, big = zero + 0x1p23f, top = zero + (float)qc_quant_maxq(sv->s);
    const vmask signbit = (vmask){ 0 } + INT32_MIN;
    vtile sc = zero + 1.0f, zp = zero, mn = zero;
    float *const mins = sv->out->mins; /* GGUF Q4_1's fp16 m, or NULL */
    vloss loss = { 0 };
    for (int i = 0; i < count; i++) {
        const int k = i1 + i;
        int g = -1; /* the group whose parameters column k uses, when they must be (re)loaded */
        if (!gs) {
            if (i == 0) g = 0;
        } else if (sv->static_groups) {
            g = (sv->perm ? sv->perm[k] : k) / gs;
        } else if (sv->s->kquant && k % gs == 0) {
            g = k / gs;
            /* a super-block's scales from the full W (compensated for every earlier column when
             * the block size divides 256), weighted by diag(H); its groups' then in turn */
            if (k % QC_KQ_SUPER == 0)
                for (int r = 0; r < nr; r++) fit_super(sv->s, sv->w + (size_t)(r0 + r) * n + k, sv->imp, sv->out, r0 + r, k);
        } else if (k % gs == 0) {
            g = k / gs;
            /* from the full W: the lazy updates of earlier blocks, none of this one's */
            for (int r = 0; r < nr; r++)
                qc_quant_find_params(sv->s, sv->w + (size_t)(r0 + r) * n + k, n - k < gs ? n - k : gs, 1,
                                     &sv->out->scales[(size_t)(r0 + r) * ng + g], &sv->out->zeros[(size_t)(r0 + r) * ng + g],
                                     mins ? &mins[(size_t)(r0 + r) * ng + g] : NULL);
        } else if (i == 0) {
            g = k / gs;
        }
        if (g >= 0)
            for (int r = 0; r < nr; r++) {
                sc[r] = sv->out->scales[(size_t)(r0 + r) * ng + g];
                zp[r] = sv->out->zeros[(size_t)(r0 + r) * ng + g];
                if (mins) mn[r] = mins[(size_t)(r0 + r) * ng + g];
            }
        const float d = ub[(size_t)i * count + i], dd = d * d;
        vtile xi = x[i];
        /* qc_quant_code lane by lane: clamp(round_half_even(x / scale) + zero, 0, maxq); with
         * mins, qc_quant_code_min: clamp(round_half_even((x − m) / d), 0, maxq). A K-quant
         * sub-block may have scale 0 (every code then has the same value): code 0, or the
         * zero point, instead of x / 0 */
        vtile v = mins ? (xi - mn) / sc : xi / sc;
        v = VSELECT(sc == zero, zero, v);
        vtile t = (vtile)((vmask)big | ((vmask)v & signbit)); /* copysign(2^23, v) */
        vtile mag = (vtile)((vmask)v & ~signbit);            /* |v| */
        vtile q = VSELECT(mag < big, (v + t) - t, v) + (mins ? zero : zp);
        q = VSELECT(q < zero, zero, q);
        q = VSELECT(q > top, top, q);
        vtile diff = xi - (mins ? sc * q + mn : sc * (q - zp));
        codes[i] = q;
        loss += __builtin_convertvector(diff * diff / dd / 2.0f, vloss); /* the reference's fp32 (w − q)² / d² / 2 */
        xi = diff / d;
        x[i] = xi;
        const float *ui = ub + (size_t)i * count;
        for (int j = i + 1; j < count; j++) x[j] -= xi * ui[j];
    }
    for (int r = 0; r < nr; r++) sv->row_loss[r0 + r] += loss[r];
}

/* The column loop (step 7) for rows [r0, r0+m): every block's columns tile by tile, then
 * the block's lazy update of these rows, one fp32 product on the calling thread (qc_matmul).
 * a holds Uᵀ in its lower triangle; e (m, bs) receives the block's errors; ub (bs, bs) is
 * filled with each block's U[i1:i2, i1:i2] (every chunk makes its own copy). */
static qc_status solve_rows(const solver *sv, const float *a, int bs, int r0, int m, float *e, float *ub, vtile *tile,
                            qc_err *err) {
    const int n = sv->n;
    float *w = sv->w + (size_t)r0 * n;
    for (int i1 = 0; i1 < n; i1 += bs) {
        const int i2 = i1 + bs < n ? i1 + bs : n, count = i2 - i1;
        for (int i = 0; i < count; i++) /* U[i1+i][i1+j] = a[(i1+j)*n + i1+i] */
            for (int j = i; j < count; j++) ub[(size_t)i * count + j] = a[(size_t)(i1 + j) * n + i1 + i];
        vtile *x = tile, *codes = tile + count;
        for (int t0 = 0; t0 < m; t0 += TILE) {
            const int nr = m - t0 < TILE ? m - t0 : TILE;
            for (int j = 0; j < count; j++) x[j] = (vtile){ 0 };
            for (int r = 0; r < nr; r++) {
                const float *wr = w + (size_t)(t0 + r) * n + i1;
                for (int j = 0; j < count; j++) x[j][r] = wr[j];
            }
            solve_tile(sv, i1, count, ub, r0 + t0, nr, x, codes);
            for (int r = 0; r < nr; r++) {
                float *er = e + (size_t)(t0 + r) * count;
                uint8_t *cr = sv->out->codes + (size_t)(r0 + t0 + r) * n + i1;
                for (int j = 0; j < count; j++) er[j] = x[j][r], cr[j] = (uint8_t)codes[j][r];
            }
        }
        qc_status st = i2 < n ? qc_matmul(QC_COMPUTE_F32, false, true, m, n - i2, count, -1.0f, e, count,
                                          a + (size_t)i2 * n + i1, n, 1.0f, w + i2, n, err)
                              : QC_OK;
        if (st) return st;
    }
    return QC_OK;
}

/* Rows per chunk of the column loop, the unit of work of one thread: a multiple of TILE,
 * about an eighth of the rows within [64, 512]. It depends on the shape only, never on the
 * thread count, so neither does the result. 512 rows keep the chunk's sgemm efficient. */
static int chunk_rows(int rows) {
    int c = (rows / 8 + TILE - 1) / TILE * TILE;
    return c < 64 ? 64 : c > 512 ? 512 : c;
}

/* Every row of a (rows, n) of `size`-byte elements rearranged: row[k] = old row[perm[k]]
 * (gather), or row[perm[k]] = old row[k] (scatter); tmp holds n elements per thread. */
static void permute_rows(void *a, size_t size, int rows, int n, const int32_t *perm, bool gather, uint8_t *tmp) {
#pragma omp parallel for schedule(static) if ((int64_t)rows * n > PAR_MIN_WORK)
    for (int r = 0; r < rows; r++) {
        uint8_t *row = (uint8_t *)a + (size_t)r * n * size, *t = tmp + (size_t)thread_num() * n * size;
        memcpy(t, row, (size_t)n * size);
        for (int k = 0; k < n; k++) {
            size_t dst = gather ? (size_t)k : (size_t)perm[k], src = gather ? (size_t)perm[k] : (size_t)k;
            memcpy(row + dst * size, t + src * size, size);
        }
    }
}

qc_status qc_gptq_quantize(float *w, float *h, int rows, int cols, const qc_quant_spec *s,
                           const qc_gptq_opts *o, qc_qweight *out, qc_gptq_info *info, qc_err *e) {
    qc_gptq_info unused;
    if (!info) info = &unused;
    memset(info, 0, sizeof *info);
    memset(out, 0, sizeof *out);
    qc_gptq_opts defaults = qc_gptq_defaults();
    if (!o) o = &defaults;
    qc_status st = qc_quant_spec_check(s, e);
    if (st) return st;
    if (rows <= 0 || cols <= 0) return qc_fail(e, QC_ERR_ARG, "gptq: weight shape (%d, %d): both must be positive", rows, cols);
    if (!(o->percdamp >= 0.0f) || !isfinite(o->percdamp))
        return qc_fail(e, QC_ERR_ARG, "gptq: --percdamp %g: expected a finite value >= 0", (double)o->percdamp);
    if (o->blocksize <= 0) return qc_fail(e, QC_ERR_ARG, "gptq: --blocksize %d: expected a positive number of columns", o->blocksize);
    if (o->max_retries < 0) return qc_fail(e, QC_ERR_ARG, "gptq: max_retries %d: expected >= 0", o->max_retries);
    if (s->kquant && o->act_order && !o->static_groups)
        return qc_fail(e, QC_ERR_ARG, "gptq: K-quant super-blocks are contiguous columns: --act-order needs --static-groups");
    const int n = cols;
    const size_t nw = (size_t)rows * cols, nh = (size_t)n * n;
    int64_t bad = find_nonfinite(w, nw);
    if (bad >= 0)
        return qc_fail(e, QC_ERR_NUMERIC, "gptq: the weight has a non-finite value (%g) at [%lld, %lld]", (double)w[bad],
                       (long long)(bad / cols), (long long)(bad % cols));
    for (int i = 0; i < n; i++) { /* only the upper triangle of h is read */
        bad = find_nonfinite(h + (size_t)i * n + i, (size_t)(n - i));
        if (bad >= 0)
            return qc_fail(e, QC_ERR_NUMERIC, "gptq: the Hessian has a non-finite value (%g) at [%d, %lld]",
                           (double)h[(size_t)i * n + i + bad], i, (long long)(i + bad));
    }
    if (o->act_order) qc_mirror_upper(h, n);

    keyed *diag = qc_malloc((size_t)n, sizeof(keyed), e, "gptq: Hessian diagonal");
    float *dv = diag ? qc_malloc((size_t)n, sizeof(float), e, "gptq: Hessian diagonal") : NULL;
    uint8_t *dead = dv ? qc_calloc((size_t)n, 1, e, "gptq: dead inputs") : NULL;
    int32_t *perm = dead ? qc_malloc((size_t)n, sizeof(int32_t), e, "gptq: column order") : NULL;
    float *a = perm ? qc_malloc(nh, sizeof(float), e, "gptq: Hessian factorization") : NULL;
    if (!a) {
        free(diag), free(dv), free(dead), free(perm);
        return QC_ERR_NOMEM;
    }

    /* Step 2, the Hessian's half; step 4, the order. */
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        float *hii = &h[(size_t)i * n + i];
        if (*hii == 0.0f) *hii = 1.0f, dead[i] = 1, info->dead++;
        diag[i] = (keyed){ *hii, i };
        dv[i] = *hii;
        sum += *hii;
    }
    if (o->act_order) qsort(diag, (size_t)n, sizeof *diag, cmp_desc);
    for (int i = 0; i < n; i++) perm[i] = diag[i].col;
    free(diag);
    const int32_t *pp = o->act_order ? perm : NULL;
    const bool fast = n >= fast_route_min;
    const float mean = fast ? (float)(sum / n) : torch_mean(dv, pp, n);
    /* K-quants: the super-blocks' importances, diag(H) as llama.cpp's imatrix weighs them (its
     * mean x² per input, here Σx²: the fitters do not depend on the scale), 0 for dead inputs */
    float *imp = s->kquant ? dv : NULL;
    for (int i = 0; imp && i < n; i++)
        if (dead[i]) imp[i] = 0.0f;
    if (!imp) free(dv);

    /* Steps 5–6, escalating the damping while a factorization fails. w is untouched so far,
     * which the fallback needs. */
    qc_blas_threads(fast);
    double rel = o->percdamp;
    bool ok = false;
    for (int attempt = 0; attempt <= o->max_retries && !ok; attempt++) {
        if (attempt > 0) rel = rel > 0.0 ? rel * 10.0 : 0.01;
        info->damp = rel, info->retries = attempt;
        build_hessian(a, h, pp, n, (float)rel * mean, fast); /* an fp32 damp, as torch computes it */
        ok = fast ? factor_fast(a, n) : factor_reference(a, n);
        for (int i = 0; ok && i < n; i++) { /* U's diagonal */
            float d = a[(size_t)i * n + i];
            ok = d > 0.0f && isfinite(d);
        }
    }
    qc_blas_threads(false);
    if (!ok) {
        free(dead), free(perm), free(a), free(imp);
        info->fallback = true;
        return qc_quant_rtn(w, rows, cols, s, out, e); /* info->loss stays 0: no U to weigh it */
    }

    st = qc_quant_alloc(out, rows, cols, s, e);
    const int bs = o->blocksize < n ? o->blocksize : n, chunk = chunk_rows(rows), nchunks = (rows + chunk - 1) / chunk;
    /* per thread, each part 64-byte aligned: a tile of weights and one of codes (bs, TILE)
     * each, U's diagonal block (bs, bs), the block's errors (chunk, bs) */
    const size_t ub_size = ((size_t)bs * bs + 15) / 16 * 16, e_size = ((size_t)chunk * bs + 15) / 16 * 16;
    const size_t per_thread = (size_t)bs * TILE * 2 + ub_size + e_size;
    double *row_loss = st ? NULL : qc_calloc((size_t)rows, sizeof(double), e, "gptq: losses");
    float *scratch = NULL;
    if (row_loss && posix_memalign((void **)&scratch, 64, (size_t)max_threads() * per_thread * sizeof(float)) != 0) {
        scratch = NULL;
        qc_fail(e, QC_ERR_NOMEM, "gptq: out of memory for the column loop");
    }
    uint8_t *tmp = scratch ? qc_malloc((size_t)max_threads() * n, sizeof(float), e, "gptq: row buffers") : NULL;
    /* K-quants: the original W, which the scale refit fits the stored scales to */
    float *w0 = tmp && s->kquant ? qc_malloc(nw, sizeof(float), e, "gptq: original weights") : NULL;
    if (!tmp || (s->kquant && !w0)) {
        free(dead), free(perm), free(a), free(imp), free(row_loss), free(scratch), free(tmp);
        qc_qweight_free(out);
        return st ? st : QC_ERR_NOMEM;
    }
    const int gs = s->groupsize > 0 ? s->groupsize : 0, ng = out->ngroups;
    if (w0) memcpy(w0, w, nw * sizeof(float));

    /* Step 1: per-row parameters from the original W, dead columns included. */
    if (!gs) {
#pragma omp parallel for schedule(static) if ((int64_t)nw > PAR_MIN_WORK)
        for (int r = 0; r < rows; r++)
            qc_quant_find_params(s, w + (size_t)r * cols, cols, 1, &out->scales[r], &out->zeros[r],
                                 out->mins ? &out->mins[r] : NULL);
    }
    /* Step 2, the weight's half. */
    if (info->dead) {
#pragma omp parallel for schedule(static) if ((int64_t)nw > PAR_MIN_WORK)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                if (dead[c]) w[(size_t)r * cols + c] = 0.0f;
    }
    /* Step 3: static groups, in original column order (K-quants: each super-block's scales by
     * the weighted fitter, before any column is compensated). */
    if (s->kquant && o->static_groups) {
#pragma omp parallel for schedule(static) if ((int64_t)nw > PAR_MIN_WORK)
        for (int r = 0; r < rows; r++)
            for (int c0 = 0; c0 < cols; c0 += QC_KQ_SUPER) fit_super(s, w + (size_t)r * cols + c0, imp, out, r, c0);
    } else if (gs && o->static_groups) {
#pragma omp parallel for schedule(static) if ((int64_t)nw > PAR_MIN_WORK)
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < ng; g++) {
                int c0 = g * gs, c1 = c0 + gs < cols ? c0 + gs : cols;
                qc_quant_find_params(s, w + (size_t)r * cols + c0, c1 - c0, 1, &out->scales[(size_t)r * ng + g],
                                     &out->zeros[(size_t)r * ng + g], out->mins ? &out->mins[(size_t)r * ng + g] : NULL);
            }
    }
    /* Step 4, the weight's half. */
    if (pp) permute_rows(w, sizeof(float), rows, n, pp, true, tmp);

    /* Step 7. */
    solver sv = { .w = w, .rows = rows, .n = n, .s = s, .gs = gs, .static_groups = o->static_groups, .perm = pp,
                  .imp = imp, .out = out, .row_loss = row_loss };
    qc_status solved = QC_OK;
#pragma omp parallel for schedule(dynamic) if (nchunks > 1)
    for (int c = 0; c < nchunks; c++) {
        const int tn = thread_num(), r0 = c * chunk, m = rows - r0 < chunk ? rows - r0 : chunk;
        float *mine = scratch + (size_t)tn * per_thread, *ub = mine + (size_t)bs * TILE * 2;
        qc_err mine_e;
        qc_status rs = solve_rows(&sv, a, bs, r0, m, ub + ub_size, ub, (vtile *)mine, &mine_e);
        if (rs) {
#pragma omp critical(gptq_solve_error)
            if (!solved) {
                solved = rs;
                if (e) *e = mine_e;
            }
        }
    }
    if (solved) {
        free(dead), free(perm), free(a), free(imp), free(row_loss), free(scratch), free(tmp), free(w0);
        qc_qweight_free(out);
        return solved;
    }

    /* Step 8. */
    if (pp) {
        permute_rows(out->codes, 1, rows, n, pp, false, tmp);
        for (int k = 0; k < n; k++) {
            out->perm[k] = pp[k];
            if (gs && !o->static_groups) out->g_idx[pp[k]] = k / gs;
        }
    }
    for (int r = 0; r < rows; r++) info->loss += row_loss[r];
    /* K-quants: the scales refitted given the codes (info->loss stays GPTQ's own) */
    if (w0) qc_gptq_kquant_refit(w0, h, dead, out);
    free(dead), free(perm), free(a), free(imp), free(row_loss), free(scratch), free(tmp), free(w0);
    return QC_OK;
}
