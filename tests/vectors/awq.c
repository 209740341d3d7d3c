/* vectors/awq.c — awq/ against the llm-awq reference's own outputs on stories260K: every AWQ
 * case of the test vectors ($QCALIB_TESTVECTORS, default ../shared/testvectors; README §3
 * there; as many as manifest.json counts), one line per case; then the pieces' own properties.
 *
 * Per case, as the case's mode says: the scale search (gate/up inspected through the whole
 * MLP, down alone) must choose the reference's grid point, with every grid point's loss
 * within loss_bound and the scales within TOL_SCALE; folding the scales must give the
 * reference's RMSNorm weight or up_proj rows (TOL_SCALE). The clip search (down, o) is
 * checked by the loss each range achieves (check_clip): on the reference's own scaled inputs
 * it must choose the reference's ranges, and on this run's it must choose ranges of least
 * loss, differing from the reference's only where the scales' last bits change how a
 * candidate quantizes. The final AWQ-style quantization must give the reference's codes,
 * scales, zero points and dequantized weights wherever the range is the reference's
 * (check_quantized). */
#include "awq/awq.h"
#include "tests/bounds.h"
#include "tests/check.h"
#include "tests/vectors.h"

/* The scales s = mean|x|^p / sqrt(max·min) differ from the reference's by rounding only:
 * torch's fp32 mean over T tokens (a cascade of partial sums, within ~log2(T)·u, u = 2^−24;
 * ours is summed in double), a powf each (torch's vectorised one and libm's, ~1 ulp), the
 * exponent p < 1 scaling the mean's error down, then product, sqrt and division: at most
 * about 2·(log2(T) + 2)·u + 3·u, 2e-6 for T = 8192 (2.3e-7 seen). Everything made from s by
 * one more fp32 operation (W·s, X / s, the folded prev weight, max − min of a group) inherits
 * that plus u; 1e-5 is that bound with room for any calibration set (log2(T) up to 80). */
#define TOL_SCALE 1e-5
/* How far two fp32 evaluations of one grid point's loss, mean((y − y_q)²) over n outputs,
 * may lie apart: each output y, a chain of `chain` reductions, is within γ_chain·ymax of
 * exact in either (bounds.h, relative to the outputs' scale ymax); y_q as well, and further
 * moved by the scales (within TOL_SCALE, on the weight's side and the input's) by
 * 2·TOL_SCALE·ymax. So each difference d = y − y_q moves by at most
 * D = (4·γ_chain + 2·TOL_SCALE)·ymax, d² by 2|d|·D + D², and their mean by
 * 2·D·sqrt(loss) + D² (mean|d| <= sqrt(mean d²)); torch's fp32 mean of n terms adds
 * γ̃_n·loss (ours is summed in double). The grid point those losses decide is compared
 * exactly. */
static double loss_bound(double loss, double ymax, double chain, double n) {
    double d = (4 * fp32_gamma(chain) + 2 * TOL_SCALE) * ymax;
    return 2 * d * sqrt(loss) + d * d + fp32_gamma_prob(n) * loss;
}

/* The largest |y| of the inspected module's output in double: down's x·Wᵀ, or the whole
 * MLP's down(silu(x·gateᵀ)·(x·upᵀ)). */
static double output_max(const qc_config *c, const qc_block *b, bool mlp, const float *x, int ntok) {
    int dim = c->dim, hid = c->hidden_dim, in = mlp ? dim : hid;
    double m = 0, *a = malloc((size_t)hid * sizeof *a);
    for (int t = 0; a && t < ntok; t++) {
        const float *xt = x + (size_t)t * in;
        if (mlp)
            for (int h = 0; h < hid; h++) {
                double g = 0, u = 0;
                for (int i = 0; i < dim; i++) {
                    g += (double)b->w[QC_LIN_GATE][(size_t)h * dim + i] * xt[i];
                    u += (double)b->w[QC_LIN_UP][(size_t)h * dim + i] * xt[i];
                }
                a[h] = g / (1 + exp(-g)) * u;
            }
        else
            for (int h = 0; h < hid; h++) a[h] = xt[h];
        for (int o = 0; o < dim; o++) {
            double y = 0;
            for (int h = 0; h < hid; h++) y += (double)b->w[QC_LIN_DOWN][(size_t)o * hid + h] * a[h];
            m = fmax(m, fabs(y));
        }
    }
    free(a);
    return m;
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1.0); }

/* stories260K's shape (README §1 of the vectors). */
static qc_config stories_config(void) {
    return (qc_config){ .dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4, .head_dim = 8,
                        .vocab_size = 512, .seq_len = 512, .norm_eps = 1e-5f, .rope_theta = 10000.0f };
}

/* The final quantization of fc (AWQ-style, on its scaled and clipped weight) against the
 * reference's codes, scales, zeros and dequantized weight, in the (row, group)s where same[]
 * (NULL: all) says this run clipped as the reference did (the others were quantized from
 * another range; check_clip accounts for them). Returns the share of equal codes.
 *
 * A group clamped at both ends (min = −max) has −min / scale = 7.5 in exact arithmetic: its
 * zero point, 7 or 8, is decided by the last bit of the range, so weights scaled by scales an
 * ulp apart may get either. The two differ only in which end keeps its last level (±7.5 steps
 * round to −8 and 7, or to −7 and 8): there the codes are compared as levels, code − zero,
 * except for the weights at the ends.
 *
 * Bounds: the weights differ from the reference's by the scales' rounding (TOL_SCALE), and so
 * do the quantization scales (max − min and one division inherit it); t = w / scale then
 * moves by at most |t|·(2·TOL_SCALE + 2u), so a code may differ only where t lies that close
 * to a rounding boundary (a half-integer), and where the codes agree the dequantized weights
 * scale·(code − zero) differ by the scale's rounding and one more: |q|·(TOL_SCALE + 2u). */
