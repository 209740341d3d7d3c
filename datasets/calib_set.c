/* calib_set.c — calibration windows from text sources, drawn as the GPTQ reference's data
 * loaders draw them (datautils.py), with CPython's generator:
 *   one document (a plain text): the text is tokenized once with BOS (when the tokenizer adds
 *     one: t->add_bos, as everywhere here) and each sample is
 *     ids[i : i+seqlen], i = randint(0, n − seqlen − 1)          (its WikiText recipe);
 *   several documents (JSON lines, C4): each sample draws documents with
 *     randint(0, ndocs − 1) until one tokenizes (with BOS) to more than seqlen tokens, then
 *     a window inside it with randint(0, len − seqlen − 1)        (its C4 recipe).
 * The reference accepts a document of exactly seqlen tokens and then fails in
 * randint(0, −1); qcalib requires more, which draws the same windows wherever the
 * reference runs. Several sources share nsamples evenly (the first get the remainder),
 * each drawn with random.seed(seed) as its own reference run would be.
 *
 * Memory. Both recipes depend on the whole source: the plain one draws start positions over
 * the whole token stream, the C4 one document numbers over all documents. Reading less would
 * draw other windows, so the text is not streamed and cut short; it is bounded and counted
 * instead: a source may hold at most max_text bytes of text (from the memory budget: the
 * budget over QC_CALIB_TEXT_MEM) and the memory plan counts QC_CALIB_TEXT_MEM bytes per byte
 * read. Per byte of one source's text (L; its file C <= L but for gzip's 0.03% worst case):
 *   reading (corpus.c): the file 1, the inflated buffer < 4 (capacity max(2L, 4C) + 4096), the
 *     documents 1, their offsets and lengths 1.34, cJSON's tree of one line 32: 39.3;
 *   drawing, plain: the text 1, the encoder's token list 12 and merge heap 16 (encode.c), the
 *     ids 4: 33;
 *   drawing, JSON lines: the text 1, offsets and lengths 1.34, this file's per-document cache
 *     (17 bytes per document of at least 12 bytes) 1.42, the ids of drawn documents 4.34 (one
 *     BOS per document), one document's encoder 28: 36.1;
 *   a tokenizer.json's pipeline (hf_encode.c): measured at 27 bytes per byte of RSS
 *     (TinyStories-656K's tokenizer over TinyStories' text repeated to 16.5 MB).
 * QC_CALIB_TEXT_MEM (48) is the largest, 39.3, with room for the allocator. */
#include "datasets/datasets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Token ids of each document, encoded on first draw. */
typedef struct doc_cache {
    int32_t **ids;
    size_t *n;
    bool *short_doc;
    size_t nshort;
} doc_cache;

static qc_status draw_from_docs(const qc_tokenizer *t, const qc_corpus *c, int nsamples, int seqlen,
                                uint64_t seed, int32_t *out, qc_err *e) {
    doc_cache k = { qc_calloc(c->ndocs, sizeof(int32_t *), e, "documents"), qc_calloc(c->ndocs, sizeof(size_t), e, "documents"),
                    qc_calloc(c->ndocs, sizeof(bool), e, "documents"), 0 };
    qc_status st = k.ids && k.n && k.short_doc ? QC_OK : QC_ERR_NOMEM;
    qc_pyrandom r;
    qc_pyrandom_seed(&r, seed);
    for (int s = 0; s < nsamples && !st; s++) {
        size_t d;
        for (;;) {
            d = (size_t)qc_pyrandom_randint(&r, 0, (int64_t)c->ndocs - 1);
            if (!k.ids[d] && (st = qc_tokenizer_encode(t, c->text + c->doc_off[d], c->doc_len[d], t->add_bos, false,
                                                        &k.ids[d], &k.n[d], e)))
                break;
            if (k.n[d] > (size_t)seqlen) break;
            if (!k.short_doc[d]) k.short_doc[d] = true, k.nshort++;
            if (k.nshort == c->ndocs) {
                st = qc_fail(e, QC_ERR_ARG, "%s: no document has more than %d tokens (use a smaller --seqlen)",
                             c->path, seqlen);
                break;
            }
        }
        if (st) break;
        size_t i = (size_t)qc_pyrandom_randint(&r, 0, (int64_t)(k.n[d] - (size_t)seqlen - 1));
        memcpy(out + (size_t)s * seqlen, k.ids[d] + i, (size_t)seqlen * sizeof(int32_t));
    }
    for (size_t d = 0; k.ids && d < c->ndocs; d++) free(k.ids[d]);
    free(k.ids), free(k.n), free(k.short_doc);
    return st;
}

