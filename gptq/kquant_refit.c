/* kquant_refit.c — after GPTQ has chosen every code of a K-quant weight, each super-block's
 * stored scales (fp16 d, dmin and the integer sub-block scales and mins) refitted to the
 * ORIGINAL weights under the output error (docs/kquant-gptq.md, "Scale refit").
 *
 * Given the codes, a super-block's decoded values are linear in its sub-blocks' effective
 * scales s_g and mins μ_g: ŵ_j = s_g·u_j + μ_g (u_j = q_j; Q3_K and Q6_K: u_j = q_j − z, no
 * μ). The row's output error E = (w0 − ŵ) H (w0 − ŵ)ᵀ is then a quadratic in θ = (s, μ) of
 * one super-block when the row's other super-blocks are held fixed: E = θᵀAθ − 2bᵀθ + c with
 * A = ΦᵀH_bbΦ and b = Φᵀ(H w0 − H ŵ_others)_b. Super-block by super-block, in column order:
 *
 *   1. θ* = A⁻¹b (LAPACK's Cholesky solver, dposv, in double, with a ridge of 1e-9 of A's
 *      largest diagonal entry for sub-blocks whose codes are all equal);
 *   2. onto the file's grid: d from the largest scale (the largest |scale| mapped to the
 *      most negative integer for the signed types), the integer scales round(s/d) clamped to
 *      their range, dmin and the integer mins likewise; then d (and dmin), the only free
 *      values left, by least squares given the integers, rounded to fp16; twice, the
 *      integers re-rounded against the refitted d;
 *   3. the candidate with the lowest E — the current parameters among them — is kept, so E
 *      never increases, and (w0 − ŵ)·H is updated for the later super-blocks.
 *
 * The rows are independent: each super-block is refitted for all rows in parallel, and
 * the products with H that carry the changes to the later super-blocks are matrix products
 * over all rows (single-threaded BLAS, as GPTQ's lazy updates). The cost is about 5n² per
 * row in BLAS (GPTQ's own updates: 2n²) and 256n per row in the loop building A. h is
 * mirrored in place (GPTQ's scratch) and dead inputs get their original H[i,i] = 0 back. */
#include "gptq/internal.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* At most 2·16 parameters per super-block (Q2_K: 16 sub-blocks with scales and mins). */
#define MAXP 32

/* Solves a x = b (k × k, symmetric positive definite, row-major) in place, b receiving x, by
 * LAPACK's Cholesky solver (a is overwritten by its factor); a ridge eps·max(diag) is added
 * first. false: not positive definite, or a solution that is not finite. */
static bool solve_spd(double *a, double *b, int k) {
    double top = 0.0;
    for (int i = 0; i < k; i++) top = fmax(top, a[i * k + i]);
    if (!(top > 0.0)) return false;
    for (int i = 0; i < k; i++) a[i * k + i] += 1e-9 * top;
    if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', k, 1, a, k, b, 1) != 0) return false;
    for (int i = 0; i < k; i++)
        if (!isfinite(b[i])) return false;
    return true;
}

/* θᵀAθ − 2bᵀθ: the super-block's part of E up to a constant. */
static double objective(const double *a, const double *b, const double *th, int p) {
    double f = 0.0;
    for (int i = 0; i < p; i++) {
        double t = 0.0;
        for (int j = 0; j < p; j++) t += a[i * p + j] * th[j];
        f += th[i] * (t - 2.0 * b[i]);
    }
    return f;
}

static float f16(double v) { return qc_f16_to_f32(qc_f32_to_f16((float)v)); }

/* One point of the stored grid: d, dmin and the integers, and its θ as the decoder forms it. */
typedef struct grid_point {
    float d, dmin;
    int sc[MAXP / 2], m[MAXP / 2];
} grid_point;

/* The type's ranges: integer scales [lo, hi], integer mins [0, mhi] (mhi 0: no mins). */
typedef struct kq_range {
    int lo, hi, mhi;
} kq_range;

static kq_range range_of(int bits) {
    kq_range r;
    qc_kquant_ranges(bits, &r.lo, &r.hi, &r.mhi);
    return r;
}

