# qcalib — build, test, demo, bench.
#   make          build build/qcalib (installs missing Debian packages first)
#   make test     build and run every test (unit, numerical, bad-input, end-to-end)
#   make asan     the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo     evaluate / quantize the real model in ../shared and print perplexity
#   make bench    benchmarks: measured figures and ratios, never assertions
#   make fuzz     every libFuzzer target (fuzz/) for FUZZ_SECONDS each, clang + ASan + UBSan
#   make bench-7b the SYNTHETIC 7b model (13.5 GB on disk) quantized end to end; not in CI
#   make bench-7b-blocks  its first 2 blocks at 128 × 2048 tokens: the 7B projection's rates; not in CI
#   make bench-before     builds main at 9ec0578 (before the speed work) into build/before, so that
#                         make bench measures the before/after ratio on this machine, in one run
SHARED  ?= ../shared
BUILD   ?= build
ifeq ($(origin CC),default)
CC      := gcc
endif
OPT     ?= -O3
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -fopenmp -D_GNU_SOURCE -I. $(SAN)
LDLIBS  += -ldnnl -lopenblas -llapacke -lcjson -lz -lpcre2-8 -lutf8proc -lm
# glibc's vector exp and expf (base.h), on x86-64 where the headers declare them for loops
ifeq ($(shell uname -m),x86_64)
LDLIBS  += -lmvec
endif
LDFLAGS += -fopenmp $(SAN)

# MPI (docs/distributed.md): with mpicc on the PATH (Debian libopenmpi-dev) dist/mpi.c is built
# and the binary runs under mpirun; without it (or with MPI=off) dist/single.c, one process.
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),on,off)
ifeq ($(MPI),on)
DIST_UNUSED := dist/single.c
MPI_CFLAGS := $(shell mpicc --showme:compile)
LDLIBS += $(shell mpicc --showme:link)
else
DIST_UNUSED := dist/mpi.c
endif

# Library folders, bottom of the dependency chain first (DESIGN.md).
MODULES := base dist datasets quant io model gptq awq smooth calib eval job
LIB_SRC := $(filter-out $(DIST_UNUSED),$(foreach m,$(MODULES),$(wildcard $(m)/*.c)))
CLI_SRC := $(wildcard cli/*.c)
TEST_KINDS := unit vectors badinput e2e
TEST_SRC := $(foreach k,$(TEST_KINDS),$(wildcard tests/$(k)/*.c))
TOOL_SRC := $(wildcard tests/tools/*.c)
BENCH_SRC := $(wildcard bench/*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:%.c=$(BUILD)/%)
TOOL_BIN := $(TOOL_SRC:%.c=$(BUILD)/%)
BENCH_BIN := $(BENCH_SRC:%.c=$(BUILD)/%)
DEPS_OK := $(BUILD)/.deps-ok

.PHONY: all test asan demo bench bench-7b bench-7b-blocks bench-before deps clean fuzz fuzz-run
all: $(BUILD)/qcalib
ifneq ($(MPI),on)
$(info qcalib: MPI is off (MPI=off, or no mpicc found): the binary runs as one process; install libopenmpi-dev for mpirun)
endif

deps: $(DEPS_OK)
$(DEPS_OK): scripts/install-deps.sh
	@scripts/install-deps.sh
	@mkdir -p $(@D) && touch $@

$(BUILD)/dist/mpi.o: CFLAGS += $(MPI_CFLAGS)
$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libqcalib.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/qcalib: $(CLI_OBJ) $(BUILD)/libqcalib.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libqcalib.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libqcalib.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

test: $(BUILD)/qcalib $(TEST_BIN) $(TOOL_BIN)
	@QCALIB_SHARED=$(SHARED) tests/run.sh $(BUILD)

# Sanitizers: a separate build tree, leak checking on, any report fails the run.
asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

demo: $(BUILD)/qcalib
	@QCALIB_SHARED=$(SHARED) scripts/demo.sh $(BUILD)/qcalib

bench: $(BUILD)/qcalib $(BENCH_BIN)
	@QCALIB_SHARED=$(SHARED) bench/run.sh $(BUILD)

bench-7b: $(BUILD)/qcalib $(BUILD)/bench/bench_e2e
	@QCALIB=$(BUILD)/qcalib QCALIB_SHARED=$(SHARED) BENCH_DATA=$${BENCH_DATA:-$(BUILD)/bench-data} \
	    $(BUILD)/bench/bench_e2e bench/last-7b.json 7b 16

# The 7B job's own shapes and tokens (128 × 2048) on the first 2 of its 32 blocks, every core:
# the per-block rates a projection to the whole 7B job needs. About 18 GB of memory and, at
# f32 on 2 cores, half an hour. BENCH_COMPUTE=bf16 for bf16 products.
bench-7b-blocks: $(BUILD)/qcalib $(BUILD)/bench/bench_e2e
	@QCALIB=$(BUILD)/qcalib QCALIB_SHARED=$(SHARED) BENCH_DATA=$${BENCH_DATA:-$(BUILD)/bench-data} \
	    BENCH_THREADS=$${BENCH_THREADS:-$$(nproc)} $(BUILD)/bench/bench_e2e bench/last-7b-blocks.json 7b 128 2048 2

# The same job before the speed work, for bench_e2e's ratio (BENCH_BEFORE; bench/run.sh passes it
# when built): this repository's own commit 9ec0578, from git's history, built in its own tree.
BEFORE_COMMIT := 9ec0578
bench-before: $(BUILD)/before/build/qcalib
$(BUILD)/before/build/qcalib:
	@rm -rf $(BUILD)/before && mkdir -p $(BUILD)/before
	git archive $(BEFORE_COMMIT) | tar -x -C $(BUILD)/before
	$(MAKE) -C $(BUILD)/before build/qcalib

# Fuzzing: a separate clang build tree; the library instrumented for libFuzzer's coverage,
# each fuzz/fuzz_*.c linked with libFuzzer's main (fuzz/run.sh builds the seeds and runs them).
# At -O1 clang does not vectorize, and says so of every `omp simd` loop: not an error here.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst %.c,%,$(wildcard fuzz/fuzz_*.c))
fuzz:
	@scripts/install-deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-run BUILD=build-fuzz CC=clang OPT="-O1 -Wno-pass-failed" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -fsanitize=fuzzer-no-link"

fuzz-run: $(FUZZ_TARGETS:%=$(BUILD)/%) $(BUILD)/fuzz/seeds
	@QCALIB_SHARED=$(SHARED) fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(notdir $(FUZZ_TARGETS))

$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/common.o $(BUILD)/libqcalib.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer $^ $(LDLIBS) -o $@

$(BUILD)/fuzz/seeds: $(BUILD)/fuzz/seeds.o $(BUILD)/libqcalib.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

clean:
	rm -rf build build-asan build-fuzz build-nompi

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d) $(TOOL_BIN:=.d) $(BENCH_BIN:=.d) \
         $(wildcard $(BUILD)/fuzz/*.d)
.SECONDARY:
