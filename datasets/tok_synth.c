/* tok_synth.c — a SYNTHETIC llama2.c tokenizer of any vocabulary size, written beside
 * synthetic models so that quantize and eval run on them with real texts. Pieces, in id
 * order: <unk>, <s>, </s> (as llama2.c's exports spell them), the 256 byte tokens <0x00> ..
 * <0xFF> at ids 3..258 (run.c's byte fallback), the 95 printable ASCII characters, then every
 * string of 2, 3 and 4 characters over " abcdefghijklmnopqrstuvwxyz" until the vocabulary is
 * full. Scores fall with the id, so shorter pieces merge first and every longer piece is
 * reachable by merging. It tokenizes English text into a plausible number of tokens; the ids
 * mean nothing. */
#include "datasets/datasets.h"

#include <string.h>

static const char alphabet[] = " abcdefghijklmnopqrstuvwxyz";
#define NALPHA 27

/* Piece `id` into buf (at least 8 bytes); its length. */
static int piece(int id, char *buf) {
    static const char *specials[3] = { "<unk>", "\n<s>\n", "\n</s>\n" };
    if (id < 3) {
        strcpy(buf, specials[id]);
        return (int)strlen(buf);
    }
    if (id < 259) return snprintf(buf, 8, "<0x%02X>", id - 3);
    if (id < 259 + 95) {
        buf[0] = (char)(32 + id - 259);
        return 1;
    }
    int k = id - (259 + 95), len = 2;
    for (int count = NALPHA * NALPHA; k >= count; count *= NALPHA) k -= count, len++;
    for (int i = len - 1; i >= 0; i--, k /= NALPHA) buf[i] = alphabet[k % NALPHA];
    return len;
}

qc_status qc_tokenizer_write_synthetic(const char *path, int vocab_size, qc_err *e) {
    int most = 259 + 95 + NALPHA * NALPHA * (1 + NALPHA * (1 + NALPHA));
    if (vocab_size < 259 + 95 || vocab_size > most)
        return qc_fail(e, QC_ERR_ARG, "%s: a synthetic vocabulary has %d to %d tokens, not %d", path, 259 + 95, most,
                       vocab_size);
    qc_outfile o;
    qc_status st = qc_out_open(&o, path, e);
    uint8_t head[4] = { 6, 0, 0, 0 }; /* max_token_length: "<0xFF>", "\n</s>\n" */
    if (!st) st = qc_out_write(&o, head, 4, e);
    for (int id = 0; id < vocab_size && !st; id++) {
        char buf[8];
        int len = piece(id, buf);
        union { float f; uint32_t u; } score = { .f = -(float)id };
        uint8_t rec[8];
        for (int i = 0; i < 4; i++) rec[i] = (uint8_t)(score.u >> 8 * i), rec[4 + i] = (uint8_t)((uint32_t)len >> 8 * i);
        st = qc_out_write(&o, rec, 8, e);
        if (!st) st = qc_out_write(&o, buf, (size_t)len, e);
    }
    if (!st) return qc_out_commit(&o, e);
    qc_out_abort(&o);
    return st;
}
