/* check.h — the test harness: assertions that report file:line and keep going, tolerances
 * named per precision, and paths to the real material in ../shared (QCALIB_SHARED).
 *
 * A test file defines static void test_x(void) functions and a main() that runs them with
 * RUN(test_x) and returns check_summary(). */
#ifndef QC_CHECK_H
#define QC_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        check_count++;                                                                       \
        if (!(cond)) {                                                                       \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

#define CHECK_OK(expr, err)                                                                  \
    do {                                                                                     \
        int check_st_ = (int)(expr);                                                         \
        CHECK(check_st_ == 0, "%s returned %d: %s", #expr, check_st_, (err).msg);            \
    } while (0)

/* Expects failure with a message containing `needle`. */
#define CHECK_FAILS(expr, err, needle)                                                       \
    do {                                                                                     \
        (err).msg[0] = '\0';                                                                 \
        int check_st_ = (int)(expr);                                                         \
        CHECK(check_st_ != 0, "%s unexpectedly succeeded", #expr);                           \
        CHECK(strstr((err).msg, (needle)) != NULL, "%s: message \"%s\" lacks \"%s\"", #expr, \
              (err).msg, (needle));                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                \
    do {                                                                                     \
        double check_a_ = (a), check_b_ = (b);                                               \
        CHECK(fabs(check_a_ - check_b_) <= (tol), "%s = %.9g, %s = %.9g, tolerance %g", #a,   \
              check_a_, #b, check_b_, (double)(tol));                                        \
    } while (0)

/* Floating-point bounds. A test's bound follows from the arithmetic, not from what one
 * machine's BLAS kernel happened to print: OpenBLAS blocks and orders its sums differently on
 * each kernel (Haswell, Sandybridge, SkylakeX, ...), and every order is correct.
 * FP32_U is fp32's unit roundoff: one rounding moves a value by at most this fraction of it.
 * fp32_gamma(n) is Higham's gamma_n = n*u / (1 - n*u): a sum or dot product of n fp32 terms,
 * in any order and any blocking, is off from the exact sum by at most gamma_n times the sum of
 * the terms' magnitudes (Accuracy and Stability of Numerical Algorithms, 2nd ed., sec. 3.1).
 * Two such computations of the same value in different orders differ by at most twice that. */
#define FP32_U 0x1p-24
#define FP64_U 0x1p-53
static inline double fp32_gamma(double n) { return n * FP32_U / (1 - n * FP32_U); }
static inline double fp64_gamma(double n) { return n * FP64_U / (1 - n * FP64_U); }

/* For long sums (Hessians over 65536 tokens, logits at the end of thousands of sums) the
 * worst case above grows as n while real rounding errors, independent and of mean zero,
 * grow as sqrt(n): a bound that loose would let a lost window pass. Higham & Mary's
 * probabilistic bound (A New Approach to Probabilistic Rounding Error Analysis, SIAM J. Sci.
 * Comput. 41(5), 2019, Thm 3.1) replaces gamma_n by exp(lambda*sqrt(n)*u + n*u^2/(1-u)) - 1,
 * and holds with probability at least 1 - 2n*exp(-lambda^2*(1-u)^2/2) for each sum: with
 * lambda = 8, a failure once in 10^9 sums of 65536 terms. */
static inline double fp32_gamma_prob(double n) { return expm1(8 * sqrt(n) * FP32_U + n * FP32_U * FP32_U / (1 - FP32_U)); }

#define RUN(fn)                                                                              \
    do {                                                                                     \
        int before_ = check_failures;                                                        \
        fn();                                                                                \
        printf("  %-44s %s\n", #fn, check_failures == before_ ? "ok" : "FAILED");            \
        fflush(stdout);                                                                      \
    } while (0)

static inline int check_summary(void) {
    printf("  %d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

/* $var (or fallback when unset) joined with rel, in one of 8 rotating static buffers: enough
 * for the paths a single expression uses. */
static inline const char *env_path(const char *var, const char *fallback, const char *rel) {
    static char buf[8][1024];
    static int next;
    const char *root = getenv(var);
    char *out = buf[next++ % 8];
    snprintf(out, sizeof buf[0], "%s/%s", root && *root ? root : fallback, rel);
    return out;
}

/* A file of the real material in ../shared ($QCALIB_SHARED). */
static inline const char *shared_path(const char *rel) { return env_path("QCALIB_SHARED", "../shared", rel); }

/* A file in this test binary's scratch folder ($QCALIB_TMP, made by tests/run.sh). */
static inline const char *tmp_path(const char *rel) { return env_path("QCALIB_TMP", "/tmp", rel); }

/* Expects failure with a message naming both the file and the problem. */
#define CHECK_FAILS_AT(expr, err, path, needle)                                                  \
    do {                                                                                         \
        CHECK_FAILS(expr, err, needle);                                                          \
        CHECK(strstr((err).msg, (path)) != NULL, "%s: message \"%s\" does not name %s", #expr,   \
              (err).msg, (path));                                                                \
    } while (0)

/* Writes a fixture file (bytes, or a C string). */
static inline void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "writing %s", path);
}

static inline void write_str(const char *path, const char *s) { write_file(path, s, strlen(s)); }

/* Whether two files hold the same bytes (false when either cannot be read). */
static inline bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        char x[4096], y[4096];
        size_t nx = fread(x, 1, sizeof x, fa), ny = fread(y, 1, sizeof y, fb);
        same = nx == ny && memcmp(x, y, nx) == 0;
        if (nx < sizeof x) break;
    }
    same = same && ferror(fa) == 0 && ferror(fb) == 0;
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

#endif
