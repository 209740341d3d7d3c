/* quant_report.c — what `qcalib quantize` reports about per-linear settings: their short
 * names, the table of mixed precision's measurements (DIR/mixed_precision.csv), and the bits
 * per weight of the linears as written. */
#include "calib/calib.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

/* "w4g128", or "w8" for one group per row: a spec for logs. */
void cli_spec_name(const qc_quant_spec *s, char *buf, size_t size) {
    if (s->groupsize > 0) snprintf(buf, size, "w%dg%d", s->bits, s->groupsize);
    else snprintf(buf, size, "w%d", s->bits);
}

/* The table of what was measured (KL divergence per token, nats) and chosen, as CSV text. */
char *cli_mixed_table(const qc_config *c, const qc_module_quant *mods, const qc_quant_spec *cands, int nc,
                      const double *err) {
    char *text = NULL, name[128], sn[32];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f, "block,module,name,rows,cols,chosen");
    for (int j = 0; j < nc; j++) cli_spec_name(&cands[j], sn, sizeof sn), fprintf(f, ",%s_kl,%s_bits", sn, sn);
    fprintf(f, "\n");
    for (int l = 0; l < c->n_layers; l++)
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            const qc_module_quant *mq = &mods[(size_t)l * QC_LIN_COUNT + lin];
            int rows, cols;
            qc_weight short_w = qc_linear_weight(lin);
            qc_weight_shape(c, short_w, &rows, &cols);
            qc_weight_hf_name(short_w, l, name, sizeof name);
            if (mq->keep_f16) snprintf(sn, sizeof sn, "f16");
            else cli_spec_name(&mq->spec, sn, sizeof sn);
            fprintf(f, "%d,%s,%s,%d,%d,%s", l, qc_weight_short_name(short_w), name, rows, cols, sn);
            for (int j = 0; j < nc; j++)
                fprintf(f, ",%.9g,%.0f", err[((size_t)l * QC_LIN_COUNT + lin) * nc + j],
                        qc_spec_storage_bits(&cands[j], rows, cols));
            fprintf(f, "\n");
        }
    return fclose(f) == 0 ? text : (free(text), NULL);
}


qc_status cli_file_bpw(const qc_outdir *d, bool gptq, const qc_config *c, const qc_module_quant *mods, double *bpw,
                       double *bpw_gidx, qc_err *e) {
    double weights = 0, bits = 0, gidx = 0;
    if (gptq) {
        char *path = qc_outdir_file(d, "model.safetensors");
        qc_st_file f;
        qc_status st = path ? qc_st_open(&f, path, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
        free(path);
        if (st) return st;
        for (int i = 0; i < f.ntensors; i++) {
            const char *n = f.tensors[i].name;
            if (qc_str_ends_with(n, ".qweight") || qc_str_ends_with(n, ".qzeros") || qc_str_ends_with(n, ".scales"))
                bits += 8.0 * f.tensors[i].nbytes;
            else if (qc_str_ends_with(n, ".g_idx")) gidx += 8.0 * f.tensors[i].nbytes;
        }
        qc_st_close(&f);
    } else {
        char *path = qc_outdir_file(d, "model.gguf");
        qc_checkpoint *ck = NULL;
        qc_status st = path ? qc_checkpoint_open(&ck, path, e) : qc_fail(e, QC_ERR_NOMEM, "out of memory");
        free(path);
        if (st) return st;
        for (int l = 0; l < c->n_layers && !st; l++)
            for (int lin = 0; lin < QC_LIN_COUNT && !st; lin++) {
                int rows, cols;
                qc_weight_shape(qc_checkpoint_config(ck), qc_linear_weight(lin), &rows, &cols);
                /* a block type's name, or a float tensor's dtype (F16, F32) */
                const char *t = qc_checkpoint_qtype(ck, qc_linear_weight(lin), l);
                qc_gguf_type ty;
                if (!qc_gguf_type_parse(t ? t : qc_dtype_name(qc_checkpoint_dtype(ck, qc_linear_weight(lin), l)), &ty))
                    st = qc_fail(e, QC_ERR_FORMAT, "%s: block %d %s has a type qcalib does not write", qc_checkpoint_path(ck),
                                 l, qc_weight_short_name(qc_linear_weight(lin)));
                if (!st && (!mods || !mods[(size_t)l * QC_LIN_COUNT + lin].keep_f16))
                    bits += qc_gguf_type_bits(ty) * rows * cols;
            }
        qc_checkpoint_close(ck);
        if (st) return st;
    }
    for (int l = 0; l < c->n_layers; l++)
        for (int lin = 0; lin < QC_LIN_COUNT; lin++) {
            int rows, cols;
            qc_weight_shape(c, qc_linear_weight(lin), &rows, &cols);
            if (!mods || !mods[(size_t)l * QC_LIN_COUNT + lin].keep_f16) weights += (double)rows * cols;
        }
    *bpw = bits / weights;
    *bpw_gidx = (bits + gidx) / weights;
    return QC_OK;
}
