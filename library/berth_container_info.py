#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_container_info
short_description: Inspect berth containers
description:
  - Read only; returns what berth knows and never changes anything.
options:
  name:
    description: "Container names or IDs (all containers when empty)."
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - berth.runtime.berth
  - berth.runtime.berth.info_module
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: State of the web container
  berth_container_info:
    name: [web]
  register: web
"""

RETURN = r"""
containers:
  description: C(berth inspect) of each container found.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.runtime.plugins.module_utils.berth_common import COMMON_ARGS, inspect_each, run


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type="list", elements="str", default=[]), **COMMON_ARGS),
                           supports_check_mode=True)

    def work(engine):
        names = module.params["name"] or [c.id for c in engine.containers.list(all_=True)]
        return inspect_each(names, engine.containers.inspect)

    module.exit_json(changed=False, containers=run(module, work, report=True))


if __name__ == "__main__":
    main()
