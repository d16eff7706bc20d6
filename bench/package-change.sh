#!/usr/bin/env bash
# A real package change, acido build against umoci repack (issue 4).
# Run by hand, as root, not in CI:   bash bench/package-change.sh [RUNS]
#
# Makes (once, in the bench cache) a minbase tree with debootstrap, of the
# suite and from the mirror of this machine's own apt configuration
# (apt_mirror in lib.sh; ACIDO_BENCH_SUITE and ACIDO_BENCH_MIRROR override
# them), imports it as the base image, starts a build from it and,
# inside the tree with `acido run`, installs a few packages and purges one.
# The same changed tree is then packed, in interleaved runs, by
#   acido build --compression gzip TREE OUT.aci
#   umoci repack (after umoci unpack of the same base as an OCI image and
#                 rsync of the changed tree into the bundle, not timed)
# and prints the medians, their ratio (target <= 0.5), the entries each new
# layer holds, and how many files our diff image holds that did not change
# (target 0: umoci re-adds files whose mtime only lost its sub-second part).
set -euo pipefail

runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
cache=${ACIDO_BENCH_CACHE:-$root/target/bench-cache}
mkdir -p "$cache"
export DEBIAN_FRONTEND=noninteractive
for tool in debootstrap umoci rsync; do
    command -v "$tool" >/dev/null || apt-get install -y -qq "$tool" >/dev/null
done
suite=${ACIDO_BENCH_SUITE:-} mirror=${ACIDO_BENCH_MIRROR:-}
if [ -z "$suite" ] || [ -z "$mirror" ]; then
    read -r apt_suite apt_uri < <(apt_mirror) || exit 1
    suite=${suite:-$apt_suite} mirror=${mirror:-$apt_uri}
fi
base=$cache/minbase-$suite
if [ ! -f "$base.done" ]; then
    rm -rf "$base"
    echo "debootstrap $suite from $mirror (once, into $base)"
    debootstrap --variant=minbase "$suite" "$base" "$mirror" >/dev/null
    touch "$base.done"
fi
work=$(mktemp -d "$cache/pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release --manifest-path "$root/Cargo.toml"
acido="$root/target/release/acido"
export ACIDO_STORE=$work/store

mkdir -p "$work/L"
cp -a "$base" "$work/L/rootfs"
printf '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/minbase","labels":[{"name":"version","value":"'"$suite"'"}]}' >"$work/L/manifest"
"$acido" -q pack-aci --compression none -o "$work/base.aci" "$work/L" >/dev/null
"$acido" -q import "$work/base.aci" >/dev/null
"$acido" -q startbuild example.com/minbase "$work/T"
"$acido" -q run "$work/T" -- /bin/sh -c '
    apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends less file nano >/dev/null &&
    apt-get purge -y -qq nano >/dev/null &&
    apt-get clean && rm -rf /var/lib/apt/lists/*'
echo "tree: $(du -sh "$work/T/rootfs" | cut -f1), $(find "$work/T/rootfs" | wc -l) paths"

# The same base as an OCI image.
oci=$work/oci
umoci init --layout "$oci"
umoci new --image "$oci:base"
umoci unpack --image "$oci:base" "$work/ub" >/dev/null
cp -a "$base/." "$work/ub/rootfs/"
umoci repack --image "$oci:base" "$work/ub" >/dev/null
rm -rf "$work/ub"

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
g=() u=()
for i in $(seq "$runs"); do
    rm -rf "$work/u"
    umoci unpack --image "$oci:base" "$work/u" >/dev/null
    rsync -aHAX --delete "$work/T/rootfs/" "$work/u/rootfs/"
    sync
    s=$(now); umoci repack --image "$oci:next$i" "$work/u" >/dev/null; e=$(now)
    u+=($(ms "$s" "$e"))
    sync
    s=$(now); "$acido" -q build --overwrite --compression gzip "$work/T" "$work/out.aci" >/dev/null; e=$(now)
    g+=($(ms "$s" "$e"))
done
layer=$(oci_last_layer "$oci" "next$runs")
ulayer=$(tar -tzf "$layer" | wc -l)
packed=$("$acido" ls-tree "$work/out.aci" | wc -l)
# Files in our diff image that are the same as in the base: what diff-tree
# between the base's rendering and the tree does not list.
"$acido" -q render-tree example.com/minbase "$work/R"
"$acido" diff-tree -z --name-only --diff-filter=AMT "$work/R" "$work/T" | tr '\0' '\n' | sort >"$work/changed"
"$acido" ls-tree -z "$work/out.aci" | tr '\0' '\n' | cut -f2 | sed -n 's|^rootfs/||p' | sort >"$work/packed"
unchanged=$(comm -23 "$work/packed" "$work/changed" | wc -l)
mg=$(median "${g[@]}") mu=$(median "${u[@]}")
echo "build --compression gzip: ${g[*]} ms (median $mg)"
echo "umoci repack:             ${u[*]} ms (median $mu)"
awk -v g="$mg" -v u="$mu" 'BEGIN { printf "ratio build / umoci repack: %.2f (target <= 0.5)\n", g / u }'
echo "entries in the new layer: acido $packed (manifest and rootfs included), umoci $ulayer"
echo "unchanged files in acido's diff image: $unchanged (target 0)"
