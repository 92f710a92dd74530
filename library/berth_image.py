#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_image
short_description: Make sure a berth image is present (imported, pulled, loaded or built) or absent
description:
  - In check mode nothing is fetched; the result says what would be done.
options:
  name:
    description: "Image reference."
    type: str
    required: true
  import_from:
    description: "Rootfs tarball on the managed host."
    type: path
  changes:
    description: "Dockerfile instructions applied on import."
    type: list
    elements: str
    default: []
  pull:
    description: "Reference to pull from a registry."
    type: str
  tls_verify:
    description: "Use TLS and verify it when pulling."
    type: bool
    default: true
  load:
    description: "Archive to load."
    type: path
  build:
    description: "Build it: C(context), optional C(dockerfile) and C(args)."
    type: dict
  state:
    description: "present or absent."
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - berth.runtime.berth
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: Busybox from the host's busybox-static
  berth_image:
    name: busybox:latest
    import_from: /srv/busybox.tar
    changes: ['CMD ["sh"]']
"""

RETURN = r"""
image:
  description: C(berth inspect) of the image when present.
  returned: when present
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.runtime.plugins.module_utils.berth_common import (
    COMMON_ARGS,
    converge,
    exit_with_plan,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="str", required=True), import_from=dict(type="path"),
                           changes=dict(type="list", elements="str", default=[]), pull=dict(type="str"),
                           tls_verify=dict(type="bool", default=True), load=dict(type="path"), build=dict(type="dict"),
                           state=dict(type="str", default="present", choices=["present", "absent"]), **COMMON_ARGS),
        mutually_exclusive=[("import_from", "pull", "load", "build")],
        required_if=[("state", "present", ("import_from", "pull", "load", "build"), True)],
        supports_check_mode=True,
    )

    def work(engine):
        from berth.declare import reconcile, schema
        from berth.errors import NotFound

        p = module.params
        if p["state"] == "absent":
            try:
                engine.image(p["name"])
            except NotFound:
                return [], None
            action = reconcile.Action("remove-image", p["name"], [f"image {p['name']} declared absent"])
            if not module.check_mode:
                engine.remove_image(p["name"])
            return [action], None
        item = {"name": p["name"]}
        if p["import_from"]:
            item.update({"import": p["import_from"], "changes": p["changes"]})
        elif p["pull"]:
            item.update({"pull": p["pull"], "tls_verify": p["tls_verify"]})
        elif p["load"]:
            item["load"] = p["load"]
        else:
            item["build"] = p["build"]
        actions = converge(module, engine, schema.from_dict({"images": [item]}, f"berth_image {p['name']}"))
        try:
            return actions, engine.inspect_image(p["name"])
        except NotFound:
            return actions, None

    actions, info = run(module, work)
    exit_with_plan(module, actions, "image", info)


if __name__ == "__main__":
    main()
