#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_snapshot
short_description: Snapshots of a berth container's read-write layer (present, absent, restored) and commit
description:
  - Creates, removes or restores a named snapshot of a container's writable layer; restoring a running
    container stops and restarts it.
  - Idempotent. O(state=restored) reports a change only when the container's writable layer differs from
    the snapshot (compared file by file), and O(commit_to) commits only when the image does not already
    hold that snapshot.
  - Check mode predicts exactly what the real run does, failures included.
options:
  container:
    description: "Container name or ID."
    type: str
    required: true
  name:
    description: "Snapshot name."
    type: str
    required: true
  state:
    description:
      - V(present) creates the snapshot if it is missing, V(absent) removes it if it exists.
      - V(restored) puts the container's writable layer back to the snapshot when it differs from it.
    type: str
    choices: [present, absent, restored]
    default: present
  with_volumes:
    description:
      - With O(state=present), a snapshot that is created also copies the container's named volumes,
        taken while the container is paused so that layer and volumes are of one moment (C(berth
        snapshot create --with-volumes)). An existing snapshot is kept as it is.
      - O(state=restored) puts back the volumes a snapshot has whatever this option says, and compares
        them with the snapshot too.
    type: bool
    default: false
  commit_to:
    description:
      - Image reference to commit the snapshot to (with O(state=present)), as C(berth commit) would the
        container at the moment of the snapshot.
      - Committed again only when the image is missing or holds something else (another snapshot, or a
        snapshot of the same name taken again).
    type: str
extends_documentation_fragment:
  - berth.runtime.berth
attributes:
  check_mode:
    support: full
    description: Predicts exactly what the real run does.
  diff_mode:
    support: full
    description: The snapshot names before and after, and the action taken.
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing.
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: Snapshot before an upgrade (taken once; later runs change nothing)
  berth.runtime.berth_snapshot:
    container: web
    name: before-upgrade

- name: Snapshot a database container with its named volumes (one moment for both)
  berth.runtime.berth_snapshot:
    container: db
    name: before-migration
    with_volumes: true

- name: Keep that state as an image too
  berth.runtime.berth_snapshot:
    container: web
    name: before-upgrade
    commit_to: web:before-upgrade

- name: Roll back (a change only when the container differs from the snapshot)
  berth.runtime.berth_snapshot:
    container: web
    name: before-upgrade
    state: restored
"""

RETURN = r"""
snapshots:
  description: The container's snapshots afterwards (in check mode, as they are now).
  returned: always
  type: list
  elements: dict
actions:
  description: What was done (or would be, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["create snapshot before-upgrade", "commit snapshot before-upgrade to web:before-upgrade"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.runtime.plugins.module_utils.berth_common import COMMON_ARGS, run


def commit_marker(name, layer):
    """The history comment that ties a committed image to one snapshot (one layer)."""
    return f"snapshot {name} ({layer[:12]})"


def holds_snapshot(engine, ref, marker):
    from berth.errors import NotFound

    try:
        image = engine.image(ref)
    except NotFound:
        return False
    history = engine.inspect_image(image.id)["Berth"]["History"] or []
    return bool(history) and history[-1].get("comment") == marker


def main():
    module = AnsibleModule(
        argument_spec=dict(container=dict(type="str", required=True), name=dict(type="str", required=True),
                           state=dict(type="str", default="present", choices=["present", "absent", "restored"]),
                           with_volumes=dict(type="bool", default=False), commit_to=dict(type="str"),
                           **COMMON_ARGS),
        supports_check_mode=True,
    )
    p = module.params
    if p["commit_to"] and p["state"] != "present":
        module.fail_json(msg=f"commit_to={p['commit_to']}: only with state=present (state is {p['state']})")

    def work(engine):
        m = engine.containers
        name = p["name"]
        before = [str(s["name"]) for s in m.snapshot_list(p["container"])]
        done = []
        if p["state"] == "present":
            if name not in before:
                done.append(f"create snapshot {name}")
                if not module.check_mode:
                    m.snapshot_create(p["container"], name, with_volumes=p["with_volumes"])
            if p["commit_to"]:
                existing = {str(s["name"]): str(s["layer"]) for s in m.snapshot_list(p["container"])}
                layer = existing.get(name)
                if layer is None or not holds_snapshot(engine, p["commit_to"], commit_marker(name, layer)):
                    done.append(f"commit snapshot {name} to {p['commit_to']}")
                    if not module.check_mode:
                        m.commit(p["container"], p["commit_to"], commit_marker(name, layer), snapshot=name)
        elif p["state"] == "absent":
            if name in before:
                done.append(f"remove snapshot {name}")
                if not module.check_mode:
                    m.snapshot_remove(p["container"], name)
        else:
            if name not in before:
                module.fail_json(msg=f"name={name}: container {p['container']} has no such snapshot "
                                     f"(it has {', '.join(before) or 'none'})")
            if not m.snapshot_matches(p["container"], name):
                done.append(f"restore snapshot {name}")
                if not module.check_mode:
                    m.snapshot_restore(p["container"], name)
        return done, before, m.snapshot_list(p["container"])

    done, before, snaps = run(module, work)
    after = [str(s["name"]) for s in snaps]
    if module.check_mode:
        if p["state"] == "present" and p["name"] not in after:
            after.append(p["name"])
        elif p["state"] == "absent":
            after = [n for n in after if n != p["name"]]
    diff = {"before": {"snapshots": before}, "after": {"snapshots": after},
            "prepared": "".join(line + "\n" for line in done)} if done else {}
    module.exit_json(changed=bool(done), msg="; ".join(done) or "nothing to do", actions=done, snapshots=snaps,
                     diff=diff)


if __name__ == "__main__":
    main()
