#!/usr/bin/env bash
# Diff-build speed (DESIGN §6, issue 4). Run by hand, not in CI:
#   bash bench/build.sh [RUNS] [SIZE_MB]
#
# Generates (once, in the bench cache) a ~SIZE_MB rootfs shaped like a
# distro tree (the same generator as bench/render.sh: many small files in
# nested directories, a few large ones, symlinks and hard links), packs it
# as the base image and imports it into a private store. Then:
#   render-tree BASE R             the rendering rsync compares against
#   startbuild BASE T              the build tree, with its stat snapshot
#   a small change in T            5 files added, 5 changed, 5 removed
# and interleaved runs, all with a warm page cache, of
#   acido build --compression none T OUT          (stat snapshot used)
#   rsync -rlptgoDn --delete R/rootfs/ T/rootfs/  (dry run: the same compare)
#   acido build --compression none T OUT          (snapshot moved away)
# printing the medians and build / rsync ratios (target with the snapshot:
# <= 1.5). Both builds must give the same id.
#
# Then, as root with overlayfs, overlay build trees (issue 12): interleaved
#   acido startbuild --overlay BASE O   (the base's tree already cached)
#   tar -xf TREE.tar                    (the same tree)
# and, after the same change in an overlay tree O,
#   acido build --compression none O OUT
#   rsync -rlptgoDn --delete R/rootfs/ O/rootfs/
# with the ratios (targets <= 0.05 and <= 0.3); the overlay build's id must
# be the plain build's.
#
# When umoci is installed (Debian's umoci package), the same change is also
# packed by `umoci repack` after `umoci unpack` of the same base as an OCI
# image, against `acido build --compression gzip` (target <= 0.5), and the
# entries each new layer holds are counted. The issue asks for this on a
# debootstrap minbase tree with packages installed in a chroot; that needs
# a Debian mirror, so this script uses the generated tree.
set -euo pipefail