static double check_quantized(const tv_case *k, const char *fc, const float *w, int rows, int cols,
                              const qc_quant_spec *spec, const bool *same) {
    char n_codes[64], n_sc[64], n_z[64], n_q[64];
    snprintf(n_codes, sizeof n_codes, "%s_codes", fc);
    snprintf(n_sc, sizeof n_sc, "%s_qscales", fc);
    snprintf(n_z, sizeof n_z, "%s_qzeros", fc);
    snprintf(n_q, sizeof n_q, "%s_q", fc);
    size_t nc = 0, ns = 0, nz = 0, nq = 0;
    uint8_t *codes = tv_array(k, n_codes, "u8", &nc);
    float *sc = tv_array(k, n_sc, "f32", &ns), *z = tv_array(k, n_z, "f32", &nz), *q = tv_array(k, n_q, "f32", &nq);
    int ng = qc_quant_ngroups(spec, cols), gs = spec->groupsize > 0 ? spec->groupsize : cols;
    qc_qweight r = { 0 };
    qc_err e = { "" };
    double share = 0.0;
    if (codes && sc && z && q && nc == (size_t)rows * cols && nq == nc && ns == (size_t)rows * ng && nz == ns) {
        CHECK_OK(qc_quant_rtn(w, rows, cols, spec, &r, &e), e);
        float *dq = malloc(nq * sizeof(float));
        if (r.codes) qc_qweight_dequantize(&r, dq);
        size_t n = 0, eq = 0, off_tie = 0, q_off = 0, ngr = 0, zeq = 0, zties = 0;
        double sc_err = 0.0;
        for (size_t rg = 0; rg < ns && r.codes; rg++) {
            if (same && !same[rg]) continue;
            size_t c0 = rg % ng * (size_t)gs, at = rg / ng * cols + c0;
            size_t len = cols - c0 < (size_t)gs ? cols - c0 : (size_t)gs;
            float lo = INFINITY, hi = -INFINITY;
            for (size_t j = at; j < at + len; j++) lo = fminf(lo, w[j]), hi = fmaxf(hi, w[j]);
            bool tie = r.zeros[rg] != z[rg] && lo == -hi && fabsf(r.zeros[rg] - z[rg]) == 1.0f;
            ngr++;
            zeq += r.zeros[rg] == z[rg];
            zties += tie;
            sc_err = fmax(sc_err, rel(r.scales[rg], sc[rg]));
            for (size_t j = at; j < at + len; j++) {
                if (tie && (w[j] == lo || w[j] == hi)) continue;
                n++;
                bool code_eq = tie ? r.codes[j] - r.zeros[rg] == codes[j] - z[rg] : r.codes[j] == codes[j];
                double t = (double)w[j] / r.scales[rg], tb = fabs(t) * (2 * TOL_SCALE + 2 * FP32_U);
                eq += code_eq;
                off_tie += !code_eq && fabs(t - floor(t) - 0.5) > tb;
                q_off += code_eq && fabs((double)dq[j] - q[j]) > fabs(q[j]) * (TOL_SCALE + 2 * FP32_U);
            }
        }
        share = n ? (double)eq / (double)n : 0.0;
        CHECK(n > 0 && off_tie == 0, "%s %s: %zu of %zu codes differ away from a rounding tie (%zu differ in all)", k->dir,
              fc, off_tie, n, n - eq);
        CHECK(sc_err <= TOL_SCALE, "%s %s: quantization scales differ by %.3g relative", k->dir, fc, sc_err);
        CHECK(zeq + zties == ngr, "%s %s: %zu of %zu zero points equal, %zu more a tie at 7.5", k->dir, fc, zeq, ngr,
              zties);
        CHECK(q_off == 0, "%s %s: %zu of %zu dequantized weights with the reference's code differ beyond the scale's "
              "rounding", k->dir, fc, q_off, n);
        if (zties) printf("      %s %s: %zu zero points a tie at 7.5, the other of 7 and 8\n", k->dir, fc, zties);
        free(dq);
    } else {
        CHECK(0, "%s %s: reference quantization arrays with consistent shapes", k->dir, fc);
    }
    qc_qweight_free(&r);
    free(codes), free(sc), free(z), free(q);
    return share;
}

/* The clip search's candidates as the reference defines them (README §3 of the vectors;
 * llm-awq's auto_clip_layer), evaluated here independently of awq/clip.c: for every row and
 * group of w (rows, cols) and every shrink i < max_shrink·n_grid, the range
 * hi = max|w|·fp32(1 − i/n_grid), the group clamped to ±hi and quantized (the library's
 * AWQ-style RTN, itself checked against the reference's codes below), and its loss: the mean
 * over tokens 0, stride, 2·stride... of x (ntok, cols) of (Σ_group x·q − Σ_group x·w)²,
 * summed here in double.
 *
 * bound: how far an fp32 evaluation of that loss (the reference's torch sums, or clip.c's
 * sgemm) can be from it. An n-term dot product summed in any order is within
 * γ_n·Σ|x_j·w_j| of its value, γ_n = n·u / (1 − n·u), u = 2^−24 (Higham, Accuracy and
 * Stability, §3.1); so the difference d of the two partial outputs is off by at most
 * δ = γ_n·(Σ|x·w| + Σ|x·q|) + u·(|d| + that) (the subtraction), d² by 2|d|δ + δ² + u·(|d| + δ)²
 * (the square), and their mean over nt tokens by γ_nt of the sum (a sum of non-negative terms)
 * plus u (the division). Two candidates whose losses are within the sum of their bounds may be
 * ordered either way by fp32 arithmetic. The double sums here add ~2^−53 relative. */
