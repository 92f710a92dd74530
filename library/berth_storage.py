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
    choices: [btrfs, overlay, vfs]
    required: true
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
author: berth contributors
"""

EXAMPLES = r"""
- name: btrfs for berth on a dedicated disk
  berth_storage:
    driver: btrfs
    device: [/dev/vdb]
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
from ansible.module_utils.berth_common import require_berth


def main():
    module = AnsibleModule(
        argument_spec=dict(driver=dict(type="str", required=True, choices=["btrfs", "overlay", "vfs"]),
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
                        module.check_mode, p["force"], p["fstab"])
    except BerthError as e:
        module.fail_json(msg=str(e))
    except OSError as e:
        module.fail_json(msg=str(e), exception=traceback.format_exc())
    changes = [s.what for s in steps if not s.done]
    module.exit_json(changed=bool(changes), steps=[{"step": s.what, "done_before": s.done} for s in steps],
                     diff={"prepared": "".join(f"{c}\n" for c in changes)} if changes else {})


if __name__ == "__main__":
    main()
