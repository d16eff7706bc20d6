#!/usr/bin/env bash
# Acidofile step cache (issue 14). Run by hand, not in CI (needs root for
# RUN, and Debian's busybox-static):
#   bash bench/acidofile.sh [RUNS] [DATA_MB]
#
# Stores a busybox base image in a private store and builds this Acidofile
# with `acido build -f --import`:
#   FROM example.com/busybox:1.0
#   RUN  (three steps, each writing DATA_MB/3 of random data as ~16 KiB
#         files in nested directories, like a package install)
#   COPY app.txt /srv/app.txt
# Interleaved runs, each of
#   first     the cache emptied first (gc --cache, the built image removed)
#   edited    after changing only app.txt: the RUNs come from the cache
#   unchanged nothing changed: every step and the image come from the cache
# print the medians and the ratios edited / first (target <= 0.1) and
# unchanged / first (target <= 0.05). The unchanged rebuild must give the
# edited build's id (checked). The RUN steps write random data, so a build
# from nothing gives another image each time; that the image does not
# depend on the cache is tested with deterministic steps in
# tests/step_cache.rs.
#
# Builds make and delete trees of DATA_MB; where the file system is
# mounted with online discard (this machine's root ext4), that slows file
# creation for minutes afterwards, so give the runs an ext4 of their own
# (the store and $TMPDIR, where builds run their steps, go there), as root:
#   truncate -s 4G target/bench-fs.img && mkfs.ext4 -q target/bench-fs.img
#   mkdir -p /mnt/acido-bench && mount -o loop target/bench-fs.img /mnt/acido-bench
#   ACIDO_BENCH_CACHE=/mnt/acido-bench bash bench/acidofile.sh 5 50
#
# ACIDO_BIN=path uses that binary instead of building the release one.
# ACIDO_BENCH_SPLIT=1 ends with one more edited rebuild whose progress
# lines are printed with the milliseconds since it started (where the
# start, the COPY step and the final image spend their time).
set -euo pipefail

runs=${1:-5}
data_mb=${2:-50}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
cache=${ACIDO_BENCH_CACHE:-$root/target/bench-cache}
mkdir -p "$cache"
work=$(mktemp -d "$cache/acidofile-run.XXXXXX")
trap 'rm -rf "$work"' EXIT

[ "$(id -u)" = 0 ] || { echo "bench/acidofile.sh: RUN steps need root" >&2; exit 1; }
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "bench/acidofile.sh: needs busybox (apt-get install busybox-static)" >&2; exit 1; }

if [ -n "${ACIDO_BIN:-}" ]; then
    acido=$ACIDO_BIN
else
    cargo build --quiet --release --manifest-path "$root/Cargo.toml"
    acido="$root/target/release/acido"
fi
export ACIDO_STORE="$work/store"
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"

# The base: busybox, its applets, and the mount points `run` uses.
base="$work/base"
mkdir -p "$base/rootfs/bin" "$base/rootfs/etc" "$base/rootfs/proc" "$base/rootfs/dev" \
    "$base/rootfs/tmp" "$base/rootfs/srv" "$base/rootfs/usr"
cp "$busybox" "$base/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$base/rootfs/bin/$applet"
done
: >"$base/rootfs/etc/resolv.conf"
printf '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/busybox","labels":[{"name":"version","value":"1.0"}]}' >"$base/manifest"
"$acido" pack-aci --compression none -o "$work/base.aci" "$base" >/dev/null
"$acido" import "$work/base.aci" >/dev/null

files=$((data_mb * 1024 / 16 / 3))
step() { # N: a RUN writing $files files of 16 KiB under /usr/pkgN
    printf 'RUN ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do d=/usr/pkg%d/d$((i %% 64)); mkdir -p $d; dd if=/dev/urandom of=$d/f$i bs=16k count=1 2>/dev/null; i=$((i + 1)); done"]\n' \
        "$files" "$1"
}
{
    echo "FROM example.com/busybox:1.0"
    step 1
    step 2
    step 3
    echo "COPY app.txt /srv/app.txt"
    echo "NAME example.com/app"
} >"$work/Acidofile"
echo "version 0" >"$work/app.txt"

now() { date +%s%N; }
ms() { echo $(((($2 - $1) / 1000000))); }
build() { "$acido" -q build -f "$work/Acidofile" --import; }

echo "base: busybox $("$busybox" | head -1 | awk '{print $2}'); RUN steps: 3 x $files files of 16 KiB; $runs interleaved runs"
first=() edited=() unchanged=()
settle_disk
for i in $(seq "$runs"); do
    # A cold cache: no entries, no built image.
    "$acido" gc --cache >/dev/null
    "$acido" images --no-abbrev | awk '$2 == "example.com/app" {print $1}' | xargs -r "$acido" rm >/dev/null
    "$acido" gc --cache >/dev/null
    sync
    s=$(now); id_first=$(build); e=$(now)
    first+=($(ms "$s" "$e"))

    echo "version $i" >"$work/app.txt"
    sync
    s=$(now); id_edited=$(build); e=$(now)
    edited+=($(ms "$s" "$e"))

    sync
    s=$(now); id_unchanged=$(build); e=$(now)
    unchanged+=($(ms "$s" "$e"))
    [ "$id_unchanged" = "$id_edited" ] || { echo "bench/acidofile.sh: an unchanged rebuild gave another id" >&2; exit 1; }
    echo "round $i: first ${first[-1]} ms, edited ${edited[-1]} ms, unchanged ${unchanged[-1]} ms"
    echo "version 0" >"$work/app.txt"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
mf=$(median "${first[@]}") me=$(median "${edited[@]}") mu=$(median "${unchanged[@]}")
echo "median: first build $mf ms, rebuild after editing the copied file $me ms, unchanged rebuild $mu ms"
awk -v f="$mf" -v e="$me" -v u="$mu" 'BEGIN {
    printf "edited / first    = %.3f (target <= 0.1)\n", e / f
    printf "unchanged / first = %.3f (target <= 0.05)\n", u / f
}'

if [ -n "${ACIDO_BENCH_SPLIT:-}" ]; then
    echo "version split" >"$work/app.txt"
    sync
    echo "split of an edited rebuild (ms since start, progress line):"
    s=$(now)
    "$acido" build -f "$work/Acidofile" --import 2>&1 >/dev/null | while IFS= read -r line; do
        echo "  $(($(($(now) - s)) / 1000000)) $line"
    done
    echo "  $(($(($(now) - s)) / 1000000)) (end)"
fi
