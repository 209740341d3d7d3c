/* llama2c.h — internal to io/ (and to tests/unit/io_llama2c_q8.c until io.h declares the
 * writer): what the llama2.c readers and writers share beyond io/internal.h — the "ak42"
 * files of llama2.c's export.py (version 1: fp32 with a 256-byte header; version 2: Q8_0
 * int8, the format runq.c loads), layout in llama2c_q8.c.
 *
 * Only io/io.h is needed to include this header. */
#ifndef QC_IO_LLAMA2C_H
#define QC_IO_LLAMA2C_H

#include "io/io.h"

#define QC_AK42_MAGIC 0x616b3432u /* "ak42" as a little-endian u32 (bytes "24ka" on disk) */
#define QC_AK42_HEADER_BYTES 256

/* Fills c from llama2.c's seven header ints (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; vocab_size already made positive by a legacy reader) and `tied`,
 * with run.c's fixed head_dim = dim / n_heads, norm_eps 1e-5, rope_theta 10000, and checks
 * it like every other config (qc_config_validate). Messages name `path`. */
qc_status qc_llama2c_config(const char *path, const int32_t h[7], bool tied, qc_config *c, qc_err *e);

/* What a writer checks before it writes c for llama2.c's `runtime` ("run.c", "runq.c"): the
 * config is valid (qc_config_validate) and has the values that runtime fixes (head_dim =
 * dim / n_heads, rope_theta 10000, norm_eps 1e-5, no rope_scaling, no attention biases); a model
 * that differs is refused with a message naming `path` and the runtime. */
qc_status qc_llama2c_check_config(const qc_config *c, const char *path, const char *runtime, qc_err *e);

/* Fills a zeroed checkpoint from an "ak42" file of version 1 or 2 that qc_llama2c_checkpoint_open has
 * already mapped into ck->bin (it dispatches here on the magic number). Validates the
 * header (version, params, shared_classifier flag, group_size) and the exact file size
 * before anything is addressed. Version 2 matrices read through a Q8_0 decoder, only the
 * rows asked for. */
qc_status qc_llama2c_ak42_open(qc_checkpoint *ck, const char *path, qc_err *e);

#endif
