#!/bin/sh
# make bench: runs every benchmark and prints its table; the figures also go to
# bench/last.json (one flat JSON object merged from each benchmark's own).
# Benchmarks measure and report; they never fail on a figure.
set -eu
BUILD=${1:-build}
# bench_e2e runs qcalib itself and keeps the SYNTHETIC model it makes in BENCH_DATA
export QCALIB="$BUILD/qcalib" BENCH_DATA="${BENCH_DATA:-$BUILD/bench-data}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for b in "$BUILD"/bench/bench_*; do
    case "$b" in *.o|*.d) continue ;; esac
    echo "== $(basename "$b")"
    "$b" "$tmp/$(basename "$b").json"
    echo
done
# merge the flat objects: strip braces, join with commas
{ printf '{'; first=1
  for j in "$tmp"/*.json; do
      [ -s "$j" ] || continue
      body=$(tr -d '{}\n' <"$j")
      [ $first -eq 1 ] || printf ', '
      printf '%s' "$body"; first=0
  done; printf '}\n'; } >bench/last.json
echo "(figures written to bench/last.json)"
