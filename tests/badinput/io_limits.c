/* badinput/io_limits.c — resource honesty: for every reader, a file of about 1 KB whose header
 * claims about 1 TB (a tensor, a whole model, a vocabulary, a window array) is refused with
 * a message naming the file and the size it cannot hold — a format error, not a failed
 * allocation (QC_ERR_NOMEM would mean the reader tried to allocate what the file claimed) —
 * and the whole test's peak memory stays small, so nothing sized by a claim was allocated
 * and touched. (badinput/io.c and unit/io_gguf.c cover the other bad headers.) */
#include "io/io.h"
#include "tests/check.h"

#include <sys/resource.h>

#define TB ((uint64_t)1 << 40)
#define KB 1024

/* A 1 KB file: head, then zeros. */
static const char *write_1k(const char *name, const void *head, size_t n) {
    static uint8_t buf[KB];
    memset(buf, 0, sizeof buf);
    memcpy(buf, head, n < KB ? n : KB);
    const char *path = tmp_path(name);
    write_file(path, buf, KB);
    return path;
}

/* Opening path as a checkpoint fails with a format error naming it and containing needle. */
static void refused(const char *path, const char *needle) {
    qc_err e = { "" };
    qc_checkpoint *ck = NULL;
    qc_status st = qc_checkpoint_open(&ck, path, &e);
    CHECK(st == QC_ERR_FORMAT, "%s: status %s (wanted a format error): %s", path, qc_status_name(st), e.msg);
    CHECK(strstr(e.msg, path) && strstr(e.msg, needle), "%s: message \"%s\" lacks \"%s\"", path, e.msg, needle);
    qc_checkpoint_close(ck);
}

static void put32(uint8_t **p, uint32_t v) {
    memcpy(*p, &v, 4); /* the files are little endian, as x86-64 and aarch64 */
    *p += 4;
}

static void put64(uint8_t **p, uint64_t v) {
    memcpy(*p, &v, 8);
    *p += 8;
}

static void putstr(uint8_t **p, const char *s) {
    put64(p, strlen(s));
    memcpy(*p, s, strlen(s));
    *p += strlen(s);
}

static void test_safetensors_tensor(void) {
    char json[256];
    int n = snprintf(json, sizeof json,
                     "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[268435456,1024],"
                     "\"data_offsets\":[0,%llu]}}", (unsigned long long)TB);
    uint8_t head[300];
    uint64_t hl = (uint64_t)n;
    memcpy(head, &hl, 8);
    memcpy(head + 8, json, (size_t)n);
    const char *path = write_1k("tb.safetensors", head, 8 + (size_t)n);
    qc_safetensors_file f;
    qc_err e = { "" };
    qc_status st = qc_safetensors_open(&f, path, &e);
    CHECK(st == QC_ERR_FORMAT && strstr(e.msg, path) && strstr(e.msg, "model.embed_tokens.weight"),
          "1 TB safetensors tensor: status %s, \"%s\"", qc_status_name(st), e.msg);
    if (!st) qc_safetensors_close(&f);
}

static void test_gguf_tensor(void) {
    uint8_t head[KB], *p = head;
    memcpy(p, "GGUF", 4), p += 4;
    put32(&p, 3);
    put64(&p, 1); /* tensors */
    put64(&p, 1); /* metadata */
    putstr(&p, "general.architecture");
    put32(&p, 8); /* string */
    putstr(&p, "llama");
    putstr(&p, "token_embd.weight");
    put32(&p, 2);
    put64(&p, 1024);
    put64(&p, 268435456); /* 2^28 rows of 1024 F32: 1 TB */
    put32(&p, 0);         /* F32 */
    put64(&p, 0);
    const char *path = write_1k("tb.gguf", head, (size_t)(p - head));
    refused(path, "token_embd.weight");
}

/* llama2.c's seven header ints, all within qcalib's limits: about 1.6 TB of weights. */
static const int32_t big_cfg[7] = { 16384, 65536, 1024, 128, 128, 1 << 22, 4096 };

static void test_llama2c_model(void) {
    refused(write_1k("tb.bin", big_cfg, sizeof big_cfg), "the header implies");
    uint8_t head[64] = { 0 }, *p = head;
    put32(&p, 0x616b3432); /* "ak42" */
    put32(&p, 2);
    memcpy(p, big_cfg, sizeof big_cfg);
    head[36] = 1;
    int32_t gs = 64;
    memcpy(head + 37, &gs, 4);
    refused(write_1k("tb_v2.bin", head, sizeof head), "tb_v2.bin");
}

static void test_hf_config(void) {
    const char *dir = tmp_path("tb_hf");
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    write_str(tmp_path("tb_hf/config.json"),
              "{\"model_type\": \"llama\", \"hidden_size\": 16384, \"intermediate_size\": 65536, "
              "\"num_hidden_layers\": 1024, \"num_attention_heads\": 128, \"vocab_size\": 4194304}");
    const char *st = "{\"__metadata__\":{}}  ";
    uint8_t head[64];
    uint64_t hl = strlen(st);
    memcpy(head, &hl, 8);
    memcpy(head + 8, st, hl);
    write_file(tmp_path("tb_hf/model.safetensors"), head, 8 + hl);
    refused(dir, "model.embed_tokens.weight");
}

static void test_tokenizer_vocab(void) {
    int32_t mtl = 16;
    const char *path = write_1k("tb_tok.bin", &mtl, 4);
    qc_tokenizer t;
    qc_err e = { "" };
    qc_status st = qc_tokenizer_load(&t, path, 1 << 22, &e);
    CHECK(st == QC_ERR_FORMAT && strstr(e.msg, path) && strstr(e.msg, "too short for 4194304 tokens"),
          "4M-token vocabulary from 1 KB: status %s, \"%s\"", qc_status_name(st), e.msg);
    if (!st) qc_tokenizer_free(&t);
}

static void test_npy_windows(void) {
    char head[128];
    memcpy(head, "\x93NUMPY\x01\x00\x76\x00", 10);
    int n = snprintf(head + 10, sizeof head - 10, "{'descr': '<i8', 'fortran_order': False, 'shape': (1048576, 131072), }");
    memset(head + 10 + n, ' ', (size_t)(117 - n));
    head[127] = '\n';
    const char *path = write_1k("tb.npy", head, sizeof head);
    qc_windows w;
    qc_err e = { "" };
    qc_status st = qc_windows_load_npy(path, &w, &e);
    CHECK(st == QC_ERR_FORMAT && strstr(e.msg, path) && strstr(e.msg, "(1048576, 131072) needs 1099511627776"),
          "1 TB of windows: status %s, \"%s\"", qc_status_name(st), e.msg);
    if (!st) qc_windows_free(&w);
}

static void test_peak_memory(void) {
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0, "getrusage");
    printf("  peak resident memory: %ld MB\n", ru.ru_maxrss / 1024);
    CHECK(ru.ru_maxrss < 512 * 1024, "peak resident memory %ld KB: something sized by a claim was allocated",
          ru.ru_maxrss);
}

int main(void) {
    RUN(test_safetensors_tensor);
    RUN(test_gguf_tensor);
    RUN(test_llama2c_model);
    RUN(test_hf_config);
    RUN(test_tokenizer_vocab);
    RUN(test_npy_windows);
    RUN(test_peak_memory);
    return check_summary();
}
