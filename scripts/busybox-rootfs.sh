#!/usr/bin/env bash
# Build a busybox rootfs tarball from Debian's busybox-static (deterministic: sorted, fixed mtime
# and owners). Usage: scripts/busybox-rootfs.sh OUT.tar
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
bb=/bin/busybox
[[ -x $bb ]] || { echo "busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,var/log}
chmod 1777 "$tmp/tmp"
cp "$bb" "$tmp/bin/busybox"
# one process for the ~400 links (a fork per link takes a minute in a software-emulated VM)
"$bb" --list-full | python3 -c '
import os, sys
for applet in sys.stdin.read().split():
    if applet != "bin/busybox":
        path = os.path.join(sys.argv[1], applet)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink("/bin/busybox", path)
' "$tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$tmp/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/etc/group"
tar --sort=name --mtime='2024-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$tmp" -cf "$out" .
