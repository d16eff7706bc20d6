#!/usr/bin/env bash
# Pull and push speed against skopeo + umoci (issue 11). Run by hand, as
# root, not in CI:   bash bench/pull.sh [RUNS]
#
# The image: a Debian minbase tree made with `debootstrap --variant=minbase`
# (once, cached in the bench cache and shared with package-change.sh; the
# suite and mirror are this machine's own apt configuration, apt_mirror in
# lib.sh; ACIDO_BENCH_SUITE and ACIDO_BENCH_MIRROR override them) made into
# a two-layer OCI image with umoci: the tree, then a small change (files
# added, changed, chmod-ed and a few package docs deleted). If debootstrap
# fails the generated distro-like tree of bench_tree (lib.sh) stands in,
# with a loud note: its figures are not the issue's.
#
# Debian's docker-registry serves it on 127.0.0.1 (plain HTTP, storage in
# the run's temp dir); skopeo copies it in. Then interleaved runs (the
# order of the two sides alternates from run to run) time
#   pull:  acido pull docker://... + acido extract      (a fresh store)
#     vs   skopeo copy docker://... oci:... + umoci unpack
#   push:  acido push IMAGE docker://...                (the pulled image)
#     vs   skopeo copy oci:... docker://...             (the same image)
# each push to a repository of its own in a registry of the run's own, so
# no blob is skipped by a HEAD answer or mounted from another repository
# (skopeo mounts blobs it saw in the same registry); then acido pushes the same image to the same
# repository again (everything skipped: HEADs and the manifest PUT) and
# that second push's time is printed too. Medians, ratios and targets
# (pull <= 0.5, push <= 1.0) are printed with the load before and after.
#
# What the lines measure:
#   "acido push (new repository)": the median of the pushes above, all
#     from one store. acido keeps the gzip layers it generates in the
#     store's layer cache; an untimed push to a layout fills it before the
#     runs, so every timed push sends the layers as they are, as skopeo
#     sends the layout's blobs (warm). Its ratio is the "ratio push" of
#     the last line.
#   "acido push, cold cache": per run, the layer cache emptied first
#     (gc --cache, not timed), a push to a registry of its own: every
#     layer's tar built from the file maps and gzipped (deterministically)
#     before it is sent. Its own ratio against the same skopeo median is
#     the "ratio cold push" of the last line.
#   "acido push again (all skipped)": the same repository again.
#   "acido push to a layout (no net)": into an oci: layout, from the
#     cache (warm from run 1 on): the copying and hashing alone.
#
# ACIDO_BENCH_BASE=/path/to/another/acido also times that binary's pull +
# extract in the same interleaved runs and prints this tree's ÷ it: a
# before/after comparison in which the machine's noise cancels.
#
# Everything is written below the bench cache: give it an ext4 of its own
# (see render.sh): ACIDO_BENCH_CACHE=/mnt/acido-bench bash bench/pull.sh 5
set -euo pipefail

runs=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
for tool in umoci skopeo docker-registry; do
    command -v "$tool" >/dev/null || { echo "bench/pull.sh needs $tool (apt-get install $tool)" >&2; exit 1; }
