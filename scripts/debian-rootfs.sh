#!/usr/bin/env bash
# Build a Debian (bookworm, minbase) rootfs tarball with debootstrap, for tests and benchmarks.
# The mirror is read from this machine's apt configuration at run time.
# Usage: scripts/debian-rootfs.sh OUT.tar [SUITE] [PACKAGES] [CUSTOMIZE]
#   PACKAGES   comma-separated packages to add (default: python3)
#   CUSTOMIZE  a command (words split on blanks) run as `CUSTOMIZE ROOTDIR` before the tarball is written
set -euo pipefail
out=${1:?usage: $0 OUT.tar [SUITE] [PACKAGES] [CUSTOMIZE]}
suite=${2:-bookworm}
packages=${3:-python3}
customize=${4:-}
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] || continue
  mirror=$(awk '/^URIs:/ {print $2; exit}' "$f")
  [[ -n $mirror && $mirror != *security* ]] && break
done
if [[ -z $mirror && -f /etc/apt/sources.list ]]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
[[ -n $mirror ]] || { echo "no Debian mirror found in the apt configuration" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf --one-file-system "$tmp"' EXIT
debootstrap --variant=minbase --include="$packages" "$suite" "$tmp/root" "$mirror" >"$tmp/log" 2>&1 || {
  tail -n 20 "$tmp/log" >&2; exit 1; }
rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
if [[ -n $customize ]]; then
  read -ra customize_cmd <<<"$customize"
  "${customize_cmd[@]}" "$tmp/root"
fi
tar --numeric-owner --xattrs -C "$tmp/root" -cf "$out.partial" .
mv "$out.partial" "$out"
