/* args.c — a small table-driven parser for long options, and help generated from the
 * same table, so what --help documents is exactly what is accepted. */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt help_opt = { "help", OPT_FLAG, NULL, NULL, "show this help and exit", 0, 0 };

int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qcalib %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'qcalib %s --help')\n", cmd->name);
    return EXIT_USAGE;
}

int cli_fail(const qc_err *e) {
    cli_log_done();
    fprintf(stderr, "qcalib: %s\n", e->msg);
    return 1;
}

/* The options the last cli_parse saw, by destination (cli_given). */
static const void *given[64];
static int ngiven;

bool cli_given(const void *dest) {
    for (int i = 0; i < ngiven; i++)
        if (given[i] == dest) return true;
    return false;
}

static const cli_opt *find(const cli_cmd *cmd, const char *name, size_t len) {
    for (const cli_opt *o = cmd->opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

static int set_value(const cli_cmd *cmd, const cli_opt *o, const char *v) {
    char *end;
    switch (o->kind) {
    case OPT_STR:
        if (!*v) return cli_usage_error(cmd, "--%s needs a non-empty value", o->name);
        *(const char **)o->dest = v;
        return 0;
    case OPT_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end)
            return cli_usage_error(cmd, "--%s expects an integer, got '%s'", o->name, v);
        if ((double)x < o->min || (double)x > o->max)
            return cli_usage_error(cmd, "--%s %ld is out of range (%.0f..%.0f)", o->name, x, o->min, o->max);
        *(long *)o->dest = x;
        return 0;
    }
    case OPT_FLOAT: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return cli_usage_error(cmd, "--%s expects a number, got '%s'", o->name, v);
        if (x < o->min || x > o->max)
            return cli_usage_error(cmd, "--%s %g is out of range (%g..%g)", o->name, x, o->min, o->max);
        *(double *)o->dest = x;
        return 0;
    }
    case OPT_LIST: {
        cli_list *l = o->dest;
        if (!*v) return cli_usage_error(cmd, "--%s needs a non-empty value", o->name);
        if (l->n == CLI_LIST_MAX) return cli_usage_error(cmd, "--%s given more than %d times", o->name, CLI_LIST_MAX);
        l->v[l->n++] = v;
        return 0;
    }
    case OPT_FLAG:
        break;
    }
    return 0;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, int first) {
    ngiven = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_help(cmd, stdout);
            return -1;
        }
        if (strncmp(a, "--", 2) != 0 || !a[2])
            return cli_usage_error(cmd, "unexpected argument '%s' (options are written --name value)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = find(cmd, name, len);
        if (!o) return cli_usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
        if (!cli_given(o->dest) && ngiven < (int)(sizeof given / sizeof *given)) given[ngiven++] = o->dest;
        if (o->kind == OPT_FLAG) {
            if (eq) return cli_usage_error(cmd, "--%s takes no value", o->name);
            *(bool *)o->dest = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return cli_usage_error(cmd, "--%s needs a value (%s)", o->name, o->metavar ? o->metavar : "VALUE");
        int rc = set_value(cmd, o, v);
        if (rc) return rc;
    }
    return 0;
}

static void print_opt(const cli_opt *o, FILE *f) {
    char left[64];
    if (o->kind == OPT_FLAG) snprintf(left, sizeof left, "--%s", o->name);
    else snprintf(left, sizeof left, "--%s %s%s", o->name, o->metavar ? o->metavar : "VALUE",
                  o->kind == OPT_LIST ? " ..." : "");
    fprintf(f, "  %-24s %s\n", left, o->help);
}

void cli_help(const cli_cmd *cmd, FILE *f) {
    fprintf(f, "usage: qcalib %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->usage, cmd->about);
    for (const cli_opt *o = cmd->opts; o->name; o++) print_opt(o, f);
    print_opt(&help_opt, f);
    if (cmd->notes) fprintf(f, "\n%s\n", cmd->notes);
}
