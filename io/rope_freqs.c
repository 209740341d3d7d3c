/* rope_freqs.c — Llama 3's rope_scaling as per-frequency factors: what llama.cpp's converter
 * stores as the rope_freqs.weight tensor (F32, head_dim/2 values) and what qcalib's RoPE divides
 * each frequency by, so that a model read from config.json and one read from a GGUF rotate by
 * the same angles.
 *
 * For frequency i of a head, f_i = theta^(-2i/head_dim), wavelength λ_i = 2π / f_i; with the
 * original context L, factor F and the low/high frequency factors lo < hi:
 *   λ_i < L / hi   → 1                       (short wavelengths kept)
 *   λ_i > L / lo   → F                       (long wavelengths divided by F)
 *   otherwise      → 1 / ((1 − s)/F + s),  s = (L/λ_i − lo) / (hi − lo)
 * the last the reciprocal of transformers' interpolation (1 − s)·f/F + s·f over f. llama.cpp's
 * converter evaluates this in float32 (torch); here it is evaluated in double and rounded once
 * to float. */
#include "io/internal.h"

#include <math.h>

qc_status qc_config_set_llama3_rope(qc_config *c, const char *source, qc_err *e) {
    QC_ASSERT(c->rope_factor > 0 && c->head_dim > 0);
    int n = c->head_dim / 2;
    if (n > QC_MAX_ROPE_FREQS)
        return qc_fail(e, QC_ERR_UNSUPPORTED, "%s: rope_scaling with head_dim %d is not supported (at most %d)", source,
                       c->head_dim, 2 * QC_MAX_ROPE_FREQS);
    double L = c->rope_original_ctx, F = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
    for (int i = 0; i < n; i++) {
        double f = pow((double)c->rope_theta, -2.0 * i / c->head_dim), wavelen = 2 * M_PI / f, r;
        if (wavelen < L / hi) r = 1;
        else if (wavelen > L / lo) r = F;
        else {
            double s = (L / wavelen - lo) / (hi - lo);
            r = 1 / ((1 - s) / F + s);
        }
        c->rope_freqs[i] = (float)r;
    }
    c->rope_nfreqs = n;
    return QC_OK;
}
