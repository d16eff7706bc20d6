#!/usr/bin/env bash
# The README's first command: build acido and run the main job on the
# bundled sample. Works on a fresh Debian machine with a Rust toolchain;
# as root it installs the few Debian packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cc >/dev/null || ! command -v xz >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq build-essential xz-utils >/dev/null
    else
        echo "quickstart: needs a C compiler and xz-utils (apt-get install build-essential xz-utils)" >&2
        exit 1
    fi
fi

cargo build --release --locked --quiet
acido=$PWD/target/release/acido
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ACIDO_STORE=$work/store

# Git keeps only the executable bit: pin the rest of the sample's metadata
# so every checkout packs to the same image id.
cp -r examples/sample "$work/layout"
chmod -R u=rwX,go=rX "$work/layout"
chmod 755 "$work/layout/rootfs/bin/hello"
find "$work/layout" -exec touch -h -d @1700000000 {} +

echo "## pack the sample layout into an ACI"
id=$("$acido" pack-aci -o "$work/hello.aci" "$work/layout")
echo "$id"
echo "## the id is the sha512 of the uncompressed tar"
echo "sha512-$(xz -dc "$work/hello.aci" | sha512sum | cut -d' ' -f1)"
echo "## import it into a fresh store"
"$acido" import "$work/hello.aci"
echo "## its manifest, found by name"
"$acido" cat-manifest --pretty example.com/hello:1.0.0
echo "## its entries"
"$acido" ls-tree --long "$("$acido" resolve --abbrev=12 example.com/hello)"
