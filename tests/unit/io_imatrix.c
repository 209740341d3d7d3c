/* unit/io_imatrix.c — qcalib's activation statistics as llama.cpp's importance matrix
 * (io/imatrix_write.c, calib/imatrix.c), on stories260K over windows of the evaluation text:
 *   - the GGUF layout read back with qcalib's GGUF reader: general.type "imatrix", the datasets,
 *     chunk count and size; one NAME.in_sum2 (F32 [n, 1]) and NAME.counts (F32 [1, 1]) per
 *     linear of every block, names in byte order; each in_sum2 is the site's Σx² from
 *     qc_activation_stats rounded once to fp32, each count the number of tokens;
 *   - the legacy .dat read back by the reader below: entries in the same order, each value
 *     (Σx² / tokens) · ncall rounded once, ncall = ceil(tokens / chunk size), then the chunk
 *     count and the dataset;
 *   - bad output: a folder that does not exist and a sum beyond fp32 are errors naming the path
 *     (and the tensor) that leave nothing behind. */
#include "calib/calib.h"
#include "io/gguf.h"
#include "tests/check.h"

#include <dirent.h>
#include <sys/stat.h>
#include <stdint.h>

enum { NWIN = 3, SEQLEN = 64 };

static qc_model *m;
static qc_stats act[5 * QC_SITE_COUNT];
static qc_windows w;
static const char *dataset = "tinystories_eval.txt";

static void setup(void) {
    qc_err e = { "" };
    qc_tokenizer t;
    qc_corpus c;
    int32_t *ids;
    size_t n;
    if (qc_model_open(&m, shared_path("models/stories260K/stories260K.bin"), &e) ||
        qc_tokenizer_load(&t, shared_path("models/stories260K/tok512.bin"), 512, &e) ||
        qc_corpus_load(&c, shared_path("data/tinystories/tinystories_eval.txt"), &e) ||
        qc_tokenizer_encode(&t, c.text, c.len, true, false, &ids, &n, &e) ||
        qc_windows_sequential(ids, (size_t)NWIN * SEQLEN, SEQLEN, &w, &e) ||
        qc_activation_stats(m, &w, 0, NULL, act, &e)) {
        fprintf(stderr, "cannot set up: %s\n", e.msg);
        exit(1);
    }
    free(ids);
    qc_corpus_free(&c);
    qc_tokenizer_free(&t);
}

/* The site statistics of linear weight wt (the reference the files are checked against). */
static const qc_stats *site_of(qc_weight wt, int layer) {
    for (int l = 0; l < QC_LIN_COUNT; l++)
        if (qc_linear_weight((qc_linear)l) == wt) return &act[layer * QC_SITE_COUNT + qc_linear_site((qc_linear)l)];
    return NULL;
}

/* The 35 entry names in byte order, with their weights. */
typedef struct name_of {
    char name[64];
    qc_weight w;
    int layer;
} name_of;

static int cmp_name(const void *a, const void *b) { return strcmp(((const name_of *)a)->name, ((const name_of *)b)->name); }

static int entries(name_of *out) {
    int n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < QC_LIN_COUNT; k++) {
            out[n].w = qc_linear_weight((qc_linear)k), out[n].layer = l;
            qc_gguf_tensor_name(out[n].w, l, out[n].name, sizeof out[n].name);
            n++;
        }
    qsort(out, (size_t)n, sizeof *out, cmp_name);
    return n;
}

static bool kv_str_is(const qc_gguf_file *f, const char *key, uint64_t i, const char *want) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    if (!kv || kv->elem_type != QC_GGUF_V_STRING || i >= kv->count) return false;
    const uint8_t *p = kv->data;
    const char *s;
    uint64_t len;
    for (uint64_t k = 0; k <= i; k++) p = qc_gguf_string_at(p, &s, &len);
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static int64_t kv_int(const qc_gguf_file *f, const char *key) {
    const qc_gguf_kv *kv = qc_gguf_find_kv(f, key);
    int64_t v = -1;
    return kv && kv->type == QC_GGUF_V_U32 && qc_gguf_kv_int(kv, 0, &v) ? v : -1;
}

static float le_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