done
cache=${ACIDO_BENCH_CACHE:-$root/target/bench-cache}
mkdir -p "$cache"
work=$(mktemp -d "$cache/pull.XXXXXX")
registry_pids=()
cleanup() {
    local pid
    for pid in "${registry_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --quiet --release --manifest-path "$root/Cargo.toml"
acido="$root/target/release/acido"

# The base tree: debootstrap minbase, or (loudly) the generated one.
base= label=
suite=${ACIDO_BENCH_SUITE:-} mirror=${ACIDO_BENCH_MIRROR:-}
if [ -z "$suite" ] || [ -z "$mirror" ]; then
    if read -r apt_suite apt_uri < <(apt_mirror); then
        suite=${suite:-$apt_suite} mirror=${mirror:-$apt_uri}
    fi
fi
if command -v debootstrap >/dev/null && [ -n "$suite" ] && [ -n "$mirror" ]; then
    base=$cache/minbase-$suite
    if [ ! -f "$base.done" ]; then
        rm -rf "$base"
        echo "debootstrap $suite from $mirror (once, into $base)"
        if debootstrap --variant=minbase "$suite" "$base" "$mirror" >"$work/debootstrap.log" 2>&1; then
            touch "$base.done"
        else
            tail -5 "$work/debootstrap.log" >&2
            base=
        fi
    fi
    label=minbase-$suite
fi
if [ -z "$base" ]; then
    cat >&2 <<'NOTE'
########################################################################
# NOTE: debootstrap is missing or failed: the image is the GENERATED
# distro-like tree (bench_tree, 200 MiB), not a Debian minbase. These
# figures are not the ones issue 11 asks for.
########################################################################
NOTE
    bench_tree "$cache/render-tree-200m" 200
    base=$cache/render-tree-200m/rootfs
    label=generated-200m
fi

image="$cache/pull-image-$label"
if [ ! -f "$image.done" ]; then
    rm -rf "$image" "$image.bundle"
    umoci init --layout "$image" >/dev/null
    umoci new --image "$image:bench" >/dev/null
    umoci config --image "$image:bench" --config.entrypoint /bin/sh >/dev/null
    umoci unpack --image "$image:bench" "$image.bundle" >/dev/null
    cp -a "$base/." "$image.bundle/rootfs/"
    umoci repack --refresh-bundle --image "$image:bench" "$image.bundle" >/dev/null
    # The second layer: a small change, as a package upgrade makes.
    r="$image.bundle/rootfs"
    find "$r/usr/share/doc" -mindepth 1 -maxdepth 1 -name 'lib[a-c]*' -exec rm -rf {} +
    mkdir -p "$r/etc" "$r/usr/local/bin" && echo "bench image" >"$r/etc/motd"
    for i in 1 2 3 4 5; do head -c $((i * 3000)) /dev/urandom >"$r/usr/local/bin/tool$i"; done
    head -c 4M /dev/urandom >"$r/usr/local/lib.so"
    [ -e "$r/etc/hostname" ] && chmod 0600 "$r/etc/hostname"
    umoci repack --refresh-bundle --image "$image:bench" "$image.bundle" >/dev/null
    rm -rf "$image.bundle"
    touch "$image.done"
fi

# start_registry NAME: starts a docker-registry on a free port with its
# storage in $work/NAME; sets port and adds its pid to registry_pids.
start_registry() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$work/$1.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/$1
http:
  addr: 127.0.0.1:$port
YML
    docker-registry serve "$work/$1.yml" >"$work/$1.log" 2>&1 &
    registry_pids+=("$!")
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
        sleep 0.1
    done
}
start_registry registry
reg="127.0.0.1:$port"
remote="$reg/bench/image:bench"
skopeo copy --quiet --dest-tls-verify=false "oci:$image:bench" "docker://$remote"
echo "image ($label): $(du -sm "$image/blobs" | cut -f1) MiB of blobs, 2 layers; $runs interleaved runs"

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# One pull kept for the push runs.
top=$("$acido" -q --store "$work/keep" pull --tls-verify=false "docker://$remote")

