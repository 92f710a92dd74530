#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_state
short_description: Converge a host to a whole berth desired-state document in one task
description:
  - Plans what must change for the host to match the declared images and containers, with the
    reason for every action, and applies it. Applying the same state twice changes nothing.
  - In check mode nothing is changed and nothing is pulled; the diff shows the planned actions.
options:
  images:
    description: Images that must exist (each with C(name) and one of C(import), C(pull), C(load), C(build)).
    type: list
    elements: dict
    default: []
  containers:
    description: Containers with their desired C(state) (running, stopped, present, absent); keys as in C(berth plan).
    type: list
    elements: dict
    default: []
  state_file:
    description: A desired-state YAML file on the managed host, instead of O(images) and O(containers).
    type: path
  prune:
    description: Also remove containers that berth created from a declared state and that are no longer declared.
    type: bool
    default: false
extends_documentation_fragment:
  - berth.runtime.berth
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: Converge the declared containers
  berth_state:
    images:
      - name: busybox:latest
        import: /srv/images/busybox.tar
        changes: ['CMD ["sh"]']
    containers:
      - name: web
        image: busybox:latest
        command: [httpd, -f, -p, "8080"]
        network: host
        memory: 64m
        restart: always
"""

RETURN = r"""
actions:
  description: The planned (or applied) actions, each with its reasons.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "update", "target": "web", "reasons": ["memory 64m → 128m"]}]
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
        argument_spec=dict(images=dict(type="list", elements="dict", default=[]),
                           containers=dict(type="list", elements="dict", default=[]),
                           state_file=dict(type="path"), prune=dict(type="bool", default=False), **COMMON_ARGS),
        mutually_exclusive=[("state_file", "containers"), ("state_file", "images")],
        supports_check_mode=True,
    )

    def work(engine):
        from berth.declare import schema

        p = module.params
        desired = schema.load(p["state_file"]) if p["state_file"] else \
            schema.from_dict({"images": p["images"], "containers": p["containers"]}, "berth_state arguments")
        return converge(module, engine, desired, prune=p["prune"])

    exit_with_plan(module, run(module, work))


if __name__ == "__main__":
    main()
