/* plan.c — the memory plan of a quantize run: what each large buffer of the runner, the
 * solvers and the writers takes, from the model's shapes and the options alone, so that a
 * run that cannot fit is refused before it starts.
 *
 * Three phases never overlap: the calibration text (read, tokenized and its windows drawn, then
 * freed; QC_CALIB_TEXT_MEM per byte of text, derived in datasets/calib_set.c), calibration (the residual stream, the block's
 * activations kept between true-sequential sites, one block's weights, one site's statistics, one solve) and export (the writer's buffers, the results it reads).
 * The peak is the larger phase plus a fixed allowance for the runtime; --target-bpw's measuring
 * pass counts as calibration with its own buffers added. Each figure follows
 * the allocation it stands for; a change to those allocations must change this file (the
 * test computes the same figures independently for stories260K and the synthetic tiny
 * model). Mapped model files are not counted: readers drop their pages after converting a
 * tensor (qc_map_release), so the file's size is shown but never resident as a whole. */
#include "calib/internal.h"

#include <stdio.h>

/* Code, libraries, OpenBLAS's and OpenMP's per-thread buffers and stacks, the allocator's
 * slack, the tokenized calibration text: measured at 20–40 MB on stories260K runs, rounded
 * up. */
#define RUNTIME_BASE ((size_t)32 << 20)
#define RUNTIME_PER_THREAD ((size_t)16 << 20)

/* Rows per chunk and H columns per strip of qc_quant_output_error (quant.c's ERR_CHUNK,
 * ERR_STRIP). */
#define ERR_CHUNK 256
#define ERR_STRIP 512
/* GPTQ's column-loop tile (gptq.c's TILE). */
#define GPTQ_TILE 16

static size_t mat(const qc_config *c, qc_weight w) {
    int rows, cols;
    qc_weight_shape(c, w, &rows, &cols);
    return (size_t)rows * (size_t)cols;
}

size_t qc_plan_result_bytes(int rows, int cols, const qc_quant_spec *s) {
    size_t ng = s->groupsize > 0 ? (size_t)(cols + s->groupsize - 1) / (size_t)s->groupsize : 1;
    size_t params = (size_t)rows * ng * sizeof(float) * (s->store_min ? 3 : 2);
    if (s->kquant) params += (size_t)rows * (size_t)(cols / QC_KQ_SUPER) * QC_KQ_SB_FLOATS(s->groupsize) * sizeof(float);
    return (size_t)rows * cols + params + (size_t)cols * 2 * sizeof(int32_t);
}

/* Solving one linear of (rows, cols): the runner's weight copy and saved diagonal (GPTQ
 * works on the statistics' own Hessian), the result, the output error's buffers, and
 * GPTQ's factorization, column-loop scratch and row losses. */
static size_t solve_bytes(int rows, int cols, size_t result, const qc_calib_opts *o, int threads) {
    size_t n = (size_t)cols, f = sizeof(float);
    size_t b = (size_t)rows * cols * f + n * f + result;
    size_t err_rows = rows < ERR_CHUNK ? (size_t)rows : ERR_CHUNK;
    size_t err_strip = n < ERR_STRIP ? n : ERR_STRIP;
    b += (2 * err_rows * (n + err_strip) + n * err_strip) * f;
    if (o->method == QC_METHOD_GPTQ || o->method == QC_METHOD_AWQ_GPTQ) {
        size_t bs = (size_t)(o->gptq.blocksize < cols ? o->gptq.blocksize : cols);
        size_t chunk = ((size_t)rows / 8 + GPTQ_TILE - 1) / GPTQ_TILE * GPTQ_TILE;
        b += n * n * f + n * (sizeof(float) * 2 + 1 + sizeof(int32_t) + 8); /* factorization, diagonal, order */
        b += (size_t)threads * ((bs * GPTQ_TILE * 2 + bs * bs + chunk * bs + 32) * f + n * f);
        b += (size_t)rows * sizeof(double);
    }
    return b;
}

