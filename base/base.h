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
/* Rewrites e->msg so that it is safe to print on a terminal whatever input it quotes: control
 * bytes, DEL, bytes that are not valid UTF-8, C1 controls and the code points that reorder or
 * break lines (U+200E/F, U+2028/9, U+202A-E, U+2066-9) become \xNN per byte (a message too
 * long for e->msg afterwards is cut at a whole escape). Returns code. */
qc_status qc_err_escape(qc_err *e, qc_status code);

/* An internal invariant; aborts with file:line. Never for bad input. */
#define QC_ASSERT(cond)                                                              \
    do {                                                                             \
        if (!(cond)) qc_assert_fail(#cond, __FILE__, __LINE__);                      \
    } while (0)
_Noreturn void qc_assert_fail(const char *what, const char *file, int line);

/* ---- vector loops ------------------------------------------------------------------ */

/* A function whose loops are worth building for the CPU's widest registers: GCC compiles it
 * for AVX-512, AVX2 and the baseline, and the loader picks one for the CPU (an ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define QC_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define QC_VECTOR_CLONES
#endif

/* expf and exp as glibc's libmvec (x86-64; the Makefile links -lmvec) provides them for
 * vectors: a loop marked `#pragma omp simd` calls their 4-, 8- or 16-lane versions, the
 * widest its function's target allows (QC_VECTOR_CLONES). They may round differently from
 * the scalar ones in the last bits (the glibc manual's "Known Maximum Errors in Math
 * Functions" lists both); the tests' fp32 bounds cover that, and stories260K's perplexity
 * moved by 1e-9 relative. Elsewhere such loops call the scalar functions. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
double exp(double);
#endif

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

/* The content hash of n bytes at data, continuing from h (QC_HASH64_SEED to start): FNV-1a's
 * step over 8-byte words in four lanes (hash.c). Not cryptographic: it detects changes, not forgeries. */
#define QC_HASH64_SEED 0xcbf29ce484222325ull
uint64_t qc_hash64(uint64_t h, const void *data, size_t n);

bool qc_path_is_dir(const char *path);
bool qc_path_exists(const char *path);
/* Whether path is a file that can be opened for reading (not a folder); the message names it. */
qc_status qc_path_check_readable(const char *path, qc_err *e);
/* dir + "/" + name, newly allocated (NULL on failure). */
char *qc_path_join(const char *dir, const char *name);
/* The length of path without its trailing slashes ("out/" names "out"; "/" stays "/"). */
size_t qc_path_trimmed_len(const char *path);
/* The folder part of path ("." if none; trailing slashes ignored), newly allocated. */
char *qc_path_dirname(const char *path);
bool qc_str_ends_with(const char *s, const char *suffix);
/* The first line where texts a and b differ, each into its buffer (size bytes, cut to fit);
 * "(the same)" in both when none does. What a fingerprint's refusal quotes. */
void qc_str_first_difference(const char *a, const char *b, char *la, char *lb, size_t size);

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
 * whole folder is the unit of atomicity). It holds QC_OUTDIR_MARKER from the start. An
 * existing folder at the final path is refused unless `replace` and qc_outdir_check_replace
 * allows it; it is then swapped with the new one in one rename (RENAME_EXCHANGE) only after
 * the new one is complete, so the path always holds the old output or the new one. Where the
 * filesystem cannot exchange, the old folder is moved to "<path>.old.XXXXXX" and the new one
 * renamed into place, with signals held between the two; a SIGKILL between them leaves the
 * old folder at the .old name, and the next write of <path> renames it back (the sweep). */
typedef struct qc_outdir {
    char *path;  /* final path */
    char *tmp;   /* the folder being written */
    bool replace;
    int lock;    /* an fd of tmp, flock'ed while it is written (valid while tmp is set) */
} qc_outdir;

/* The marker file every output folder holds: --force replaces only a folder that has it. */
#define QC_OUTDIR_MARKER ".qcalib-output"
/* Whether the folder at path may be replaced by a new output (base/outguard.c): OK when
 * nothing is there; else only a folder (not a link or a file) holding QC_OUTDIR_MARKER that
 * is neither /, nor $HOME, nor the folder of one of the `inputs` (files or folders; NULL
 * entries skipped) nor a folder containing one, all compared as resolved real paths. The
 * error names the path and the reason. */
qc_status qc_outdir_check_replace(const char *path, const char *const *inputs, int ninputs, qc_err *e);
/* Whether --force may replace the single-file output at path: nothing there, or a regular
 * file (not a symbolic link) that is none of the run's `inputs`. Whether it is a model file
 * of the format being written is the caller's check. */
qc_status qc_outfile_check_replace(const char *path, const char *const *inputs, int ninputs, qc_err *e);

/* Whether a new output folder may be written at path, for a caller to refuse before long
 * work: nothing there, or with `replace` a folder that qc_outdir_check_replace allows
 * replacing given the run's `inputs`; and a parent folder that exists and can be written in.
 * qc_outdir_open checks the same (without inputs). */
qc_status qc_outdir_check(const char *path, bool replace, const char *const *inputs, int ninputs, qc_err *e);
qc_status qc_outdir_open(qc_outdir *d, const char *path, bool replace, qc_err *e);
/* tmp + "/" + name, newly allocated. */
char *qc_outdir_file(const qc_outdir *d, const char *name);
/* len bytes of data as the file `name` of the folder being built (written atomically). */
qc_status qc_outdir_put(const qc_outdir *d, const char *name, const void *data, size_t len, qc_err *e);
qc_status qc_outdir_commit(qc_outdir *d, qc_err *e);
void qc_outdir_abort(qc_outdir *d); /* removes the temporary folder; no-op when zeroed */

