#!/bin/sh
# make bench: runs every benchmark and prints its table; figures also go to bench/last.json.
# Benchmarks measure and report; they never fail on a figure.
set -eu
BUILD=${1:-build}
"$BUILD/bench/bench_forward" bench/last.json
echo "(figures written to bench/last.json)"
