/* perplexity.c — perplexity over sequential windows (QUANT-SPEC §6), optionally saving this
 * model's log-probabilities or comparing them with saved ones (KL divergence, top-1
 * agreement). Windows are run in chunks of about batch_tokens tokens through the whole
 * model; log-softmax is taken in double so the figures do not depend on summation order. */
#include "eval/internal.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int argmax(const float *v, int n) {
    int best = 0;
    for (int j = 1; j < n; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Statistics gathered while comparing with a base. */
typedef struct kld_acc {
    double *per_token; /* (scored) */
    int64_t n, agree;
    double base_nll;
} kld_acc;

/* KL(base ‖ model) for one prediction; lp is the model's log-softmax row. */
static void compare_row(kld_acc *k, const float *base, const float *lp, int vocab, int32_t target) {
    k->per_token[k->n++] = qc_kl_logprobs(base, lp, vocab);
    k->agree += argmax(base, vocab) == argmax(lp, vocab);
    k->base_nll -= base[target];
}

/* The activation-quantization hook: every site's input, per token. */
static qc_status quantize_input(void *ctx, qc_hook_call *call, qc_err *e) {
    qc_quant_act_per_token(call->x, call->ntok, call->cols, *(const int *)ctx);
    return QC_OK;
}

qc_status qc_eval_perplexity(qc_model *m, const qc_windows *w, const qc_eval_opts *o,
                             qc_eval_result *r, qc_err *e) {
    memset(r, 0, sizeof *r);
    const qc_config *c = &m->cfg;
    int seqlen = w->seqlen, vocab = c->vocab_size;
    if (seqlen < 2) return qc_fail(e, QC_ERR_ARG, "--seqlen %d: windows need at least 2 tokens", seqlen);
    if (seqlen > c->seq_len)
        qc_logf(o->log, QC_LOG_WARN, "seqlen %d is longer than the model's trained context (%d)", seqlen, c->seq_len);
    int batch = o->batch_tokens > 0 ? o->batch_tokens : 2048;
    int per_chunk = batch / seqlen < 1 ? 1 : batch / seqlen;
    if (per_chunk > w->n) per_chunk = w->n;
    size_t chunk_tok = (size_t)per_chunk * seqlen;
    bool need_lp = o->save_logprobs || o->kld_base;

    qc_status st = QC_OK;
    qc_logprobs_writer lw = { 0 };
    qc_logprobs_reader lr = { 0 };
    kld_acc k = { 0 };
    float *logits = NULL, *lp = NULL;
    qc_workspace *ws = qc_workspace_new(c, (int)chunk_tok, seqlen, e);
    if (!ws) return QC_ERR_NOMEM;
    logits = qc_malloc(chunk_tok, (size_t)vocab * sizeof(float), e, "logits");
    if (!logits) { st = QC_ERR_NOMEM; goto done; }
    if (need_lp && !(lp = qc_malloc((size_t)seqlen, (size_t)vocab * sizeof(float), e, "log-probabilities"))) {
        st = QC_ERR_NOMEM;
        goto done;
    }
    if (o->kld_base) {
        if ((st = qc_logprobs_open(&lr, o->kld_base, w, vocab, e))) goto done;
        k.per_token = qc_malloc((size_t)w->n, (size_t)(seqlen - 1) * sizeof(double), e, "KL divergences");
        if (!k.per_token) { st = QC_ERR_NOMEM; goto done; }
    }
    if (o->save_logprobs && (st = qc_logprobs_create(&lw, o->save_logprobs, w, vocab, e))) goto done;

    double t0 = qc_now(), nll = 0.0, lmax = 0.0;
    qc_hooks act = { quantize_input, (void *)&o->act_bits };
    const qc_hooks *saved = m->hooks;
    if (o->act_bits > 0) m->hooks = &act;
    for (int w0 = 0; w0 < w->n && !st; w0 += per_chunk) {
        int nw = w->n - w0 < per_chunk ? w->n - w0 : per_chunk;
        const int32_t *tok = w->tokens + (size_t)w0 * seqlen;
        if ((st = qc_model_forward(m, tok, nw, seqlen, logits, ws, e))) break;
        for (int i = 0; i < nw && !st; i++) {
            const float *base = o->kld_base ? qc_logprobs_window(&lr, w0 + i) : NULL;
            for (int p = 0; p + 1 < seqlen; p++) {
                const float *row = logits + ((size_t)i * seqlen + p) * vocab;
                float *lprow = lp ? lp + (size_t)p * vocab : NULL;
                int32_t target = tok[(size_t)i * seqlen + p + 1];
                double lse = qc_log_softmax(row, vocab, lprow);
                nll += lse - row[target];
                for (int j = 0; j < vocab; j++) lmax = fmax(lmax, fabs(row[j]));
                if (base) compare_row(&k, base + (size_t)p * vocab, lprow, vocab, target);
            }
            if (o->save_logprobs)
                st = qc_out_write(&lw.out, lp, (size_t)(seqlen - 1) * vocab * sizeof(float), e);
        }
        qc_progress(o->log, "eval", w0 + nw, w->n, NULL);
    }
    m->hooks = saved;
    if (st) goto done;
    if (o->save_logprobs && (st = qc_out_commit(&lw.out, e))) goto done;

    r->seqlen = seqlen;
    r->windows = w->n;
    r->scored = (int64_t)w->n * (seqlen - 1);
    r->nll = nll / (double)r->scored;
    r->ppl = exp(r->nll);
    r->max_abs_logit = lmax;
    r->seconds = qc_now() - t0;
    if (o->kld_base) {
        double sum = 0;
        for (int64_t i = 0; i < k.n; i++) sum += k.per_token[i];
        qsort(k.per_token, (size_t)k.n, sizeof(double), cmp_double);
        r->has_kld = true;
        r->kld_mean = sum / (double)k.n;
        r->kld_median = k.per_token[k.n / 2];
        r->kld_p99 = k.per_token[(int64_t)floor(0.99 * (double)(k.n - 1))];
        r->kld_max = k.per_token[k.n - 1];
        r->top1 = (double)k.agree / (double)k.n;
        r->base_ppl = exp(k.base_nll / (double)k.n);
    }
done:
    qc_out_abort(&lw.out);
    qc_logprobs_close(&lr);
    free(k.per_token);
    free(lp);
    free(logits);
    qc_workspace_free(ws);
    return st;
}
