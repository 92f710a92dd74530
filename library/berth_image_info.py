#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_image_info
short_description: Inspect berth images
description:
  - Read only; returns what berth knows and never changes anything.
options:
  name:
    description: "Image references (all images when empty)."
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - berth.runtime.berth
  - berth.runtime.berth.info_module
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: Look at one image
  berth_image_info:
    name: [busybox:latest]
"""

RETURN = r"""
images:
  description: C(berth inspect) of each image found (missing names are left out).
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
        names = module.params["name"] or [img.id for img in engine.listed_images(all_images=True)]
        return inspect_each(names, engine.inspect_image)

    module.exit_json(changed=False, images=run(module, work, report=True))


if __name__ == "__main__":
    main()
