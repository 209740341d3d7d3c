/* classifier.c — the classifier quantized after the last block (o->classifier), solved from
 * its input's statistics as the runner solves every linear: Σxᵀx of the final RMSNorm's
 * outputs over every calibration window (one more qc_stats, of width dim; with ranks, summed
 * over them and solved by rank 0), then o's method (GPTQ; round-to-nearest for the others)
 * into o->classifier's type.
 *
 * Its input is the residual stream leaving the last block as the runner left it: the
 * quantized model's (each block ran with its solved linears), or the fp32 blocks' with
 * propagate_fp32, so GPTQ compensates what the blocks' quantization left, as it does for each
 * block's linears. A classifier tied to the embedding is read as the embedding's weights, and
 * the result is the classifier alone: the embedding is quantized on its own (embedding.c), and
 * a format storing the classifier (GGUF's output.weight, written even when tied, as
 * llama.cpp's converters do) stores it apart from the embedding, which this does not change. */
#include "calib/internal.h"

#include <stdlib.h>

/* The final norm's outputs of every window of x, added to st. */
static qc_status gather(const qc_model *m, const qc_windows *w, const void *x, const qc_calib_opts *o, qc_stats *st,
                        qc_err *e) {
    int dim = m->cfg.dim, per = qc_calib_chunk_windows(o, w->n, w->seqlen);
    size_t esz = qc_dtype_size(o->act_dtype);
    float *buf = qc_malloc((size_t)per * w->seqlen, (size_t)dim * sizeof(float), e, "the classifier's inputs");
    if (!buf) return QC_ERR_NOMEM;
    qc_status s = QC_OK;
    for (int w0 = 0; w0 < w->n && !s; w0 += per) {
        int ntok = (w->n - w0 < per ? w->n - w0 : per) * w->seqlen;
        size_t t0 = (size_t)w0 * w->seqlen;
        qc_convert_to_f32(o->act_dtype, (const uint8_t *)x + t0 * dim * esz, (size_t)ntok * dim, buf);
        qc_model_final_norm(m, buf, ntok, buf);
        s = qc_stats_add(st, buf, ntok, "the classifier's input", e);
    }
    free(buf);
    return s;
}

qc_status qc_calib_classifier(const qc_model *m, const qc_windows *w, const void *x, const qc_calib_opts *o,
                              qc_quantized *out, qc_err *e) {
    const qc_config *c = &m->cfg;
    double t0 = qc_now();
    qc_stats st = { 0 };
    float *wt = NULL, *q = NULL;
    qc_gptq_info info = { 0 };
    qc_status s = qc_stats_init(&st, c->dim, e);
    if (!s) s = gather(m, w, x, o, &st, e);
    s = qc_share_stats(o->dist, &st, s, e); /* every rank's windows; rank 0 solves */
    if (!s && qc_dist_rank(o->dist) != 0) {
        qc_stats_free(&st);
        return QC_OK;
    }
    if (!s) qc_stats_finish(&st);
    if (!s) s = qc_weight_load(m->ck, QC_W_CLASSIFIER, 0, &wt, e);
    if (!s && !(q = qc_malloc((size_t)c->vocab_size * c->dim, sizeof(float), e, "the classifier"))) s = QC_ERR_NOMEM;
    if (!s) s = qc_calib_quantize_linear(o, &o->classifier, wt, c->vocab_size, c->dim, &st, q, &out->classifier, &info, e);
    double err = 0, energy = 0;
    if (!s) {
        qc_qweight_dequantize(&out->classifier, q);
        s = qc_quant_output_error_parts(wt, q, c->vocab_size, c->dim, st.xtx, &err, &energy, e);
    }
    out->stats_seconds += st.seconds;
    qc_stats_free(&st);
    free(wt);
    free(q);
    if (s) return qc_fail_prefix(e, s, "the classifier");
    if (info.fallback)
        qc_logf(o->log, QC_LOG_WARN, "the classifier: the Hessian could not be factorized even with damping %.3g; used "
                "round-to-nearest", info.damp);
    qc_logf(o->log, QC_LOG_INFO, "the classifier (%d × %d) quantized by %s on the final norm's outputs: relative output "
            "error %.6g, %.1f s", c->vocab_size, c->dim, qc_method_name(o->method), qc_quant_error_ratio(err, energy),
            qc_now() - t0);
    return QC_OK;
}
