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
  - Creates, updates in place (memory, cpus, pids_limit, restart_policy), recreates, starts, stops, restarts or
    removes a container so that it matches the task. Option names and states follow
    community.docker.docker_container where the meaning is the same.
  - Only the options the task sets are compared with the existing container (O(comparisons) makes an option
    strict or ignores it); an option the task leaves out keeps the container's value. A container made with
    C(berth create) and handed to this module with the same options is left as it is.
  - The diff gives the reason for every change (for example C(env FOO removed) or
    C(image sha256:ab… → sha256:cd…)); check mode plans exactly what the real run does.
options:
  name:
    description: "Container name."
    type: str
    required: true
  image:
    description:
      - "Image reference. Needed to create the container; without it, an existing container is started,
        stopped, restarted or removed by name and its image is not compared."
    type: str
  pull:
    description:
      - "V(missing) pulls O(image) when it is not on this host; V(never) fails then."
      - "V(always) asks the registry which image the tag names now (manifests only, no layer is downloaded)
        and pulls it when it is not the local one; the container is recreated only when the image changed
        (changed is reported only then). Check mode asks the registry too."
      - "A reference without a registry host goes to C(default_registry) of berth's config file; registries
        listed in its C(insecure_registries) are spoken to over plain http; credentials come from
        C(berth login)."
    type: str
    choices: [missing, always, never]
    default: missing
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
  env_file:
    description: "Files on the managed host with KEY=VALUE lines (read before O(env), which wins)."
    type: list
    elements: path
  working_dir:
    description: "Working directory (absolute)."
    type: str
    aliases: [workdir]
  user:
    description: "User[:group]."
    type: str
  groups:
    description: "Supplementary groups to add (names in the image's /etc/group, or gids), as docker's --group-add."
    type: list
    elements: str
  hostname:
    description: "Host name."
    type: str
  volumes:
    description:
      - "Mounts C(SRC:DST[:ro]): C(SRC) is a host path (absolute, bind mounted) or a named volume's name (created
        on first use and filled from the image's content at C(DST)); optional C(ro) or C(rw)."
    type: list
    elements: str
  mounts:
    description: "Mounts given as fields, as docker's C(--mount) (together with O(volumes))."
    type: list
    elements: dict
    suboptions:
      type:
        description: "V(bind) (a host path), V(volume) (a named volume) or V(tmpfs)."
        type: str
        choices: [bind, volume, tmpfs]
        default: bind
      source:
        description: "Host path (absolute) for V(bind), the volume's name for V(volume); none for V(tmpfs)."
        type: str
      tmpfs_size:
        description: "Size of a V(tmpfs) (such as V(64m))."
        type: str
      tmpfs_mode:
        description: "Mode of a V(tmpfs)'s root directory, in octal (such as V(1770))."
        type: str
      target:
        description: "Path in the container (absolute)."
        type: str
        required: true
      read_only:
        description: "Mount read-only."
        type: bool
        default: false
  tmpfs:
    description: "tmpfs mount points C(DST[:OPTS])."
    type: list
    elements: str
  read_only:
    description: "Read-only root file system (berth's default: false)."
    type: bool
  tty:
    description: "A pseudo-terminal for the container (docker's C(-t)); what it writes goes to the log (default false)."
    type: bool
  labels:
    description: "Labels."
    type: dict
  storage_opts:
    description:
      - "Storage options of the container's writable layer: C(size) limits it (overlay on xfs mounted with
        prjquota, or btrfs); changing it recreates the container."
    type: dict
  network_mode:
    description: "V(bridge) (berth's default), V(none), V(host) or a network's name."
    type: str
    aliases: [network]
  published_ports:
    description: "Published ports C([IP:]HOST:CTR[/proto]) (bridge networks)."
    type: list
    elements: str
    aliases: [ports]
  ip:
    description: "Fixed IPv4 address on the container's bridge network."
    type: str
  memory:
    description: "Memory limit such as C(64m); changes in place while a limit is set."
    type: str
  cpus:
    description: "CPU quota in CPUs; changes in place while a limit is set."
    type: float
  pids_limit:
    description: "Maximum number of processes (-1 unlimited); changes in place while a limit is set."
    type: int
  blkio_weight:
    description: "Block IO weight, 10 to 1000."
    type: int
  cap_add:
    description: "Capabilities to add."
    type: list
    elements: str
  cap_drop:
    description: "Capabilities to drop."
    type: list
    elements: str
  privileged:
    description: "Privileged container (berth's default: false)."
    type: bool
  pid_mode:
    description:
      - V(host) shares the host's PID namespace with the container (docker's C(--pid host)), so that it sees
        and can signal the host's processes. Changing it recreates the container.
    type: str
    choices: [host]
  runtime:
    description: "OCI runtime (default: crun where it works, else runc); changing it recreates the container."
    type: str
    choices: [crun, runc]
  auto_remove:
    description: "Remove the container when it exits (conflicts with a restart policy)."
    type: bool
  restart_policy:
    description:
      - "V(no) (berth's default), V(always), V(unless-stopped) or V(on-failure) (also C(on-failure:N));
        berth restarts the container when it exits. Changes in place."
    type: str
  restart_retries:
    description: "How often V(on-failure) restarts the container (implies O(restart_policy=on-failure))."
    type: int
  health_cmd:
    description:
      - "Health check command, run through C(/bin/sh -c) in the container every O(health_interval) by a
        per-container monitor (no daemon); overrides the image's C(HEALTHCHECK)."
    type: str
  health_interval:
    description: "Time between two health checks, such as C(30s) or C(500ms) (default the image's, else C(30s))."
    type: str
  health_timeout:
    description: "Time one health check may take before it counts as failed (default C(30s))."
    type: str
  health_retries:
    description: "Consecutive failed checks that make the container unhealthy (default 3)."
    type: int
  health_start_period:
    description: "Time after the start during which failed checks do not count (default C(0s))."
    type: str
  no_healthcheck:
    description: "Disable the image's C(HEALTHCHECK)."
    type: bool
  health_on_failure:
    description: "What happens when the container turns unhealthy: nothing, or it is killed, restarted or stopped."
    type: str
    choices: [none, kill, restart, stop]
  snapshots:
    description: "Names of snapshots of the container's writable layer that must exist (made when missing)."
    type: list
    elements: str
  state:
    description:
      - "V(started) (or V(running)): exists and runs; V(healthy): runs and its health check passes within
        O(healthy_timeout), else the task fails with the last check's output; V(stopped): exists and does not
        run; V(present): exists, running or not; V(absent): removed. With O(image) left out, an existing
        container is started, stopped or removed by name."
    type: str
    choices: [started, running, healthy, stopped, present, absent]
    default: started
  healthy_timeout:
    description: "Seconds O(state=healthy) waits for the container to become healthy (default 300)."
    type: float
  recreate:
    description: "Remove and create the container even when nothing differs."
    type: bool
    default: false
  restart:
    description: "Restart a running container even when nothing differs (with O(state=started))."
    type: bool
    default: false
  comparisons:
    description:
      - "How an option is compared with the existing container, by option name (or C(*) for every option not
        named): V(strict) - the container must have the task's value, or berth's default when the task does
        not set the option; V(ignore) - never compared; V(allow_more_present) (lists and mappings) - the
        container may have more entries than the task gives."
      - "Without it, options the task sets are V(strict) and options it leaves out are V(ignore)."
      - "V(image: ignore) keeps a container whose image is not the one O(image) names now."
    type: dict