void qc_mem_plan_make(const qc_checkpoint *ck, int nwin, int seqlen, const qc_calib_opts *o, int measure_ncand,
                      int threads, qc_mem_plan *p) {
    const qc_config *c = qc_checkpoint_config(ck);
    *p = (qc_mem_plan){ 0 };
    for (int w = 0; w < QC_W_COUNT; w++) /* stored sizes (a quantized input's by its nominal dtype) */
        for (int l = 0; l < (qc_weight_is_global(w) ? 1 : c->n_layers); l++)
            if ((w != QC_W_CLASSIFIER || !c->tied_classifier) && qc_weight_present(c, w))
                p->model_file += mat(c, w) * qc_dtype_size(qc_checkpoint_dtype(ck, w, l));
    size_t f = sizeof(float), ntok = (size_t)nwin * seqlen;
    size_t chunk = (size_t)qc_calib_chunk_windows(o, nwin, seqlen) * seqlen;
    size_t qdim = (size_t)c->n_heads * c->head_dim;

    p->activations = ntok * c->dim * qc_dtype_size(o->act_dtype) + chunk * c->dim * f;
    p->workspace = qc_workspace_bytes(c, (int)chunk, seqlen, threads);
    /* true-sequential: the block's activations kept between sites (runner.c), fp32 for every
     * window: o's then down's input, and x + o(attention) unless it takes the residual
     * stream's place (held in fp32, no observer: the measuring pass has one) */
    if (o->true_sequential) {
        size_t mid = qdim > (size_t)c->hidden_dim ? qdim : (size_t)c->hidden_dim;
        bool own_x1 = o->act_dtype != QC_DT_F32 || o->observe || measure_ncand > 0;
        p->intermediates = ntok * ((own_x1 ? (size_t)c->dim : 0) + mid) * f;
        p->recomputed = o->recompute;
    }
    p->block_weights = 2 * (size_t)c->dim * f;
    for (int l = 0; l < QC_LIN_COUNT; l++) p->block_weights += mat(c, qc_linear_weight(l)) * f;

    for (int s = 0; s < QC_SITE_COUNT; s++) { /* one site at a time, or all four */
        size_t n = (size_t)qc_site_width(c, s), b = n * n * f + n * (sizeof(float) + 2 * sizeof(double));
        if (b > p->largest_hessian) p->largest_hessian = b, p->largest_hessian_cols = (int)n;
        if (o->true_sequential) p->statistics = b > p->statistics ? b : p->statistics;
        else p->statistics += b;
    }

    /* SmoothQuant / AWQ's pre-step (prestep.c): every window's inputs of the sites it scales,
     * captured by one fp32 pass over the block, and that pass's chunk; freed before the
     * statistics are gathered. With fp32 propagation the pass's outputs stay for the block. */
    bool awq = o->method == QC_METHOD_AWQ || o->method == QC_METHOD_AWQ_GPTQ;
    if (qc_calib_rescales(o)) {
        size_t widths = awq ? 2 * (size_t)c->dim + qdim + (size_t)c->hidden_dim : 2 * (size_t)c->dim;
        p->prestep = ntok * widths * f + chunk * c->dim * f;
    }
    if (o->propagate_fp32) p->fp32_outputs = ntok * c->dim * f;
    int nranks = qc_dist_size(o->dist);
    if (nranks > 1) { /* share.c's packed Hessian slice, dist/'s N pieces of a sum (both bounded) */
        p->ranks = QC_SHARE_SLICE_BYTES + (size_t)nranks * QC_DIST_PIECE_BYTES;
        if (qc_dist_rank(o->dist) == 0 && !qc_calib_rescales(o)) /* rank 0's checkpoints (runner.c) */
            p->ranks += ((size_t)(nwin + 1) * nranks - 1) * seqlen * c->dim * qc_dtype_size(o->act_dtype);
    }
    /* the measuring pass is a calibration with these on top; the classifier it loads stays */
    if (measure_ncand > 0) p->measuring = qc_mixed_measure_bytes(c, nwin, seqlen, o, measure_ncand);

    size_t all_results = 0, largest_result = 0;
    for (int l = 0; l < QC_LIN_COUNT; l++) {
        int rows, cols;
        qc_weight_shape(c, qc_linear_weight(l), &rows, &cols);
        for (int layer = 0; layer < c->n_layers; layer++) { /* each module's own spec */
            size_t rb = qc_calib_keeps(o, layer, l) ? 0 : qc_plan_result_bytes(rows, cols, qc_calib_spec(o, layer, l));
            size_t sb = solve_bytes(rows, cols, rb, o, threads);
            p->solver = sb > p->solver ? sb : p->solver;
            all_results += rb;
            largest_result = rb > largest_result ? rb : largest_result;
        }
    }
    if (o->embed.bits > 0) /* quantized after calibration: the fp32 table and its result */
        all_results += mat(c, QC_W_EMBED) * f + qc_plan_result_bytes(c->vocab_size, c->dim, &o->embed);
    /* After the blocks (the block's weights freed, the residual stream still held), counted
     * as solves: the classifier's (classifier.c: its statistics, its weights as read, then a
     * linear's solve) and the embedding's by GPTQ (embedding.c: the table read, held above;
     * H; the readers' gains on one chunk: its stream and norm, a scratch of the largest of the
     * vocabulary, the FFN width and the chunk's tokens rows, a workspace, one block's weights
     * or the classifier's; then GPTQ's own buffers, as a linear's solve without the runner's
     * copy). */
    size_t n = (size_t)c->dim, stats = n * n * f + n * (sizeof(float) + 2 * sizeof(double));
    if (o->classifier.bits > 0) {
        size_t rb = qc_plan_result_bytes(c->vocab_size, c->dim, &o->classifier);
        size_t sb = stats + mat(c, QC_W_CLASSIFIER) * f + solve_bytes(c->vocab_size, c->dim, rb, o, threads);
        p->solver = sb > p->solver ? sb : p->solver;
        all_results += rb;
    }
    if (o->embed.bits > 0 && o->embed_gptq) {
        size_t rows = (size_t)c->vocab_size > (size_t)c->hidden_dim ? (size_t)c->vocab_size : (size_t)c->hidden_dim;
        rows = chunk > rows ? chunk : rows;
        size_t weights = mat(c, QC_W_CLASSIFIER) * f > p->block_weights ? mat(c, QC_W_CLASSIFIER) * f : p->block_weights;
        size_t gains = 2 * chunk * n * f + rows * n * f + chunk * sizeof(double) + p->workspace + weights;
        size_t gptq = solve_bytes(c->vocab_size, c->dim, 0, o, threads);
        size_t sb = n * n * f + (gains > gptq ? gains : gptq);
        p->solver = sb > p->solver ? sb : p->solver;
    }
    /* spilled: none held while calibrating; the writer has about two results' pages mapped */
    p->results_calibrating = o->spill_dir ? 0 : all_results;
    p->results_exporting = o->spill_dir ? 2 * largest_result : all_results;

    /* Every writer holds at most the largest tensor in fp32 plus its converted or packed
     * bytes (at most 5 per weight: llama2.c int8's codes and fp32 copy), and the HF writer a
     * permuted copy of Q. */
    size_t largest = mat(c, QC_W_EMBED);
    for (int l = 0; l < QC_LIN_COUNT; l++) largest = mat(c, qc_linear_weight(l)) > largest ? mat(c, qc_linear_weight(l)) : largest;
    p->exporter = largest * (f + 5) + mat(c, QC_W_Q) * f;

    p->runtime = RUNTIME_BASE + (size_t)threads * RUNTIME_PER_THREAD;
    size_t solving = p->statistics + p->solver;
    p->calibration = p->activations + p->workspace + (p->recomputed ? 0 : p->intermediates) + p->block_weights +
                     p->fp32_outputs + p->measuring + p->ranks +
                     (p->prestep > solving ? p->prestep : solving) + p->results_calibrating;
    p->export_phase = p->exporter + p->results_exporting;
    p->peak = (p->calibration > p->export_phase ? p->calibration : p->export_phase) + p->runtime;
}