/* ---- leftovers (base/leftovers.c): cleanup on SIGINT/SIGTERM/SIGHUP, and of dead runs ---- */

/* Registers a temporary file or folder this process made, to be removed if the process is
 * stopped by a signal; qc_cleanup_drop once it is renamed into place or removed. Never
 * allocates; at most 64 at once (more are not registered, the sweep finds them later). */
void qc_cleanup_add(const char *path);
void qc_cleanup_drop(const char *path);
/* Removes every registered path, folders with their contents; async-signal-safe. */
void qc_cleanup_run(void);
/* Installs the SIGINT, SIGTERM and SIGHUP handler: qc_cleanup_run, then the signal's own
 * end (exit status 128 + signal). For cli/'s main. */
void qc_cleanup_install(void);
/* Between hold and release a signal is only noted; release acts on it. */
void qc_cleanup_hold(void);
void qc_cleanup_release(void);
/* Takes an exclusive flock on fd without waiting: whether it was free. */
bool qc_lock_try(int fd);
/* Removes the temporaries "<path>.tmp.XXXXXX" and "<path>.old.XXXXXX" beside path whose
 * lock is free (their writer died: SIGKILL, a crash, a power cut); a dead run's .old folder
 * with nothing at path is renamed back to path instead. Returns how many were handled. */
int qc_leftovers_sweep(const char *path);
/* Removes a file, or a folder and everything in it; async-signal-safe. */
void qc_remove_tree(const char *path);

/* ---- number formats --------------------------------------------------------------------- */

float qc_f16_to_f32(uint16_t h);
/* n little-endian halves at src to floats: qc_f16_to_f32 of each, in a loop that vectorizes. */
void qc_f16_le_to_f32(const uint8_t *src, size_t n, float *dst);
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
/* Threads for qcalib's OpenMP loops (n <= 0: qc_threads_from_env's, else every core); OpenBLAS
 * is set single-threaded, so the two runtimes never compete for cores. Returns n. */
int qc_set_threads(int n);
/* OMP_NUM_THREADS (its first entry) where it is set to a count, as users, job schedulers and
 * test runners set it to share a machine; else 0. */
int qc_threads_from_env(void);
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
bool qc_compute_parse(const char *name, qc_compute *c); /* "f32" or "bf16"; false: neither */
const char *qc_matmul_isa(void);  /* the instruction set oneDNN runs on, e.g. "avx512_core_bf16" */
bool qc_matmul_native_bf16(void); /* whether the CPU multiplies bf16 itself (else oneDNN emulates) */

/* c (m, n) = alpha · op(a) · op(b) + beta · c in compute type ct, row-major with leading
 * dimensions lda, ldb, ldc: op(a) = aᵀ for a (k, m) when a_t, else a (m, k); op(b) = bᵀ for
 * b (n, k) when b_t, else b (k, n). Inside an OpenMP region it runs on the calling thread;
 * outside, on qc_get_threads() threads. A oneDNN failure is an error naming the shape. */
qc_status qc_matmul(qc_compute ct, bool a_t, bool b_t, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc, qc_err *e);

/* Where a series of bf16 products (a forward pass) converts its operands: buffers kept from
 * one product to the next and grown on demand. A fresh buffer per product is memory the
 * kernel maps and zeroes anew each time, which cost a Llama-7B block's bf16 forward about 12%
 * of its time (bench_forward). Zeroed: empty. Used by one thread at a time. */
typedef struct qc_matmul_scratch {
    void *p[2];     /* the converted source and weights */
    size_t cap[2];  /* their bytes */
    bool holding;   /* qc_matmul_scratch_hold */
    int nheld;
    struct qc_matmul_held *held; /* the weights converted while holding (matmul.c) */
} qc_matmul_scratch;
void qc_matmul_scratch_free(qc_matmul_scratch *s); /* back to zeroed */
/* While a scratch holds (on), each weights operand converted through it is kept, by its
 * address and layout, and products with the same weights reuse the conversion, the same
 * bits; off drops them. For loops in which no weight given to a product changes: the
 * runner's stage over all chunks converts each linear once instead of once per chunk (about
 * 8% of a bf16 forward; bench_forward). A weight changed while held would be multiplied as
 * it was. Only oneDNN's bf16 kernels convert: no effect at f32 or where bf16 is emulated. */
void qc_matmul_scratch_hold(qc_matmul_scratch *s, bool on);
/* The bytes one converted operand of (rows, cols) takes in a scratch under compute type ct:
 * 0 for fp32; for bf16, 2 bytes a value with both dimensions rounded up to 64, a bound on the
 * blocked layouts oneDNN chooses (for memory plans). */
size_t qc_matmul_operand_bytes(qc_compute ct, int64_t rows, int64_t cols);
/* qc_matmul with s (NULL: buffers of this product's own) holding the bf16 conversions. */
qc_status qc_matmul_kept(qc_compute ct, bool a_t, bool b_t, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                         qc_matmul_scratch *s, qc_err *e);
/* a (n, n) row-major: the strict lower triangle becomes the mirror of the upper one. */
void qc_mirror_upper(float *a, int n);

#endif