typedef struct clip_eval {
    int rows, ng, gs, ncand;
    double *loss, *bound; /* [i · rows·ng + row·ng + group] */
    float *hi, *zeros;    /* likewise: the range and the quantized group's zero point */
    uint8_t *codes;       /* [i · rows·cols + row·cols + col] */
} clip_eval;

static double gamma_n(double n) { return n * 0x1p-24 / (1.0 - n * 0x1p-24); }

static bool clip_eval_run(clip_eval *ev, const float *w, int rows, int cols, const float *x, int64_t ntok,
                          int stride, int ncand, int n_grid, const qc_quant_spec *spec) {
    const double u = 0x1p-24;
    int ng = qc_quant_ngroups(spec, cols), gs = spec->groupsize > 0 ? spec->groupsize : cols;
    size_t nrg = (size_t)rows * ng, nw = (size_t)rows * cols;
    *ev = (clip_eval){ rows, ng, gs, ncand, calloc(ncand * nrg, sizeof(double)), calloc(ncand * nrg, sizeof(double)),
                       calloc(ncand * nrg, sizeof(float)), calloc(ncand * nrg, sizeof(float)), calloc(ncand * nw, 1) };
    float *wc = malloc(nw * sizeof(float)), *q = malloc(nw * sizeof(float)), *gmax = calloc(nrg, sizeof(float));
    bool ok = ev->loss && ev->bound && ev->hi && ev->zeros && ev->codes && wc && q && gmax;
    for (size_t i = 0; ok && i < nw; i++) {
        size_t rg = i / cols * ng + i % cols / gs;
        gmax[rg] = fmaxf(gmax[rg], fabsf(w[i]));
    }
    int64_t nt = (ntok + stride - 1) / stride;
    for (int c = 0; ok && c < ncand; c++) {
        float f = (float)(1.0 - c / (double)n_grid), *hi = ev->hi + c * nrg;
        for (size_t rg = 0; rg < nrg; rg++) hi[rg] = gmax[rg] * f;
        for (size_t i = 0; i < nw; i++) {
            float m = hi[i / cols * ng + i % cols / gs];
            wc[i] = w[i] < -m ? -m : w[i] > m ? m : w[i];
        }
        qc_qweight qw = { 0 };
        qc_err e = { "" };
        CHECK_OK(qc_quant_rtn(wc, rows, cols, spec, &qw, &e), e);
        if (!(ok = qw.codes != NULL)) break;
        qc_qweight_dequantize(&qw, q);
        memcpy(ev->codes + c * nw, qw.codes, nw);
        memcpy(ev->zeros + c * nrg, qw.zeros, nrg * sizeof(float));
        qc_qweight_free(&qw);
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < ng; g++) {
                int c0 = g * gs, n = cols - c0 < gs ? cols - c0 : gs;
                const float *wr = w + (size_t)r * cols + c0, *qr = q + (size_t)r * cols + c0;
                double sum = 0.0, err = 0.0;
                for (int64_t t = 0; t < ntok; t += stride) {
                    const float *xt = x + (size_t)t * cols + c0;
                    double d = 0.0, mag = 0.0;
                    for (int j = 0; j < n; j++) {
                        d += (double)xt[j] * ((double)qr[j] - (double)wr[j]);
                        mag += fabs((double)xt[j] * wr[j]) + fabs((double)xt[j] * qr[j]);
                    }
                    double dl = gamma_n(n) * mag, dd = dl + u * (fabs(d) + dl);
                    sum += d * d;
                    err += 2 * fabs(d) * dd + dd * dd + u * (fabs(d) + dd) * (fabs(d) + dd);
                }
                size_t at = c * nrg + (size_t)r * ng + g;
                ev->loss[at] = sum / (double)nt;
                ev->bound[at] = err / (double)nt + (gamma_n((double)nt) + u) * (sum + err) / (double)nt;
            }
    }
    free(wc), free(q), free(gmax);
    return ok;
}

static void clip_eval_free(clip_eval *ev) {
    free(ev->loss), free(ev->bound), free(ev->hi), free(ev->zeros), free(ev->codes);
}

/* The candidate whose range is nearest to clip at (row, group) rg. */
static int clip_index(const clip_eval *ev, size_t rg, float clip) {
    size_t nrg = (size_t)ev->rows * ev->ng;
    int best = 0;
    for (int c = 1; c < ev->ncand; c++)
        if (fabsf(ev->hi[c * nrg + rg] - clip) < fabsf(ev->hi[best * nrg + rg] - clip)) best = c;
    return best;
}

