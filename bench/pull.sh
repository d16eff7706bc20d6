#!/usr/bin/env bash
# Pull and push speed against skopeo + umoci (issue 11). Run by hand, not in
# CI:   bash bench/pull.sh [RUNS] [SIZE_MB]
#
# Builds (once, in the bench cache) a two-layer OCI image with umoci: the
# generated distro-like tree of bench_tree (lib.sh) of about SIZE_MB, then a
# layer that changes, adds and deletes a few files. Starts Debian's
# docker-registry on 127.0.0.1 (plain HTTP, storage in the run's temp dir),
# copies the image in with skopeo, then times interleaved runs of
#   acido pull docker://... + acido extract      (a fresh store each run)
#   skopeo copy docker://... oci:... + umoci unpack
# and of
#   acido push IMAGE oci:DIR                     (a fresh layout each run)
#   skopeo copy oci:... docker://...             (a new repository each run)
# and prints the medians and the ratios (targets: pull <= 0.5, push <= 1.0).
# acido cannot push to a registry yet, so the push ratio compares writing
# the same image's layers into a layout with skopeo's upload: it measures
# layer generation and compression, not the network protocol.
# For a debootstrap minbase image, see package-change.sh's apt_mirror use;
# the generated tree keeps the bench self-contained. See render.sh for
# giving the runs an ext4 of their own (ACIDO_BENCH_CACHE).
set -euo pipefail

runs=${1:-3}
size_mb=${2:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
for tool in umoci skopeo docker-registry; do
    command -v "$tool" >/dev/null || { echo "bench/pull.sh needs $tool (apt-get install $tool)" >&2; exit 1; }
done
cache=${ACIDO_BENCH_CACHE:-$root/target/bench-cache}
tree="$cache/render-tree-${size_mb}m"
mkdir -p "$cache"
work=$(mktemp -d "$cache/pull.XXXXXX")
registry_pid=
cleanup() {
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --quiet --release --manifest-path "$root/Cargo.toml"
acido="$root/target/release/acido"
bench_tree "$tree" "$size_mb"

image="$cache/pull-image-${size_mb}m"
if [ ! -f "$image.done" ]; then
    rm -rf "$image" "$image.bundle"
    umoci init --layout "$image" >/dev/null
    umoci new --image "$image:bench" >/dev/null
    umoci unpack --image "$image:bench" "$image.bundle" >/dev/null
    cp -a "$tree/rootfs/." "$image.bundle/rootfs/"
    umoci repack --refresh-bundle --image "$image:bench" "$image.bundle" >/dev/null
    r="$image.bundle/rootfs"
    find "$r/usr/share" -maxdepth 2 -name 'pkg1*' -exec rm -rf {} +
    mkdir -p "$r/etc" && echo changed >"$r/etc/motd"
    head -c 4M /dev/urandom >"$r/usr/lib/big/new.so"
    umoci repack --refresh-bundle --image "$image:bench" "$image.bundle" >/dev/null
    rm -rf "$image.bundle"
    touch "$image.done"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
remote="127.0.0.1:$port/bench/image:bench"
skopeo copy --quiet --dest-tls-verify=false "oci:$image:bench" "docker://$remote"
echo "image: $(du -sm "$image/blobs" | cut -f1) MiB of blobs, 2 layers; $runs interleaved runs"

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# One pull kept for the push runs.
"$acido" --store "$work/keep" pull --tls-verify=false "docker://$remote" >"$work/top"
top=$(cat "$work/top")

settle_disk
a=() s=() p=() q=()
for i in $(seq "$runs"); do
    t0=$(now)
    id=$("$acido" -q --store "$work/s$i" pull --tls-verify=false "docker://$remote")
    "$acido" -q --store "$work/s$i" extract "$id" "$work/x$i"
    t1=$(now)
    skopeo copy --quiet --src-tls-verify=false "docker://$remote" "oci:$work/o$i:bench"
    umoci unpack --image "$work/o$i:bench" "$work/u$i" >/dev/null
    t2=$(now)
    "$acido" -q --store "$work/keep" push "$top" "oci:$work/p$i:bench" >/dev/null
    t3=$(now)
    skopeo copy --quiet --dest-tls-verify=false "oci:$image:bench" "docker://127.0.0.1:$port/bench/copy$i:bench"
    t4=$(now)
    a+=("$(ms "$t0" "$t1")") s+=("$(ms "$t1" "$t2")") p+=("$(ms "$t2" "$t3")") q+=("$(ms "$t3" "$t4")")
    rm -rf "$work/s$i" "$work/x$i" "$work/o$i" "$work/u$i" "$work/p$i"
done
ma=$(median "${a[@]}") msk=$(median "${s[@]}") mp=$(median "${p[@]}") mq=$(median "${q[@]}")
echo "acido pull + extract:          ${a[*]} ms (median $ma)"
echo "skopeo copy + umoci unpack:    ${s[*]} ms (median $msk)"
echo "acido push (to a layout):      ${p[*]} ms (median $mp)"
echo "skopeo copy oci: docker://:    ${q[*]} ms (median $mq)"
awk -v a="$ma" -v s="$msk" -v p="$mp" -v q="$mq" 'BEGIN {
    printf "ratio pull: %.2f (target <= 0.5)   ratio push: %.2f (target <= 1.0)\n", a / s, p / q }'
