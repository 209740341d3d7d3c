/* logprobs.c — the log-probability file of --save-logits / --kld-base (layout in eval.h):
 * written as windows are evaluated, read back window by window when comparing. */
#include "eval/internal.h"

#include <stdlib.h>
#include <string.h>

#define HEADER_BYTES 24

qc_status qc_logprobs_create(qc_logprobs_writer *lw, const char *path, const qc_windows *w, int vocab,
                             qc_err *e) {
    memset(lw, 0, sizeof *lw);
    qc_status st = qc_out_open(&lw->out, path, e);
    if (st) return st;
    uint8_t h[HEADER_BYTES] = { 0 };
    memcpy(h, QC_LOGPROBS_MAGIC, 8);
    uint32_t v[4] = { (uint32_t)vocab, (uint32_t)w->seqlen, (uint32_t)w->n, 0 };
    memcpy(h + 8, v, sizeof v); /* x86-64 and aarch64 are little endian */
    st = qc_out_write(&lw->out, h, sizeof h, e);
    if (!st) st = qc_out_write(&lw->out, w->tokens, (size_t)w->n * w->seqlen * sizeof(int32_t), e);
    if (st) qc_out_abort(&lw->out);
    return st;
}

qc_status qc_logprobs_open(qc_logprobs_reader *lr, const char *path, const qc_windows *w, int vocab,
                           qc_err *e) {
    memset(lr, 0, sizeof *lr);
    qc_status st = qc_map_open(&lr->map, path, e);
    if (st) return st;
    const uint8_t *p = lr->map.data;
    if (lr->map.size < HEADER_BYTES || memcmp(p, QC_LOGPROBS_MAGIC, 8) != 0) {
        qc_map_close(&lr->map);
        return qc_fail(e, QC_ERR_FORMAT, "%s: not a qcalib log-probability file (made by --save-logits)", path);
    }
    uint32_t fvocab = qc_le32(p + 8), fseq = qc_le32(p + 12), fwin = qc_le32(p + 16);
    if (fvocab != (uint32_t)vocab || fseq != (uint32_t)w->seqlen || fwin != (uint32_t)w->n) {
        qc_map_close(&lr->map);
        return qc_fail(e, QC_ERR_ARG,
                       "%s: saved for vocab %u, %u windows of %u tokens; this run has vocab %d, %d windows of %d "
                       "(use the same text, tokenizer and --seqlen)", path, fvocab, fwin, fseq, vocab, w->n, w->seqlen);
    }
    size_t ntok = (size_t)w->n * w->seqlen, npred = (size_t)w->n * (w->seqlen - 1);
    size_t want = HEADER_BYTES + ntok * 4 + npred * (size_t)vocab * 4;
    if (lr->map.size != want) {
        qc_map_close(&lr->map);
        return qc_fail(e, QC_ERR_FORMAT, "%s: %zu bytes, but its header implies %zu (truncated or corrupt)",
                       path, lr->map.size, want);
    }
    const uint8_t *tok = p + HEADER_BYTES;
    for (size_t i = 0; i < ntok; i++) {
        if ((int32_t)qc_le32(tok + 4 * i) != w->tokens[i]) {
            qc_map_close(&lr->map);
            return qc_fail(e, QC_ERR_ARG, "%s: token %zu differs from this run's (different text or tokenizer)", path, i);
        }
    }
    lr->logprobs = tok + ntok * 4;
    lr->vocab = vocab;
    lr->seqlen = w->seqlen;
    return QC_OK;
}

const float *qc_logprobs_window(const qc_logprobs_reader *lr, int window) {
    size_t per = (size_t)(lr->seqlen - 1) * lr->vocab;
    return (const float *)(lr->logprobs + (size_t)window * per * 4); /* offset 24 + 4k: aligned */
}

void qc_logprobs_close(qc_logprobs_reader *lr) {
    if (lr) qc_map_close(&lr->map);
}
