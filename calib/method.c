/* method.c — the methods table: one row per quantize method (qc_method), its name as the
 * command line, recipes and logs spell it, and what it runs: GPTQ's solver (column order,
 * damping) or round-to-nearest, AWQ's scale and clip search first, SmoothQuant's smoothing.
 * Every name lookup and every "is this a GPTQ/AWQ method" question reads this table. */
#include "calib/calib.h"

#include <string.h>

static const qc_method_info methods[] = {
    /* method                name           gptq   awq    smooth */
    { QC_METHOD_RTN,         "rtn",         false, false, false },
    { QC_METHOD_GPTQ,        "gptq",        true,  false, false },
    { QC_METHOD_AWQ,         "awq",         false, true,  false },
    { QC_METHOD_AWQ_GPTQ,    "awq+gptq",    true,  true,  false },
    { QC_METHOD_SMOOTHQUANT, "smoothquant", false, false, true  },
};
_Static_assert(sizeof methods / sizeof *methods == QC_METHOD_COUNT, "one row per qc_method");

const qc_method_info *qc_method_info_of(qc_method m) { return &methods[m]; }

const char *qc_method_name(qc_method m) { return methods[m].name; }

bool qc_method_parse(const char *name, qc_method *m) {
    for (int i = 0; i < QC_METHOD_COUNT; i++)
        if (!strcmp(name, methods[i].name)) return *m = methods[i].method, true;
    return false;
}
