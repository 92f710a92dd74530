# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: berth
short_description: berth containers as inventory hosts
description:
  - Lists the containers of a berth root as hosts reached with the berth connection plugin, filtered by
    label, with host variables about each container and C(compose), C(groups) and C(keyed_groups).
  - Configuration files end with C(berth.yml) or C(berth.yaml).
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: Marks the file as this plugin's.
    required: true
    choices: [berth.runtime.berth]
  root:
    description: berth root.
    type: str
  runroot:
    description: berth run root.
    type: str
  berth_executable:
    description: The berth command on the controller.
    type: str
    default: berth
  labels:
    description: Only containers with all these labels (and values).
    type: dict
    default: {}
  running_only:
    description: Only running containers.
    type: bool
    default: true
"""

EXAMPLES = r"""
# fleet.berth.yml
plugin: berth.runtime.berth
labels:
  fleet: web
keyed_groups:
  - key: berth_labels.role
    prefix: role
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
"""

import json
import subprocess

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "berth.runtime.berth"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("berth.yml", "berth.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        argv = [self.get_option("berth_executable")]
        for opt in ("root", "runroot"):
            if self.get_option(opt):
                argv += [f"--{opt}", self.get_option(opt)]
        cmd = argv + ["ps", "--format", "json"] + ([] if self.get_option("running_only") else ["-a"])
        cp = subprocess.run(cmd, capture_output=True, text=True)
        if cp.returncode != 0:
            raise AnsibleParserError(f"berth ps failed: {cp.stderr.strip()}")
        wanted = self.get_option("labels") or {}
        strict = self.get_option("strict")
        for c in json.loads(cp.stdout or "[]"):
            labels = c.get("Config", {}).get("Labels") or {}
            if any(str(labels.get(k)) != str(v) for k, v in wanted.items()):
                continue
            name = c["Name"].lstrip("/")
            self.inventory.add_host(name)
            hostvars = {
                "ansible_connection": "berth.runtime.berth",
                "ansible_host": name,
                "berth_id": c["Id"],
                "berth_image": c.get("Config", {}).get("Image"),
                "berth_labels": labels,
                "berth_state": c["State"]["Status"],
                "berth_ip": c.get("NetworkSettings", {}).get("IPAddress", ""),
            }
            if self.get_option("root"):
                hostvars["ansible_berth_root"] = self.get_option("root")
            if self.get_option("runroot"):
                hostvars["ansible_berth_runroot"] = self.get_option("runroot")
            if argv[0] != "berth":
                hostvars["ansible_berth_executable"] = argv[0]
            for k, v in hostvars.items():
                self.inventory.set_variable(name, k, v)
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)