/* The smallest bound on a source's text, whatever the budget: a budget too small for even that
 * much is then refused by the plan itself, naming every figure, instead of by the text. */
#define TEXT_BOUND_FLOOR ((uint64_t)1 << 20)

size_t qc_mem_plan_text_bound(uint64_t limit, int threads) {
    uint64_t runtime = RUNTIME_BASE + (uint64_t)threads * RUNTIME_PER_THREAD;
    if (!limit) return QC_CORPUS_MAX_BYTES;
    uint64_t bound = limit > runtime ? (limit - runtime) / QC_CALIB_TEXT_MEM : 0;
    if (bound < TEXT_BOUND_FLOOR) bound = TEXT_BOUND_FLOOR;
    return bound < QC_CORPUS_MAX_BYTES ? (size_t)bound : QC_CORPUS_MAX_BYTES;
}

void qc_mem_plan_count_text(qc_mem_plan *p, size_t text_read, size_t text_bound) {
    p->text_read = text_read;
    p->text_bound = text_bound;
    p->text = text_read * (size_t)QC_CALIB_TEXT_MEM;
    size_t phase = p->calibration > p->export_phase ? p->calibration : p->export_phase;
    p->peak = (p->text > phase ? p->text : phase) + p->runtime;
}

static double mb(size_t b) { return (double)b / (1 << 20); }

