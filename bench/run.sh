#!/bin/sh
# make bench: runs every benchmark and prints its table; the figures also go to
# bench/last.json (one flat JSON object merged from each benchmark's own).
# Benchmarks measure and report; they never fail on a figure.
set -eu
BUILD=${1:-build}
# bench_e2e runs qcalib itself and keeps the SYNTHETIC model it makes in BENCH_DATA
export QCALIB="$BUILD/qcalib" BENCH_DATA="${BENCH_DATA:-$BUILD/bench-data}"
# bench_e2e's before/after ratio measured here when main before the speed work is built
# (`make bench-before`); otherwise it is against a figure saved on another machine
[ -x "$BUILD/before/build/qcalib" ] && export BENCH_BEFORE="${BENCH_BEFORE:-$BUILD/before/build/qcalib}"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: ${cpu:-unknown CPU}, $(nproc) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for b in "$BUILD"/bench/bench_*; do
    case "$b" in *.o|*.d) continue ;; esac
    echo "== $(basename "$b")"
    "$b" "$tmp/$(basename "$b").json"
    echo
done
# merge the flat objects: strip braces, join with commas
printf '{"machine_cpu": "%s", "machine_cores": %s}\n' "$cpu" "$(nproc)" >"$tmp/machine.json"
{ printf '{'; first=1
  for j in "$tmp"/*.json; do
      [ -s "$j" ] || continue
      body=$(tr -d '{}\n' <"$j")
      [ $first -eq 1 ] || printf ', '
      printf '%s' "$body"; first=0
  done; printf '}\n'; } >bench/last.json
echo "(figures written to bench/last.json)"
