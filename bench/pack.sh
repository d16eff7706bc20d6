#!/usr/bin/env bash
# Benchmark `pack` (plumbing/examples/pack.rs) against the machine's own tools
# on the same tree: `tar -cf - | xz -T2 -6`, `tar -cf - | gzip -6` and plain
# `tar -cf -`. Run by hand, not in CI (DESIGN §10).
#
#   bench/pack.sh [SRC_DIR] [SIZE_MB] [RUNS]
#
# Copies about SIZE_MB (default 100) of files (not hard-linked ones, in path
# order, skipping those that would overflow the budget) from SRC_DIR (default
# /usr/lib/x86_64-linux-gnu) into a temp layout dir, runs ours and the
# baseline interleaved RUNS times (default 3) after one warm-up, and prints
# the median wall time of each, ratio = ours / baseline (below 1 is faster),
# and the output sizes. Ours also fsyncs its output; the baselines do not.
# Then it times `xz -T2 -6` alone on ours' uncompressed tar, which separates
# the encoder from the entry order (sorted order compresses better and, on
# this data, more slowly than tar's directory order). Everything it made is
# removed on exit. The machine is shared: compare user times too.
set -euo pipefail

SRC=${1:-/usr/lib/x86_64-linux-gnu}
SIZE_MB=${2:-100}
RUNS=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/acido-bench-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "building the driver..." >&2
(cd "$ROOT" && cargo build --release -q -p acido-plumbing --example pack)
PACK="$ROOT/target/release/examples/pack"

# The tree: whole files, in path order, until SIZE_MB is reached.
layout="$work/layout"
mkdir -p "$layout/rootfs"
printf '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/bench"}' >"$layout/manifest"
(cd "$SRC" && find . -type f -links 1 -size -40M -printf '%s %p\n' | sort -k2 |
    awk -v max=$((SIZE_MB * 1024 * 1024)) '{ if (total + $1 > max) next; total += $1; print substr($0, index($0, " ") + 1) }' \
    >"$work/list")
tar -C "$SRC" -cf - -T "$work/list" | tar -C "$layout/rootfs" -xf -
echo "tree: $(du -sh --apparent-size "$layout/rootfs" | cut -f1) in $(wc -l <"$work/list") files from $SRC" >&2

now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ours_CMD and base_CMD for one compression; each writes $work/out.*
run_ours() { "$PACK" "$layout" "$work/ours.aci" "$1" >/dev/null; }
run_base() {
    case $1 in
    xz) tar -C "$layout" -cf - manifest rootfs | xz -T2 -6 >"$work/base.aci" ;;
    gzip) tar -C "$layout" -cf - manifest rootfs | gzip -6 >"$work/base.aci" ;;
    none) tar -C "$layout" -cf - manifest rootfs >"$work/base.aci" ;;
    esac
}
time_it() {
    local t0 t1
    t0=$(now)
    "$@"
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}

printf '%-6s %10s %10s %7s %12s %12s\n' compr ours_s base_s ratio ours_bytes base_bytes
for c in xz gzip none; do
    run_ours "$c"
    run_base "$c" # warm-up, also warms the page cache
    : >"$work/t.ours"
    : >"$work/t.base"
    for ((i = 0; i < RUNS; i++)); do
        # Interleaved, alternating who goes first, so drift hits both.
        if ((i % 2 == 0)); then
            time_it run_ours "$c" >>"$work/t.ours"
            time_it run_base "$c" >>"$work/t.base"
        else
            time_it run_base "$c" >>"$work/t.base"
            time_it run_ours "$c" >>"$work/t.ours"
        fi
    done
    mo=$(median <"$work/t.ours")
    mb=$(median <"$work/t.base")
    printf '%-6s %10.3f %10.3f %7.2f %12d %12d\n' "$c" "$mo" "$mb" "$(echo "$mo / $mb" | bc -l)" \
        "$(stat -c %s "$work/ours.aci")" "$(stat -c %s "$work/base.aci")"
done

# The same encoder on the same bytes: our tar through the xz tool.
"$PACK" "$layout" "$work/ours.tar" none >/dev/null
"$PACK" "$layout" "$work/ours.aci" xz >/dev/null
: >"$work/t.ours"
: >"$work/t.base"
for ((i = 0; i < RUNS; i++)); do
    time_it run_ours xz >>"$work/t.ours"
    time_it sh -c 'xz -T2 -6 -c "$1" >"$2"' sh "$work/ours.tar" "$work/xz-same.aci" >>"$work/t.base"
done
mo=$(median <"$work/t.ours")
mb=$(median <"$work/t.base")
printf '%-6s %10.3f %10.3f %7.2f %12d %12d  (xz tool on our tar; identical bytes: %s)\n' xz-same "$mo" "$mb" \
    "$(echo "$mo / $mb" | bc -l)" "$(stat -c %s "$work/ours.aci")" "$(stat -c %s "$work/xz-same.aci")" \
    "$(cmp -s "$work/ours.aci" "$work/xz-same.aci" && echo yes || echo no)"
