/* cli.h — internal to cli/: the option parser, the terminal log, input helpers and the
 * subcommands. Only cli/ prints or exits; everything it calls returns a status and a
 * message, which cli/ prints as "qcalib: <message>" before exiting non-zero.
 *
 * Exit codes: 0 success, 1 failure (bad input, I/O, numerical trouble), 2 usage error. */
#ifndef QC_CLI_H
#define QC_CLI_H

#include "base/base.h"
#include "datasets/datasets.h"
#include "dist/dist.h"
#include "eval/eval.h"
#include "io/io.h"
#include "model/model.h"

#define EXIT_USAGE 2

/* ---- options ---- */

typedef enum cli_kind { OPT_FLAG, OPT_STR, OPT_INT, OPT_FLOAT, OPT_LIST } cli_kind;

/* The values of a repeatable option, in command-line order. */
#define CLI_LIST_MAX 32
typedef struct cli_list {
    const char *v[CLI_LIST_MAX];
    int n;
} cli_list;

typedef struct cli_opt {
    const char *name;    /* without the leading "--" */
    cli_kind kind;
    void *dest;          /* bool*, const char**, long*, double*, cli_list* */
    const char *metavar; /* shown in help, e.g. "N" */
    const char *help;
    double min, max;     /* accepted range of OPT_INT / OPT_FLOAT */
} cli_opt;

typedef struct cli_cmd {
    const char *name;
    const char *usage;   /* one line after "qcalib NAME " */
    const char *about;   /* paragraph(s) printed before the options */
    const cli_opt *opts; /* terminated by a zeroed entry */
    const char *notes;   /* printed after the options, or NULL */
} cli_cmd;

/* Parses argv[first..] (--name value or --name=value); on a bad option prints the error
 * with a pointer to --help and returns EXIT_USAGE; on --help prints help and returns -1;
 * else 0. */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, int first);
void cli_help(const cli_cmd *cmd, FILE *f);
/* Whether the last cli_parse set the option whose destination is dest. */
bool cli_given(const void *dest);
/* Usage error naming the command: prints and returns EXIT_USAGE. */
int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "qcalib: msg" and returns 1. */
int cli_fail(const qc_err *e);

/* ---- the terminal log: one updating progress line on a terminal, plain lines
 * otherwise, nothing but warnings with --quiet ---- */
qc_log cli_log(bool quiet);
void cli_log_done(void); /* ends an updating line */

/* ---- inputs shared by the commands ---- */

/* --out checked before any work: first the temporaries of out left by a dead run are swept
 * (qc_leftovers_sweep; a line on stderr says so); then qc_outdir_check: a path that exists is
 * a usage error without --force, and with it unless qc_outdir_check_replace allows replacing
 * it given the run's inputs (paths of files or folders; NULL entries skipped); so is a parent
 * folder that is missing or cannot be written in. 0 when the run may go on, else EXIT_USAGE
 * (printed). */
int cli_check_out(const cli_cmd *cmd, const char *out, bool force, const char *const *inputs, int ninputs);
/* The same for an output that is one file (the option naming it is the caller's message): nothing
 * at path, or with force a regular file that is no input (qc_outfile_check_replace); and a
 * folder to write it in. A usage error otherwise. */
int cli_check_out_file(const cli_cmd *cmd, const char *path, bool force, const char *const *inputs, int ninputs);
/* Applies --threads (0 = every core); returns the count used. */
int cli_threads(long n);

/* ---- under mpirun (ranks.c) ---- */

/* Joins the run's ranks (*d NULL: a plain run); a rank > 0 goes quiet. 0, or the exit code
 * after printing why it cannot start. */
int cli_ranks_open(qc_dist **d);
/* Prints a failure of the job as this rank should (rank 0: always; another: only an error
 * the others did not learn); returns 1. Errors before the job runs (usage) are every rank's
 * alike and printed by rank 0 alone. */
int cli_ranks_fail(const qc_dist *d, const qc_err *e);
/* Leaves the run; after an error of this rank alone, ends the others (they may be waiting). */
void cli_ranks_close(qc_dist *d);
/* --threads, or by default this machine's cores shared among its ranks. */
int cli_ranks_threads(const qc_dist *d, long threads);
/* --compute NAME (f32 or bf16) made the run's (qc_set_compute): 0, or a usage error (printed,
 * EXIT_USAGE) for another name. */
int cli_compute(const cli_cmd *cmd, const char *name);
/* The "products: oneDNN on ISA, compute C" line at the start of a run, and a warning when
 * bf16 was asked for on a CPU that does not multiply it natively. */
void cli_log_compute(qc_log *log);
#define CLI_COMPUTE_HELP "matrix products in f32 or bf16 (bf16 operands, fp32 accumulation; statistics and solvers stay fp32)"

/* A size such as 12G, 512M, 1.5GiB or 4096 (bytes; K/M/G/T are powers of 1024): false when
 * it is not one. */
bool cli_parse_size(const char *s, uint64_t *bytes);
/* The kernel's MemAvailable (/proc/meminfo); false when unknown. */
bool cli_mem_available(uint64_t *bytes);

/* ---- subcommands: each returns the process exit code ---- */
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_quantize(int argc, char **argv, int first);
int cmd_synth(int argc, char **argv);

#endif
