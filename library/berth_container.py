#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_container
short_description: Manage one berth container
description:
  - Creates, updates in place (memory, cpus, pids_limit, restart), recreates, starts, stops or removes
    a container so that it matches the arguments. The diff gives the reason for every change
    (for example C(env FOO removed) or C(image sha256:ab… → sha256:cd…)); a removed env var or mount is a change.
options:
  name:
    description: "Container name."
    type: str
    required: true
  image:
    description: "Image reference (required unless O(state=absent))."
    type: str
  command:
    description: "Command and arguments."
    type: list
    elements: str
  entrypoint:
    description: "Entrypoint override."
    type: list
    elements: str
  env:
    description: "Environment variables."
    type: dict
  mounts:
    description: "Bind mounts C(SRC:DST[:ro])."
    type: list
    elements: str
  tmpfs:
    description: "tmpfs mount points."
    type: list
    elements: str
  workdir:
    description: "Working directory."
    type: str
  user:
    description: "User[:group]."
    type: str
  hostname:
    description: "Host name."
    type: str
  read_only:
    description: "Read-only root file system."
    type: bool
    default: false
  labels:
    description: "Labels."
    type: dict
  storage_opts:
    description:
      - "Storage options of the container's writable layer: C(size) limits it (overlay on xfs mounted with
        prjquota, or btrfs); changing it recreates the container."
    type: dict
  network:
    description: "bridge, none, host or a network's name."
    type: str
    default: bridge
  ports:
    description: "Published ports C([IP:]HOST:CTR)."
    type: list
    elements: str
  memory:
    description: "Memory limit such as 64m."
    type: str
  cpus:
    description: "CPU quota in CPUs."
    type: float
  pids_limit:
    description: "Maximum number of processes."
    type: int
  blkio_weight:
    description: "Block IO weight, 10 to 1000."
    type: int
  runtime:
    description: "OCI runtime (default: crun where it works, else runc); changing it recreates the container."
    type: str
    choices: [crun, runc]
  ip:
    description: "Fixed IPv4 address on the container's bridge network."
    type: str
  snapshots:
    description: "Names of snapshots of the container's writable layer that must exist (made when missing)."
    type: list
    elements: str
  restart:
    description: "no, always, unless-stopped or on-failure[:N]."
    type: str
    default: "no"
  cap_add:
    description: "Capabilities to add."
    type: list
    elements: str
  cap_drop:
    description: "Capabilities to drop."
    type: list
    elements: str
  privileged:
    description: "Privileged container."
    type: bool
    default: false
  state:
    description: Desired state.
    type: str
    choices: [running, stopped, present, absent]
    default: running
extends_documentation_fragment:
  - berth.runtime.berth
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: A web server from busybox
  berth_container:
    name: web
    image: busybox:latest
    command: [httpd, -f, -p, "8080", -h, /www]
    network: host
    memory: 64m
    restart: always
"""

RETURN = r"""
actions:
  description: What was (or in check mode would be) done, with reasons.
  returned: always
  type: list
  elements: dict
container:
  description: The container as C(berth inspect) shows it (absent when removed).
  returned: when the container exists
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
        argument_spec=dict(
            name=dict(type="str", required=True), image=dict(type="str"),
            command=dict(type="list", elements="str"), entrypoint=dict(type="list", elements="str"),
            env=dict(type="dict"), mounts=dict(type="list", elements="str"), tmpfs=dict(type="list", elements="str"),
            workdir=dict(type="str"), user=dict(type="str"), hostname=dict(type="str"),
            read_only=dict(type="bool", default=False), labels=dict(type="dict"),
            network=dict(type="str", default="bridge"), ports=dict(type="list", elements="str"),
            memory=dict(type="str"), cpus=dict(type="float"), pids_limit=dict(type="int"),
            blkio_weight=dict(type="int"), runtime=dict(type="str", choices=["crun", "runc"]), ip=dict(type="str"),
            snapshots=dict(type="list", elements="str"),
            restart=dict(type="str", default="no"), cap_add=dict(type="list", elements="str"),
            cap_drop=dict(type="list", elements="str"), privileged=dict(type="bool", default=False),
            storage_opts=dict(type="dict"),
            state=dict(type="str", default="running", choices=["running", "stopped", "present", "absent"]),
            **COMMON_ARGS),
        required_if=[("state", "running", ["image"]), ("state", "stopped", ["image"]), ("state", "present", ["image"])],
        supports_check_mode=True,
    )

    def work(engine):
        from berth.container import options
        from berth.declare import schema

        item = options.declaration_from_params(module.params)
        item.setdefault("image", "unused")
        desired = schema.from_dict({"containers": [item]}, f"berth_container {module.params['name']}")
        actions = converge(module, engine, desired)
        try:
            info = engine.containers.inspect(module.params["name"])
        except Exception:  # noqa: BLE001 - absent is a valid outcome
            info = None
        return actions, info

    actions, info = run(module, work)
    exit_with_plan(module, actions, "container", info)


if __name__ == "__main__":
    main()
