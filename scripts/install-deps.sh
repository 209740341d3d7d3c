#!/bin/sh
# Installs the Debian packages qcalib builds against, if any is missing: as root directly,
# otherwise through sudo; where neither works, says exactly what to install. oneDNN
# (libdnnl-dev) does the matrix products, LAPACKE (on OpenBLAS) the Cholesky factorizations.
# gnuplot-nox renders the error plots (scripts/plot-quant-log), which the tests render too. Open MPI
# (libopenmpi-dev openmpi-bin) runs one calibration over several processes or machines (mpirun;
# without it the build makes the one-process binary). PCRE2 runs the split regexes
# of Hugging Face tokenizer.json files, utf8proc their Unicode normalization.
# `install-deps.sh fuzz` adds what `make fuzz` builds with: clang, its libFuzzer and sanitizer
# runtimes (libclang-rt-dev) and its OpenMP runtime (libomp-dev). The tests also run Node.js
# (the reference tokenizers from npm, the GGUF reader, a tokenizer.json writer): nodejs and npm
# are installed when the commands are missing (not by package name: a Node.js from elsewhere,
# e.g. NodeSource's, which bundles npm, is kept).
set -u
PKGS="libdnnl-dev libopenblas-dev libopenmpi-dev openmpi-bin liblapacke-dev zlib1g-dev libcjson-dev libpcre2-dev libutf8proc-dev gnuplot-nox"
[ "${1:-}" = fuzz ] && PKGS="$PKGS clang libclang-rt-dev libomp-dev"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
else
    # Not Debian: trust the compiler to find the headers.
    printf '#include <oneapi/dnnl/dnnl.h>\n#include <cblas.h>\n#include <lapacke.h>\n#include <zlib.h>\n#include <cjson/cJSON.h>\n#define PCRE2_CODE_UNIT_WIDTH 8\n#include <pcre2.h>\n#include <utf8proc.h>\nint main(void){return 0;}\n' \
        | ${CC:-cc} -x c - -o /dev/null -ldnnl -lopenblas -llapacke -lz -lcjson -lpcre2-8 -lutf8proc 2>/dev/null && exit 0
    echo "qcalib needs oneDNN, OpenBLAS, LAPACKE, zlib, cJSON, PCRE2 and utf8proc development files (Debian: $PKGS)." >&2
    exit 1
fi
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
echo "qcalib: installing missing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"
else
    echo "qcalib: cannot install as a normal user without sudo. Please run:" >&2
    echo "    sudo apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $missing ||
    { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends $missing; } || {
    echo "qcalib: installing$missing failed; install them with apt-get and retry." >&2
    exit 1
}
