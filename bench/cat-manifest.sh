#!/usr/bin/env bash
# cat-manifest reads one slice of a stored image through its entry index
# and mmap, so its time must not grow with the image's size (DESIGN §2).
# Run by hand, not in CI:   bash bench/cat-manifest.sh [RUNS]
#
# Imports a ~5 MB and a ~500 MB image (one large file each, plus a few small
# ones) and times interleaved `acido cat-manifest` runs on both, printing
# the medians and the ratio large ÷ small (target: about 1.0).
set -euo pipefail

runs=${1:-21}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/acido-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release --manifest-path "$root/Cargo.toml"
acido="$root/target/release/acido"
export ACIDO_STORE=$work/store

make_image() { # name size_mb
    local dir=$work/$1
    mkdir -p "$dir/rootfs/etc"
    printf '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/%s"}' "$1" >"$dir/manifest"
    head -c "$(($2 << 20))" /dev/urandom >"$dir/rootfs/data"
    for i in $(seq 100); do echo "$i" >"$dir/rootfs/etc/f$i"; done
    "$acido" pack-aci --compression none -o "$work/$1.aci" "$dir" >/dev/null
    "$acido" import "$work/$1.aci" >/dev/null
    rm -rf "$dir" "$work/$1.aci"
}
make_image small 5
make_image large 500
du -sh "$ACIDO_STORE/blobs"

now() { date +%s.%N; }
time_it() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# Drop the blobs from the page cache where we may, so a large blob that was
# read in full would show; cat-manifest must not need it.
sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
: >"$work/small"; : >"$work/large"
for _ in $(seq "$runs"); do
    time_it "$acido" cat-manifest example.com/small >>"$work/small"
    time_it "$acido" cat-manifest example.com/large >>"$work/large"
done
small=$(median <"$work/small"); large=$(median <"$work/large")
printf 'cat-manifest 5 MB %.4fs  500 MB %.4fs  ratio %.2f (target ~1.0)\n' "$small" "$large" "$(echo "$large / $small" | bc -l)"