static int clampi(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* θ of a grid point: scales d·sc (fp32, as the decoder), mins −(dmin·m). */
static void grid_theta(const grid_point *gp, int nsub, bool mins, double *th) {
    for (int g = 0; g < nsub; g++) {
        th[g] = gp->d * (float)gp->sc[g];
        if (mins) th[nsub + g] = -(gp->dmin * (float)gp->m[g]);
    }
}

/* The integers for given d, dmin, nearest to θ*. */
static void grid_round(grid_point *gp, const double *th, int nsub, kq_range rg) {
    for (int g = 0; g < nsub; g++) {
        gp->sc[g] = gp->d != 0.0f ? clampi(lround(th[g] / gp->d), rg.lo, rg.hi) : 0;
        gp->m[g] = rg.mhi && gp->dmin > 0.0f ? clampi(lround(-th[nsub + g] / gp->dmin), 0, rg.mhi) : 0;
    }
}

/* d and dmin by least squares given the integers (θ = T·(d, dmin)), rounded to fp16. false:
 * no usable solution (d must be non-zero and finite, dmin non-negative). */
static bool grid_refit(grid_point *gp, const double *a, const double *b, int nsub, bool mins) {
    const int p = mins ? 2 * nsub : nsub, k = mins ? 2 : 1;
    double t[2][MAXP] = { { 0 } }, a2[4] = { 0 }, b2[2] = { 0 };
    for (int g = 0; g < nsub; g++) {
        t[0][g] = gp->sc[g];
        if (mins) t[1][nsub + g] = -gp->m[g];
    }
    for (int x = 0; x < k; x++) {
        for (int i = 0; i < p; i++) {
            b2[x] += t[x][i] * b[i];
            for (int y = 0; y < k; y++)
                for (int j = 0; j < p; j++) a2[x * k + y] += t[x][i] * a[i * p + j] * t[y][j];
        }
    }
    if (mins && a2[3] == 0.0) { /* every integer min 0: dmin does not matter */
        if (!(a2[0] > 0.0)) return false;
        b2[0] /= a2[0], b2[1] = 0.0;
    } else if (!solve_spd(a2, b2, k)) {
        return false;
    }
    float d = f16(b2[0]), dmin = mins ? f16(b2[1]) : 0.0f;
    if (!(d != 0.0f && isfinite(d) && dmin >= 0.0f && isfinite(dmin))) return false;
    gp->d = d, gp->dmin = dmin;
    return true;
}

/* The best grid point found from θ* (see the file comment), into *best with its objective
 * *fbest if lower than *fbest. */
static void grid_search(const double *th, const double *a, const double *b, int nsub, kq_range rg, grid_point *best,
                        double *fbest) {
    const bool mins = rg.mhi > 0;
    const int p = mins ? 2 * nsub : nsub;
    grid_point gp = { 0 };
    double big = 0.0, mmax = 0.0, cand[MAXP];
    for (int g = 0; g < nsub; g++) {
        if (rg.lo < 0 ? fabs(th[g]) > fabs(big) : th[g] > big) big = th[g];
        if (mins) mmax = fmax(mmax, -th[nsub + g]);
    }
    if (big == 0.0) return;
    gp.d = f16(rg.lo < 0 ? big / rg.lo : big / rg.hi);
    gp.dmin = mins ? f16(mmax / rg.mhi) : 0.0f;
    if (!(gp.d != 0.0f && isfinite(gp.d) && isfinite(gp.dmin))) return;
    for (int round = 0; round < 3; round++) {
        grid_round(&gp, th, nsub, rg);
        grid_theta(&gp, nsub, mins, cand);
        double f = objective(a, b, cand, p);
        if (f < *fbest) *fbest = f, *best = gp;
        if (round < 2 && !grid_refit(&gp, a, b, nsub, mins)) return;
    }
}

/* Row r's super-block sb, given the row's decoded weights wq (updated) and y (QC_KQ_SUPER) =
 * ((w0 − wq)·H + wq_b·H_bb)_b, the error's gradient with this super-block's values removed (w0
 * the row's original weights); delta (QC_KQ_SUPER) receives the change of wq (0 where none).
 * hm is H, both triangles (n × n); he (QC_KQ_SUPER, nsub) the sums of H_bb's rows over each
 * sub-block's columns. */
static void refit_super(const float *hm, const float *he, int n, float *wq, const float *y, qc_qweight *out, int r,
                        int sb, kq_range rg, float *delta) {
    const int gs = out->groupsize, nsub = QC_KQ_SUPER / gs, c0 = sb * QC_KQ_SUPER, ng = out->ngroups;
    const bool mins = out->mins != NULL;
    const int p = mins ? 2 * nsub : nsub;
    const size_t g0 = (size_t)r * ng + (size_t)c0 / gs;
    const uint8_t *q = out->codes + (size_t)r * n + c0;
    float u[QC_KQ_SUPER];
    for (int j = 0; j < QC_KQ_SUPER; j++) u[j] = mins ? (float)q[j] : (float)q[j] - out->zeros[g0 + j / gs];
    /* A = ΦᵀH_bbΦ; b = Φᵀy */
    double a[MAXP * MAXP] = { 0 }, b[MAXP] = { 0 }, th[MAXP], cur[MAXP];
    for (int i = 0; i < QC_KQ_SUPER; i++) {
        const float *hi = hm + (size_t)(c0 + i) * n + c0, *hei = he + (size_t)i * nsub;
        const int g1 = i / gs;
        for (int g2 = 0; g2 < nsub; g2++) {
            float su = 0.0f;
            for (int j = g2 * gs; j < (g2 + 1) * gs; j++) su += hi[j] * u[j];
            a[g1 * p + g2] += (double)u[i] * su;
            if (mins) {
                a[g1 * p + nsub + g2] += (double)u[i] * hei[g2];
                a[(nsub + g1) * p + g2] += su;
                a[(nsub + g1) * p + nsub + g2] += hei[g2];
            }
        }
        b[g1] += u[i] * y[i];
        if (mins) b[nsub + g1] += y[i];
    }
    for (int g = 0; g < nsub; g++) {
        cur[g] = out->scales[g0 + g];
        if (mins) cur[nsub + g] = out->mins[g0 + g];
    }
    double f = objective(a, b, cur, p), fbest = f, ac[MAXP * MAXP];
    memcpy(ac, a, sizeof(double) * (size_t)(p * p));
    memcpy(th, b, sizeof(double) * (size_t)p);
    memset(delta, 0, QC_KQ_SUPER * sizeof *delta);
    if (!solve_spd(ac, th, p)) return;
    grid_point best = { 0 };
    grid_search(th, a, b, nsub, rg, &best, &fbest);
    if (!(fbest < f)) return;
    /* the new stored values, their decoded products, and the change of wq */
    float *st = out->super + ((size_t)r * (n / QC_KQ_SUPER) + sb) * QC_KQ_SB_FLOATS(gs);
    st[0] = best.d, st[1] = best.dmin;
    for (int g = 0; g < nsub; g++) {
        st[2 + g] = (float)best.sc[g], st[2 + nsub + g] = (float)best.m[g];
        out->scales[g0 + g] = best.d * (float)best.sc[g];
        if (mins) {
            out->mins[g0 + g] = -(best.dmin * (float)best.m[g]);
            out->zeros[g0 + g] = out->scales[g0 + g] != 0.0f ? -out->mins[g0 + g] / out->scales[g0 + g] : 0.0f;
        }
    }
    for (int j = 0; j < QC_KQ_SUPER; j++) {
        const size_t g = g0 + j / gs;
        float v = mins ? out->scales[g] * q[j] + out->mins[g] : qc_qvalue(q[j], out->scales[g], out->zeros[g]);
        delta[j] = v - wq[c0 + j];
        wq[c0 + j] = v;
    }
}

void qc_gptq_kquant_refit(const float *w0, float *h, const uint8_t *dead, qc_qweight *out) {
    const int rows = out->rows, n = out->cols, nsb = n / QC_KQ_SUPER;
    const kq_range rg = range_of(out->bits);
    float *wq = malloc((size_t)rows * n * sizeof *wq), *hw = malloc((size_t)rows * n * sizeof *hw);
    float *delta = malloc((size_t)rows * QC_KQ_SUPER * sizeof *delta), *y = malloc((size_t)rows * QC_KQ_SUPER * sizeof *y);
    float he[QC_KQ_SUPER * (QC_KQ_SUPER / 16)];
    if (!wq || !hw || !delta || !y) { /* the refit is an improvement only: without memory, GPTQ's result stands */
        free(wq), free(hw), free(delta), free(y);
        return;
    }
    qc_mirror_upper(h, n);
    for (int i = 0; i < n; i++)
        if (dead[i]) h[(size_t)i * n + i] = 0.0f; /* the original H: a dead input's row and column are 0 */
    qc_qweight_dequantize(out, wq);
    /* hw = (w0 − wq)·H, then after each super-block its change −Δ·H[b, later] for the columns
     * still to come (the earlier ones are not read again) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, n, 1.0f, w0, n, h, n, 0.0f, hw, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, n, -1.0f, wq, n, h, n, 1.0f, hw, n);
    const int gs = out->groupsize, nsub = QC_KQ_SUPER / gs;
    for (int sb = 0; sb < nsb; sb++) {
        const int c0 = sb * QC_KQ_SUPER, c1 = c0 + QC_KQ_SUPER;
        const float *hbb = h + (size_t)c0 * n + c0;
        for (int i = 0; i < QC_KQ_SUPER; i++)
            for (int g = 0; g < nsub; g++) {
                float t = 0.0f;
                for (int j = g * gs; j < (g + 1) * gs; j++) t += hbb[(size_t)i * n + j];
                he[i * nsub + g] = t;
            }
        /* y = hw_b + wq_b·H_bb, for every row */
        for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * QC_KQ_SUPER, hw + (size_t)r * n + c0, QC_KQ_SUPER * sizeof *y);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, QC_KQ_SUPER, QC_KQ_SUPER, 1.0f, wq + c0, n, hbb, n,
                    1.0f, y, QC_KQ_SUPER);
#pragma omp parallel for schedule(dynamic, 16)
        for (int r = 0; r < rows; r++)
            refit_super(h, he, n, wq + (size_t)r * n, y + (size_t)r * QC_KQ_SUPER, out, r, sb, rg,
                        delta + (size_t)r * QC_KQ_SUPER);
        if (c1 < n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n - c1, QC_KQ_SUPER, -1.0f, delta, QC_KQ_SUPER,
                        h + (size_t)c0 * n + c1, n, 1.0f, hw + c1, n);
    }
    free(wq), free(hw), free(delta), free(y);
}
