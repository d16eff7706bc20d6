#!/usr/bin/env bash
# Rendering speed and memory against GNU tar (DESIGN §10, issue 3).
# Run by hand, not in CI:   bash bench/render.sh [RUNS] [SIZE_MB]
#
# Generates (once, in the bench cache) a ~SIZE_MB single-image rootfs shaped
# like a distro tree: many small files in nested directories, a few large
# ones, symlinks and hard links. Packs it as an uncompressed ACI, imports it
# into a private store, then times interleaved runs of
#   acido render-tree IMAGE OUT     (blob verification on, the default)
#   tar -xf BLOB -C OUT             (the same uncompressed tar)
#   umoci unpack OCI OUT            (the same tree as an OCI image, when
#                                    Debian's umoci is installed)
# and prints the median times, their ratios (targets <= 1.5 against tar,
# <= 0.2 against umoci) and acido's peak RSS from /usr/bin/time -v
# (target < 64 MiB). Each run writes a new directory; all are removed at
# the end. Timing starts once the disk has settled (settle_disk in lib.sh).
#
# Where the file system is mounted with online discard (this machine's root
# ext4: see /proc/mounts), deleting trees slows file creation for minutes
# and the runs need ~16 GiB; give them an ext4 of their own, as root:
#   truncate -s 20G /work/bench-fs.img && mkfs.ext4 -q /work/bench-fs.img
#   mount -o loop /work/bench-fs.img /mnt/acido-bench
#   ACIDO_BENCH_CACHE=/mnt/acido-bench bash bench/render.sh 5 200
set -euo pipefail

runs=${1:-5}
size_mb=${2:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
cache=${ACIDO_BENCH_CACHE:-$root/target/bench-cache}
tree="$cache/render-tree-${size_mb}m"
work=$(mktemp -d "$cache/run.XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache/run.XXXXXX"; })
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release --manifest-path "$root/Cargo.toml"
acido="$root/target/release/acido"

bench_tree "$tree" "$size_mb"

"$acido" pack-aci --compression none -o "$work/image.aci" "$tree" >"$work/id"
id=$(cat "$work/id")
"$acido" --store "$work/store" import "$work/image.aci" >/dev/null
blob="$work/store/blobs/sha512/${id:7:2}/${id:7}"
files=$(tar -tf "$blob" | wc -l)
echo "image: $id"
echo "tar: $(($(stat -c %s "$blob") >> 20)) MiB, $files entries; $runs interleaved runs"

# The same tree as an OCI image for umoci (Debian's umoci), if installed.
have_umoci=false
if command -v umoci >/dev/null; then
    have_umoci=true
    umoci init --layout "$work/oci" >/dev/null
    umoci new --image "$work/oci:bench" >/dev/null
    umoci unpack --image "$work/oci:bench" "$work/bundle" >/dev/null
    cp -a "$tree/rootfs/." "$work/bundle/rootfs/"
    umoci repack --image "$work/oci:bench" "$work/bundle" >/dev/null
    rm -rf "$work/bundle"
fi

now() { date +%s%N; }
a=() t=() u=()
# Every run writes to a new directory and nothing is deleted until all
# runs are done: this ext4 slows file creation for minutes after a large
# tree is deleted, which would penalise whichever command runs next.
settle_disk
for i in $(seq "$runs"); do
    sync
    s=$(now); "$acido" --store "$work/store" render-tree "$id" "$work/out-a$i"; e=$(now)
    a+=($(( (e - s) / 1000000 )))
    sync
    mkdir "$work/out-t$i"
    s=$(now); tar -xf "$blob" -C "$work/out-t$i"; e=$(now)
    t+=($(( (e - s) / 1000000 )))
    if $have_umoci; then
        sync
        s=$(now); umoci unpack --image "$work/oci:bench" "$work/out-u$i" >/dev/null; e=$(now)
        u+=($(( (e - s) / 1000000 )))
    fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ma=$(median "${a[@]}") mt=$(median "${t[@]}")
/usr/bin/time -v -o "$work/time-v" "$acido" --store "$work/store" render-tree "$id" "$work/out-rss"
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time-v")
echo "render-tree: ${a[*]} ms (median $ma)"
echo "tar -xf:     ${t[*]} ms (median $mt)"
awk -v a="$ma" -v t="$mt" 'BEGIN {printf "ratio render-tree / tar -xf: %.2f (target <= 1.5)\n", a / t}'
echo "acido peak RSS: $((rss / 1024)) MiB (target < 64 MiB)"
if $have_umoci; then
    mu=$(median "${u[@]}")
    echo "umoci unpack: ${u[*]} ms (median $mu)"
    awk -v a="$ma" -v u="$mu" 'BEGIN {printf "ratio render-tree / umoci unpack: %.2f (target <= 0.2)\n", a / u}'
else
    echo "umoci unpack: skipped (apt-get install umoci to compare)"
fi
