/* base.h — what every qcalib module shares: status codes with messages, checked
 * allocation and size arithmetic, read-only file mapping, atomic output files and
 * directories, fp16/bf16 conversion, a Python-compatible random generator, the
 * log/progress interface through which library code reports (it never prints), and the
 * matrix products (oneDNN).
 *
 * base/ sits below every other folder (DESIGN.md's dependency chain ends here); it is
 * an addition to DESIGN.md's layout so that datasets/, io/ and the rest share one error
 * convention without depending on each other. */
#ifndef QC_BASE_H
#define QC_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- status codes and messages ------------------------------------------------ */

typedef enum qc_status {
    QC_OK = 0,
    QC_ERR_IO,          /* missing or unreadable file, failed write */
    QC_ERR_FORMAT,      /* a file's contents are malformed */
    QC_ERR_ARG,         /* an invalid option, argument or shape */
    QC_ERR_NOMEM,       /* allocation failed or a size is beyond limits */
    QC_ERR_NUMERIC,     /* NaN/Inf, a factorization that failed */
    QC_ERR_UNSUPPORTED, /* valid input this version cannot handle */
} qc_status;

/* The message a failing function leaves for its caller; names the file, tensor or option. */
typedef struct qc_err {
    char msg[1024];
} qc_err;

/* Sets e->msg (printf-style) and returns code. e may be NULL. */
qc_status qc_fail(qc_err *e, qc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to the message already in e; returns code. */
qc_status qc_fail_prefix(qc_err *e, qc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *qc_status_name(qc_status code);

/* An internal invariant; aborts with file:line. Never for bad input. */
#define QC_ASSERT(cond)                                                              \
    do {                                                                             \
        if (!(cond)) qc_assert_fail(#cond, __FILE__, __LINE__);                      \
    } while (0)
_Noreturn void qc_assert_fail(const char *what, const char *file, int line);

/* ---- memory and size arithmetic -------------------------------------------------- */

/* Largest single allocation qcalib makes on a file's word (1 TiB); beyond it, refuse. */
#define QC_MAX_ALLOC ((size_t)1 << 40)

/* count*size bytes, zeroed; NULL with a message naming `what` on overflow or failure. */
void *qc_calloc(size_t count, size_t size, qc_err *e, const char *what);
/* count*size bytes, uninitialised; NULL with a message on overflow or failure. */
void *qc_malloc(size_t count, size_t size, qc_err *e, const char *what);
/* a*b and a+b into *out; false on overflow. */
bool qc_mul_size(size_t a, size_t b, size_t *out);
bool qc_add_size(size_t a, size_t b, size_t *out);
char *qc_strdup(const char *s, qc_err *e);
/* printf into a new string (NULL on failure). */
char *qc_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- files ----------------------------------------------------------------------------- */

/* A read-only mapping of a whole file. data is NULL for an empty file. */
typedef struct qc_map {
    const uint8_t *data; /* borrowed from the kernel; valid until qc_map_close */
    size_t size;
    char *path;          /* owned copy, for messages */
} qc_map;

qc_status qc_map_open(qc_map *m, const char *path, qc_err *e);
void qc_map_close(qc_map *m); /* NULL or zeroed map: no-op */
/* Drops the pages holding p[0..n) of a read-only file mapping from this process's memory
 * (they stay valid: a later access reads them from the file again). Whole pages around the
 * range are dropped too. Readers call it after converting a tensor, so that a model read
 * once, block by block, never becomes resident as a whole. */
void qc_map_release(const void *p, size_t n);

/* Reads a whole file (at most max_size bytes, else an error) into a NUL-terminated buffer. */
qc_status qc_read_file(const char *path, size_t max_size, char **buf, size_t *len, qc_err *e);

bool qc_path_is_dir(const char *path);
bool qc_path_exists(const char *path);
/* dir + "/" + name, newly allocated (NULL on failure). */
char *qc_path_join(const char *dir, const char *name);
/* The folder part of path ("." if none), newly allocated. */
char *qc_path_dirname(const char *path);
bool qc_str_ends_with(const char *s, const char *suffix);

/* An output file written under a temporary name beside its final path and renamed into
 * place by qc_out_commit, after fflush, fsync and fclose have each succeeded; then the
 * folder holding it is fsync'ed, so the new name is durable too (a failure there is an
 * error, the complete file being at its path already). Until the rename (and after
 * qc_out_abort) nothing exists at the final path. */
typedef struct qc_outfile {
    FILE *f;
    char *path; /* final path */
    char *tmp;  /* temporary path, removed on abort */
} qc_outfile;

qc_status qc_out_open(qc_outfile *o, const char *path, qc_err *e);
qc_status qc_out_write(qc_outfile *o, const void *data, size_t n, qc_err *e);
qc_status qc_out_printf(qc_outfile *o, qc_err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
qc_status qc_out_commit(qc_outfile *o, qc_err *e);
void qc_out_abort(qc_outfile *o); /* zeroed or committed outfile: no-op */

/* An output directory built under a temporary name and renamed into place when complete,
 * its parent folder fsync'ed after the rename. Files inside it are written directly (the
 * whole folder is the unit of atomicity). An
 * existing folder at the final path is refused unless `replace`, in which case it is
 * swapped out only after the new one is complete. */
typedef struct qc_outdir {
    char *path;  /* final path */
    char *tmp;   /* the folder being written */
    bool replace;
} qc_outdir;

qc_status qc_outdir_open(qc_outdir *d, const char *path, bool replace, qc_err *e);
/* tmp + "/" + name, newly allocated. */
char *qc_outdir_file(const qc_outdir *d, const char *name);
/* len bytes of data as the file `name` of the folder being built (written atomically). */
qc_status qc_outdir_put(const qc_outdir *d, const char *name, const void *data, size_t len, qc_err *e);
qc_status qc_outdir_commit(qc_outdir *d, qc_err *e);
void qc_outdir_abort(qc_outdir *d); /* removes the temporary folder; no-op when zeroed */

/* ---- number formats --------------------------------------------------------------------- */

float qc_f16_to_f32(uint16_t h);
uint16_t qc_f32_to_f16(float f);   /* round to nearest even; overflow to ±Inf */
float qc_bf16_to_f32(uint16_t h);
uint16_t qc_f32_to_bf16(float f);  /* round to nearest even (NaN kept quiet) */

/* Little-endian loads from unaligned bytes (the files are little endian). */
static inline uint32_t qc_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t qc_le64(const uint8_t *p) {
    return (uint64_t)qc_le32(p) | (uint64_t)qc_le32(p + 4) << 32;
}
static inline float qc_lef32(const uint8_t *p) {
    union { uint32_t u; float f; } v = { qc_le32(p) };
    return v.f;
}

/* ---- random numbers ------------------------------------------------------------------------ */

/* CPython's `random` module generator (MT19937 with init_by_array seeding), so that a
 * seed picks the same calibration windows as the Python reference pipelines
 * (`random.seed(s); random.randint(a, b)`). */
typedef struct qc_pyrandom {
    uint32_t mt[624];
    int index;
} qc_pyrandom;

void qc_pyrandom_seed(qc_pyrandom *r, uint64_t seed); /* random.seed(seed) for seed >= 0 */
uint32_t qc_pyrandom_u32(qc_pyrandom *r);             /* genrand_uint32 */
uint32_t qc_pyrandom_getrandbits(qc_pyrandom *r, int k); /* 1 <= k <= 32 */
/* random.randint(a, b), b - a < 2^32. */
int64_t qc_pyrandom_randint(qc_pyrandom *r, int64_t a, int64_t b);
double qc_pyrandom_random(qc_pyrandom *r); /* random.random() */

/* ---- logging, progress, time, threads ------------------------------------------------------- */

typedef enum qc_log_level { QC_LOG_DEBUG, QC_LOG_INFO, QC_LOG_WARN } qc_log_level;

/* How library code reports to the user. Both callbacks may be NULL (silence). `cli/`
 * supplies the terminal implementation. */
typedef struct qc_log {
    void (*message)(void *ctx, qc_log_level level, const char *text);
    /* stage: what is running; done of total units; detail: the current item or NULL */
    void (*progress)(void *ctx, const char *stage, int64_t done, int64_t total,
                     const char *detail);
    void *ctx;
} qc_log;

void qc_logf(const qc_log *log, qc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void qc_progress(const qc_log *log, const char *stage, int64_t done, int64_t total,
                 const char *detail);

double qc_now(void); /* monotonic seconds */
/* Threads for qcalib's OpenMP loops (n <= 0: every core); OpenBLAS is set single-threaded,
 * so the two runtimes never compete for cores. Returns n. */
int qc_set_threads(int n);
int qc_get_threads(void);
/* Lets OpenBLAS use qc_get_threads() threads (true) for work done inside one large BLAS or
 * LAPACK call, outside any OpenMP region; false returns it to one thread. */
void qc_blas_threads(bool parallel);

/* ---- matrix products (matmul.c: oneDNN) ------------------------------------------------------ */

/* The operand type of the products: fp32, or bf16 with fp32 accumulation (--compute). */
typedef enum qc_compute { QC_COMPUTE_F32, QC_COMPUTE_BF16 } qc_compute;
void qc_set_compute(qc_compute c); /* the run's: the forward's products from now on */
qc_compute qc_get_compute(void);
const char *qc_compute_name(qc_compute c);
const char *qc_matmul_isa(void);  /* the instruction set oneDNN runs on, e.g. "avx512_core_bf16" */
bool qc_matmul_native_bf16(void); /* whether the CPU multiplies bf16 itself (else oneDNN emulates) */

/* c (m, n) = alpha · op(a) · op(b) + beta · c in compute type ct, row-major with leading
 * dimensions lda, ldb, ldc: op(a) = aᵀ for a (k, m) when a_t, else a (m, k); op(b) = bᵀ for
 * b (n, k) when b_t, else b (k, n). Inside an OpenMP region it runs on the calling thread;
 * outside, on qc_get_threads() threads. A oneDNN failure is an error naming the shape. */
qc_status qc_matmul(qc_compute ct, bool a_t, bool b_t, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc, qc_err *e);

#endif