void qc_mem_plan_describe(const qc_mem_plan *p, const qc_calib_opts *o, char *buf, size_t size) {
    char kept[128];
    if (!p->intermediates) snprintf(kept, sizeof kept, "0.0 (not true-sequential)");
    else if (p->recomputed) snprintf(kept, sizeof kept, "0.0 (recomputed from the block's input; kept they take %.1f)", mb(p->intermediates));
    else snprintf(kept, sizeof kept, "%.1f (each linear's input computed once)", mb(p->intermediates));
    char ranks[160] = "";
    if (p->ranks)
        snprintf(ranks, sizeof ranks, "this rank's exchange buffers%s %.1f, ",
                 qc_dist_rank(o->dist) == 0 ? " and every window's activations for checkpoints" : "", mb(p->ranks));
    snprintf(buf, size,
             "memory plan (MB): model tensors %.1f on disk, mapped and read one block at a time; residual stream + chunk %.1f (%s), forward scratch %.1f, block activations kept between sites %s, one block's fp32 weights %.1f, "
             "statistics %.1f (largest Hessian %.1f, %d columns), largest solve %.1f, AWQ/SmoothQuant inputs %.1f "
             "and fp32 outputs %.1f, mixed-precision measuring %.1f, %sresults held %.1f "
             "(%s) = calibration %.1f; writer %.1f + results %.1f = export %.1f; calibration text %.1f (%d × %.1f "
             "read; one source may hold %.1f of text under this budget); runtime %.1f; peak %.1f",
             mb(p->model_file), mb(p->activations), qc_dtype_name(o->act_dtype), mb(p->workspace), kept, mb(p->block_weights),
             mb(p->statistics), mb(p->largest_hessian), p->largest_hessian_cols, mb(p->solver), mb(p->prestep),
             mb(p->fp32_outputs), mb(p->measuring), ranks,
             mb(p->results_calibrating), o->spill_dir ? "spilled beside the output as solved" : "all in memory",
             mb(p->calibration), mb(p->exporter), mb(p->results_exporting), mb(p->export_phase), mb(p->text),
             QC_CALIB_TEXT_MEM, mb(p->text_read), mb(p->text_bound), mb(p->runtime), mb(p->peak));
}
