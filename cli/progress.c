/* progress.c — the terminal side of qc_log. On a terminal, progress is one line rewritten
 * in place (stage, done/total, elapsed, ETA); otherwise a plain line at most every few
 * seconds, so logs stay readable. Messages go to stderr, warnings always. */
#include "cli/cli.h"

#include <string.h>
#include <unistd.h>

typedef struct term {
    bool quiet, tty, line_open;
    double start, last;
    int64_t done;
    char stage[64];
} term;

static term T;

static void end_line(void) {
    if (T.line_open) fputc('\n', stderr);
    T.line_open = false;
}

static void message(void *ctx, qc_log_level level, const char *text) {
    (void)ctx;
    if (T.quiet && level != QC_LOG_WARN) return;
    if (level == QC_LOG_DEBUG) return;
    end_line();
    fprintf(stderr, "%s%s\n", level == QC_LOG_WARN ? "warning: " : "", text);
}

static void fmt_secs(double s, char *buf, size_t n) {
    if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s / 60 % 60);
}

static void progress(void *ctx, const char *stage, int64_t done, int64_t total, const char *detail) {
    (void)ctx;
    if (T.quiet) return;
    double now = qc_now();
    if (strcmp(stage, T.stage) != 0 || done < T.done) { /* a new stage (or a rerun) restarts the clock */
        end_line();
        snprintf(T.stage, sizeof T.stage, "%s", stage);
        T.start = now;
        T.last = 0;
    }
    T.done = done;
    bool finished = done >= total;
    if (!finished && now - T.last < (T.tty ? 0.1 : 5.0)) return;
    T.last = now;
    char el[16], eta[16] = "";
    double elapsed = now - T.start;
    fmt_secs(elapsed, el, sizeof el);
    if (done > 0 && !finished) fmt_secs(elapsed * (double)(total - done) / (double)done, eta, sizeof eta);
    fprintf(stderr, "%s%s %lld/%lld%s%s  elapsed %s%s%s%s", T.tty ? "\r\033[K" : "", stage,
            (long long)done, (long long)total, detail ? "  " : "", detail ? detail : "", el,
            *eta ? "  ETA " : "", eta, T.tty ? "" : "\n");
    T.line_open = T.tty;
    if (finished) end_line();
    fflush(stderr);
}

qc_log cli_log(bool quiet) {
    T.quiet = quiet;
    T.tty = isatty(STDERR_FILENO);
    return (qc_log){ message, progress, NULL };
}

void cli_log_done(void) { end_line(); }
