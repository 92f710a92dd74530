#!/usr/bin/env bash
# The "system container" image for fleet tests: Debian with python3 and what berth needs to run
# containers inside it (runc, conmon, PyYAML, venv), sshd, and a small init that reaps
# orphans. berth itself is not copied in: the molecule fleet installs it with the berth_runtime role
# from the collection's wheel into /opt/berth/venv; the SSH fleet tests bind-mount the checkout's
# runtime/ at /opt/berth/runtime, which a .pth file puts on python3's path. `berth` runs whichever is there.
# Usage: scripts/fleet-image.sh OUT.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ ${1:-} == --customize ]]; then
  root=${2:?}
  install -d "$root/opt/berth/runtime" "$root/run/sshd" "$root/root/.ssh"
  chmod 700 "$root/root/.ssh"
  echo /opt/berth/runtime >"$root/usr/lib/python3/dist-packages/berth-checkout.pth"
  install -m 0755 "$here/fleet-init.py" "$root/usr/local/sbin/fleet-init"
  printf '#!/bin/sh\n[ -x /opt/berth/venv/bin/berth ] && exec /opt/berth/venv/bin/berth "$@"\nexec python3 -m berth.cli.main "$@"\n' \
    >"$root/usr/local/bin/berth"
  chmod 0755 "$root/usr/local/bin/berth"
  # each host makes its own keys at start (fleet-init); none are shared through the image
  rm -f "$root"/etc/ssh/ssh_host_*
  # a user that reaches root with sudo, for become
  chroot "$root" useradd --create-home --shell /bin/bash deploy
  echo 'deploy ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/deploy"
  chmod 0440 "$root/etc/sudoers.d/deploy"
  exit 0
fi
out=${1:?usage: $0 OUT.tar}
exec "$here/debian-rootfs.sh" "$out" bookworm \
  python3,python3-yaml,python3-venv,sudo,runc,conmon,openssh-server,iproute2,procps,e2fsprogs,attr,busybox-static \
  "$here/fleet-image.sh --customize"
