/* inputs.c — what several commands need: the check of --out against the inputs, the thread
 * count and compute type. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int cli_check_out_file(const cli_cmd *cmd, const char *path, bool force, const char *const *inputs, int ninputs) {
    qc_err e = { "" };
    if (qc_path_exists(path) && !force) return cli_usage_error(cmd, "%s already exists (pass --force to replace it)", path);
    if (qc_outfile_check_replace(path, inputs, ninputs, &e)) return cli_usage_error(cmd, "%s", e.msg);
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    const char *parent = !dir ? "." : !slash ? "." : slash == dir ? "/" : (*slash = 0, dir);
    struct stat sb;
    bool ok = stat(parent, &sb) == 0 && S_ISDIR(sb.st_mode) && access(parent, W_OK) == 0;
    int rc = ok ? 0 : cli_usage_error(cmd, "%s: the folder %s does not exist or cannot be written in", path, parent);
    free(dir);
    return rc;
}

int cli_check_out(const cli_cmd *cmd, const char *out, bool force, const char *const *inputs, int ninputs) {
    int swept = qc_leftovers_sweep(out);
    if (swept)
        fprintf(stderr, "qcalib: %d temporar%s of %s left by a qcalib run that died (%s.tmp.*, %s.old.*) cleared\n", swept,
                swept == 1 ? "y" : "ies", out, out, out);
    qc_err e = { "" };
    return qc_outdir_check(out, force, inputs, ninputs, &e) ? cli_usage_error(cmd, "%s", e.msg) : 0;
}
