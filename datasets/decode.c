/* decode.c — ids back to text, as llama2.c run.c's decode() turns each token into bytes.
 *
 * run.c's rules, per token given the token before it:
 *   - after BOS (id 1) a piece starting with ' ' loses that space (sentencepiece strips the
 *     dummy prefix);
 *   - a piece that sscanf matches with "<0x%02hhX>" is the single raw byte it names.
 * The byte test calls sscanf with run.c's own format, so even odd pieces ("<0x4>", "<0x41"
 * without '>') decode as run.c decodes them; only pieces starting "<0x" reach sscanf.
 * Unlike run.c's printf of a C string, a decoded NUL byte is kept (length-counted output),
 * so encode -> decode round-trips text containing NULs. */
#include "datasets/hf_internal.h"

#include <stdlib.h>
#include <string.h>

const char *qc_tokenizer_piece(const qc_tokenizer *t, int32_t prev, int32_t token, char byte[2],
                               size_t *len) {
    if (token < 0 || token >= t->vocab_size) {
        *len = 0;
        return NULL;
    }
    const hf_tok *h = t->hf;
    if (h) {
        const char *d = h->decoded[token];
        *len = (size_t)h->decoded_len[token];
        if (prev == t->bos_id && h->strip_first_space && *len && d[0] == ' ') d++, (*len)--;
        return d;
    }
    const char *p = t->pieces[token];
    size_t n = (size_t)t->piece_len[token];
    if (prev == t->bos_id && p[0] == ' ') {
        p++;
        n--;
    }
    unsigned char value;
    if (p[0] == '<' && p[1] == '0' && p[2] == 'x' && sscanf(p, "<0x%02hhX>", &value) == 1) {
        byte[0] = (char)value;
        byte[1] = '\0';
        *len = 1;
        return byte;
    }
    *len = n;
    return p;
}

qc_status qc_tokenizer_decode(const qc_tokenizer *t, int32_t prev, const int32_t *ids, size_t n,
                              char **text, size_t *len, qc_err *e) {
    *text = NULL;
    *len = 0;
    char byte[2];
    size_t total = 0, k;
    for (size_t i = 0; i < n; i++) {
        if (!qc_tokenizer_piece(t, i ? ids[i - 1] : prev, ids[i], byte, &k))
            return qc_fail(e, QC_ERR_ARG, "%s: token %zu of %zu is id %d, outside the vocabulary "
                           "of %d", t->path, i, n, (int)ids[i], t->vocab_size);
        if (!qc_add_size(total, k, &total))
            return qc_fail(e, QC_ERR_NOMEM, "%s: decoded text size overflows", t->path);
    }
    char *out = qc_malloc(total + 1, 1, e, "decoded text");
    if (!out) return QC_ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = qc_tokenizer_piece(t, i ? ids[i - 1] : prev, ids[i], byte, &k);
        QC_ASSERT(p != NULL); /* every id was checked above */
        memcpy(out + at, p, k);
        at += k;
    }
    out[at] = '\0';
    *text = out;
    *len = at;
    return QC_OK;
}
