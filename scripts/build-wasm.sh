#!/usr/bin/env bash
# Builds Lamplighter's WAGI example and test modules: every *.c under examples/*/ and
# test/fixtures/wagi/ becomes a .wasm beside it (WASI preview1 command modules), and every *.c
# under test/fixtures/component/ a core module that a test wraps into a component.
#
#   scripts/build-wasm.sh           build and write the .wasm files
#   scripts/build-wasm.sh --check   build into a temp dir and compare with the committed .wasm
#                                   files; exits 1 if any differs or is missing
#
# A source may add its own compiler/linker flags with a line among its first five:
#   // build-flags: -Wl,--allow-undefined
# The output is byte-for-byte reproducible for a given toolchain (clang 14 + wasi-libc from
# Debian); set WASM_CC to use another clang.
set -euo pipefail

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0"; }

check=0
case "${1-}" in
  "") ;;
  --check) check=1 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "build-wasm: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export LC_ALL=C TZ=UTC

cc="${WASM_CC:-clang}"
# Strip all custom sections (names, producers) so nothing host-specific ends up in the file;
# map the checkout path away in case any path is ever recorded.
base_flags=(--target=wasm32-wasi -O2 -Wall -Wextra "-ffile-prefix-map=$root=." -Wl,--strip-all)

shopt -s nullglob
sources=(examples/*/*.c test/fixtures/wagi/*.c test/fixtures/component/*.c)
shopt -u nullglob
if [ "${#sources[@]}" -eq 0 ]; then
  echo "build-wasm: no sources found" >&2
  exit 1
fi

out_dir=""
if [ "$check" -eq 1 ]; then
  out_dir="$(mktemp -d "${TMPDIR:-/tmp}/lamplighter-wasm.XXXXXX")"
  trap 'rm -rf "$out_dir"' EXIT
fi

# Extra flags from a "// build-flags: ..." line in the first five lines of a source.
extra_flags() {
  sed -n '1,5{s|^//[[:space:]]*build-flags:[[:space:]]*||p;}' "$1" | head -n 1
}

failures=0
for src in "${sources[@]}"; do
  wasm="${src%.c}.wasm"
  read -r -a extra <<<"$(extra_flags "$src")"
  if [ "$check" -eq 1 ]; then
    out="$out_dir/$wasm"
    mkdir -p "$(dirname "$out")"
  else
    out="$wasm"
  fi

  "$cc" "${base_flags[@]}" ${extra[@]+"${extra[@]}"} -o "$out" "$src" </dev/null

  if [ "$check" -eq 0 ]; then
    echo "built   $wasm ($(wc -c <"$wasm" | tr -d ' ') bytes)"
  elif [ ! -f "$wasm" ]; then
    echo "MISSING $wasm"
    failures=$((failures + 1))
  elif ! cmp -s "$out" "$wasm"; then
    echo "DIFFERS $wasm"
    failures=$((failures + 1))
  else
    echo "ok      $wasm"
  fi
done

if [ "$failures" -gt 0 ]; then
  echo "build-wasm: $failures module(s) out of date; run scripts/build-wasm.sh and commit the .wasm files" >&2
  exit 1
fi
