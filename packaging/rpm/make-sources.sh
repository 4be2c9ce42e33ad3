#!/usr/bin/env bash
# Makes the sources of packaging/rpm/novajoin.spec from this git checkout:
#   OUTDIR/novajoin-VERSION.tar.gz         git archive of HEAD
#   OUTDIR/novajoin-VERSION-vendor.tar.gz  the crates of Cargo.lock (cargo vendor)
# Then: rpmbuild -ba --define "_sourcedir OUTDIR" packaging/rpm/novajoin.spec
# (or hand both files and the spec to mock / Koji).
set -euo pipefail
out=${1:?usage: make-sources.sh OUTDIR}
here=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's/^Version: *//p' "$here/packaging/rpm/novajoin.spec")
cargo_version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$here/Cargo.toml")
if [ "$version" != "$cargo_version" ]; then
  echo "novajoin.spec has Version $version, Cargo.toml $cargo_version" >&2
  exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
git -C "$here" archive --format=tar.gz --prefix="novajoin-$version/" \
  -o "$out/novajoin-$version.tar.gz" HEAD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$out/novajoin-$version.tar.gz" -C "$work"
(cd "$work/novajoin-$version" && cargo vendor --quiet --locked --versioned-dirs vendor >/dev/null)
tar -czf "$out/novajoin-$version-vendor.tar.gz" -C "$work/novajoin-$version" vendor
echo "$out/novajoin-$version.tar.gz"
echo "$out/novajoin-$version-vendor.tar.gz"
