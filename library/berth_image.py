#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: berth_image
short_description: A berth image present (pulled, loaded, built or imported), tagged, pushed, archived, or absent
description:
  - An image that is present is not fetched again unless O(force_source) is set or, for an imported image,
    its configuration differs from what O(changes) gives (then it is imported again).
  - Check mode predicts what the real run does, failures included (an image a container uses cannot be
    removed). The one prediction that can be wrong is O(force_source) with O(source=build), see there.
  - A reference without a registry host goes to C(default_registry) of berth's config file; registries
    listed in its C(insecure_registries) are spoken to over plain http; credentials come from C(berth login).
options:
  name:
    description: "Image reference."
    type: str
    required: true
  source:
    description:
      - Where the image comes from when it is missing (or with O(force_source)).
      - V(pull) pulls O(pull), or O(name) when O(pull) is not given; V(load) loads the archive O(load);
        V(build) builds O(build); V(import) imports the rootfs tarball O(import_from).
      - When not given, it follows from which of O(pull), O(load), O(build), O(import_from) is set.
    type: str
    choices: [pull, load, build, import]
  force_source:
    description:
      - Look at the image's source even when it is present, and fetch it again when the source holds another
        image; a change is reported only when the image under O(name) is then another one.
      - "V(pull): the registry is asked which image the tag names (manifests only, no layer) and the image
        is pulled only when it is not the local one (what C(pull: always) does for M(berth.runtime.berth_container))."
      - "V(load): the archive's image for O(name) is read from its manifest; it is loaded only when it differs."
      - "V(import): the image ID the tarball would give is computed by reading it (its content, O(changes));
        it is imported only when that differs."
      - "V(build): it is built again (the build cache makes an unchanged build fast); a change is reported only
        when the built image differs. Check mode cannot know the result without building and reports a change."
    type: bool
    default: false
  import_from:
    description: "Rootfs tarball on the managed host (O(source=import))."
    type: path
  changes:
    description:
      - Dockerfile instructions applied on import (C(CMD), C(ENV), C(WORKDIR), ...).
      - When an imported image's configuration differs from what they give, it is imported again.
    type: list
    elements: str
    default: []
  pull:
    description: "Reference to pull from a registry (O(source=pull)); tagged as O(name) when it differs."
    type: str
  tls_verify:
    description: "Use TLS and verify it when talking to a registry (pull, push)."
    type: bool
    default: true
  load:
    description: "docker-archive or OCI archive to load (O(source=load))."
    type: path
  build:
    description: "Build it (O(source=build)): C(context), optional C(dockerfile) and C(args)."
    type: dict
  tags:
    description: "More references the image must also have (moved here from any other image)."
    type: list
    elements: str
    default: []
  push:
    description:
      - Push the image to O(repository), or to O(name) when it is not given. The registry is asked for the
        tag's manifest digest first and the image is pushed only when it differs from the local one (so a
        second run reports no change); check mode asks the registry too.
      - Computing the local manifest digest of an image that was never pushed or pulled compresses its layers
        once (also in check mode); they are kept for the push.
    type: bool
    default: false
  repository:
    description:
      - Push target C(HOST[:PORT]/REPOSITORY[:TAG]) for O(push); the image is also tagged with it (moved here from
        any other image), as docker_image's O(repository) does.
    type: str
  archive_path:
    description:
      - Also write the image to this docker-archive; written again only when the archive holds another
        image (or none).
    type: path
  state:
    description: "present or absent."
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - berth.runtime.berth
attributes:
  check_mode:
    support: full
    description: Predicts what the real run does (except O(force_source) with O(source=build), see there).
  diff_mode:
    support: full
    description: The image ID and tags before and after, and every action with its reason.
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing (unless O(force_source) finds a new image).
author: berth contributors (@berth)
"""

EXAMPLES = r"""
- name: Busybox from the host's busybox-static
  berth.runtime.berth_image:
    name: busybox:latest
    source: import
    import_from: /srv/busybox.tar
    changes: ['CMD ["sh"]']