/* Whether candidates a and b at rg are within fp32 rounding of each other (bound above). */
static bool clip_tie(const clip_eval *ev, size_t rg, int a, int b) {
    size_t nrg = (size_t)ev->rows * ev->ng;
    return fabs(ev->loss[a * nrg + rg] - ev->loss[b * nrg + rg]) <= ev->bound[a * nrg + rg] + ev->bound[b * nrg + rg];
}

/* How many (row, group)s of clip (rows·ngroups) lose more than another candidate, beyond
 * rounding; -1 if a range is none of the candidates'. */
static int clip_worse(const clip_eval *ev, const float *clip) {
    size_t nrg = (size_t)ev->rows * ev->ng;
    int worse = 0;
    for (size_t rg = 0; rg < nrg; rg++) {
        int a = clip_index(ev, rg, clip[rg]), beaten = 0;
        if (ev->hi[a * nrg + rg] != clip[rg]) return -1;
        for (int c = 0; c < ev->ncand; c++)
            beaten |= ev->loss[a * nrg + rg] > ev->loss[c * nrg + rg] && !clip_tie(ev, rg, a, c);
        worse += beaten;
    }
    return worse;
}

/* Whether candidate c at rg quantizes alike (codes and zero point) in two evaluations. */
static bool clip_alike(const clip_eval *a, const clip_eval *b, int cols, size_t rg, int c) {
    size_t nrg = (size_t)a->rows * a->ng, r = rg / a->ng, c0 = rg % a->ng * (size_t)a->gs;
    size_t n = cols - c0 < (size_t)a->gs ? cols - c0 : (size_t)a->gs, at = c * (size_t)a->rows * cols + r * cols + c0;
    return a->zeros[c * nrg + rg] == b->zeros[c * nrg + rg] && memcmp(a->codes + at, b->codes + at, n) == 0;
}

/* The clip search of fc against the reference's <fc>_clip_max and <fc>_scaled.
 *
 * 1. On the reference's own scaled inputs (w_ref = W·s_ref and x_ref = X / s_ref, the same fp32
 *    operations as the reference's; for clip only, w and x themselves) the search must choose
 *    the reference's range in every row and group — the same value, one fp32 product of the
 *    same operands — unless the two candidates' losses are a tie within fp32 rounding.
 * 2. On this pipeline's inputs (w, x: scaled by the scales this run found, which differ from
 *    the reference's in the last bits) the choice must achieve the least loss of all
 *    candidates, the reference's included, within rounding. Where it is not the reference's
 *    range, either that is such a tie, or one of the two candidates quantizes differently on
 *    the two inputs: a range clamped at both ends has min / scale = −hi / (2·hi / 15) = −7.5
 *    in exact arithmetic, so its zero point round(7.5) is decided by the last bit of hi (see
 *    check_quantized), and with it whether the clamped weights all round half a step down or
 *    all up.
 * Then w is clipped with the pipeline's ranges and compared with <fc>_scaled where the range is
 * the reference's; same[] (rows·ngroups) receives which (row, group)s those are. */