runs=${1:-5}
size_mb=${2:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
cache=${ACIDO_BENCH_CACHE:-$root/target/bench-cache}
tree="$cache/render-tree-${size_mb}m"
mkdir -p "$cache"
work=$(mktemp -d "$cache/build-run.XXXXXX")
# Overlay trees still mounted (an interrupted run) are unmounted first, so
# rm never walks into a mount.
cleanup() {
    local m
    for m in $(awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo 2>/dev/null); do
        umount "$m" || umount -l "$m" || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

for tool in rsync python3; do
    command -v "$tool" >/dev/null || { echo "bench/build.sh: needs $tool (apt-get install $tool)" >&2; exit 1; }
done

cargo build --quiet --release --manifest-path "$root/Cargo.toml"
acido="$root/target/release/acido"
export ACIDO_STORE="$work/store"

bench_tree "$tree" "$size_mb"

base=$("$acido" pack-aci --compression none -o "$work/base.aci" "$tree")
"$acido" import "$work/base.aci" >/dev/null
rm "$work/base.aci"
"$acido" render-tree "$base" "$work/R"
"$acido" -q startbuild "$base" "$work/T"

# The small change: the same picks every run of this script.
# The content and the times are fixed, so that the same change made in two
# trees (plain and overlay) builds the same image.
change() { # ROOTFS
    local r=$1 i
    mapfile -t files < <(cd "$r" && find usr -type f -links 1 -name 'f*' | sort | awk 'NR % 997 == 1' | head -10)
    for i in 0 1 2 3 4; do
        mkdir -p "$r/opt/new"
        # (yes in a process substitution: its SIGPIPE must not fail the script)
        head -c $((4096 * (i + 1))) < <(yes "added $i") >"$r/opt/new/added$i"
        printf 'changed %s\n' "$i" >>"$r/${files[$i]}"
        rm "$r/${files[$((i + 5))]}"
    done
    for f in "${files[@]}"; do
        [ -e "$r/$f" ] && touch -d @1700000000 "$r/$f"
        touch -d @1700000000 "$r/$(dirname "$f")"
    done
    touch -d @1700000000 "$r" "$r/opt" "$r/opt/new" "$r"/opt/new/added*
}
change "$work/T/rootfs"
sed -i 's/"name": "example.com\/bench"/"name": "example.com\/bench-next"/' "$work/T/manifest"
entries=$(find "$work/T/rootfs" | wc -l)
echo "base: $base"
echo "tree: $(du -sm "$work/T/rootfs" | cut -f1) MB, $entries paths; change: 5 added, 5 changed, 5 removed; $runs interleaved runs"

snapshot=$(find "$ACIDO_STORE/builds" -type f | head -1)
[ -n "$snapshot" ] || { echo "bench/build.sh: startbuild left no snapshot in the store" >&2; exit 1; }
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
b=() r=() n=()
for i in $(seq "$runs"); do
    s=$(now); id_snap=$("$acido" -q build --overwrite --compression none "$work/T" "$work/out.aci"); e=$(now)
    b+=($(ms "$s" "$e"))
    s=$(now); rsync -rlptgoDn --delete "$work/R/rootfs/" "$work/T/rootfs/" >/dev/null; e=$(now)
    r+=($(ms "$s" "$e"))
    mv "$snapshot" "$work/snapshot.saved"
    s=$(now); id_full=$("$acido" -q build --overwrite --compression none "$work/T" "$work/out.aci"); e=$(now)
    n+=($(ms "$s" "$e"))
    mv "$work/snapshot.saved" "$snapshot"
    [ "$id_snap" = "$id_full" ] || { echo "bench/build.sh: ids differ with and without the snapshot" >&2; exit 1; }
done
packed=$("$acido" ls-tree "$id_snap" 2>/dev/null | wc -l || true)
[ "$packed" -gt 0 ] || packed=$(tar -tf "$work/out.aci" | wc -l)
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mb=$(median "${b[@]}") mr=$(median "${r[@]}") mn=$(median "${n[@]}")
echo "new image: $id_snap ($packed entries in its tar)"
echo "build (snapshot):     ${b[*]} ms (median $mb)"
echo "rsync -n --delete:    ${r[*]} ms (median $mr)"
echo "build (no snapshot):  ${n[*]} ms (median $mn)"
awk -v b="$mb" -v r="$mr" -v n="$mn" 'BEGIN {
    printf "ratio build / rsync: %.2f with the snapshot (target <= 1.5), %.2f without\n", b / r, n / r }'

# Overlay build trees (issue 12, items 3 and 4): `startbuild --overlay` of
# the base, whose tree the store has cached, against `tar -xf` of the same
# tree (target <= 0.05); then the same change in an overlay tree, `build`
# on it against the rsync dry run (target <= 0.3). Its id must be the plain
# build's. Needs root and overlayfs.
overlay_bench() {
    if [ "$(id -u)" != 0 ] || ! grep -qw overlay /proc/filesystems; then
        echo "overlay: needs root and overlayfs, skipped"
        return 0
    fi
    # Fills the tree cache, as the first overlay start of an image does.
    "$acido" -q startbuild --overlay "$base" "$work/warm"
    "$acido" -q endbuild "$work/warm"
    tar -cf "$work/tree.tar" -C "$work/R" rootfs
    local i s e os=() ox=() ob=() orr=() id_over
    settle_disk
    for i in $(seq "$runs"); do
        s=$(now); "$acido" -q startbuild --overlay "$base" "$work/O$i"; e=$(now)
        os+=($(ms "$s" "$e"))
        mkdir "$work/x$i"
        s=$(now); tar -xf "$work/tree.tar" -C "$work/x$i"; e=$(now)
        ox+=($(ms "$s" "$e"))
        "$acido" -q endbuild "$work/O$i"
        rm -rf "$work/x$i"
    done
    "$acido" -q startbuild --overlay "$base" "$work/O"
    change "$work/O/rootfs"
    sed -i 's/"name": "example.com\/bench"/"name": "example.com\/bench-next"/' "$work/O/manifest"
    for i in $(seq "$runs"); do
        s=$(now); id_over=$("$acido" -q build --overwrite --compression none "$work/O" "$work/out-o.aci"); e=$(now)
        ob+=($(ms "$s" "$e"))
        s=$(now); rsync -rlptgoDn --delete "$work/R/rootfs/" "$work/O/rootfs/" >/dev/null; e=$(now)
        orr+=($(ms "$s" "$e"))
    done
    "$acido" -q endbuild "$work/O"
    [ "$id_over" = "$id_snap" ] || { echo "bench/build.sh: the overlay build gave $id_over, the plain one $id_snap" >&2; exit 1; }
    local mos mox mob mor
    mos=$(median "${os[@]}") mox=$(median "${ox[@]}") mob=$(median "${ob[@]}") mor=$(median "${orr[@]}")
    echo "startbuild --overlay (cached tree): ${os[*]} ms (median $mos)"
    echo "tar -xf of the tree:                ${ox[*]} ms (median $mox)"
    echo "build (overlay tree):               ${ob[*]} ms (median $mob)"
    echo "rsync -n --delete (overlay tree):   ${orr[*]} ms (median $mor)"
    awk -v a="$mos" -v t="$mox" -v b="$mob" -v r="$mor" -v p="$mb" -v pr="$mr" 'BEGIN {
        printf "ratio startbuild --overlay / tar -xf: %.3f (target <= 0.05)\n", a / t
        printf "ratio build / rsync: %.2f on the overlay tree (target <= 0.3), %.2f on the plain tree\n", b / r, p / pr }'
    echo "overlay build id = plain build id: $id_over"
}
overlay_bench

if ! command -v umoci >/dev/null; then
    echo "umoci: not installed (apt-get install umoci), comparison skipped"
    exit 0
fi
# The same base as an OCI image: one layer holding the generated tree.
oci="$work/oci"
umoci init --layout "$oci"
umoci new --image "$oci:base"
umoci unpack --image "$oci:base" "$work/ub" >/dev/null
rm -rf "$work/ub/rootfs" && cp -a "$work/R/rootfs" "$work/ub/rootfs"
umoci repack --image "$oci:base" "$work/ub" >/dev/null
rm -rf "$work/ub"
g=() u=()
for i in $(seq "$runs"); do
    # A fresh unpack each run (not timed): repack records what it packed.
    rm -rf "$work/u"
    umoci unpack --image "$oci:base" "$work/u" >/dev/null
    change "$work/u/rootfs"
    s=$(now); umoci repack --image "$oci:next$i" "$work/u" >/dev/null; e=$(now)
    u+=($(ms "$s" "$e"))
    s=$(now); "$acido" -q build --overwrite --compression gzip "$work/T" "$work/out.aci" >/dev/null; e=$(now)
    g+=($(ms "$s" "$e"))
done
layer=$(oci_last_layer "$oci" "next$runs")
ulayer=$(tar -tzf "$layer" | wc -l)
mg=$(median "${g[@]}") mu=$(median "${u[@]}")
echo "build --compression gzip: ${g[*]} ms (median $mg)"
echo "umoci repack:             ${u[*]} ms (median $mu)"
awk -v g="$mg" -v u="$mu" 'BEGIN { printf "ratio build / umoci repack: %.2f (target <= 0.5)\n", g / u }'
echo "entries in the new layer: acido $packed (manifest and rootfs included), umoci $ulayer"