- name: Pulled from a registry, also tagged and kept as an archive
  berth.runtime.berth_image:
    name: registry.example.invalid:5000/team/web:v3
    source: pull
    tags: [web:current]
    archive_path: /var/backups/web-v3.tar

- name: Follow a tag in the registry (pulled only when the tag names another image)
  berth.runtime.berth_image:
    name: registry.example.invalid:5000/team/web:stable
    source: pull
    force_source: true

- name: Published to the team's registry (pushed only when the registry has another manifest there)
  berth.runtime.berth_image:
    name: web:v3
    push: true
    repository: registry.example.invalid:5000/team/web:v3

- name: Gone
  berth.runtime.berth_image:
    name: web:old
    state: absent
"""

RETURN = r"""
image:
  description: C(berth inspect) of the image when present (in check mode, as it is now).
  returned: when present
  type: dict
actions:
  description: Every action done (or, in check mode, to be done) with its reasons.
  returned: always
  type: list
  elements: dict
"""

import json
import os
import tarfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.berth.runtime.plugins.module_utils.berth_common import COMMON_ARGS, exit_with_plan, run

SOURCE_OPTION = {"pull": "pull", "load": "load", "build": "build", "import": "import_from"}


def source_of(p):
    """The source, given or implied, and the item berth's reconciler fetches it with."""
    given = [s for s, opt in SOURCE_OPTION.items() if p[opt]]
    src = p["source"] or (given[0] if given else None)
    if src is None:
        return None, None
    item = {"name": p["name"]}
    if src == "import":
        item.update({"import": p["import_from"], "changes": p["changes"]})
    elif src == "pull":
        item.update({"pull": p["pull"] or p["name"], "tls_verify": p["tls_verify"]})
    elif src == "load":
        item["load"] = p["load"]
    else:
        item["build"] = p["build"]
    return src, item


def archived_image(path):
    """The image ID a docker-archive holds (None when there is no such archive or it holds several)."""
    if not os.path.exists(path):
        return None
    try:
        with tarfile.open(path) as t:
            manifest = json.load(t.extractfile("manifest.json"))
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return None
    if len(manifest) != 1:
        return None
    return "sha256:" + os.path.basename(manifest[0]["Config"]).removesuffix(".json").removeprefix("sha256:")


