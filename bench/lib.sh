# Shared by the bench scripts: the generated distro-like tree and the
# lookup of an OCI image's newest layer. Source it; it defines functions only.

# bench_tree DIR SIZE_MB: a layout dir (manifest + rootfs) of about SIZE_MB,
# shaped like a distro tree (many small files in nested directories, a few
# large ones, symlinks and hard links), made once and reused: DIR.done marks
# a complete one.
bench_tree() {
    local tree=$1 size_mb=$2
    [ -f "$tree.done" ] && return 0
    rm -rf "$tree"
    mkdir -p "$tree/rootfs"
    printf '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/bench"}' >"$tree/manifest"
    python3 - "$tree/rootfs" "$size_mb" <<'PY'
import os, random, sys
root, limit = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(42)
total, n = 0, 0
# ~15% of the bytes in a few large files, the rest in many small ones.
for i in range(6):
    size = limit * 15 // 100 // 6
    d = os.path.join(root, "usr/lib/big")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"blob{i}.so"), "wb") as f:
        f.write(rng.randbytes(size))
    total += size
while total < limit:
    d = os.path.join(root, "usr", rng.choice(["lib", "share", "bin", "include"]),
                     f"pkg{rng.randrange(400)}", f"sub{rng.randrange(8)}")
    os.makedirs(d, exist_ok=True)
    size = int(rng.lognormvariate(8.3, 1.3)) % (512 << 10)
    path = os.path.join(d, f"f{n}")
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))
    if n % 50 == 0:
        os.symlink(f"f{n}", path + ".link")
    if n % 200 == 0:
        os.link(path, path + ".hard")
    total += size
    n += 1
PY
    touch "$tree.done"
}

# bench_minbase_tree DIR: a layout dir shaped like a Debian minbase root
# (issue 12): about 200 MiB in about 6,800 entries, most of the bytes in a
# few large files (shared libraries, locale archives, the package lists),
# many small config and doc files, symlinks and a few hard links. Made
# once, deterministically (a fixed seed, no network), and reused: DIR.done
# marks a complete one.
bench_minbase_tree() {
    local tree=$1
    [ -f "$tree.done" ] && return 0
    rm -rf "$tree"
    mkdir -p "$tree/rootfs"
    printf '{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/minbase"}' >"$tree/manifest"
    python3 - "$tree/rootfs" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(12)
def write(path, size):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        # Half random, half repeated: like binaries, partly compressible.
        half = size // 2
        f.write(rng.randbytes(half))
        f.write(bytes(size - half))
    return full
# 40 large files: 150 MiB in all (libc, libstdc++, systemd, perl, locales,
# apt's lists).
for i in range(40):
    write(f"usr/lib/x86_64-linux-gnu/big{i}.so.{i % 7}", (150 << 20) // 40)
# 600 middling files of 16-160 KiB: ~50 MiB (binaries in /usr/bin, ...).
for i in range(600):
    d = rng.choice(["usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/libexec"])
    write(f"{d}/tool{i}", rng.randrange(16 << 10, 160 << 10))
# 4,600 small files of under 4 KiB in ~700 directories (/etc, /usr/share/doc,
# man pages, perl modules), one symlink for every 10 and a hard link for
# every 300.
dirs = [f"usr/share/{top}/pkg{i}" for top in ("doc", "man/man1", "perl5", "locale")
        for i in range(150)] + [f"etc/conf{i}.d" for i in range(100)]
for i in range(4600):
    path = write(f"{rng.choice(dirs)}/f{i}", rng.randrange(0, 4 << 10))
    if i % 10 == 0:
        os.symlink(f"f{i}", path + ".link")
    if i % 300 == 0:
        os.link(path, path + ".hard")
PY
    touch "$tree.done"
}

# oci_last_layer OCI TAG: the path of the newest layer blob of OCI:TAG.
oci_last_layer() {
    python3 - "$1" "$2" <<'PY'
import json, os, sys
oci, tag = sys.argv[1], sys.argv[2]
def blob(digest):
    algo, hexd = digest.split(":")
    return os.path.join(oci, "blobs", algo, hexd)
index = json.load(open(os.path.join(oci, "index.json")))
desc = next(m for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
manifest = json.load(open(blob(desc["digest"])))
print(blob(manifest["layers"][-1]["digest"]))
PY
}

# settle_disk: waits (at most 10 minutes) until the disk has been quiet for
# a while. This machine's ext4 is mounted with online discard: for minutes
# after a large tree is deleted, file creation runs several times slower,
# which would penalise whichever command a round times first. The kernel's
# I/O pressure (PSI, "some" share over the last 10 s) tells when that is
# over; without PSI it only syncs.
settle_disk() {
    sync
    [ -r /proc/pressure/io ] || return 0
    local waited=0 some
    while :; do
        some=$(awk '/^some/ {sub("avg10=", "", $2); print $2}' /proc/pressure/io)
        awk -v s="$some" 'BEGIN {exit !(s < 1.0)}' && break
        if [ "$waited" -ge 600 ]; then
            echo "disk still busy after ${waited}s (I/O pressure $some%); timing anyway" >&2
            break
        fi
        sleep 5
        waited=$((waited + 5))
    done
    [ "$waited" -gt 0 ] && echo "waited ${waited}s for the disk to settle" >&2
    return 0
}

# apt_mirror: prints "SUITE URI" for debootstrap, taken from this machine's
# own apt configuration (a machine may reach only its own mirror, and its
# suite is the one worth measuring): the first enabled `deb` source of a
# release suite (no `-updates`, `-security`, ... suffix), from the deb822
# files (sources.list.d/*.sources) first, then the one-line format
# (sources.list, sources.list.d/*.list). APT_DIR overrides /etc/apt.
# Fails, saying so, when none is configured.
apt_mirror() {
    local dir=${APT_DIR:-/etc/apt} f found
    local -a deb822=() oneline=()
    for f in "$dir"/sources.list.d/*.sources; do [ -f "$f" ] && deb822+=("$f"); done
    for f in "$dir"/sources.list "$dir"/sources.list.d/*.list; do [ -f "$f" ] && oneline+=("$f"); done
    found=$({
        [ ${#deb822[@]} -eq 0 ] || awk '
            function flush(  n, s, u) {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "") {
                    n = split(suites, s, " "); split(uris, u, " ")
                    for (i = 1; i <= n; i++) print s[i], u[1]
                }
                types = uris = suites = enabled = ""
            }
            FNR == 1 { flush() }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                key = tolower(substr($0, 1, index($0, ":") - 1))
                val = substr($0, index($0, ":") + 1)
                gsub(/^[ \t]+|[ \t]+$/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush() }' "${deb822[@]}"
        # deb [OPTIONS] URI SUITE COMPONENT...; options may hold spaces.
        [ ${#oneline[@]} -eq 0 ] || awk '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                print $(i + 1), $i
            }' "${oneline[@]}"
    } | awk '!done && $1 !~ /[-\/]/ && $2 != "" { print; done = 1 }')
    if [ -z "$found" ]; then
        echo "apt_mirror: no enabled 'deb' source of a release suite in $dir/sources.list{,.d/*.sources,.d/*.list}" >&2
        return 1
    fi
    echo "$found"
}
