/* main.c — qcalib's entry point: dispatches to a subcommand, prints the overview. */
#include "cli/cli.h"

#include <signal.h>
#include <string.h>

#define QCALIB_VERSION "0.1.0"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static int quantize(int argc, char **argv) { return cmd_quantize(argc, argv, 2); }

static const command commands[] = {
    { "quantize", quantize, "calibrate and quantize a model (GPTQ, round-to-nearest); also `qcalib --method ...`" },
    { "eval", cmd_eval, "perplexity of a model on a text; KL divergence against saved log-probabilities" },
    { "generate", cmd_generate, "greedy decoding from BOS (or a prompt): the exactness check against llama2.c" },
    { "convert", cmd_convert, "rewrite a checkpoint as a Hugging Face folder (f32/f16/bf16) or llama2.c .bin" },
    { "inspect", cmd_inspect, "list a checkpoint's format, configuration and tensors (any format qcalib reads)" },
    { "tokenize", cmd_tokenize, "print the token ids of a text" },
    { "stats", cmd_stats, "weight and activation statistics per module (CSV, JSON): outliers, kurtosis, channel ranges" },
    { "synth", cmd_synth, "write a SYNTHETIC Llama (random weights, real shapes) for benchmarks" },
};

static void overview(FILE *f) {
    fprintf(f,
            "qcalib %s — offline calibration and quantization of Llama-family models, on a CPU\n\n"
            "usage: qcalib COMMAND [options]     (qcalib COMMAND --help for each)\n"
            "       qcalib --method gptq --wbits 4 --groupsize 128 --model M --calib TEXT --out DIR\n\ncommands:\n",
            QCALIB_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nmodels: a llama2.c checkpoint (.bin), or a Hugging Face Llama folder (config.json +\n"
            "model.safetensors or a sharded model.safetensors.index.json; F32, F16 or BF16).\n"
            "texts: plain text, JSON lines with a \"text\" field (.jsonl/.json), or gzip'd JSON lines\n"
            "(.json.gz, the shape of C4 shards).\n\n"
            "exit status: 0 success, 1 failure (the message names the file, tensor or option), 2 usage error.\n");
}

int main(int argc, char **argv) {
    /* A write past a file-size limit then fails with EFBIG, reported and cleaned up like a
     * full disk, instead of the signal killing qcalib with a temporary file left behind. */
    signal(SIGXFSZ, SIG_IGN);
    qc_cleanup_install(); /* SIGINT, SIGTERM, SIGHUP remove this run's temporaries */
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        overview(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("qcalib %s\n", QCALIB_VERSION);
        printf("MPI: %s\n", qc_dist_built() ? "on (mpirun -np N qcalib … calibrates on N ranks)" : "off (built without MPI: MPI=off, or no mpicc)");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc, argv);
    if (strncmp(argv[1], "--", 2) == 0) return cmd_quantize(argc, argv, 1); /* qcalib --method gptq ... */
    fprintf(stderr, "qcalib: unknown command '%s' (see 'qcalib --help')\n", argv[1]);
    return EXIT_USAGE;
}
