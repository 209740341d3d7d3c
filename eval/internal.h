/* internal.h — internal to eval/: the log-probability file's reader and writer. */
#ifndef QC_EVAL_INTERNAL_H
#define QC_EVAL_INTERNAL_H

#include "eval/eval.h"

typedef struct qc_logprobs_writer {
    qc_outfile out;
} qc_logprobs_writer;

typedef struct qc_logprobs_reader {
    qc_map map;
    const uint8_t *logprobs; /* into the mapping */
    int vocab, seqlen;
} qc_logprobs_reader;

/* Writes the header and the windows' tokens; the caller appends each window's log-probs
 * and commits (or aborts) lw->out. */
qc_status qc_logprobs_create(qc_logprobs_writer *lw, const char *path, const qc_windows *w, int vocab,
                             qc_err *e);
/* Checks the file was saved for exactly these windows and this vocabulary. */
qc_status qc_logprobs_open(qc_logprobs_reader *lr, const char *path, const qc_windows *w, int vocab,
                           qc_err *e);
/* (seqlen - 1, vocab) log-probs of one window. */
const float *qc_logprobs_window(const qc_logprobs_reader *lr, int window);
void qc_logprobs_close(qc_logprobs_reader *lr);

#endif