/* nsamples windows of one source into out; *text_read gets its bytes of text, *hash the
 * file's content hash. */
static qc_status draw_from_source(const qc_tokenizer *t, const char *path, int nsamples, int seqlen, uint64_t seed,
                                  size_t max_text, size_t *text_read, int32_t *out, uint64_t *hash, qc_err *e) {
    qc_corpus c;
    qc_status st = qc_corpus_load_max(&c, path, max_text, e);
    if (st == QC_ERR_NOMEM && max_text < QC_CORPUS_MAX_BYTES) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, "; calibration text may take %d bytes of memory per byte while it is "
                 "read and its windows drawn, so the memory budget bounds each source to %.1f MB of text: a smaller "
                 "--calib file, or a larger --max-memory", QC_CALIB_TEXT_MEM, (double)max_text / (1 << 20));
    }
    if (st) return st;
    *text_read = c.len;
    *hash = c.hash;
    if (c.ndocs > 1) {
        st = draw_from_docs(t, &c, nsamples, seqlen, seed, out, e);
    } else {
        int32_t *ids = NULL;
        size_t n = 0;
        qc_windows w = { 0 };
        st = qc_tokenizer_encode(t, c.text, c.len, t->add_bos, false, &ids, &n, e);
        if (!st) st = qc_windows_random(ids, n, nsamples, seqlen, seed, &w, e);
        if (st) qc_fail_prefix(e, st, "%s", path);
        else memcpy(out, w.tokens, (size_t)nsamples * seqlen * sizeof(int32_t));
        qc_windows_free(&w);
        free(ids);
    }
    qc_corpus_free(&c);
    return st;
}

qc_status qc_windows_draw(const qc_tokenizer *t, const char *const *paths, int npaths, int nsamples, int seqlen,
                         uint64_t seed, qc_windows *w, qc_err *e) {
    size_t text_read;
    return qc_windows_draw_within(t, paths, npaths, nsamples, seqlen, seed, QC_CORPUS_MAX_BYTES, &text_read, w, e);
}

qc_status qc_windows_draw_within(const qc_tokenizer *t, const char *const *paths, int npaths, int nsamples, int seqlen,
                                uint64_t seed, size_t max_text, size_t *text_read, qc_windows *w, qc_err *e) {
    memset(w, 0, sizeof *w);
    *text_read = 0;
    if (npaths < 1) return qc_fail(e, QC_ERR_ARG, "no calibration text given");
    if (nsamples < npaths)
        return qc_fail(e, QC_ERR_ARG, "--nsamples %d is fewer than the %d calibration sources", nsamples, npaths);
    if (seqlen < 1) return qc_fail(e, QC_ERR_ARG, "--seqlen %d is not positive", seqlen);
    w->tokens = qc_malloc((size_t)nsamples * (size_t)seqlen, sizeof(int32_t), e, "calibration windows");
    w->source_hash = qc_calloc((size_t)npaths, sizeof *w->source_hash, e, "calibration sources");
    if (!w->tokens || !w->source_hash) {
        qc_windows_free(w);
        return QC_ERR_NOMEM;
    }
    w->nsources = npaths;
    w->n = nsamples;
    w->seqlen = seqlen;
    qc_status st = QC_OK;
    for (int k = 0, done = 0; k < npaths && !st; k++) {
        int share = nsamples / npaths + (k < nsamples % npaths);
        size_t len = 0;
        st = draw_from_source(t, paths[k], share, seqlen, seed, max_text, &len, w->tokens + (size_t)done * seqlen,
                              &w->source_hash[k], e);
        if (len > *text_read) *text_read = len;
        done += share;
    }
    if (st) qc_windows_free(w);
    return st;
}