base=${ACIDO_BENCH_BASE:-}
# pull_extract BIN N: one pull + extract into a fresh store; prints ms.
pull_extract() {
    local t0 id; t0=$(now)
    id=$("$1" -q --store "$work/s$2" pull --tls-verify=false "docker://$remote")
    "$1" -q --store "$work/s$2" extract "$id" "$work/x$2"
    ms "$t0" "$(now)"
    rm -rf "$work/s$2" "$work/x$2"
}
acido_pull() {
    if [ -n "$base" ] && [ $(($1 % 2)) -eq 0 ]; then b+=("$(pull_extract "$base" "b$1")"); fi
    a+=("$(pull_extract "$acido" "$1")")
    if [ -n "$base" ] && [ $(($1 % 2)) -eq 1 ]; then b+=("$(pull_extract "$base" "b$1")"); fi
}
skopeo_pull() {
    local t0; t0=$(now)
    skopeo copy --quiet --src-tls-verify=false "docker://$remote" "oci:$work/o$1:bench"
    umoci unpack --image "$work/o$1:bench" "$work/u$1" >/dev/null
    s+=("$(ms "$t0" "$(now)")")
}
acido_push() {
    local t0 t1; t0=$(now)
    "$acido" -q --store "$work/keep" push --tls-verify=false "$top" "docker://$preg/bench/push$1:bench" >/dev/null
    t1=$(now)
    "$acido" -q --store "$work/keep" push --tls-verify=false "$top" "docker://$preg/bench/push$1:bench" >/dev/null
    p+=("$(ms "$t0" "$t1")") p2+=("$(ms "$t1" "$(now)")")
}
acido_cold_push() {
    local t0
    "$acido" -q --store "$work/keep" gc --cache >/dev/null
    t0=$(now)
    "$acido" -q --store "$work/keep" push --tls-verify=false "$top" "docker://$creg/bench/cold$1:bench" >/dev/null
    c+=("$(ms "$t0" "$(now)")")
}
skopeo_push() {
    local t0; t0=$(now)
    skopeo copy --quiet --dest-tls-verify=false "oci:$image:bench" "docker://$preg/bench/copy$1:bench"
    q+=("$(ms "$t0" "$(now)")")
}
layout_push() {
    local t0; t0=$(now)
    "$acido" -q --store "$work/keep" push "$top" "oci:$work/l$1:bench" >/dev/null
    l+=("$(ms "$t0" "$(now)")")
}

# The layer cache filled, as the layout's blobs are on skopeo's side.
"$acido" -q --store "$work/keep" push "$top" "oci:$work/warm:bench" >/dev/null
rm -rf "$work/warm"

echo "load before: $(cat /proc/loadavg)"
settle_disk
a=() b=() s=() p=() p2=() q=() l=() c=()
for i in $(seq "$runs"); do
    # The pushes go to a registry of this run's own: skopeo remembers
    # where it saw a blob and mounts it from another repository of the
    # same registry instead of uploading it, which would time nothing.
    start_registry "push$i"
    preg="127.0.0.1:$port"
    if [ $((i % 2)) -eq 1 ]; then
        acido_pull "$i"; skopeo_pull "$i"; acido_push "$i"; skopeo_push "$i"
    else
        skopeo_pull "$i"; acido_pull "$i"; skopeo_push "$i"; acido_push "$i"
    fi
    # The cold push goes to a registry of its own too: the round's
    # registry already has every blob.
    start_registry "cold$i"
    creg="127.0.0.1:$port"
    acido_cold_push "$i"
    kill "${registry_pids[-1]}" 2>/dev/null || true
    kill "${registry_pids[-2]}" 2>/dev/null || true
    layout_push "$i"
    rm -rf "$work/push$i" "$work/cold$i"
    rm -rf "$work/s$i" "$work/x$i" "$work/o$i" "$work/u$i" "$work/l$i"
    sync
done
echo "load after:  $(cat /proc/loadavg)"
ma=$(median "${a[@]}") msk=$(median "${s[@]}") mp=$(median "${p[@]}") mq=$(median "${q[@]}")
mp2=$(median "${p2[@]}") ml=$(median "${l[@]}") mc=$(median "${c[@]}")
echo "acido pull + extract:            ${a[*]} ms (median $ma)"
echo "skopeo copy + umoci unpack:      ${s[*]} ms (median $msk)"
echo "acido push (new repository):     ${p[*]} ms (median $mp)"
echo "skopeo copy oci: docker://:      ${q[*]} ms (median $mq)"
echo "acido push, cold cache:          ${c[*]} ms (median $mc)"
echo "acido push again (all skipped):  ${p2[*]} ms (median $mp2)"
echo "acido push to a layout (no net): ${l[*]} ms (median $ml)"
if [ -n "$base" ]; then
    mb=$(median "${b[@]}")
    echo "base ($base) pull + extract: ${b[*]} ms (median $mb)"
    awk -v a="$ma" -v b="$mb" 'BEGIN { printf "this tree / base (pull + extract): %.2f\n", a / b }'
fi
awk -v a="$ma" -v s="$msk" -v p="$mp" -v q="$mq" -v c="$mc" 'BEGIN {
    printf "ratio pull: %.2f (target <= 0.5)   ratio push: %.2f (target <= 1.0)   ratio cold push: %.2f\n", a / s, p / q, c / q }'
