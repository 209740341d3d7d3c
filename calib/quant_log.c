/* quant_log.c — the per-layer error log, one row per quantized linear in the order solved,
 * as CSV (for plotting: scripts/plot-quant-log) and as JSON lines (for programs).
 * Columns: block, module (q k v o gate up down), name (the Hugging Face tensor), rows, cols,
 * method (gptq, rtn; f16 for a linear left unquantized), bits, groupsize (-1: one group per row), sym, loss (GPTQ's; 0 for RTN), rel_err
 * (‖XWᵀ − XQᵀ‖² / ‖XWᵀ‖² on the calibration inputs), damp (relative damping used), retries,
 * fallback (yes: GPTQ fell back to round-to-nearest), dead (inputs never active), seconds;
 * then the rescaling's figures (QUANT-SPEC §4–5): awq_grid (the grid point AWQ chose for the
 * group of the linear's input, exponent awq_grid/20; -1: no group), awq_loss and awq_loss0
 * (that group's output loss, and the unscaled candidate's), clip_mean and clip_min (AWQ's
 * clip range / max|w| over the linear's groups; 1: not clipped), smooth_min and smooth_max
 * (the range of SmoothQuant's scales on the linear's input norm; 0: not smoothed); abs_err
 * (‖XWᵀ − XQᵀ‖² itself, summed over the calibration tokens: what --observe ranks by).
 * Every column but `seconds` is reproducible bit for bit. */
#include "calib/calib.h"

#include <string.h>

static qc_status write_row(qc_outfile *csv, qc_outfile *jl, const qc_layer_report *r, const qc_calib_opts *o,
                           bool fp32, qc_err *e) {
    char name[128];
    qc_weight w = qc_linear_weight(r->linear);
    qc_weight_hf_name(w, r->block, name, sizeof name);
    const char *mod = qc_weight_short_name(w), *method = r->kept_f16 ? (fp32 ? "fp32" : "f16") : qc_method_name(o->method);
    const qc_quant_spec *sp = qc_calib_spec(o, r->block, r->linear);
    int gs = sp->groupsize > 0 ? sp->groupsize : -1;
    qc_status st = qc_out_printf(csv, e, "%d,%s,%s,%d,%d,%s,%d,%d,%d,%.9g,%.9g,%.6g,%d,%s,%d,%.6f,%d,%.9g,%.9g,%.6g,%.6g,%.6g,%.6g,%.9g\n",
                                 r->block, mod, name, r->rows, r->cols, method, sp->bits, gs, sp->sym, r->loss,
                                 r->rel_err, r->damp, r->retries, r->fallback ? "yes" : "no", r->dead, r->seconds,
                                 r->awq_grid, r->awq_loss, r->awq_loss0, r->clip_mean, r->clip_min, r->smooth_min,
                                 r->smooth_max, r->abs_err);
    if (!st)
        st = qc_out_printf(jl, e,
                           "{\"block\":%d,\"module\":\"%s\",\"name\":\"%s\",\"rows\":%d,\"cols\":%d,\"method\":\"%s\","
                           "\"bits\":%d,\"groupsize\":%d,\"sym\":%s,\"loss\":%.9g,\"rel_err\":%.9g,\"damp\":%.6g,"
                           "\"retries\":%d,\"fallback\":%s,\"dead\":%d,\"seconds\":%.6f,\"awq_grid\":%d,\"awq_loss\":%.9g,"
                           "\"awq_loss0\":%.9g,\"clip_mean\":%.6g,\"clip_min\":%.6g,\"smooth_min\":%.6g,\"smooth_max\":%.6g,\"abs_err\":%.9g}\n",
                           r->block, mod, name, r->rows, r->cols, method, sp->bits, gs, sp->sym ? "true" : "false",
                           r->loss, r->rel_err, r->damp, r->retries, r->fallback ? "true" : "false", r->dead, r->seconds,
                           r->awq_grid, r->awq_loss, r->awq_loss0, r->clip_mean, r->clip_min, r->smooth_min, r->smooth_max, r->abs_err);
    return st;
}

qc_status qc_quantized_write_log(const qc_quantized *q, const qc_calib_opts *o, const char *csv_path,
                                 const char *jsonl_path, qc_err *e) {
    qc_outfile csv, jl;
    qc_status st = qc_out_open(&csv, csv_path, e);
    if (st) return st;
    if ((st = qc_out_open(&jl, jsonl_path, e))) {
        qc_out_abort(&csv);
        return st;
    }
    st = qc_out_printf(&csv, e, "block,module,name,rows,cols,method,bits,groupsize,sym,loss,rel_err,damp,retries,"
                                "fallback,dead,seconds,awq_grid,awq_loss,awq_loss0,clip_mean,clip_min,smooth_min,smooth_max,abs_err\n");
    for (int i = 0; i < q->nreports && !st; i++) st = write_row(&csv, &jl, &q->reports[i], o, q->fp32_linears, e);
    if (!st) st = qc_out_commit(&csv, e);
    if (!st) st = qc_out_commit(&jl, e);
    qc_out_abort(&csv);
    qc_out_abort(&jl);
    return st;
}
