/* fuzz.h — what qcalib's libFuzzer targets share (fuzz/fuzz_*.c, one parser each; built and
 * run by `make fuzz`, see fuzz/run.sh). Each target writes the fuzzer's bytes to a file in a
 * private scratch folder and opens it with the real reader, by path, exactly as the CLI does;
 * whatever opens is then read in full, so that a header the reader accepted but mis-checked
 * shows up as an out-of-bounds read under AddressSanitizer. */
#ifndef QC_FUZZ_H
#define QC_FUZZ_H

#include "io/io.h"

#include <stddef.h>
#include <stdint.h>

/* A private scratch folder for this fuzzing process (made once, under $TMPDIR). */
const char *fuzz_dir(void);

/* Writes data to fuzz_dir()/name (replacing it) and returns that path (static storage:
 * valid until the next call). Aborts if the scratch folder cannot be written. */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);

/* A fixture folder built by fuzz/seeds (the folder $QCALIB_FUZZ_FIXTURES, default
 * build-fuzz/fixtures) joined with name; aborts, saying how to build it, when missing. */
const char *fuzz_fixture(const char *name);

/* Links every file of fixture folder `fixture` except `skip` into fuzz_dir()/sub (made
 * once), so that a target can write its own `skip` beside real files; returns that folder. */
const char *fuzz_dir_with_fixture(const char *sub, const char *fixture, const char *skip);

/* Reads every weight of an opened checkpoint (and every row of the global matrices one at a
 * time); returns the number of weights that read without error. */
int fuzz_read_checkpoint(const qc_checkpoint *ck);

/* Opens path as a checkpoint and reads it all; closes it. */
void fuzz_checkpoint(const char *path);

/* Uses an opened tokenizer as qcalib does: encodes text (with BOS and EOS) and decodes it,
 * then reads every piece (ids −1 and vocab_size too: refused, not read) and token type. */
void fuzz_tokenizer_use(const qc_tokenizer *t, const char *text, size_t len);

#endif
