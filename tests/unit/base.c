/* unit/base.c — base/: half-precision conversion, the CPython-compatible generator,
 * atomic output files and folders (their renames synced to disk), checked sizes. */
#include "base/base.h"
#include "tests/check.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* fsync as the library calls it, seen here: this definition takes the place of libc's in the
 * test program (the real call is made with syscall). For every folder synced it records
 * whether `watch` existed at that moment, i.e. whether the sync came after the rename that
 * made it; fail_dirs makes the sync of a folder fail with that errno. */
static struct {
    const char *watch;  /* a final path */
    struct stat parent; /* its folder */
    int synced;         /* times its folder was synced with watch in place */
    int early;          /* times its folder was synced before watch existed */
    int fail_dirs;      /* errno for folder syncs; 0: the real result */
} fs;

int fsync(int fd) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (fs.watch && st.st_dev == fs.parent.st_dev && st.st_ino == fs.parent.st_ino)
            access(fs.watch, F_OK) == 0 ? fs.synced++ : fs.early++;
        if (fs.fail_dirs) {
            errno = fs.fail_dirs;
            return -1;
        }
    }
    return (int)syscall(SYS_fsync, fd);
}

/* Watch `path`, whose folder is `dir`, from now on. */
static void watch(const char *path, const char *dir) {
    fs.watch = path, fs.synced = fs.early = 0;
    CHECK(stat(dir, &fs.parent) == 0, "stat %s", dir);
}

/* Every one of the 65536 halves survives half -> float -> half; and float -> half rounds to
 * the nearest half (ties to even), checked against the neighbours of each representable
 * value. */
static void test_f16_exhaustive(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qc_f16_to_f32((uint16_t)h);
        if (isnan(f)) { bad += !isnan(qc_f16_to_f32(qc_f32_to_f16(f))); continue; }
        bad += qc_f32_to_f16(f) != h;
    }
    CHECK(bad == 0, "%d halves did not round-trip", bad);
    /* each half's value from its fields (Inf and NaN: exponent all ones, the payload in the
     * float's top mantissa bits), and the array conversion bit for bit the same */
    uint8_t le[2 * 65536];
    float arr[65536];
    for (uint32_t h = 0; h < 65536; h++) le[2 * h] = (uint8_t)h, le[2 * h + 1] = (uint8_t)(h >> 8);
    qc_f16_le_to_f32(le, 65536, arr);
    int badval = 0, badarr = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int ex = (int)(h >> 10 & 0x1f), man = (int)(h & 0x3ff);
        float f = qc_f16_to_f32((uint16_t)h), want = ex == 0 ? ldexpf((float)man, -24) : ldexpf((float)(1024 + man), ex - 25);
        if (h & 0x8000) want = -want;
        uint32_t fb, ab;
        memcpy(&fb, &f, 4), memcpy(&ab, &arr[h], 4);
        badval += ex == 31 ? fb != ((h & 0x8000u) << 16 | 0x7f800000u | (uint32_t)man << 13) : f != want || signbit(f) != signbit(want);
        badarr += fb != ab;
    }
    CHECK(badval == 0, "%d halves converted to the wrong float", badval);
    CHECK(badarr == 0, "%d halves converted differently by qc_f16_le_to_f32", badarr);
    /* midpoints between consecutive positive finite halves round to the even one */
    int badmid = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double a = qc_f16_to_f32((uint16_t)h), b = qc_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)((a + b) / 2);
        if ((double)mid != (a + b) / 2) continue; /* not representable in float */
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        badmid += qc_f32_to_f16(mid) != want;
    }
    CHECK(badmid == 0, "%d midpoints not rounded to even", badmid);
    CHECK(qc_f32_to_f16(65520.0f) == 0x7c00, "65520 -> inf");
    CHECK(qc_f32_to_f16(65519.0f) == 0x7bff, "65519 -> 65504");
    CHECK(qc_f32_to_f16(-1e-10f) == 0x8000, "tiny negative -> -0");
}

static void test_bf16(void) {
    CHECK(qc_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    CHECK(qc_bf16_to_f32(0x3f80) == 1.0f, "1.0 back");
    /* 1 + 2^-8 is the midpoint between 1 and 1+2^-7: ties to even -> 1.0 */
    CHECK(qc_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "tie to even");
    CHECK(qc_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "above tie rounds up");
    CHECK(isnan(qc_bf16_to_f32(qc_f32_to_bf16(NAN))), "NaN stays NaN");
}

/* Expected values printed by CPython 3.11:
 *   python3 -c "import random; random.seed(0); print([random.randint(0, 100000) for _ in range(5)])"
 *   python3 -c "import random; random.seed(0); print([random.getrandbits(32) for _ in range(3)])"
 *   python3 -c "import random; random.seed(12345678901); print([random.randint(0, 10**9) for _ in range(3)])"
 *   python3 -c "import random; random.seed(7); print(repr(random.random()))" */
static void test_pyrandom(void) {
    qc_pyrandom r;
    qc_pyrandom_seed(&r, 0);
    int64_t want[5] = { 50494, 99346, 55125, 5306, 33936 };
    for (int i = 0; i < 5; i++) {
        int64_t v = qc_pyrandom_randint(&r, 0, 100000);
        CHECK(v == want[i], "randint #%d = %lld, CPython gives %lld", i, (long long)v, (long long)want[i]);
    }
    qc_pyrandom_seed(&r, 0);
    uint32_t bits[3] = { 3626764237u, 1654615998u, 3255389356u };
    for (int i = 0; i < 3; i++) CHECK(qc_pyrandom_getrandbits(&r, 32) == bits[i], "getrandbits #%d", i);
    qc_pyrandom_seed(&r, 12345678901ull); /* a seed of two 32-bit words */
    int64_t big[3] = { 640578233, 352187268, 932153255 };
    for (int i = 0; i < 3; i++) CHECK(qc_pyrandom_randint(&r, 0, 1000000000) == big[i], "randint big seed #%d", i);
    qc_pyrandom_seed(&r, 7);
    CHECK(qc_pyrandom_random(&r) == 0.32383276483316237, "random()");
}

static void test_sizes(void) {
    size_t out;
    CHECK(!qc_mul_size(SIZE_MAX / 2 + 1, 2, &out), "overflow detected");
    CHECK(qc_mul_size(1000, 1000, &out) && out == 1000000, "product");
    qc_err e = { "" };
    void *p = qc_malloc(SIZE_MAX / 4, 8, &e, "huge tensor");
    CHECK(p == NULL && strstr(e.msg, "huge tensor"), "overflowing allocation refused: %s", e.msg);
    p = qc_malloc((size_t)1 << 30, (size_t)1 << 20, &e, "1 PiB");
    CHECK(p == NULL && strstr(e.msg, "beyond limits"), "beyond QC_MAX_ALLOC refused: %s", e.msg);
}

static void test_outfile(void) {
    qc_err e = { "" };
    const char *path = tmp_path("out.bin");
    unlink(path);
    qc_outfile o;
    CHECK_OK(qc_out_open(&o, path, &e), e);
    CHECK_OK(qc_out_write(&o, "abc", 3, &e), e);
    CHECK(!qc_path_exists(path), "nothing at the final path before commit");
    qc_out_abort(&o);
    CHECK(!qc_path_exists(path), "nothing at the final path after abort");
    CHECK_OK(qc_out_open(&o, path, &e), e);
    CHECK_OK(qc_out_printf(&o, &e, "%d", 42), e);
    CHECK_OK(qc_out_commit(&o, &e), e);
    char *buf;
    size_t len;
    CHECK_OK(qc_read_file(path, 100, &buf, &len, &e), e);
    CHECK(len == 2 && memcmp(buf, "42", 2) == 0, "committed contents");
    free(buf);
    CHECK_FAILS(qc_read_file(path, 1, &buf, &len, &e), e, "allowed");
    CHECK_FAILS(qc_out_open(&o, tmp_path("no/such/dir/x"), &e), e, "cannot create");
    /* only the committed file is left in the folder */
    CHECK(system("test $(ls \"$QCALIB_TMP\" | wc -l) -eq 1") == 0, "no temporaries left behind");
}

/* A committed name is made durable: the folder holding it is synced after the rename, and a
 * failing sync is an error naming the file and the folder; a filesystem that cannot sync
 * folders at all (EINVAL) is not one. */
static void test_outfile_sync_parent(void) {
    qc_err e = { "" };
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s", tmp_path("syncdir"));
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    snprintf(path, sizeof path, "%s/f.txt", dir);
    watch(path, dir);
    qc_outfile o;
    CHECK_OK(qc_out_open(&o, path, &e), e);
    CHECK_OK(qc_out_printf(&o, &e, "x"), e);
    CHECK_OK(qc_out_commit(&o, &e), e);
    CHECK(fs.synced == 1 && fs.early == 0, "file: its folder synced once after the rename (%d after, %d before)",
          fs.synced, fs.early);
    fs.fail_dirs = EIO;
    CHECK_OK(qc_out_open(&o, path, &e), e);
    CHECK_FAILS(qc_out_commit(&o, &e), e, "cannot be synced");
    CHECK(strstr(e.msg, path) && strstr(e.msg, dir), "the message names the file and its folder: %s", e.msg);
    fs.fail_dirs = EINVAL;
    CHECK_OK(qc_out_open(&o, path, &e), e);
    CHECK_OK(qc_out_commit(&o, &e), e);
    fs.fail_dirs = 0;
    CHECK(system("test $(ls \"$QCALIB_TMP/syncdir\" | wc -l) -eq 1") == 0, "no temporaries left behind");

    char out[600];
    snprintf(out, sizeof out, "%s/folder", dir);
    watch(out, dir);
    qc_outdir d;
    CHECK_OK(qc_outdir_open(&d, out, false, &e), e);
    CHECK_OK(qc_outdir_commit(&d, &e), e);
    CHECK(fs.synced == 1 && fs.early == 0, "folder: its parent synced once after the rename (%d after, %d before)",
          fs.synced, fs.early);
    CHECK_OK(qc_outdir_open(&d, out, true, &e), e);
    fs.fail_dirs = EIO; /* after the open, which writes (and syncs) the folder's marker */
    CHECK_FAILS(qc_outdir_commit(&d, &e), e, "cannot be synced");
    fs.fail_dirs = 0;
    fs.watch = NULL;
}

static void test_outdir(void) {
    qc_err e = { "" };
    const char *dir = tmp_path("outdir");
    qc_outdir d;
    CHECK_OK(qc_outdir_open(&d, dir, false, &e), e);
    char *f = qc_outdir_file(&d, "a.txt");
    FILE *fp = fopen(f, "w");
    fputs("one", fp);
    fclose(fp);
    free(f);
    CHECK(!qc_path_exists(dir), "folder absent before commit");
    CHECK_OK(qc_outdir_commit(&d, &e), e);
    CHECK(qc_path_is_dir(dir), "folder present after commit");
    CHECK_FAILS(qc_outdir_open(&d, dir, false, &e), e, "already exists");
    CHECK_OK(qc_outdir_open(&d, dir, true, &e), e);
    qc_outdir_abort(&d);
    CHECK(qc_path_exists(tmp_path("outdir/a.txt")), "abort leaves the old folder alone");
    CHECK_OK(qc_outdir_open(&d, dir, true, &e), e);
    CHECK_OK(qc_outdir_commit(&d, &e), e);
    CHECK(qc_path_is_dir(dir) && !qc_path_exists(tmp_path("outdir/a.txt")), "replaced by the new folder");
    CHECK(unlink(tmp_path("outdir/" QC_OUTDIR_MARKER)) == 0, "the folder carries the marker");
    CHECK_FAILS(qc_outdir_open(&d, dir, true, &e), e, "not a folder qcalib wrote");
    CHECK(qc_path_is_dir(dir), "a folder without the marker is not replaced");
}

/* The folder of a path, trailing slashes ignored ("--out o/" is the folder o, in "."). */
static void test_dirname(void) {
    const char *cases[][2] = { { "o", "." }, { "o/", "." }, { "a/b", "a" }, { "a/b//", "a" }, { "/x", "/" }, { "/", "/" } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *d = qc_path_dirname(cases[i][0]);
        CHECK(d && strcmp(d, cases[i][1]) == 0, "dirname(%s) = %s, want %s", cases[i][0], d ? d : "NULL", cases[i][1]);
        free(d);
    }
}

/* qc_hash64 on the first 4099 bytes of the calibration text (a length that leaves a tail in
 * every path: 128 four-lane rounds, then 3 bytes): every single-byte change, to each of 3
 * other values, changes the hash (each step is a bijection, hash.c); the same bytes at an odd
 * address hash alike; hashing in the same pieces twice gives the same value. */
static void test_hash64(void) {
    qc_err e = { "" };
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(qc_read_file(shared_path("data/tinystories/tinystories_calib.txt"), (size_t)1 << 24, &text, &len, &e), e);
    if (!text || len < 4100) return;
    enum { N = 4099 };
    uint8_t *buf = malloc(N + 1);
    memcpy(buf + 1, text, N); /* at an odd address */
    uint64_t h = qc_hash64(QC_HASH64_SEED, text, N);
    CHECK(qc_hash64(QC_HASH64_SEED, buf + 1, N) == h, "unaligned bytes hash alike");
    CHECK(qc_hash64(qc_hash64(QC_HASH64_SEED, text, 100), text + 100, N - 100) ==
          qc_hash64(qc_hash64(QC_HASH64_SEED, buf + 1, 100), buf + 101, N - 100), "the same pieces hash alike");
    int unchanged = 0;
    for (int i = 0; i < N; i++)
        for (int d = 1; d <= 3; d++) {
            uint8_t was = buf[1 + i];
            buf[1 + i] = (uint8_t)(was + d * 85);
            unchanged += qc_hash64(QC_HASH64_SEED, buf + 1, N) == h;
            buf[1 + i] = was;
        }
    CHECK(unchanged == 0, "%d of %d single-byte changes left the hash as it was", unchanged, 3 * N);
    CHECK(qc_hash64(QC_HASH64_SEED, text, N - 1) != h, "a byte fewer hashes otherwise");
    free(buf);
    free(text);
}

/* qc_set_threads(0), the default: OMP_NUM_THREADS where it is set (a list: its first entry;
 * qc_threads_from_env), every online core where it is not or is not a count; an explicit
 * count wins over both. */
static void test_threads_default(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *was = getenv("OMP_NUM_THREADS");
    char *saved = was ? strdup(was) : NULL;
    setenv("OMP_NUM_THREADS", "3", 1);
    CHECK(qc_set_threads(0) == 3 && qc_get_threads() == 3, "OMP_NUM_THREADS=3: %d threads", qc_get_threads());
    setenv("OMP_NUM_THREADS", "5,2", 1);
    CHECK(qc_set_threads(0) == 5, "OMP_NUM_THREADS=5,2: %d threads", qc_get_threads());
    CHECK(qc_set_threads(2) == 2, "--threads 2 over OMP_NUM_THREADS=5,2: %d threads", qc_get_threads());
    setenv("OMP_NUM_THREADS", "many", 1);
    CHECK(qc_threads_from_env() == 0, "OMP_NUM_THREADS=many read as %d threads", qc_threads_from_env());
    CHECK(qc_set_threads(0) == cores, "OMP_NUM_THREADS=many: %d threads, not the %ld cores", qc_get_threads(), cores);
    unsetenv("OMP_NUM_THREADS");
    CHECK(qc_set_threads(0) == cores, "no OMP_NUM_THREADS: %d threads, not the %ld cores", qc_get_threads(), cores);
    if (saved) setenv("OMP_NUM_THREADS", saved, 1);
    free(saved);
}

int main(void) {
    RUN(test_threads_default);
    RUN(test_f16_exhaustive);
    RUN(test_bf16);
    RUN(test_pyrandom);
    RUN(test_sizes);
    RUN(test_dirname);
    RUN(test_hash64);
    RUN(test_outfile);
    RUN(test_outdir);
    RUN(test_outfile_sync_parent);
    return check_summary();
}