static void check_clip(const tv_case *k, const char *fc, float *w, int rows, int cols, const float *x,
                       const float *w_ref, const float *x_ref, int64_t ntok, const qc_quant_spec *spec, bool *same,
                       int *nsame) {
    char n_clip[64], n_scaled[64];
    snprintf(n_clip, sizeof n_clip, "%s_clip_max", fc);
    snprintf(n_scaled, sizeof n_scaled, "%s_scaled", fc);
    size_t ncl = 0, nsc = 0;
    float *clip_ref = tv_array(k, n_clip, "f32", &ncl), *scaled = tv_array(k, n_scaled, "f32", &nsc);
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(k->options, "clip");
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(opt, "n_grid");
    const cJSON *shrink = cJSON_GetObjectItemCaseSensitive(opt, "max_shrink");
    const cJSON *nsamp = cJSON_GetObjectItemCaseSensitive(opt, "n_sample_token");
    const cJSON *stride = cJSON_GetObjectItemCaseSensitive(opt, "token_stride");
    int ng = qc_quant_ngroups(spec, cols), gs = spec->groupsize > 0 ? spec->groupsize : cols;
    size_t nrg = (size_t)rows * ng;
    float *clip = malloc(nrg * sizeof(float));
    qc_err e = { "" };
    *nsame = 0;
    bool ok = clip_ref && scaled && ncl == nrg && nsc == (size_t)rows * cols && cJSON_IsNumber(grid) &&
              cJSON_IsNumber(shrink) && cJSON_IsNumber(nsamp) && cJSON_IsNumber(stride);
    CHECK(ok, "%s %s: clip arrays with consistent shapes and the clip options", k->dir, fc);
    if (!ok) goto done;
    /* the reference's subsample: every (ntok / n_sample_token)-th token from the first */
    CHECK(stride->valueint == (ntok / nsamp->valueint > 1 ? ntok / nsamp->valueint : 1),
          "%s: token stride %d for %lld tokens", k->dir, stride->valueint, (long long)ntok);
    int ncand = (int)(shrink->valuedouble * grid->valueint);
    clip_eval ev_ref = { 0 }, ev = { 0 };
    ok = clip_eval_run(&ev_ref, w_ref, rows, cols, x_ref, ntok, stride->valueint, ncand, grid->valueint, spec) &&
         clip_eval_run(&ev, w, rows, cols, x, ntok, stride->valueint, ncand, grid->valueint, spec);
    CHECK(ok, "%s %s: clip candidates evaluated", k->dir, fc);
    int ties = 0, bad = 0, worse = 0, unexplained = 0;
    /* 1. the reference's inputs */
    CHECK_OK(qc_awq_search_clip(w_ref, rows, cols, x_ref, ntok, NULL, spec, clip, &e), e);
    for (size_t rg = 0; ok && rg < nrg; rg++) {
        int a = clip_index(&ev_ref, rg, clip[rg]), b = clip_index(&ev_ref, rg, clip_ref[rg]);
        if (a == b)
            bad += clip[rg] != clip_ref[rg];
        else if (clip_tie(&ev_ref, rg, a, b))
            ties++;
        else
            bad++, fprintf(stderr, "  %s %s row %zu group %zu, the reference's scales: range %d chosen, the "
                           "reference's %d: loss %.9g vs %.9g (bounds %.2g, %.2g)\n", k->dir, fc, rg / ng, rg % ng, a, b,
                           ev_ref.loss[a * nrg + rg], ev_ref.loss[b * nrg + rg], ev_ref.bound[a * nrg + rg],
                           ev_ref.bound[b * nrg + rg]);
    }
    CHECK(ok && bad == 0, "%s %s: on the reference's scaled inputs, %d of %zu clip ranges neither the reference's "
          "nor a rounding tie", k->dir, fc, bad, nrg);
    /* 2. this pipeline's inputs */
    CHECK_OK(qc_awq_search_clip(w, rows, cols, x, ntok, NULL, spec, clip, &e), e);
    worse = ok ? clip_worse(&ev, clip) : 0;
    for (size_t rg = 0; ok && rg < nrg; rg++) {
        int a = clip_index(&ev, rg, clip[rg]), b = clip_index(&ev_ref, rg, clip_ref[rg]);
        same[rg] = a == b;
        *nsame += same[rg];
        if (a == b) continue;
        bool flip = !clip_alike(&ev, &ev_ref, cols, rg, a) || !clip_alike(&ev, &ev_ref, cols, rg, b);
        unexplained += !flip && !clip_tie(&ev, rg, a, b);
        printf("      %s %s row %zu group %zu: range %d (loss %.6g; on the reference's inputs %.6g), the "
               "reference's %d (%.6g; on these inputs %.6g)%s\n", k->dir, fc, rg / ng, rg % ng, a, ev.loss[a * nrg + rg],
               ev_ref.loss[a * nrg + rg], b, ev_ref.loss[b * nrg + rg], ev.loss[b * nrg + rg],
               flip ? ", a candidate quantized differently" : ", a rounding tie");
    }
    CHECK(ok && worse == 0, "%s %s: %d clip ranges lose more than another candidate (-1: not a candidate)", k->dir, fc,
          worse);
    CHECK(ok && unexplained == 0, "%s %s: %d clip ranges other than the reference's, with no rounding tie or quantization "
          "difference to explain them", k->dir, fc, unexplained);
    qc_awq_apply_clip(w, rows, cols, spec->groupsize, clip);
    double werr = 0.0;
    for (size_t i = 0; ok && i < nsc; i++)
        if (same[i / cols * ng + i % cols / gs]) werr = fmax(werr, rel(w[i], scaled[i]));
    CHECK(ok && werr <= TOL_SCALE, "%s %s: clipped weights differ by %.3g relative", k->dir, fc, werr);
    if (ties)
        printf("      %s %s: %d clip ranges a rounding tie with the reference's on its own inputs\n", k->dir, fc, ties);
    clip_eval_free(&ev_ref), clip_eval_free(&ev);
done:
    free(clip_ref), free(scaled), free(clip);
}

