/* inputs.c — what several commands need: the check of --out against the inputs, the thread
 * count and compute type. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_threads(long n) { return qc_set_threads((int)n); }

int cli_compute(const cli_cmd *cmd, const char *name) {
    qc_compute c;
    if (!qc_compute_parse(name, &c)) return cli_usage_error(cmd, "--compute '%s': expected f32 or bf16", name);
    qc_set_compute(c);
    return 0;
}

void cli_log_compute(qc_log *log) {
    qc_compute c = qc_get_compute();
    qc_logf(log, QC_LOG_INFO, "products: oneDNN on %s, compute %s", qc_matmul_isa(), qc_compute_name(c));
    if (c == QC_COMPUTE_BF16 && !qc_matmul_native_bf16())
        qc_logf(log, QC_LOG_WARN, "--compute bf16: this CPU (%s) does not multiply bf16 natively; oneDNN converts the "
                "operands, which is slower than --compute f32", qc_matmul_isa());
}

int cli_check_out(const cli_cmd *cmd, const char *out, bool force, const char *const *inputs, int ninputs) {
    int swept = qc_leftovers_sweep(out);
    if (swept)
        fprintf(stderr, "qcalib: %d temporar%s of %s left by a qcalib run that died (%s.tmp.*, %s.old.*) cleared\n", swept,
                swept == 1 ? "y" : "ies", out, out, out);
    qc_err e = { "" };
    return qc_outdir_check(out, force, inputs, ninputs, &e) ? cli_usage_error(cmd, "%s", e.msg) : 0;
}
