/* windows.c — qc_windows: cutting one token stream into fixed-length windows, either
 * consecutively (evaluation) or at random starts drawn exactly as the GPTQ reference's
 * datautils draw calibration samples with CPython's `random` (so a seed picks the same
 * windows here as there). The windows are copies; the stream is only read. A rank of a
 * distributed run keeps its share of them (qc_windows_take_share). */
#include "datasets/datasets.h"

#include <stdlib.h>
#include <string.h>

void qc_windows_free(qc_windows *w) {
    if (!w) return;
    free(w->tokens);
    free(w->source_hash);
    memset(w, 0, sizeof *w);
}

/* Allocates w for nw windows of seqlen tokens. */
static qc_status windows_alloc(qc_windows *w, size_t nw, int seqlen, qc_err *e) {
    size_t count;
    if (nw > INT32_MAX || !qc_mul_size(nw, (size_t)seqlen, &count))
        return qc_fail(e, QC_ERR_NOMEM, "windows: %zu windows of %d tokens is beyond limits", nw,
                       seqlen);
    w->tokens = qc_malloc(count, sizeof *w->tokens, e, "windows");
    if (!w->tokens) return QC_ERR_NOMEM;
    w->n = (int)nw;
    w->seqlen = seqlen;
    return QC_OK;
}

qc_status qc_windows_sequential(const int32_t *ids, size_t n, int seqlen, qc_windows *w, qc_err *e) {
    memset(w, 0, sizeof *w);
    if (seqlen < 1) return qc_fail(e, QC_ERR_ARG, "sequential windows: seqlen %d is not positive", seqlen);
    size_t nw = n / (size_t)seqlen;
    if (nw == 0)
        return qc_fail(e, QC_ERR_ARG, "sequential windows: %zu tokens do not fill one window of %d",
                       n, seqlen);
    qc_status st = windows_alloc(w, nw, seqlen, e);
    if (st) return st;
    memcpy(w->tokens, ids, nw * (size_t)seqlen * sizeof *ids);
    return QC_OK;
}

qc_status qc_windows_random(const int32_t *ids, size_t n, int nsamples, int seqlen, uint64_t seed,
                            qc_windows *w, qc_err *e) {
    memset(w, 0, sizeof *w);
    if (seqlen < 1) return qc_fail(e, QC_ERR_ARG, "random windows: seqlen %d is not positive", seqlen);
    if (nsamples < 1)
        return qc_fail(e, QC_ERR_ARG, "random windows: nsamples %d is not positive", nsamples);
    if (n <= (size_t)seqlen)
        return qc_fail(e, QC_ERR_ARG, "random windows: %zu tokens, need more than seqlen %d", n,
                       seqlen);
    size_t last = n - (size_t)seqlen - 1; /* randint(0, last) is inclusive */
    if (last >= ((size_t)1 << 32))
        return qc_fail(e, QC_ERR_UNSUPPORTED, "random windows: a stream of %zu tokens is beyond "
                       "the 2^32 start positions supported", n);
    qc_status st = windows_alloc(w, (size_t)nsamples, seqlen, e);
    if (st) return st;
    qc_pyrandom r;
    qc_pyrandom_seed(&r, seed);
    for (int s = 0; s < nsamples; s++) {
        size_t i = (size_t)qc_pyrandom_randint(&r, 0, (int64_t)last);
        memcpy(w->tokens + (size_t)s * (size_t)seqlen, ids + i, (size_t)seqlen * sizeof *ids);
    }
    return QC_OK;
}

qc_status qc_windows_check_vocab(const qc_windows *w, int vocab, const char *source, qc_err *e) {
    for (size_t i = 0; i < (size_t)w->n * (size_t)w->seqlen; i++)
        if (w->tokens[i] < 0 || w->tokens[i] >= vocab)
            return qc_fail(e, QC_ERR_ARG, "%s: token id %d (window %zu, position %zu) is outside the model's vocabulary "
                           "(0..%d)", source, w->tokens[i], i / (size_t)w->seqlen, i % (size_t)w->seqlen, vocab - 1);
    return QC_OK;
}

qc_status qc_windows_take_share(qc_windows *w, int rank, int nranks, qc_err *e) {
    int n = w->n;
    if (nranks > n)
        return qc_fail(e, QC_ERR_ARG, "%d ranks but only %d calibration windows (--nsamples): each rank needs at least "
                       "one; run at most %d ranks or calibrate on more windows", nranks, n, n);
    int lo = (int)((int64_t)rank * n / nranks), hi = (int)((int64_t)(rank + 1) * n / nranks);
    memmove(w->tokens, w->tokens + (size_t)lo * w->seqlen, (size_t)(hi - lo) * w->seqlen * sizeof *w->tokens);
    w->first = lo, w->total = n, w->n = hi - lo;
    return QC_OK;
}
