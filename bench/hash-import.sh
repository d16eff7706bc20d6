#!/usr/bin/env bash
# Hashing and import speed against the machine's own tools (DESIGN §10).
# Run by hand, not in CI:   bash bench/hash-import.sh [RUNS] [SIZE_MB]
#
# Builds a ~SIZE_MB tar of /usr files as an ACI (manifest + rootfs/), an xz
# copy of it, then times interleaved runs of
#   hash:    `acido hash-object ACI.tar`       vs  `sha512sum ACI.tar`
#   import:  `acido import ACI.tar.xz`         vs  `xz -dc ACI.tar.xz | sha512sum`
# and prints the median times and their ratios (targets: hash <= 1.1,
# import <= 1.2). The import parses the tar, checks layout and manifest and
# writes the blob, its index and record into a fresh store each run (the
# store is emptied outside the timed part).
set -euo pipefail

runs=${1:-5}
size_mb=${2:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/acido-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release --manifest-path "$root/Cargo.toml"
acido="$root/target/release/acido"

# The layout: regular files from /usr until SIZE_MB, under rootfs/.
mkdir -p "$work/layout/rootfs"
printf '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/bench"}' >"$work/layout/manifest"
# Regular files from /usr, in find order, until SIZE_MB.
find /usr -xdev -type f -size -20M -readable -printf '%s\t%p\0' 2>/dev/null |
    python3 -c '
import sys
limit, total, out = int(sys.argv[1]) << 20, 0, sys.stdout.buffer
for rec in sys.stdin.buffer.read().split(b"\0"):
    if not rec or total >= limit:
        continue
    size, path = rec.split(b"\t", 1)
    total += int(size)
    out.write(path.lstrip(b"/") + b"\0")
' "$size_mb" >"$work/chosen"
tar -C / --null -T "$work/chosen" -cf - | tar -C "$work/layout/rootfs" -xf -
tar -C "$work/layout" -cf "$work/image.aci" manifest rootfs
xz -T2 -3 -k -c "$work/image.aci" >"$work/image.aci.xz"
printf 'tar %d MiB, xz %d MiB, %d runs\n' \
    $(($(stat -c %s "$work/image.aci") >> 20)) $(($(stat -c %s "$work/image.aci.xz") >> 20)) "$runs"

# Sanity: same id both ways.
ours=$("$acido" hash-object "$work/image.aci")
theirs="sha512-$(sha512sum "$work/image.aci" | cut -d' ' -f1)"
[ "$ours" = "$theirs" ] || { echo "id mismatch: $ours vs $theirs" >&2; exit 1; }
[ "$("$acido" --store "$work/store" import "$work/image.aci.xz")" = "$ours" ] || { echo "import id mismatch" >&2; exit 1; }

now() { date +%s.%N; }
time_it() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

: >"$work/hash.ours" ; : >"$work/hash.base" ; : >"$work/import.ours" ; : >"$work/import.base"
cat "$work/image.aci" "$work/image.aci.xz" >/dev/null # warm the page cache
for _ in $(seq "$runs"); do
    time_it "$acido" hash-object "$work/image.aci" >>"$work/hash.ours"
    time_it sha512sum "$work/image.aci" >>"$work/hash.base"
    rm -rf "$work/store"
    time_it "$acido" --store "$work/store" import "$work/image.aci.xz" >>"$work/import.ours"
    time_it bash -c "xz -dc '$work/image.aci.xz' | sha512sum" >>"$work/import.base"
done

report() {
    local name=$1 ours base
    ours=$(median <"$work/$name.ours")
    base=$(median <"$work/$name.base")
    printf '%-8s ours %6.3fs  baseline %6.3fs  ratio %.2f\n' "$name" "$ours" "$base" "$(echo "$ours / $base" | bc -l)"
}
report hash
report import
