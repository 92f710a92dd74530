#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_host_info
short_description: What berth finds on the host (kernel, storage drivers and why, runtimes)
description:
  - Returns C(berth info) as data. Never changes anything.
extends_documentation_fragment:
  - berth.runtime.berth
  - berth.runtime.berth.info_module
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: Probe the host
  berth_host_info:
  register: berth_host
"""

RETURN = r"""
host:
  description: The host facts, the chosen driver and the reason, per-driver support, runtimes.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.runtime.plugins.module_utils.berth_common import COMMON_ARGS, run


def main():
    module = AnsibleModule(argument_spec=dict(**COMMON_ARGS), supports_check_mode=True)
    module.exit_json(changed=False, host=run(module, lambda engine: engine.info(), report=True))


if __name__ == "__main__":
    main()