extends_documentation_fragment:
  - berth.runtime.berth
attributes:
  check_mode:
    support: full
    description: Plans with the real run's engine and changes nothing; reports what the real run would do.
  diff_mode:
    support: full
    description: The container's settings before and after, and the reason for every change.
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing.
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: A web server from busybox
  berth_container:
    name: web
    image: busybox:latest
    command: [httpd, -f, -p, "8080", -h, /www]
    network_mode: host
    memory: 64m
    restart_policy: always

- name: Stop it by name (the same container, its writable layer kept)
  berth_container:
    name: web
    state: stopped

- name: Replace the container and wait until its health check passes
  berth_container:
    name: web
    image: registry.example.com/web:2
    health_cmd: wget -qO- 127.0.0.1:8080/healthz || exit 1
    health_interval: 2s
    health_retries: 3
    state: healthy
    healthy_timeout: 60

- name: Environment exactly as given, labels may have more
  berth_container:
    name: web
    image: busybox:latest
    env: {MODE: prod}
    labels: {team: web}
    comparisons:
      env: strict
      labels: allow_more_present
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
            pull=dict(type="str", default="missing", choices=["missing", "always", "never"]),
            command=dict(type="list", elements="str"), entrypoint=dict(type="list", elements="str"),
            env=dict(type="dict"), env_file=dict(type="list", elements="path"),
            working_dir=dict(type="str", aliases=["workdir"]), user=dict(type="str"),
            groups=dict(type="list", elements="str"), hostname=dict(type="str"),
            volumes=dict(type="list", elements="str"),
            mounts=dict(type="list", elements="dict", options=dict(
                type=dict(type="str", default="bind", choices=["bind", "volume", "tmpfs"]), source=dict(type="str"),
                tmpfs_size=dict(type="str"), tmpfs_mode=dict(type="str"), target=dict(type="str", required=True),
                read_only=dict(type="bool", default=False))),
            tmpfs=dict(type="list", elements="str"), read_only=dict(type="bool"), tty=dict(type="bool"),
            labels=dict(type="dict"),
            storage_opts=dict(type="dict"), network_mode=dict(type="str", aliases=["network"]),
            published_ports=dict(type="list", elements="str", aliases=["ports"]), ip=dict(type="str"),
            memory=dict(type="str"), cpus=dict(type="float"), pids_limit=dict(type="int"),
            blkio_weight=dict(type="int"), cap_add=dict(type="list", elements="str"),
            cap_drop=dict(type="list", elements="str"), privileged=dict(type="bool"),
            pid_mode=dict(type="str", choices=["host"]), runtime=dict(type="str", choices=["crun", "runc"]),
            auto_remove=dict(type="bool"),
            restart_policy=dict(type="str"), restart_retries=dict(type="int"),
            health_cmd=dict(type="str"), health_interval=dict(type="str"), health_timeout=dict(type="str"),
            health_retries=dict(type="int"), health_start_period=dict(type="str"), no_healthcheck=dict(type="bool"),
            health_on_failure=dict(type="str", choices=["none", "kill", "restart", "stop"]),
            snapshots=dict(type="list", elements="str"),
            state=dict(type="str", default="started",
                       choices=["started", "running", "healthy", "stopped", "present", "absent"]),
            healthy_timeout=dict(type="float"),
            recreate=dict(type="bool", default=False), restart=dict(type="bool", default=False),
            comparisons=dict(type="dict"),
            **COMMON_ARGS),
        supports_check_mode=True,
    )

    def work(engine):
        from berth.declare import schema

        desired = schema.from_task(module.params, f"berth_container {module.params['name']}")
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
