#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_snapshot
short_description: Snapshots of a berth container's read-write layer (present, absent, restored) and commit
description:
  - Creates, removes or restores a named snapshot; restoring a running container stops and restarts it.
options:
  container:
    description: "Container name or ID."
    type: str
    required: true
  name:
    description: "Snapshot name."
    type: str
    required: true
  state:
    description: present (create if missing), absent (remove), restored (put the container back to it).
    type: str
    choices: [present, absent, restored]
    default: present
  commit_to:
    description: "Also commit the container to this image reference (with O(state=present))."
    type: str
extends_documentation_fragment:
  - berth.runtime.berth
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: Snapshot before an upgrade
  berth_snapshot:
    container: web
    name: before-upgrade
"""

RETURN = r"""
snapshots:
  description: The container's snapshots afterwards.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.runtime.plugins.module_utils.berth_common import COMMON_ARGS, run


def main():
    module = AnsibleModule(
        argument_spec=dict(container=dict(type="str", required=True), name=dict(type="str", required=True),
                           state=dict(type="str", default="present", choices=["present", "absent", "restored"]),
                           commit_to=dict(type="str"), **COMMON_ARGS),
        supports_check_mode=True,
    )

    def work(engine):
        p = module.params
        m = engine.containers
        have = {str(s["name"]) for s in m.snapshot_list(p["container"])}
        changed, msg = False, "nothing to do"
        if p["state"] == "present" and p["name"] not in have:
            changed, msg = True, f"snapshot {p['name']} created"
            if not module.check_mode:
                m.snapshot_create(p["container"], p["name"])
        elif p["state"] == "absent" and p["name"] in have:
            changed, msg = True, f"snapshot {p['name']} removed"
            if not module.check_mode:
                m.snapshot_remove(p["container"], p["name"])
        elif p["state"] == "restored":
            if p["name"] not in have:
                module.fail_json(msg=f"container {p['container']} has no snapshot {p['name']}")
            changed, msg = True, f"restored to {p['name']}"
            if not module.check_mode:
                m.snapshot_restore(p["container"], p["name"])
        if p["commit_to"] and p["state"] == "present":
            changed, msg = True, msg + f"; committed to {p['commit_to']}"
            if not module.check_mode:
                m.commit(p["container"], p["commit_to"], f"snapshot {p['name']}")
        snaps = m.snapshot_list(p["container"])
        return changed, msg, snaps

    changed, msg, snaps = run(module, work)
    module.exit_json(changed=changed, msg=msg, snapshots=snaps, diff={"prepared": msg + "\n"} if changed else {})


if __name__ == "__main__":
    main()
