#!/usr/bin/env bash
# Rendering speed and memory against GNU tar (DESIGN §10, issues 3 and 12).
# Run by hand, not in CI:   bash bench/render.sh [RUNS] [SIZE_MB]
#
# Two trees, generated once in the bench cache:
#  - many-small: a ~SIZE_MB single-image rootfs shaped like a distro tree
#    with many small files in nested directories, a few large ones,
#    symlinks and hard links (bench_tree in lib.sh);
#  - minbase: shaped like a Debian minbase root, ~200 MiB in ~6,800
#    entries with most bytes in a few large files (bench_minbase_tree).
# Each is packed as an uncompressed ACI and imported into a private store
# (so its index carries the BLAKE3 fast digest), then interleaved runs time
#   acido extract IMAGE OUT         (blob verification on, the default)
#   the same with the index as an older acido wrote it (no fast digest:
#                                    the blob is re-hashed with SHA-512)
#   tar -xf BLOB -C OUT             (the same uncompressed tar)
#   umoci unpack OCI OUT            (the same tree as an OCI image, when
#                                    Debian's umoci is installed)
# and the median times and their ratios are printed with the targets:
# extract / tar -xf <= 0.8 on many-small and <= 1.0 on minbase (issue 12),
# <= 0.2 against umoci; and acido's peak RSS from /usr/bin/time -v
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
mkdir -p "$cache"
work=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release --manifest-path "$root/Cargo.toml"
acido="$root/target/release/acido"
have_umoci=false
command -v umoci >/dev/null && have_umoci=true

now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# bench_case NAME TREE TARGET: times extract, tar -xf (and umoci) on the
# layout TREE and prints the ratios, extract / tar against TARGET.
bench_case() {
    local name=$1 tree=$2 target=$3 dir="$work/$1"
    mkdir -p "$dir"
    "$acido" pack-aci --compression none -o "$dir/image.aci" "$tree" >"$dir/id"
    local id; id=$(cat "$dir/id")
    "$acido" --store "$dir/store" import "$dir/image.aci" >/dev/null
    local blob="$dir/store/blobs/sha512/${id:7:2}/${id:7}"
    local files; files=$(tar -tf "$blob" | wc -l)
    echo "== $name: $(($(stat -c %s "$blob") >> 20)) MiB tar, $files entries, $runs interleaved runs"
    # The same tree as an OCI image for umoci (Debian's umoci), if installed.
    if $have_umoci; then
        umoci init --layout "$dir/oci" >/dev/null
        umoci new --image "$dir/oci:bench" >/dev/null
        umoci unpack --image "$dir/oci:bench" "$dir/bundle" >/dev/null
        cp -a "$tree/rootfs/." "$dir/bundle/rootfs/"
        umoci repack --image "$dir/oci:bench" "$dir/bundle" >/dev/null
        rm -rf "$dir/bundle"
    fi
    # The same store as an older acido wrote it: the index without the
    # fast digest (version 1), so extract re-hashes SHA-512 as before
    # issue 12. The blob is shared (hard link); the index is a new file.
    cp -al "$dir/store" "$dir/store-old"
    local old_index="$dir/store-old/index/sha512/${id:7:2}/${id:7}"
    python3 - "$old_index" <<'PY'
import os, sys
path = sys.argv[1]
data = open(path, "rb").read()
assert data[8:13] == b"\x02\x00\x00\x00\x01", "a version 2 index with a digest"
os.unlink(path)
open(path, "wb").write(data[:8] + b"\x01\x00\x00\x00" + data[13 + 32:])
PY
    local a=() o=() t=() u=() s e i
    # Every run writes to a new directory and nothing is deleted until all
    # runs are done: this ext4 slows file creation for minutes after a
    # large tree is deleted, which would penalise whichever command runs
    # next.
    settle_disk
    for i in $(seq "$runs"); do
        sync
        s=$(now); "$acido" --store "$dir/store" extract -q "$id" "$dir/out-a$i"; e=$(now)
        a+=($(( (e - s) / 1000000 )))
        sync
        s=$(now); "$acido" --store "$dir/store-old" extract -q "$id" "$dir/out-o$i"; e=$(now)
        o+=($(( (e - s) / 1000000 )))
        sync
        mkdir "$dir/out-t$i"
        s=$(now); tar -xf "$blob" -C "$dir/out-t$i"; e=$(now)
        t+=($(( (e - s) / 1000000 )))
        if $have_umoci; then
            sync
            s=$(now); umoci unpack --image "$dir/oci:bench" "$dir/out-u$i" >/dev/null; e=$(now)
            u+=($(( (e - s) / 1000000 )))
        fi
    done
    local ma mt rss
    ma=$(median "${a[@]}") mt=$(median "${t[@]}")
    /usr/bin/time -v -o "$dir/time-v" "$acido" --store "$dir/store" extract -q "$id" "$dir/out-rss"
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time-v")
    echo "acido extract: ${a[*]} ms (median $ma)"
    local mo; mo=$(median "${o[@]}")
    echo "extract, SHA-512 verify (old index): ${o[*]} ms (median $mo)"
    echo "tar -xf:       ${t[*]} ms (median $mt)"
    awk -v a="$ma" -v t="$mt" -v g="$target" -v n="$name" \
        'BEGIN {printf "ratio extract / tar -xf (%s): %.2f (target <= %s)\n", n, a / t, g}'
    awk -v o="$mo" -v t="$mt" -v n="$name" \
        'BEGIN {printf "ratio extract with SHA-512 verify / tar -xf (%s): %.2f (before issue 12)\n", n, o / t}'
    echo "acido peak RSS ($name): $((rss / 1024)) MiB (target < 64 MiB)"
    if $have_umoci; then
        local mu; mu=$(median "${u[@]}")
        echo "umoci unpack:  ${u[*]} ms (median $mu)"
        awk -v a="$ma" -v u="$mu" 'BEGIN {printf "ratio extract / umoci unpack: %.2f (target <= 0.2)\n", a / u}'
    else
        echo "umoci unpack: skipped (apt-get install umoci to compare)"
    fi
    # This case's trees go before the next case's runs, and the disk
    # settles again before they start.
    rm -rf "$dir"
}

bench_tree "$cache/render-tree-${size_mb}m" "$size_mb"
bench_minbase_tree "$cache/render-minbase"
bench_case many-small "$cache/render-tree-${size_mb}m" 0.8
bench_case minbase "$cache/render-minbase" 1.0
