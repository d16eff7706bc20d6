#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for a bounded time.
#
#   fuzz/run.sh [SECONDS]     # default 30 s per target
#
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# -Z sanitizer/coverage flags (see fuzz/README.md). Environment:
#   FUZZ_SANITIZER   address (default) or none
#   FUZZ_TARGETS     space-separated subset of the targets
#   FUZZ_JOBS        cargo build jobs (default: all cores)
# Seeds come from tests/fixtures at run time; new inputs go to
# fuzz/corpus/<target>, crashes to fuzz/artifacts/<target>/, logs to
# fuzz/logs/ (all ignored by git). Exits non-zero when a target crashed, after running them all.
set -euo pipefail

secs=${1:-30}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$fuzz_dir")
fixtures=$repo/tests/fixtures
sanitizer=${FUZZ_SANITIZER:-address}
read -r -a targets <<<"${FUZZ_TARGETS:-tar_parser decompress manifest clean_path index_decode file_map}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

cd "$fuzz_dir"
build=(-O --sanitizer "$sanitizer")
[ -n "${FUZZ_JOBS:-}" ] && build+=(--jobs "$FUZZ_JOBS")
start=$SECONDS
cargo fuzz build "${build[@]}"
echo "fuzz: build took $((SECONDS - start)) s"

# Uncompressed copies of the archive fixtures (the tar parser and the
# index see what the decompressor produces); files that are not a
# stream of that compression are skipped.
seed_tars() {
    local out=$1 f name
    for f in "$fixtures"/archives/*.aci; do
        name=$(basename "$f" .aci)
        gzip -dc <"$f" >"$out/$name.tar" 2>/dev/null ||
            bzip2 -dc <"$f" >"$out/$name.tar" 2>/dev/null ||
            xz -dc <"$f" >"$out/$name.tar" 2>/dev/null ||
            cp "$f" "$out/$name.tar"
    done
}

seed() {
    local target=$1 dir=corpus/$1
    mkdir -p "$dir" "artifacts/$target"
    case $target in
    tar_parser | index_decode) seed_tars "$dir" ;;
    decompress)
        cp "$fixtures"/archives/*.aci "$dir"/
        # Small bombs: each expands far past the target's 256 KiB cap.
        head -c 4M /dev/zero | gzip -9 >"$dir/bomb.gz"
        head -c 64M /dev/zero | bzip2 -9 >"$dir/bomb.bz2"
        head -c 64M /dev/zero | xz -9 >"$dir/bomb.xz"
        ;;
    manifest) cp "$fixtures"/manifests/*.json "$dir"/ ;;
    file_map)
        # Its input is a recipe (layer count, parents, whitelists, entries),
        # not a file format: a few arbitrary starting points suffice.
        local n
        for n in 1 2 3 5 7 11 13; do
            seq -s '' "$n" "$n" 600 | head -c 300 >"$dir/seed-$n"
        done
        ;;
    clean_path)
        local i=0 p
        for p in ./manifest rootfs//a/ rootfs/../x ../a a/../../b /rootfs/abs /../a . // \
            rootfs/./a/../b 'rootfs/a/..' 'x/../../../etc/passwd'; do
            printf '%s' "$p" >"$dir/seed-$i"
            i=$((i + 1))
        done
        ;;
    esac
}

status=0
summary=()
mkdir -p logs
for target in "${targets[@]}"; do
    seed "$target"
    log=logs/$target.log
    echo "fuzz: running $target for $secs s"
    set +e
    cargo fuzz run "${build[@]}" "$target" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        summary+=("fuzz: $target: ok, ${execs:-?} executions in $secs s")
    else
        status=1
        # The panic message or sanitizer report, without libFuzzer's
        # progress lines and the crash input's byte dump.
        grep -a -A 12 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | cut -c 1-300 | head -n 40
        crash=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/Test unit written to //')
        summary+=("fuzz: $target: FAILED (exit $rc), ${execs:-?} executions, crash input: ${crash:-none, see fuzz/$log}")
    fi
done
printf '%s\n' "${summary[@]}"
exit "$status"