def main():
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="str", required=True),
                           source=dict(type="str", choices=["pull", "load", "build", "import"]),
                           force_source=dict(type="bool", default=False),
                           import_from=dict(type="path"),
                           changes=dict(type="list", elements="str", default=[]), pull=dict(type="str"),
                           tls_verify=dict(type="bool", default=True), load=dict(type="path"), build=dict(type="dict"),
                           tags=dict(type="list", elements="str", default=[]), archive_path=dict(type="path"),
                           push=dict(type="bool", default=False), repository=dict(type="str"),
                           state=dict(type="str", default="present", choices=["present", "absent"]), **COMMON_ARGS),
        mutually_exclusive=[("import_from", "pull", "load", "build")],
        required_if=[("source", "import", ("import_from",)), ("source", "load", ("load",)),
                     ("source", "build", ("build",))],
        supports_check_mode=True,
    )
    p = module.params
    src, item = source_of(p)
    if src and p[SOURCE_OPTION[src]] is None and src != "pull":
        module.fail_json(msg=f"source={src} needs {SOURCE_OPTION[src]}")
    other = [s for s, opt in SOURCE_OPTION.items() if p[opt] and s != src]
    if src and other:
        module.fail_json(msg=f"source={src}, but {SOURCE_OPTION[other[0]]} is set: give the option of that source")

    def work(engine):
        from berth.declare import reconcile
        from berth.errors import NotFound
        from berth.image import changes as changes_mod
        from berth.image.inspect import docker_config

        def forced(engine, src, item, have_id):
            """force_source: the reason to fetch the image again, or None when its source holds the same one."""
            if src == "pull":
                _digest, remote_id = engine.remote_image(item["pull"], p["tls_verify"])
                there = remote_id
                where = f"the registry has {item['pull']} as"
            elif src == "load":
                there = archived_id(engine)
                where = f"{p['load']} holds it as"
            elif src == "import":
                there = engine.import_id(p["import_from"], changes=[str(c) for c in p["changes"]])
                where = f"importing {p['import_from']} gives"
            else:
                return f"force_source: build {p['name']} again"
            if there == have_id:
                return None
            return f"force_source: {where} {there[:19]}…, here it is {have_id[:19]}…: {src} it"

        def archived_id(engine):
            """The ID of the image named O(name) in the archive O(load) (it must hold one: fails as loading would)."""
            from berth.image import reference

            want = str(reference.parse(p["name"]))
            there = next((i for i, names in engine.archive_contents(p["load"]) if want in names), None)
            if there is None:
                module.fail_json(msg=f"load={p['load']}: the archive holds no image named {p['name']}")
            return there

        def tag(engine, image_id, name):
            try:
                tagged = engine.image(name).id
            except NotFound:
                tagged = None
            if image_id is not None and tagged == image_id:
                return []
            if not module.check_mode:
                engine.tag(p["name"], name)
            return [reconcile.Action("tag", name, [f"tag {name} → {p['name']}"])]

        def push(engine, image_id, fetched):
            target = p["repository"] or p["name"]
            remote = engine.remote_digest(target, p["tls_verify"])
            if image_id is None or (fetched and module.check_mode):
                reason = f"push {target}: the image is fetched first"
            else:
                local = engine.manifest_digest(image_id)
                if remote == local:
                    return []
                reason = (f"push {target}: the registry has no {target}" if remote is None else
                          f"push {target}: the registry has {remote[:19]}…, here it is {local[:19]}…")
            if not module.check_mode:
                engine.push(p["name"], target, p["tls_verify"])
            return [reconcile.Action("push", target, [reason])]

        def current():
            try:
                return engine.image(p["name"])
            except NotFound:
                return None

        actions = []
        have = current()
        if p["state"] == "absent":
            if have is not None:
                lines = engine.remove_image(p["name"], dry_run=module.check_mode)
                actions.append(reconcile.Action("remove-image", p["name"], [f"image {p['name']} declared absent"]
                                                + lines))
            return actions, None
        if have is None and src is None:
            module.fail_json(msg=f"name={p['name']}: no such image, and no source to get it from "
                                 "(source, pull, load, build or import_from)")
        reason = None
        if have is None:
            if src == "load":
                archived_id(engine)
            reason = f"image {p['name']} is missing: {src} it"
        elif p["force_source"] and src:
            reason = forced(engine, src, item, have.id)
        elif src == "import":
            want = docker_config(changes_mod.apply({}, [str(c) for c in p["changes"]]))
            got = engine.inspect_image(have.id)["Config"] or {}
            if want != got:
                keys = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
                reason = f"changes: {', '.join(keys)} differ from the imported image's: import it again"
        if reason:
            if module.check_mode:
                actions.append(reconcile.Action("image", p["name"], [reason], item))
            else:
                reconcile.apply(engine, [reconcile.Action("image", p["name"], [reason], item)])
                now = current()
                if have is None or now is None or now.id != have.id:
                    actions.append(reconcile.Action("image", p["name"], [reason], item))
                have = now
        image_id = have.id if have is not None else None
        for t in p["tags"]:
            actions.extend(tag(engine, image_id, t))
        if p["repository"]:
            actions.extend(tag(engine, image_id, p["repository"]))
        if p["push"]:
            actions.extend(push(engine, image_id, any(a.kind == "image" for a in actions)))
        if p["archive_path"] and (image_id is None or archived_image(p["archive_path"]) != image_id
                                  or any(a.kind == "image" for a in actions)):
            actions.append(reconcile.Action("archive", p["archive_path"],
                                            [f"archive {p['archive_path']} does not hold {p['name']}"]))
            if not module.check_mode:
                engine.save_images([p["name"]], p["archive_path"])
        try:
            return actions, engine.inspect_image(p["name"])
        except NotFound:
            return actions, None

    actions, info = run(module, work)
    exit_with_plan(module, actions, "image", info)


if __name__ == "__main__":
    main()