/* One case: search (unless clip only), fold, clip, quantize; one line. */
static void run_case(const char *name) {
    tv_case k;
    if (!tv_open(&k, name)) return;
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(k.options, "mode");
    const cJSON *bits = cJSON_GetObjectItemCaseSensitive(k.options, "w_bit");
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(k.options, "q_group_size");
    CHECK(cJSON_IsString(mode) && cJSON_IsNumber(bits) && cJSON_IsNumber(gs), "%s: options", name);
    if (!cJSON_IsString(mode) || !cJSON_IsNumber(bits) || !cJSON_IsNumber(gs)) return tv_close(&k);
    bool mlp = strcmp(mode->valuestring, "llama_mlp") == 0, down = strcmp(mode->valuestring, "linear") == 0;
    qc_quant_spec spec = { .bits = bits->valueint, .groupsize = gs->valueint > 0 ? gs->valueint : 0, .awq_range = true };
    qc_config c = stories_config();
    size_t nx = 0;
    float *x = tv_array(&k, "X", "f32", &nx);
    int ntok = tv_dim(&k, "X", 0), width = tv_dim(&k, "X", 1), seqlen = 512, nwin = ntok / seqlen;
    qc_block b = { 0 };
    float *s = calloc((size_t)width, sizeof(float));
    qc_err e = { "" };
    qc_awq_group g = { 0 };
    double loss_err = 0.0, loss_used = 0.0, s_err = 0.0, codes = 1.0;
    int best = -1, want = -1, nsame = 0, nclip = 0;
    float *w_ref = NULL, *x_ref = NULL;
    bool *same = NULL;
    if (!x || nwin * seqlen != ntok) {
        CHECK(0, "%s: X of whole 512-token windows", name);
        goto done;
    }
    if (mlp || down) {
        b.ffn_norm = mlp ? tv_array(&k, "prev_weight", "f32", NULL) : NULL;
        b.w[QC_LIN_UP] = tv_array(&k, mlp ? "up" : "prev_weight", "f32", NULL);
        b.w[QC_LIN_DOWN] = tv_array(&k, "down", "f32", NULL);
        if (mlp) b.w[QC_LIN_GATE] = tv_array(&k, "gate", "f32", NULL);
        float *hist = tv_array(&k, "loss_history", "f32", NULL), *sref = tv_array(&k, "scales", "f32", NULL);
        float *prev_ref = tv_array(&k, "prev_weight_scaled", "f32", NULL);
        want = (int)tv_scalar(&k, "best_ratio_index");
        qc_site site = mlp ? QC_SITE_GATE_UP : QC_SITE_DOWN;
        qc_awq_opts o = { .chunk_windows = 1 };
        qc_workspace *ws = qc_workspace_new(&c, seqlen, seqlen, &e);
        bool ok = ws && hist && sref && prev_ref && b.w[QC_LIN_UP] && b.w[QC_LIN_DOWN] && (!mlp || (b.ffn_norm && b.w[QC_LIN_GATE]));
        CHECK(ok, "%s: inputs loaded", name);
        const qc_quant_spec *specs[QC_LIN_COUNT];
        for (int l = 0; l < QC_LIN_COUNT; l++) specs[l] = &spec;
        if (ok) CHECK_OK(qc_awq_search_scale(&c, &b, 0, site, x, nwin, seqlen, specs, &o, ws, s, &g, &e), e);
        best = g.best;
        CHECK(best == want, "%s: grid point %d chosen, the reference chose %d", name, best, want);
        double ymax = ok ? output_max(&c, &b, mlp, x, ntok) : 0, chain = mlp ? c.dim + c.hidden_dim + 4 : c.hidden_dim + 2;
        for (int r = 0; ok && r < QC_AWQ_GRID; r++) {
            double lb = loss_bound(hist[r], ymax, chain, (double)ntok * c.dim);
            CHECK(fabs(g.loss[r] - hist[r]) <= lb, "%s: grid point %d: loss %.9g, reference %.9g, bound %.3g", name, r,
                  g.loss[r], hist[r], lb);
            loss_err = fmax(loss_err, rel(g.loss[r], hist[r]));
            loss_used = fmax(loss_used, fabs(g.loss[r] - hist[r]) / lb);
        }
        s_err = ok ? tv_max_rel(s, sref, (size_t)width) : 1.0;
        CHECK(s_err <= TOL_SCALE, "%s: scales differ by %.3g relative", name, s_err);
        if (down && ok) { /* the reference's own scaled weight and inputs, for the clip search */
            w_ref = malloc((size_t)c.dim * c.hidden_dim * sizeof(float));
            x_ref = malloc(nx * sizeof(float));
            for (size_t i = 0; i < (size_t)c.dim * c.hidden_dim; i++)
                w_ref[i] = b.w[QC_LIN_DOWN][i] * sref[i % (size_t)width];
            for (size_t i = 0; i < nx; i++) x_ref[i] = x[i] / sref[i % (size_t)width];
        }
        const float *sites[QC_SITE_COUNT] = { 0 };
        sites[site] = s;
        if (ok) qc_block_scale(&c, &b, sites);
        const float *prev = mlp ? b.ffn_norm : b.w[QC_LIN_UP];
        size_t nprev = mlp ? (size_t)c.dim : (size_t)c.hidden_dim * c.dim;
        CHECK(ok && tv_max_rel(prev, prev_ref, nprev) <= TOL_SCALE, "%s: folded prev weight differs by %.3g", name,
              ok ? tv_max_rel(prev, prev_ref, nprev) : -1.0);
        for (size_t i = 0; i < nx; i++) x[i] /= s[i % (size_t)width];
        if (ok && mlp) {
            size_t n = (size_t)c.hidden_dim * c.dim;
            float *gs_ref = tv_array(&k, "gate_scaled", "f32", NULL), *us_ref = tv_array(&k, "up_scaled", "f32", NULL);
            CHECK(gs_ref && us_ref && tv_max_rel(b.w[QC_LIN_GATE], gs_ref, n) <= TOL_SCALE &&
                  tv_max_rel(b.w[QC_LIN_UP], us_ref, n) <= TOL_SCALE, "%s: scaled gate/up", name);
            free(gs_ref), free(us_ref);
            codes = fmin(check_quantized(&k, "gate", b.w[QC_LIN_GATE], c.hidden_dim, c.dim, &spec, NULL),
                         check_quantized(&k, "up", b.w[QC_LIN_UP], c.hidden_dim, c.dim, &spec, NULL));
        } else if (ok) {
            nclip = c.dim * qc_quant_ngroups(&spec, c.hidden_dim);
            same = malloc((size_t)nclip);
            check_clip(&k, "down", b.w[QC_LIN_DOWN], c.dim, c.hidden_dim, x, w_ref, x_ref, ntok, &spec, same, &nsame);
            codes = check_quantized(&k, "down", b.w[QC_LIN_DOWN], c.dim, c.hidden_dim, &spec, same);
        }
        qc_workspace_free(ws);
        free(hist), free(sref), free(prev_ref);
    } else { /* clip only, on o with s = 1 */
        b.w[QC_LIN_O] = tv_array(&k, "o", "f32", NULL);
        if (b.w[QC_LIN_O]) {
            nclip = c.dim * qc_quant_ngroups(&spec, c.dim);
            same = malloc((size_t)nclip);
            check_clip(&k, "o", b.w[QC_LIN_O], c.dim, c.dim, x, b.w[QC_LIN_O], x, ntok, &spec, same, &nsame);
            codes = check_quantized(&k, "o", b.w[QC_LIN_O], c.dim, c.dim, &spec, same);
        }
    }
    printf("    %-24s %-9s tokens %5d  grid point %2d (ref %2d)  loss %.2g (%.2g of its "
           "bound)  scales %.2g  clip ranges as ref %2d/%-2d  codes %.2f%%\n", name, mode->valuestring, ntok, best, want, loss_err, loss_used, s_err, nsame, nclip, 100 * codes);
done:
    qc_block_free(&b);
    free(x), free(s), free(w_ref), free(x_ref), free(same);
    tv_close(&k);
}

