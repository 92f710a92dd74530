#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_volume
short_description: Named berth volumes (present with labels, or absent)
description:
  - Creates a named volume (a directory under the berth root, C(ROOT/volumes/NAME/_data)) or removes it with
    its data.
  - A volume that containers refer to (running or not) is not removed; the task fails and names them.
  - Containers create the volumes they mount on first use as well (C(mounts) with C(type=volume) or
    C(volumes) with C(NAME:/path) in M(berth.runtime.berth_container)); declaring one here sets its labels.
options:
  name:
    description: "Volume name: at least two letters, digits, C(_), C(.) or C(-), starting with a letter or digit."
    type: str
    required: true
  labels:
    description:
      - Labels the volume must have (exactly these). Left out, an existing volume's labels are kept.
    type: dict
  state:
    description:
      - V(present) creates the volume if it is missing (and sets O(labels)); V(absent) removes it and its
        data if it exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - berth.runtime.berth
attributes:
  check_mode:
    support: full
    description: Plans with the real run's engine and changes nothing; reports what the real run would do.
  diff_mode:
    support: full
    description: The volume's labels before and after (or absent), and the action with its reason.
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing.
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: A volume for the database's files
  berth.runtime.berth_volume:
    name: db-data
    labels:
      team: db

- name: A container that mounts it
  berth.runtime.berth_container:
    name: db
    image: busybox:latest
    command: [sleep, infinity]
    mounts:
      - type: volume
        source: db-data
        target: /var/lib/db

- name: Remove it (fails while a container still refers to it)
  berth.runtime.berth_volume:
    name: db-data
    state: absent
"""

RETURN = r"""
volume:
  description: The volume afterwards (in check mode, as it is now); empty when it does not exist.
  returned: always
  type: dict
  sample: {"Name": "db-data", "Driver": "local", "Mountpoint": "/var/lib/berth/volumes/db-data/_data",
           "Labels": {"team": "db"}, "UsedBy": ["db"]}
actions:
  description: What was done (or would be, in check mode), with the reasons.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.runtime.plugins.module_utils.berth_common import COMMON_ARGS, plan_result, run


def main():
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="str", required=True), labels=dict(type="dict"),
                           state=dict(type="str", default="present", choices=["present", "absent"]),
                           **COMMON_ARGS),
        supports_check_mode=True,
    )
    p = module.params

    def work(engine):
        from berth.declare import schema
        from berth.errors import NotFound

        entry = {"name": p["name"], "state": p["state"]}
        if p["labels"] is not None:
            entry["labels"] = p["labels"]
        else:
            try:
                entry["labels"] = engine.volumes.get(p["name"]).labels
            except NotFound:
                pass
        desired = schema.from_dict({"volumes": [entry]}, "berth_volume arguments")
        actions = engine.plan(desired)
        if p["state"] == "absent" and actions:
            users = engine.volumes.users(p["name"])
            if users:  # refused in check mode too, as the real run would refuse it
                module.fail_json(msg=f"volume {p['name']} is in use by container(s) {', '.join(users)}: "
                                     "remove them first")
        if actions and not module.check_mode:
            engine.apply(actions)
        try:
            info = engine.volumes.inspect(p["name"])
        except NotFound:
            info = {}
        return actions, info

    actions, info = run(module, work)
    module.exit_json(volume=info, **plan_result(actions))


if __name__ == "__main__":
    main()
