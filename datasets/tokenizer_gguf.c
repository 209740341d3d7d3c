/* tokenizer_gguf.c — what a GGUF file's tokenizer.ggml.* keys need to know about a tokenizer
 * beyond its pieces, in llama.cpp's conventions: the family ("gpt2" for byte-level BPE, "llama"
 * for SentencePiece-style vocabularies, llama2.c's included), each token's type, the merges of
 * a byte-level vocabulary, and the name llama.cpp gives its split regex. */
#include "datasets/hf_internal.h"

#include <string.h>

bool qc_tokenizer_byte_level(const qc_tokenizer *t) {
    const hf_tok *h = t->hf;
    return h && h->byte_level;
}

static bool is_byte_piece(const char *s, int len) {
    static const char hex[] = "0123456789ABCDEF";
    return len == 6 && memcmp(s, "<0x", 3) == 0 && s[3] && strchr(hex, s[3]) && s[4] && strchr(hex, s[4]) && s[5] == '>';
}

int qc_tokenizer_token_type(const qc_tokenizer *t, int id) {
    const hf_tok *h = t->hf;
    if (!h) { /* llama2.c: SentencePiece's layout, 0 <unk>, 1 <s>, 2 </s>, then the bytes */
        if (id == 0) return QC_TOKEN_UNKNOWN;
        if (id == t->bos_id || id == t->eos_id) return QC_TOKEN_CONTROL;
        return is_byte_piece(t->pieces[id], t->piece_len[id]) ? QC_TOKEN_BYTE : QC_TOKEN_NORMAL;
    }
    if (id == h->unk_id) return QC_TOKEN_UNKNOWN;
    for (int k = 0; k < h->nadded; k++)
        if (h->added[k].id == id) return h->added[k].special ? QC_TOKEN_CONTROL : QC_TOKEN_USER_DEFINED;
    if (h->byte_fallback && is_byte_piece(t->pieces[id], t->piece_len[id])) return QC_TOKEN_BYTE;
    return h->unused[id] ? QC_TOKEN_UNUSED : QC_TOKEN_NORMAL;
}

int qc_tokenizer_merge_count(const qc_tokenizer *t) {
    const hf_tok *h = t->hf;
    return h ? h->nmerges : 0;
}

void qc_tokenizer_merge(const qc_tokenizer *t, int i, int32_t *left, int32_t *right) {
    const hf_tok *h = t->hf;
    *left = h->merge_list[i][0];
    *right = h->merge_list[i][1];
}

const char *qc_tokenizer_pre_name(const qc_tokenizer *t) {
    const hf_tok *h = t->hf;
    return h ? h->ggml_pre : NULL;
}

int qc_tokenizer_unk_id(const qc_tokenizer *t) {
    const hf_tok *h = t->hf;
    return h ? h->unk_id : 0;
}