static void test_reference_cases(void) {
    int n = tv_run_cases("awq", run_case), want = tv_manifest_count("awq");
    CHECK(n == want, "%d AWQ cases run (manifest.json counts %d)", n, want);
}

/* The clip search with group sizes that do not divide the columns (down_proj's 172 with 32
 * and 64: a short last group of 12 or 44, quantized with its own parameters), on the 8192
 * tokens of the case awq/L3.down_w4_gch: in every group, the short one included, a candidate
 * range of least loss, within rounding, on every 16th token. */
static void test_clip_short_groups(void) {
    tv_case k;
    if (!tv_open(&k, "awq/L3.down_w4_gch")) return;
    size_t nx = 0, nw = 0;
    float *x = tv_array(&k, "X", "f32", &nx), *w = tv_array(&k, "down", "f32", &nw);
    int ntok = tv_dim(&k, "X", 0), cols = tv_dim(&k, "X", 1), rows = tv_dim(&k, "down", 0);
    CHECK(x && w && ntok == 8192 && nw == (size_t)rows * cols && cols % 32 && cols % 64, "inputs");
    for (int gs = 32; x && w && gs <= 64; gs *= 2) {
        qc_quant_spec spec = { .bits = 4, .groupsize = gs, .awq_range = true };
        int ng = qc_quant_ngroups(&spec, cols);
        float *clip = malloc((size_t)rows * ng * sizeof(float));
        qc_err e = { "" };
        clip_eval ev;
        CHECK_OK(qc_awq_search_clip(w, rows, cols, x, ntok, NULL, &spec, clip, &e), e);
        CHECK(clip_eval_run(&ev, w, rows, cols, x, ntok, ntok / 512, 10, 20, &spec), "g%d: candidates evaluated", gs);
        int worse = clip_worse(&ev, clip);
        CHECK(worse == 0, "g%d: %d clip ranges lose more than another candidate (-1: not a candidate)", gs, worse);
        clip_eval_free(&ev);
        free(clip);
    }
    free(x), free(w);
    tv_close(&k);
}

/* A small synthetic block without grouped-query attention, so all four sites can be scaled. */
static qc_config small_config(void) {
    return (qc_config){ .dim = 16, .hidden_dim = 24, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2, .head_dim = 8,
                        .vocab_size = 32, .seq_len = 16, .norm_eps = 1e-5f, .rope_theta = 10000.0f };
}

static float urand(uint64_t *st) { /* in [-1, 1) */
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*st >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

/* A block of random weights; with q, k, v and o biases when c has them. */
static void random_block(const qc_config *c, qc_block *b, uint64_t *st) {
    b->attn_norm = malloc((size_t)c->dim * sizeof(float));
    b->ffn_norm = malloc((size_t)c->dim * sizeof(float));
    for (int j = 0; j < c->dim; j++) b->attn_norm[j] = 1.0f + 0.5f * urand(st), b->ffn_norm[j] = 1.0f + 0.5f * urand(st);
    for (int l = 0; l < QC_LIN_COUNT; l++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight(l), &rows, &cols);
        b->w[l] = malloc((size_t)rows * cols * sizeof(float));
        for (int i = 0; i < rows * cols; i++) b->w[l][i] = 0.3f * urand(st);
        if (qc_linear_bias(l) == QC_W_COUNT || !qc_weight_present(c, qc_linear_bias(l))) continue;
        b->bias[l] = malloc((size_t)rows * sizeof(float));
        for (int i = 0; i < rows; i++) b->bias[l][i] = 0.5f * urand(st);
    }
}

/* Hooks that copy the norm outputs (qkv, gate_up inputs) and, at gate_up, the residual. */
typedef struct probe {
    float *xn[QC_SITE_COUNT];
} probe;

static qc_status on_probe(void *ctx, qc_hook_call *call, qc_err *e) {
    probe *p = ctx;
    if (p->xn[call->site]) memcpy(p->xn[call->site], call->x, (size_t)call->ntok * call->cols * sizeof(float));
    return QC_OK;
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i])), m = fmax(m, fabs((double)b[i]));
    return d / m;
}

/* Folding scales at all four sites leaves the block's function unchanged (with attention
 * biases too: v's bias is divided with v's rows); the sub-block forward is the block's own
 * attention and MLP. */
