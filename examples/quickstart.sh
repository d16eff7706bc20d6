#!/usr/bin/env bash
# The README's first command: build acido and run its main job, a diff
# build, on a busybox sample: pack and import a base image, start a build
# from it, change the tree, build a new image holding only the changes,
# extract it over its dependency and check that diff-tree finds nothing.
# Works on a fresh Debian machine with a Rust toolchain; as root it
# installs the few Debian packages it needs. Everything it makes, its
# image store included, is kept in ./quickstart-out/ (git-ignored, emptied
# at the start of each run) to be looked at afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cc >/dev/null || need+=(build-essential)
command -v xz >/dev/null || need+=(xz-utils)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "quickstart: needs ${need[*]} (apt-get install ${need[*]})" >&2
        exit 1
    fi
fi

# Say something before the one long silent step.
echo "building acido (first build takes ~2 min)..."
cargo build --release --locked --quiet
acido=$PWD/target/release/acido
work=$PWD/quickstart-out
rm -rf "$work"
mkdir "$work"
export ACIDO_STORE=$work/store
step() { printf '\n## %s\n' "$*"; }

# The sample: the manifest and /etc files of examples/busybox, plus
# Debian's static busybox and a few applet links, added here so that no
# binary is kept in git. Git keeps only the executable bit: pin the rest
# of the metadata so every checkout packs to the same tree.
base=$work/base
cp -r examples/busybox "$base"
mkdir -p "$base/rootfs/bin" "$base/rootfs/tmp" "$base/rootfs/var/log"
cp /bin/busybox "$base/rootfs/bin/busybox"
for applet in sh ls cat echo vi; do ln -s busybox "$base/rootfs/bin/$applet"; done
echo "booted" >"$base/rootfs/var/log/boot.log"
chmod -R u=rwX,go=rX "$base"
chmod 755 "$base/rootfs/bin/busybox"
chmod 1777 "$base/rootfs/tmp"
find "$base" -exec touch -h -d @1700000000 {} +

step "1. pack the busybox sample into a base image and import it"
base_id=$("$acido" pack-aci --compression gzip -o "$work/base.aci" "$base")
echo "base image:   $base_id"
echo "sha512 check: sha512-$(gzip -dc "$work/base.aci" | sha512sum | cut -d' ' -f1)"
"$acido" import "$work/base.aci" >/dev/null

step "2. startbuild: render the base into a build tree"
"$acido" startbuild example.com/busybox:1.0 "$work/tree"
grep -A1 '"imageID"' "$work/tree/manifest" | head -2

step "3. change the tree and bump the version"
tree=$work/tree/rootfs
echo "Welcome to the quickstart" >"$tree/etc/motd"        # add a file
ln -s busybox "$tree/bin/grep"                           # add a symlink
rm "$tree/bin/vi"                                        # delete a file
rm -r "$tree/var/log" && echo "no logs" >"$tree/var/log" # a directory becomes a file
chmod 600 "$tree/etc/hostname"                           # chmod only: same bytes and mtime
# Only the image's own version label; the dependency keeps naming 1.0.
sed -i '0,/"value": "1.0"/s//"value": "1.1"/' "$work/tree/manifest"
"$acido" diff-tree --name-status example.com/busybox:1.0 "$work/tree"

step "4. build: a new image with only the changes, imported"
new_id=$("$acido" build --import "$work/tree" "$work/new.aci")
echo "new image:    $new_id"
"$acido" ls-tree "$new_id"
"$acido" cat-manifest "$new_id" | grep -o '"pathWhitelist":\[[^]]*\]' | cut -c1-72
echo "..."

step "5. extract the new image, with its dependency, by name and version"
"$acido" extract example.com/busybox,version=1.1 "$work/out"
echo "resolves to:  $("$acido" resolve example.com/busybox,version=1.1)"

step "6. diff-tree: the extracted tree is the build tree (no output, exit 0)"
"$acido" diff-tree --exit-code "$work/out" "$work/tree"
echo "no differences"

printf '\nEverything made above is in %s/ (the store in %s/store):\n' "$work" "$work"
echo "  $acido --store $work/store images"