static void test_gguf_layout(void) {
    qc_err e = { "" };
    const char *path = tmp_path("stories260K.imatrix.gguf");
    CHECK_OK(qc_stats_imatrix_write(path, &m->cfg, act, &w, &dataset, 1, &e), e);
    qc_gguf_file f;
    CHECK_OK(qc_gguf_file_open(&f, path, &e), e);
    CHECK(kv_str_is(&f, "general.type", 0, "imatrix"), "general.type imatrix");
    CHECK(kv_str_is(&f, "imatrix.datasets", 0, dataset), "imatrix.datasets");
    CHECK(kv_int(&f, "imatrix.chunk_count") == NWIN && kv_int(&f, "imatrix.chunk_size") == SEQLEN, "chunks");
    name_of es[64];
    int n = entries(es), bad = 0;
    CHECK(f.n_tensors == 2 * n && n == 35, "%lld tensors for %d linears", (long long)f.n_tensors, n);
    for (int i = 0; i < n && i < f.n_tensors / 2; i++) {
        char name[160];
        const qc_stats *s = site_of(es[i].w, es[i].layer);
        const qc_gguf_tensor *sum = &f.tensors[2 * i], *cnt = &f.tensors[2 * i + 1];
        snprintf(name, sizeof name, "%.63s.in_sum2", es[i].name);
        CHECK(sum->name_len == (int)strlen(name) && memcmp(sum->name, name, strlen(name)) == 0, "tensor %d is %s", 2 * i, name);
        snprintf(name, sizeof name, "%.63s.counts", es[i].name);
        CHECK(cnt->name_len == (int)strlen(name) && memcmp(cnt->name, name, strlen(name)) == 0, "tensor %d is %s", 2 * i + 1, name);
        CHECK(sum->type->id == QC_GGUF_F32 && sum->n_dims == 2 && sum->ne[0] == s->n && sum->ne[1] == 1 &&
                  cnt->type->id == QC_GGUF_F32 && cnt->n_dims == 2 && cnt->ne[0] == 1 && cnt->ne[1] == 1,
              "%s: shapes", es[i].name);
        if (sum->ne[0] != s->n) continue;
        for (int j = 0; j < s->n; j++) bad += le_f32(sum->data + 4 * (size_t)j) != (float)s->sum_sq[j];
        CHECK(le_f32(cnt->data) == (float)(NWIN * SEQLEN) && s->count == NWIN * SEQLEN, "%s: counts %g", es[i].name,
              (double)le_f32(cnt->data));
    }
    CHECK(bad == 0, "%d in_sum2 values differ from the statistics", bad);
    qc_gguf_file_close(&f);
}

/* The legacy layout, read here field by field. */
static void test_dat_layout(void) {
    qc_err e = { "" };
    const char *path = tmp_path("stories260K.imatrix.dat");
    CHECK_OK(qc_stats_imatrix_write(path, &m->cfg, act, &w, &dataset, 1, &e), e);
    qc_map map;
    CHECK_OK(qc_map_open(&map, path, &e), e);
    const uint8_t *p = map.data, *end = map.data + map.size;
    int32_t v = 0;
#define NEXT_I32() (p + 4 <= end ? (memcpy(&v, p, 4), p += 4, v) : -1)
    name_of es[64];
    int n = entries(es), bad = 0;
    CHECK(NEXT_I32() == n, "n_entries %d", v);
    int64_t tokens = NWIN * SEQLEN, ncall = (tokens + SEQLEN - 1) / SEQLEN;
    for (int i = 0; i < n; i++) {
        int32_t len = NEXT_I32();
        CHECK(len == (int)strlen(es[i].name) && p + len <= end && memcmp(p, es[i].name, (size_t)len) == 0,
              "entry %d is %s", i, es[i].name);
        p += len > 0 ? len : 0;
        CHECK(NEXT_I32() == ncall, "%s: ncall %d", es[i].name, v);
        const qc_stats *s = site_of(es[i].w, es[i].layer);
        CHECK(NEXT_I32() == s->n, "%s: %d values", es[i].name, v);
        for (int j = 0; j < s->n && p + 4 <= end; j++, p += 4)
            bad += le_f32(p) != (float)(s->sum_sq[j] / (double)tokens * (double)ncall);
    }
    CHECK(bad == 0, "%d values differ from the statistics", bad);
    CHECK(NEXT_I32() == NWIN, "chunk count %d", v);
    CHECK(NEXT_I32() == (int)strlen(dataset) && p + v == end && memcmp(p, dataset, strlen(dataset)) == 0,
          "the dataset, and nothing after it");
#undef NEXT_I32
    qc_map_close(&map);
}

/* Entries of the folder (".", ".." aside). */
static int folder_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *x; d && (x = readdir(d));) n += strcmp(x->d_name, ".") && strcmp(x->d_name, "..");
    if (d) closedir(d);
    return n;
}

static void test_bad_output(void) {
    qc_err e = { "" };
    const char *missing = tmp_path("no-such-folder/x.imatrix.gguf");
    CHECK_FAILS(qc_stats_imatrix_write(missing, &m->cfg, act, &w, &dataset, 1, &e), e, "no-such-folder/x.imatrix.gguf");

    /* a sum beyond fp32: refused naming the tensor, nothing left in the folder */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", tmp_path("imatrix-bad"));
    mkdir(dir, 0755);
    qc_stats *s = &act[1 * QC_SITE_COUNT + QC_SITE_DOWN];
    double keep = s->sum_sq[7];
    s->sum_sq[7] = 1e39;
    const char *exts[] = { "x.gguf", "x.dat" };
    for (int i = 0; i < 2; i++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", dir, exts[i]);
        CHECK_FAILS(qc_stats_imatrix_write(path, &m->cfg, act, &w, &dataset, 1, &e), e,
                    "blk.1.ffn_down.weight: Σx² of input channel 7 is 1e+39");
    }
    s->sum_sq[7] = keep;
    CHECK(folder_entries(dir) == 0, "nothing left behind in %s", dir);
}

int main(void) {
    setup();
    RUN(test_gguf_layout);
    RUN(test_dat_layout);
    RUN(test_bad_output);
    for (size_t i = 0; i < sizeof act / sizeof act[0]; i++) qc_stats_free(&act[i]);
    qc_windows_free(&w);
    qc_model_free(m);
    return check_summary();
}
