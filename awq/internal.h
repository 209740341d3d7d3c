/* internal.h — internal to awq/: which linears a scaling group scales. */
#ifndef QC_AWQ_INTERNAL_H
#define QC_AWQ_INTERNAL_H

#include "awq/awq.h"

/* The linears whose input is the site's (up to three); returns their count. */
int qc_awq_site_linears(qc_site site, qc_linear lin[3]);

#endif
