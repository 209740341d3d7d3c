/* convert.c — a checkpoint rewritten in full precision in another format (`qcalib convert`),
 * through the rows of the formats table that can hold full precision: hf (a folder, F32, F16
 * or BF16, shards), gguf and llama2c (one file each; F32 or F16, F32). The settings checked
 * against the row (QC_ERR_ARG: a usage error), the single-file output checked before --force
 * replaces it, the model and its tokenizer read, widened with zeros when --pad-to asks
 * (io/pad.c), the row's full-precision writer run. */
#include "job/internal.h"

#include <stdlib.h>
#include <string.h>

/* A full-precision row: the format --to names. */
static const qc_format_row *convert_row(const char *to) {
    for (int f = 0; f < QC_FMT_COUNT; f++) {
        const qc_format_row *r = qc_format_row_of((qc_out_format)f);
        if (r->convert && !strcmp(r->name, to)) return r;
    }
    return NULL;
}

qc_status qc_job_convert_plan(const qc_convert_settings *s, qc_convert_target *p, qc_err *e) {
    if (!(p->row = convert_row(s->to))) return qc_fail(e, QC_ERR_ARG, "--to '%s': expected hf, gguf or llama2c", s->to);
    bool bf16 = p->row->convert_dtypes & QC_BITS(QC_DT_BF16);
    if (strcmp(s->dtype, "f32") == 0) p->dtype = QC_DT_F32;
    else if (strcmp(s->dtype, "f16") == 0) p->dtype = QC_DT_F16;
    else if (strcmp(s->dtype, "bf16") == 0 && bf16) p->dtype = QC_DT_BF16;
    else return qc_fail(e, QC_ERR_ARG, "--dtype '%s': expected f32 or f16%s", s->dtype, bf16 ? " or bf16" : "");
    if (!p->row->convert_folder && s->shard_mb) return qc_fail(e, QC_ERR_ARG, "--shard-size applies to --to hf");
    if (!(p->row->convert_dtypes & QC_BITS(p->dtype)))
        return qc_fail(e, QC_ERR_ARG, "--to %s writes fp32: --dtype does not apply", p->row->name);
    if (s->pad_to < 0 || s->pad_to % 32 != 0 || s->pad_to > QC_MAX_DIM)
        return qc_fail(e, QC_ERR_ARG, "--pad-to %ld: expected a positive multiple of 32 (256 for K-quants)", s->pad_to);
    return QC_OK;
}

qc_status qc_job_convert_check_file(const qc_convert_settings *s, const qc_convert_target *p, const char *const *inputs,
                                int ninputs, qc_err *e) {
    if (!qc_path_exists(s->out)) return QC_OK; /* (lstat: a dangling link exists) */
    if (!s->force) return qc_fail(e, QC_ERR_ARG, "%s already exists (pass --force to replace it)", s->out);
    if (qc_outfile_check_replace(s->out, inputs, ninputs, e)) return QC_ERR_ARG;
    qc_checkpoint *ck = NULL;
    qc_err ignored;
    bool same = !qc_checkpoint_open(&ck, s->out, &ignored) && strcmp(qc_checkpoint_format(ck), p->row->reads_as) == 0;
    qc_checkpoint_close(ck);
    if (!same)
        return qc_fail(e, QC_ERR_ARG, "%s: not a %s model file qcalib can read; --force replaces only such a file "
                       "(remove it yourself, or choose another --out)", s->out, p->row->reads_as);
    return QC_OK;
}

qc_status qc_job_convert(const qc_convert_settings *s, const qc_convert_target *p, const qc_log *log, qc_err *e) {
    qc_checkpoint *ck = NULL;
    qc_status st = qc_checkpoint_open(&ck, s->model, e);
    qc_weight_source src, in;
    qc_pad pad;
    if (!st) src = in = qc_checkpoint_source(ck);
    if (!st && s->pad_to) {
        if (!(st = qc_pad_init(&pad, &in, (int)s->pad_to, e))) {
            src = qc_pad_source(&pad);
            const qc_config *a = in.cfg, *b = &pad.cfg;
            qc_logf(log, QC_LOG_INFO, "padded to multiples of %ld: dim %d → %d, FFN %d → %d, heads %d/%d → %d/%d "
                    "(head_dim %d), rms_norm_eps %g → %g", s->pad_to, a->dim, b->dim, a->hidden_dim, b->hidden_dim,
                    a->n_heads, a->n_kv_heads, b->n_heads, b->n_kv_heads, b->head_dim, (double)a->norm_eps,
                    (double)b->norm_eps);
        }
    }
    if (!st) {
        qc_convert_write w = { s, p, ck, &src, log };
        st = p->row->convert(&w, e);
        if (st == QC_ERR_UNSUPPORTED && s->pad_to) /* e.g. llama2.c's fixed eps, which padding changes */
            st = qc_fail_prefix(e, st, "--pad-to %ld", s->pad_to);
    }
    qc_checkpoint_close(ck);
    return st;
}
