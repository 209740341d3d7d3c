#!/bin/sh
# e2e/stats_imatrix.sh — `qcalib stats --imatrix-out FILE` from the command line (the file's contents
# against the statistics: unit/io_imatrix.c): FILE.gguf and FILE.dat written beside the stats
# folder; usage errors (exit 2, nothing written, no folder either) for an --imatrix-out without
# activations to measure, an existing FILE without --force, a FILE in a folder that does not
# exist, and a FILE that is one of the inputs even with --force.
. tests/lib.sh
head -c 20000 "$CAL" >"$T/cal.txt"
R="--model $M --calib $T/cal.txt --nsamples 4 --seqlen 64 --threads 1 --quiet"

$Q stats $R --out "$T/st" --imatrix-out "$T/m.imatrix.gguf" >/dev/null 2>"$T/err" || bad "stats --imatrix-out x.gguf: $(cat "$T/err")"
check "x.gguf: a GGUF beside the stats folder" "[ -d '$T/st' ] && [ \"\$(head -c 4 '$T/m.imatrix.gguf')\" = GGUF ]"
$Q stats $R --out "$T/st" --force --imatrix-out "$T/m.imatrix" >/dev/null 2>"$T/err" || bad "stats --imatrix-out x: $(cat "$T/err")"
check "another name: the legacy .dat (35 entries first)" \
    "[ \"\$(od -An -tu4 -N4 '$T/m.imatrix' | tr -d ' ')\" = 35 ]"

expect_fail "--imatrix-out without --calib" 2 "--imatrix-out needs activations" \
    $Q stats --model "$M" --out "$T/st2" --imatrix-out "$T/x.gguf"
check "no --calib: nothing written" "[ ! -e '$T/st2' ] && [ ! -e '$T/x.gguf' ]"
expect_fail "--imatrix-out onto an existing file" 2 "$T/m.imatrix.gguf already exists (pass --force" \
    $Q stats $R --out "$T/st3" --imatrix-out "$T/m.imatrix.gguf"
check "existing file: no stats folder" "[ ! -e '$T/st3' ]"
expect_fail "--imatrix-out in a missing folder" 2 "$T/nope/x.gguf: the folder $T/nope does not exist" \
    $Q stats $R --out "$T/st4" --imatrix-out "$T/nope/x.gguf"
check "missing folder: no stats folder" "[ ! -e '$T/st4' ]"
expect_fail "--imatrix-out onto an input, even with --force" 2 "cal.txt" \
    $Q stats $R --out "$T/st5" --force --imatrix-out "$T/cal.txt"
check "input kept" "[ \"\$(head -c 20000 '$CAL' | cmp - '$T/cal.txt' && echo same)\" = same ]"
finish imatrix
