/* report.c — the files of `qcalib stats`: CSV for plotting and spreadsheets, one JSON
 * document for programs. Columns:
 *   weight_stats.csv  name, block (-1: global), module, rows, cols, min, max, mean, std,
 *                     kurtosis (3 = normal), row_absmax_min/median/max (max|w| of each output
 *                     channel), row_absmax_ratio (max / median), beyond_3sigma, beyond_6sigma
 *   weight_hist.csv   module, z_lo, z_hi, count: standardized values (w − mean)/σ of all
 *                     weights of that module type; the end bins hold what lies beyond
 *   act_stats.csv     block, site (qkv o gate_up down), channel, max, min, mean, std,
 *                     mean_abs, absmax — of the site's input over every calibration token */
#include "calib/calib.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Where the file `name` of d is written; open it. */
static qc_status open_in(const qc_outdir *d, const char *name, qc_outfile *f, qc_err *e) {
    char *path = qc_outdir_file(d, name);
    if (!path) return qc_fail(e, QC_ERR_NOMEM, "out of memory");
    qc_status st = qc_out_open(f, path, e);
    free(path);
    return st;
}

static qc_status finish(qc_outfile *f, qc_status st, qc_err *e) {
    if (!st) st = qc_out_commit(f, e);
    qc_out_abort(f);
    return st;
}

static void weight_name(const qc_wstats *s, char *buf, size_t size) {
    qc_weight_hf_name(s->weight, s->layer < 0 ? 0 : s->layer, buf, size);
}

static qc_status write_weights(const qc_outdir *d, const qc_wstats *ws, int n, qc_err *e) {
    qc_outfile f;
    qc_status st = open_in(d, "weight_stats.csv", &f, e);
    if (st) return st;
    st = qc_out_printf(&f, e, "name,block,module,rows,cols,min,max,mean,std,kurtosis,row_absmax_min,"
                              "row_absmax_median,row_absmax_max,row_absmax_ratio,beyond_3sigma,beyond_6sigma\n");
    for (int i = 0; i < n && !st; i++) {
        const qc_wstats *s = &ws[i];
        char name[128];
        weight_name(s, name, sizeof name);
        st = qc_out_printf(&f, e, "%s,%d,%s,%d,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%lld,%lld\n", name,
                           s->layer, qc_weight_short_name(s->weight), s->rows, s->cols, s->min, s->max, s->mean, s->std,
                           s->kurtosis, s->row_absmax_min, s->row_absmax_median, s->row_absmax_max,
                           s->row_absmax_max / s->row_absmax_median, (long long)s->beyond3, (long long)s->beyond6);
    }
    return finish(&f, st, e);
}

static qc_status write_hist(const qc_outdir *d, const qc_wstats *ws, int n, qc_err *e) {
    qc_outfile f;
    qc_status st = open_in(d, "weight_hist.csv", &f, e);
    if (st) return st;
    st = qc_out_printf(&f, e, "module,z_lo,z_hi,count\n");
    for (int w = 0; w < QC_W_COUNT && !st; w++) { /* module types in enum order, each summed over blocks */
        int64_t h[QC_WSTATS_BINS] = { 0 };
        bool seen = false;
        for (int i = 0; i < n; i++)
            if (ws[i].weight == (qc_weight)w) {
                seen = true;
                for (int b = 0; b < QC_WSTATS_BINS; b++) h[b] += ws[i].hist[b];
            }
        double step = 2.0 * QC_WSTATS_SPAN / QC_WSTATS_BINS;
        for (int b = 0; seen && b < QC_WSTATS_BINS && !st; b++)
            st = qc_out_printf(&f, e, "%s,%g,%g,%lld\n", qc_weight_short_name(w), -QC_WSTATS_SPAN + b * step,
                               -QC_WSTATS_SPAN + (b + 1) * step, (long long)h[b]);
    }
    return finish(&f, st, e);
}

/* The per-channel figures of one site's statistics. */
typedef struct channel {
    double max, min, mean, std, mean_abs, absmax;
} channel;

static channel channel_of(const qc_stats *s, int j) {
    double n = (double)s->count, mean = s->sum[j] / n, var = s->sum_sq[j] / n - mean * mean;
    return (channel){ s->max[j], s->min[j], mean, sqrt(var > 0.0 ? var : 0.0), s->sum_abs[j] / n, s->absmax[j] };
}

static qc_status write_acts(const qc_outdir *d, const qc_config *c, const qc_stats *act, qc_err *e) {
    qc_outfile f;
    qc_status st = open_in(d, "act_stats.csv", &f, e);
    if (st) return st;
    st = qc_out_printf(&f, e, "block,site,channel,max,min,mean,std,mean_abs,absmax\n");
    for (int l = 0; l < c->n_layers && !st; l++)
        for (int s = 0; s < QC_SITE_COUNT && !st; s++) {
            const qc_stats *a = &act[l * QC_SITE_COUNT + s];
            for (int j = 0; j < a->n && !st; j++) {
                channel ch = channel_of(a, j);
                st = qc_out_printf(&f, e, "%d,%s,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", l, qc_site_name(s), j, ch.max,
                                   ch.min, ch.mean, ch.std, ch.mean_abs, ch.absmax);
            }
        }
    return finish(&f, st, e);
}

/* NaN (kurtosis of a constant weight) as JSON null. */
static void add_number(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static cJSON *json_weights(const qc_wstats *ws, int n) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n; i++) {
        const qc_wstats *s = &ws[i];
        char name[128];
        weight_name(s, name, sizeof name);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "block", s->layer);
        cJSON_AddStringToObject(o, "module", qc_weight_short_name(s->weight));
        cJSON_AddNumberToObject(o, "rows", s->rows);
        cJSON_AddNumberToObject(o, "cols", s->cols);
        add_number(o, "min", s->min);
        add_number(o, "max", s->max);
        add_number(o, "mean", s->mean);
        add_number(o, "std", s->std);
        add_number(o, "kurtosis", s->kurtosis);
        add_number(o, "row_absmax_min", s->row_absmax_min);
        add_number(o, "row_absmax_median", s->row_absmax_median);
        add_number(o, "row_absmax_max", s->row_absmax_max);
        cJSON_AddNumberToObject(o, "beyond_3sigma", (double)s->beyond3);
        cJSON_AddNumberToObject(o, "beyond_6sigma", (double)s->beyond6);
    }
    return arr;
}

static cJSON *json_acts(const qc_config *c, const qc_stats *act) {
    static const char *const keys[] = { "max", "min", "mean", "std", "mean_abs", "absmax" };
    cJSON *arr = cJSON_CreateArray();
    for (int l = 0; arr && l < c->n_layers; l++)
        for (int s = 0; s < QC_SITE_COUNT; s++) {
            const qc_stats *a = &act[l * QC_SITE_COUNT + s];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, o);
            cJSON_AddNumberToObject(o, "block", l);
            cJSON_AddStringToObject(o, "site", qc_site_name(s));
            cJSON_AddNumberToObject(o, "tokens", (double)a->count);
            double *v = malloc((size_t)a->n * sizeof(double));
            for (int k = 0; v && k < 6; k++) {
                for (int j = 0; j < a->n; j++) {
                    channel ch = channel_of(a, j);
                    const double fig[6] = { ch.max, ch.min, ch.mean, ch.std, ch.mean_abs, ch.absmax };
                    v[j] = fig[k];
                }
                cJSON_AddItemToObject(o, keys[k], cJSON_CreateDoubleArray(v, a->n));
            }
            free(v);
        }
    return arr;
}

static qc_status write_json(const qc_outdir *d, const qc_config *c, const qc_wstats *ws, int n, const qc_stats *act,
                            qc_err *e) {
    cJSON *root = cJSON_CreateObject();
    if (root) {
        cJSON_AddItemToObject(root, "weights", json_weights(ws, n));
        if (act) cJSON_AddItemToObject(root, "activations", json_acts(c, act));
    }
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return qc_fail(e, QC_ERR_NOMEM, "out of memory writing stats.json");
    qc_outfile f;
    qc_status st = open_in(d, "stats.json", &f, e);
    if (!st) st = finish(&f, qc_out_printf(&f, e, "%s\n", text), e);
    free(text);
    return st;
}

qc_status qc_stats_report_write(const qc_outdir *d, const qc_config *c, const qc_wstats *ws, int n,
                                const qc_stats *act, qc_err *e) {
    qc_status st = write_weights(d, ws, n, e);
    if (!st) st = write_hist(d, ws, n, e);
    if (!st && act) st = write_acts(d, c, act, e);
    if (!st) st = write_json(d, c, ws, n, act, e);
    return st;
}
