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
    description:
      - Images that must exist. Each has C(name) and exactly one source - C(import) (a rootfs tarball, with
        C(changes), Dockerfile instructions such as C(CMD ["sh"])), C(pull) (a reference, with C(tls_verify),
        C(ca_file), C(authfile)), C(load) (a docker-archive or OCI archive) or C(build) (a context directory, or
        a mapping with C(context), C(dockerfile), C(args)) - and optionally C(require_signature).
    type: list
    elements: dict
    default: []
  containers:
    description:
      - Containers with their desired state. A declared container is compared as a whole; a key it leaves out
        means berth's default (unlike M(berth.runtime.berth_container), which compares only the options a
        task sets).
      - "C(name) (required), C(image) (required unless C(state) is absent), C(state): C(running) (also
        C(started)), C(healthy), C(stopped), C(present) or C(absent) (default running). C(healthy): running
        and its health check passing within C(healthy_timeout) seconds (default 300); containers are
        converged one at a time, in order, and the first that does not become healthy stops the run
        (nothing after it is changed)."
      - "C(command), C(entrypoint): lists. C(env): a mapping (or a list of KEY=VALUE); C(env_file): files of
        KEY=VALUE lines on the managed host. C(workdir) (or C(working_dir)), C(user), C(group_add) (groups
        to add, as docker's --group-add), C(hostname)."
      - "C(volumes): C(SRC:DST[:ro]) strings (C(SRC) a host path or a named volume); C(mounts): mappings with
        C(type) (bind, volume or tmpfs), C(source), C(target), C(read_only), C(tmpfs_size), C(tmpfs_mode) (a
        C(SRC:DST[:ro]) string is read as a volume). C(tmpfs): C(DST[:OPTS]) strings.
        C(read_only): read-only root file system. C(tty): a pseudo-terminal for the container."
      - "C(labels): a mapping. C(network) (or C(network_mode)): bridge (default), none, host or a network's
        name; C(ports) (or C(published_ports)): C([IP:]HOST:CTR[/proto]); C(ip): a fixed IPv4 address."
      - "C(memory) (such as 64m), C(cpus), C(pids_limit), C(blkio_weight) (10 to 1000), C(cap_add),
        C(cap_drop), C(privileged), C(pid_mode) (host), C(runtime) (crun or runc), C(storage_opts) (a mapping,
        C(size))."
      - "C(restart) (or C(restart_policy)): no (default), always, unless-stopped, on-failure or on-failure:N;
        C(restart_retries): N for on-failure. C(snapshots): names of snapshots that must exist."
      - "C(health_cmd): a health check command (through C(/bin/sh -c)); C(health_interval),
        C(health_timeout), C(health_start_period): durations such as 500ms or 30s; C(health_retries): failures
        before unhealthy; C(no_healthcheck): disable the image's C(HEALTHCHECK); C(health_on_failure): none,
        kill, restart or stop."
      - memory, cpus, pids_limit and the restart policy change in place; any other change recreates the
        container.
    type: list
    elements: dict
    default: []
  volumes:
    description:
      - "Named volumes: C(name) (required), C(labels) (a mapping), C(state): C(present) (default) or C(absent)
        (removed after the containers, refused while a container still refers to it)."
    type: list
    elements: dict
    default: []
  state_file:
    description: A desired-state YAML file on the managed host, instead of O(images), O(containers) and O(volumes).
    type: path
  prune:
    description: Also remove containers that berth created from a declared state and that are no longer declared.
    type: bool
    default: false
extends_documentation_fragment:
  - berth.runtime.berth
attributes:
  check_mode:
    support: full
    description: Plans with the real run's engine and changes nothing; reports what the real run would do.
  diff_mode:
    support: full
    description: Every touched container's settings before and after, and each planned action with its reasons.
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing.
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
                           volumes=dict(type="list", elements="dict", default=[]),
                           state_file=dict(type="path"), prune=dict(type="bool", default=False), **COMMON_ARGS),
        mutually_exclusive=[("state_file", "containers"), ("state_file", "images"), ("state_file", "volumes")],
        supports_check_mode=True,
    )

    def work(engine):
        from berth.declare import schema

        p = module.params
        desired = schema.load(p["state_file"]) if p["state_file"] else \
            schema.from_dict({"images": p["images"], "containers": p["containers"], "volumes": p["volumes"]},
                             "berth_state arguments")
        return converge(module, engine, desired, prune=p["prune"])

    exit_with_plan(module, run(module, work))


if __name__ == "__main__":
    main()
