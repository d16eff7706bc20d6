#!/usr/bin/env bash
# Builds a Debian package of acido with dpkg-deb alone (no cargo-deb to
# compile, no debian/ directory):
#
#   bash packaging/deb.sh [BINARY [OUTDIR]]
#
# BINARY defaults to target/release/acido (`cargo build --release --locked`
# first), OUTDIR to target/debian. Prints the path of the .deb,
# OUTDIR/acido_<version>_<arch>.deb, as its last line. It holds:
#
#   /usr/bin/acido                       the binary
#   /usr/share/man/man1/*.1.gz           every page of man/, gzipped
#   /usr/share/man/man5/*.5.gz
#   /usr/share/doc/acido/copyright       license (from Cargo.toml)
#   shell completions, only when the binary can generate them (`acido
#   completions SHELL`; see install_completions below):
#   /usr/share/bash-completion/completions/acido
#   /usr/share/zsh/vendor-completions/_acido
#   /usr/share/fish/vendor_completions.d/acido.fish
#
# The version comes from Cargo.toml, the architecture from
# `dpkg --print-architecture`, Depends from the packages that own the
# binary's shared libraries (ldd + dpkg -S). Needs dpkg-deb, gzip, ldd.
# SOURCE_DATE_EPOCH, when set, is used for the files' times; DEB_COMPRESSION
# (xz) for the package, DEB_MAINTAINER for its Maintainer field.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/target/release/acido}
out=${2:-$top/target/debian}

[ -x "$bin" ] || { echo "deb.sh: $bin is not an executable (cargo build --release --locked first)" >&2; exit 1; }
version=$(awk -F'"' '/^\[/ { pkg = ($0 == "[package]") } pkg && /^version *=/ { print $2; exit }' "$top/Cargo.toml")
license=$(awk -F'"' '/^\[/ { ws = ($0 == "[workspace.package]") } ws && /^license *=/ { print $2; exit }' "$top/Cargo.toml")
description=$(awk -F'"' '/^\[/ { pkg = ($0 == "[package]") } pkg && /^description *=/ { print $2; exit }' "$top/Cargo.toml")
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "deb.sh: no [package] version in $top/Cargo.toml" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/acido_${version}_$arch
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" \
    "$root/usr/share/man/man5" "$root/usr/share/doc/acido"

install -m 0755 "$bin" "$root/usr/bin/acido"
for page in "$top"/man/*.[15]; do
    section=${page##*.}
    # -n: no name or time in the gzip header, so the package is reproducible.
    gzip -9n <"$page" >"$root/usr/share/man/man$section/$(basename "$page").gz"
    chmod 0644 "$root/usr/share/man/man$section/$(basename "$page").gz"
done

# The hook for shell completions: installed only when the binary really
# generates them. Until `acido completions` exists the package ships none
# rather than fake ones.
install_completions() {
    local shell=$1 dest=$2
    local tmp=$stage/completion.$shell
    if "$bin" completions "$shell" >"$tmp" 2>/dev/null && [ -s "$tmp" ]; then
        mkdir -p "$(dirname "$dest")"
        install -m 0644 "$tmp" "$dest"
        echo "deb.sh: $shell completions installed" >&2
    else
        echo "deb.sh: no $shell completions ('acido completions $shell' is not available)" >&2
    fi
}
install_completions bash "$root/usr/share/bash-completion/completions/acido"
install_completions zsh "$root/usr/share/zsh/vendor-completions/_acido"
install_completions fish "$root/usr/share/fish/vendor_completions.d/acido.fish"

cat >"$root/usr/share/doc/acido/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: acido

Files: *
Copyright: the acido authors
License: $license
 On Debian systems the full text of the $license license is in
 /usr/share/common-licenses/$license.
COPYRIGHT
chmod 0644 "$root/usr/share/doc/acido/copyright"

# Depends: the packages owning the shared libraries the binary loads.
depends=$(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r lib; do
    dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true
done | awk -F: '{ print $1 }' | sort -u | paste -sd, - | sed 's/,/, /g')

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
{
    echo "Package: acido"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: ${DEB_MAINTAINER:-acido developers <acido@localhost>}"
    echo "Installed-Size: $size"
    [ -z "$depends" ] || echo "Depends: $depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Description: $description"
    echo " acido imports, names, validates, packs, diff-builds and renders appc"
    echo " App Container Images (ACI), with git-like plumbing and porcelain"
    echo " commands. See acido(1)."
} >"$root/DEBIAN/control"

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
fi
mkdir -p "$out"
deb=$out/acido_${version}_$arch.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