static void scale_and_subblock(bool biases) {
    qc_config c = small_config();
    c.attn_qkv_bias = c.attn_o_bias = biases;
    uint64_t st = 7;
    qc_block b = { 0 };
    random_block(&c, &b, &st);
    int nwin = 2, seqlen = 16, ntok = nwin * seqlen, dim = c.dim;
    float *x0 = malloc((size_t)ntok * dim * sizeof(float)), *x = malloc((size_t)ntok * dim * sizeof(float));
    float *xs = malloc((size_t)ntok * dim * sizeof(float)), *sub = malloc((size_t)ntok * dim * sizeof(float));
    for (int i = 0; i < ntok * dim; i++) x0[i] = urand(&st);
    qc_err e = { "" };
    qc_workspace *ws = qc_workspace_new(&c, ntok, seqlen, &e);
    probe p = { { 0 } };
    p.xn[QC_SITE_QKV] = malloc((size_t)ntok * dim * sizeof(float));
    p.xn[QC_SITE_GATE_UP] = malloc((size_t)ntok * dim * sizeof(float));
    qc_hooks hooks = { on_probe, &p };
    memcpy(x, x0, (size_t)ntok * dim * sizeof(float));
    CHECK_OK(qc_block_forward(&c, &b, 0, x, nwin, seqlen, &hooks, ws, &e), e);
    /* x = x0 + attention(xn_qkv) + mlp(xn_gate_up), where x0 + attention(...) is the MLP's residual */
    CHECK_OK(qc_subblock_forward(&c, &b, 0, QC_SUB_ATTENTION, p.xn[QC_SITE_QKV], nwin, seqlen, sub, ws, &e), e);
    for (int i = 0; i < ntok * dim; i++) xs[i] = x0[i] + sub[i];
    CHECK_OK(qc_subblock_forward(&c, &b, 0, QC_SUB_MLP, p.xn[QC_SITE_GATE_UP], nwin, seqlen, sub, ws, &e), e);
    for (int i = 0; i < ntok * dim; i++) xs[i] += sub[i];
    CHECK(max_rel_diff(xs, x, (size_t)ntok * dim) == 0.0, "attention + MLP sub-blocks = the block: %.3g",
          max_rel_diff(xs, x, (size_t)ntok * dim));
    float *s[QC_SITE_COUNT];
    for (int k = 0; k < QC_SITE_COUNT; k++) {
        int n = k == QC_SITE_DOWN ? c.hidden_dim : dim;
        s[k] = malloc((size_t)n * sizeof(float));
        for (int j = 0; j < n; j++) s[k][j] = expf(2.0f * urand(&st)); /* 0.14 .. 7.4 */
    }
    qc_block_scale(&c, &b, (const float *const *)s);
    memcpy(xs, x0, (size_t)ntok * dim * sizeof(float));
    CHECK_OK(qc_block_forward(&c, &b, 0, xs, nwin, seqlen, NULL, ws, &e), e);
    /* two fp32 routes through one block (bounds.h, relative to the output's scale), each
     * scaled weight and norm one rounding more, each scaled product so three: 2·gamma + 3u */
    double tol = 2 * fp32_gamma(forward_chain_length(&c, seqlen)) + 3 * FP32_U;
    CHECK(max_rel_diff(xs, x, (size_t)ntok * dim) <= tol, "scaled block = block%s: %.3g, fp32 bound %.3g",
          biases ? " with biases" : "", max_rel_diff(xs, x, (size_t)ntok * dim), tol);
    for (int k = 0; k < QC_SITE_COUNT; k++) free(s[k]);
    qc_workspace_free(ws);
    qc_block_free(&b);
    free(x0), free(x), free(xs), free(sub), free(p.xn[QC_SITE_QKV]), free(p.xn[QC_SITE_GATE_UP]);
}

static void test_scale_and_subblock(void) { scale_and_subblock(false); }
static void test_scale_and_subblock_biases(void) { scale_and_subblock(true); }

/* Grid point 0 is the unscaled candidate; the normalisation makes max·min = 1; channels never
 * active (FFN padding) neither change the others' scales nor get more than 1e-4 of them. */
static void test_candidate_scales(void) {
    float xm[5] = { 0.5f, 2.0f, 0.01f, 1.0f, 0.0f }, s4[4], s5[5], one[4];
    qc_awq_candidate(xm, NULL, 4, 0, false, one);
    CHECK(one[0] == 1 && one[1] == 1 && one[2] == 1 && one[3] == 1, "r = 0: s = 1");
    qc_awq_candidate(xm, NULL, 4, 10, false, s4);
    float mx = 0, mn = 1e9f;
    for (int j = 0; j < 4; j++) mx = fmaxf(mx, s4[j]), mn = fminf(mn, s4[j]);
    /* element by element: a pow, the normalisation's sqrt and a division, a few roundings: 16u */
    CHECK_NEAR(mx * mn, 1.0, 16 * FP32_U);
    CHECK_NEAR(s4[1] / s4[0], 2.0, 16 * FP32_U); /* sqrt(2 / 0.5) */
    qc_awq_candidate(xm, NULL, 5, 10, false, s5);
    CHECK(memcmp(s4, s5, sizeof s4) == 0, "a zero channel leaves the others' scales as they were");
    CHECK(s5[4] < 1e-3f, "the zero channel's scale is the floor: %g", s5[4]);
}

int main(void) {
    RUN(test_reference_cases);
    RUN(test_clip_short_groups);
    RUN(test_scale_and_subblock);
    RUN(test_scale_and_subblock_biases);
    RUN(test_candidate_scales);
    return check_summary();
}
