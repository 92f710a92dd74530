#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_storage
short_description: Prepare a host's storage for a berth driver (wraps berth host prepare)
description:
  - Makes a btrfs (or xfs for overlay) file system on the given devices or on a loopback file, mounts it at the
    berth root, records the mount in fstab and writes the driver to the berth config. Each step is done only
    when missing, so a second run reports no change.
  - Safe by default, a device that already holds a file system or LVM signature is refused unless O(force=true).
  - Check mode reports the plan and changes nothing.
options:
  driver:
    description: Driver to prepare for.
    type: str
    choices: [btrfs, overlay, vfs, devicemapper]
    required: true
  pool:
    description:
      - devicemapper only. V(thin) makes a dm-thin pool with LVM on O(device) (direct-lvm) or on O(loopback)
        (loop-lvm, for trials only, with a warning); V(reflink) makes the reflink pool's XFS.
      - Default V(thin) where the kernel has device-mapper, V(reflink) otherwise.
    type: str
    choices: [thin, reflink]
  storage_opts:
    description:
      - Options of the thin pool, e.g. C(dm.blocksize) (chunk size, 512K), C(dm.vg) (volume group, berth),
        C(dm.thinp_percent), C(dm.thinp_metapercent), C(dm.thinp_autoextend_threshold),
        C(dm.thinp_autoextend_percent).
    type: dict
    default: {}
  device:
    description: Block devices to use.
    type: list
    elements: str
  loopback:
    description: A sparse file C(FILE:SIZE) attached to a loop device instead of devices.
    type: str
  mount:
    description: Where to mount the file system (default the berth root).
    type: path
  force:
    description: Format a device even if it holds a file system.
    type: bool
    default: false
  config_path:
    description: berth config file to write the driver to.
    type: path
    default: /etc/berth/config.yml
  fstab:
    description: fstab to record the mount in.
    type: path
    default: /etc/fstab
  root:
    description: berth root.
    type: path
    default: /var/lib/berth
requirements:
  - berth importable by the Python that runs the module
attributes:
  check_mode:
    support: full
    description: Plans with the real run's engine and changes nothing; reports what the real run would do.
  diff_mode:
    support: full
    description: The preparation steps taken (or, in check mode, that would be taken).
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing.
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: btrfs for berth on a dedicated disk
  berth_storage:
    driver: btrfs
    device: [/dev/vdb]

- name: A dm-thin pool on two disks (direct-lvm), 1M chunks, autoextend at 70%
  berth_storage:
    driver: devicemapper
    pool: thin
    device: [/dev/vdc, /dev/vdd]
    storage_opts:
      dm.blocksize: 1M
      dm.thinp_autoextend_threshold: "70"
"""

RETURN = r"""
steps:
  description: Each step and whether it was already satisfied.
  returned: always
  type: list
  elements: dict
"""

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.runtime.plugins.module_utils.berth_common import require_berth


def main():
    module = AnsibleModule(
        argument_spec=dict(driver=dict(type="str", required=True, choices=["btrfs", "overlay", "vfs", "devicemapper"]),
                           pool=dict(type="str", choices=["thin", "reflink"]),
                           storage_opts=dict(type="dict", default={}),
                           device=dict(type="list", elements="str"), loopback=dict(type="str"),
                           mount=dict(type="path"), force=dict(type="bool", default=False),
                           config_path=dict(type="path", default="/etc/berth/config.yml"),
                           fstab=dict(type="path", default="/etc/fstab"),
                           root=dict(type="path", default="/var/lib/berth")),
        mutually_exclusive=[("device", "loopback")],
        supports_check_mode=True,
    )
    require_berth(module)
    from berth.errors import BerthError
    from berth.host.prepare import prepare

    p = module.params
    try:
        steps = prepare(p["driver"], p["root"], p["config_path"], p["device"], p["loopback"], p["mount"],
                        module.check_mode, p["force"], p["fstab"], pool=p["pool"],
                        opts={str(k): str(v) for k, v in p["storage_opts"].items()})
    except BerthError as e:
        module.fail_json(msg=str(e))
    except OSError as e:
        module.fail_json(msg=str(e), exception=traceback.format_exc())
    for s in steps:
        if s.warning:
            module.warn(s.what)
    changes = [s.what for s in steps if not s.done]
    module.exit_json(changed=bool(changes), steps=[{"step": s.what, "done_before": s.done} for s in steps],
                     diff={"prepared": "".join(f"{c}\n" for c in changes)} if changes else {})


if __name__ == "__main__":
    main()
