"""The one container option table: every face (CLI, declaration schema, berth_container) and
ContainerConfig agree with it; the modules' literal argument_spec and DOCUMENTATION agree with
each other; compare's in-place rule and reasons come from it."""

from __future__ import annotations

import argparse
import ast
import os
from typing import Any

import pytest
import yaml

from berth.cli.main import build_parser
from berth.container import options
from berth.container.config import ContainerConfig, Mount
from berth.declare import schema
from berth.errors import InvalidInput
from berth.record import Factory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBRARY = os.path.join(REPO, "library")
MODULES = sorted(f[:-3] for f in os.listdir(LIBRARY) if f.endswith(".py"))
COMMON = ("root", "runroot", "driver")
# options a face leaves out on purpose, with the reason
NOT_ON_CLI = {"restart_retries": "--restart on-failure:N"}
NOT_DECLARABLE = {"auto_remove": "a declared container that removes itself on exit could never converge"}
# not ContainerConfig fields
TASK = {"name", "state", "snapshots", "recreate", "restart", "pull", "comparisons", "healthy_timeout"}


# ---- reading a module's literal argument_spec and DOCUMENTATION without Ansible

def _literal(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(x, names) for x in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                out.update(_literal(v, names))
            else:
                out[_literal(k, names)] = _literal(v, names)
        return out
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        out = {}
        for kw in node.keywords:
            if kw.arg is None:
                out.update(_literal(kw.value, names))
            else:
                out[kw.arg] = _literal(kw.value, names)
        return out
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    raise AssertionError(f"not a literal: {ast.dump(node)[:200]}")


def _assignments(tree: ast.Module) -> dict[str, ast.AST]:
    return {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
            for t in n.targets if isinstance(t, ast.Name)}


def _common_args() -> dict[str, Any]:
    with open(os.path.join(REPO, "module_utils", "berth_common.py"), encoding="utf-8") as f:
        return _literal(_assignments(ast.parse(f.read()))["COMMON_ARGS"], {})  # type: ignore[no-any-return]


def argument_spec(module: str) -> dict[str, dict[str, Any]]:
    with open(os.path.join(LIBRARY, module + ".py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == "AnsibleModule"]
    assert len(calls) == 1, module
    spec = next(kw.value for kw in calls[0].keywords if kw.arg == "argument_spec")
    names = {"COMMON_ARGS": _common_args()}
    if isinstance(spec, ast.Name):
        spec = _assignments(tree)[spec.id]
    return _literal(spec, names)  # type: ignore[no-any-return]


def documented_options(module: str) -> dict[str, dict[str, Any]]:
    with open(os.path.join(LIBRARY, module + ".py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    doc = yaml.safe_load(_literal(_assignments(tree)["DOCUMENTATION"], {}))
    opts = dict(doc.get("options") or {})
    if "berth.runtime.berth" in (doc.get("extends_documentation_fragment") or []):
        with open(os.path.join(REPO, "plugins", "doc_fragments", "berth.py"), encoding="utf-8") as f:
            frag = ast.parse(f.read())
        opts.update(yaml.safe_load(_literal(_assignments(frag)["DOCUMENTATION"], {}))["options"])
    return opts


def _norm(spec: dict[str, Any], documented: bool) -> dict[str, Any]:
    """The fields both sides state, with Ansible's defaults filled in."""
    out = {"type": spec.get("type", "str"), "required": bool(spec.get("required", False)),
           "default": spec.get("default"), "choices": spec.get("choices"),
           "aliases": sorted(spec.get("aliases") or []), "elements": spec.get("elements")}
    suboptions = spec.get("suboptions" if documented else "options")
    if suboptions:
        out["options"] = {k: _norm(v, documented) for k, v in suboptions.items()}
    return out


@pytest.mark.parametrize("module", MODULES)
def test_module_documentation_matches_its_argument_spec(module: str) -> None:
    spec, doc = argument_spec(module), documented_options(module)
    assert sorted(spec) == sorted(doc), f"{module}: spec and DOCUMENTATION name different options"
    for name in spec:
        assert _norm(spec[name], False) == _norm(doc[name], True), f"{module}: option {name}"


# ---- the table itself

def test_table_is_well_formed() -> None:
    seen: dict[str, set[str]] = {"cli": set(), "key": set(), "ansible": set()}
    for o in options.OPTIONS:
        assert o.kind in options.KINDS and o.update in (options.IN_PLACE, options.LIMIT, options.RECREATE,
                                                          options.IGNORE), o.name
        assert o.reason in ("value", "size", "env", "map", "set"), o.name
        for face, names in (("cli", o.cli), ("key", [o.key, *o.key_aliases] if o.key else []),
                            ("ansible", [o.ansible, *o.aliases] if o.ansible else [])):
            assert not seen[face] & set(names), f"{o.name}: {face} name used twice"
            seen[face] |= set(names)
    assert {o.name for o in options.OPTIONS if not o.target()} == TASK


def test_container_config_has_exactly_the_table_fields_in_order() -> None:
    assert list(ContainerConfig._fields) == list(options.FIELDS)
    for f in options.FIELDS:
        o = options.PRIMARY[f]
        d = ContainerConfig._defaults.get(f, "required")
        if isinstance(d, Factory):
            assert o.kind in ("list", "map", "env", "volumes"), f
        elif f == "image":
            assert d == "required"
        else:
            assert d == o.default, f


def test_every_face_has_every_option() -> None:
    for o in options.OPTIONS:
        if not o.target():
            continue
        assert o.cli or o.name in NOT_ON_CLI, f"{o.name} is not on the CLI"
        assert o.key or o.name in NOT_DECLARABLE, f"{o.name} is not declarable"
        assert o.ansible, f"{o.name} is not an option of berth_container"


# ---- each face against the table

def _create_parser() -> argparse.ArgumentParser:
    p = build_parser("create")
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["create"]  # type: ignore[no-any-return]


def test_cli_flags_are_the_table() -> None:
    for command in ("create", "run"):
        p = build_parser(command)
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        flags = {s for a in sub.choices[command]._actions for s in a.option_strings} | \
            {a.dest for a in sub.choices[command]._actions if not a.option_strings}
        for o in options.OPTIONS:
            assert set(o.cli) <= flags, (command, o.name)
    table = {f for o in options.OPTIONS for f in o.cli}
    own = {s for a in _create_parser()._actions for s in a.option_strings} | \
        {a.dest for a in _create_parser()._actions if not a.option_strings}
    assert own - table == {"-h", "--help"}


def test_schema_keys_are_the_table() -> None:
    assert {n for o in options.OPTIONS if o.key for n in (o.key, *o.key_aliases)} == schema.CONTAINER_KEYS


def _spec_for(o: options.Option) -> dict[str, Any]:
    types = {"str": ("str", None), "int": ("int", None), "float": ("float", None), "bool": ("bool", None),
             "list": ("list", "str"), "argv": ("list", "str"), "volumes": ("list", "str"), "map": ("dict", None),
             "env": ("dict", None), "size": ("str", None), "env_file": ("list", "path"),
             "mounts": ("list", "dict"), "restart": ("str", None), "retries": ("int", None), "dict": ("dict", None),
             "duration": ("str", None)}
    t, elements = types[o.kind]
    spec: dict[str, Any] = {"type": t}
    if elements:
        spec["elements"] = elements
    if o.module_default is not None:
        spec["default"] = o.module_default
    if o.choices:
        spec["choices"] = list(o.choices)
    if o.aliases:
        spec["aliases"] = list(o.aliases)
    return spec


def test_berth_container_options_are_the_table() -> None:
    spec = argument_spec("berth_container")
    table = {o.ansible: o for o in options.OPTIONS if o.ansible}
    assert sorted(set(spec) - set(COMMON)) == sorted(table)
    for name, o in table.items():
        want = _norm(_spec_for(o), False)
        got = _norm(spec[name], False)
        got.pop("options", None)  # mounts' fields: checked against DOCUMENTATION above
        got["required"] = False  # name is required on the module
        assert got == want, name


def test_berth_state_documents_every_declaration_key() -> None:
    text = " ".join(documented_options("berth_state")["containers"]["description"])
    missing = [k for k in sorted(options.DECLARATION_KEYS) if f"C({k})" not in text]
    assert not missing, f"berth_state's DOCUMENTATION does not name {missing}"


# ---- parsing through each face gives the same spec

def test_cli_and_declaration_give_the_same_config() -> None:
    argv = ["create", "--name", "web", "-e", "B=2", "-e", "A=1", "-w", "/srv", "-u", "1:1", "--hostname", "h",
            "-v", "/a:/b:ro", "--tmpfs", "/t", "--read-only", "--entrypoint", "/bin/sh", "-l", "x=y",
            "--network", "host", "-m", "64m", "--cpus", "0.5", "--pids-limit", "9", "--blkio-weight", "100",
            "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--privileged", "--runtime", "runc",
            "--storage-opt", "size=1g", "--restart", "always", "--mount", "type=bind,src=/c,dst=/d,readonly",
            "busybox", "sh", "-c", "true"]
    cli = options.config_from_cli(build_parser("create").parse_args(argv))
    declared = schema.from_dict({"containers": [{
        "name": "web", "image": "busybox", "command": ["sh", "-c", "true"], "entrypoint": ["/bin/sh"],
        "env": {"A": 1, "B": "2"}, "working_dir": "/srv", "user": "1:1", "hostname": "h", "volumes": ["/a:/b:ro"],
        "mounts": [{"source": "/c", "target": "/d", "read_only": True}],
        "tmpfs": ["/t"], "read_only": True, "labels": {"x": "y"}, "network": "host", "memory": "64m",
        "cpus": 0.5, "pids_limit": 9, "blkio_weight": 100, "cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"],
        "privileged": True, "runtime": "runc", "storage_opts": {"size": "1g"}, "restart": "always"}]}, "t")
    cfg = declared.containers[0].config
    assert cfg.labels.pop(schema.MANAGED_LABEL) == "true"
    cli.env.sort()
    assert cli == cfg
    assert cfg.volumes == [Mount("/a", "/b", True), Mount("/c", "/d", True)] and cfg.memory == 64 << 20


def test_declaration_errors_name_the_key() -> None:
    for item, what in (({"storage_opts": "2g"}, "storage_opts must be a mapping"),
                       ({"tmpfs": {"a": 1}}, "tmpfs must be a list of strings"),
                       ({"memory": "lots"}, "invalid memory limit 'lots'")):
        with pytest.raises(Exception, match=what):
            schema.from_dict({"containers": [dict(name="c", image="i", **item)]}, "src")


def test_a_task_sets_only_what_it_names() -> None:
    params: dict[str, Any] = {o.ansible: None for o in options.OPTIONS if o.ansible}
    params.update(name="c", state="stopped", pull="missing", recreate=False, restart=False, memory="64m",
                  published_ports=["80:80"], restart_retries=3, mounts=[{"type": "bind", "source": "/a",
                                                                          "target": "/b", "read_only": False}])
    d = schema.from_task(params, "berth_container c").containers[0]
    assert d.given == {"memory", "ports", "restart", "volumes"} and d.state == "stopped"
    assert d.config.restart == "on-failure:3" and d.config.volumes == [Mount("/a", "/b")]
    params.update(state="started", memory="lots")
    with pytest.raises(InvalidInput, match=r"^berth_container c: option memory: invalid memory limit 'lots'"):
        schema.from_task(params, "berth_container c")
    params.update(memory=None, restart_policy="always")
    with pytest.raises(InvalidInput, match="option restart_policy: .*on-failure"):
        schema.from_task(params, "berth_container c")
    params.update(restart_policy=None, restart_retries=None, cpus=5000.0)
    with pytest.raises(InvalidInput, match=r"option cpus: invalid cpus 5000.0.*\(value 5000.0\)"):
        schema.from_task(params, "berth_container c")
    params.update(cpus=None, comparisons={"nonsense": "strict"})
    with pytest.raises(InvalidInput, match="option comparisons: 'nonsense' is not a container option"):
        schema.from_task(params, "berth_container c")
    params.update(comparisons={"ports": "allow_more_present", "workdir": "strict", "*": "ignore"})
    assert schema.from_task(params, "t").containers[0].comparisons == {"ports": "allow_more_present",
                                                                       "workdir": "strict", "*": "ignore"}


def test_declaration_spellings() -> None:
    d = schema.from_dict({"containers": [{"name": "c", "image": "i", "working_dir": "/w", "network_mode": "host",
                                          "restart_policy": "on-failure", "restart_retries": 2,
                                          "state": "started"}]}, "src").containers[0]
    assert (d.config.workdir, d.config.network, d.config.restart, d.state) == ("/w", "host", "on-failure:2",
                                                                              "running")
    with pytest.raises(InvalidInput, match=r"src containers\[0\].network_mode: network and network_mode"):
        schema.from_dict({"containers": [{"name": "c", "image": "i", "network": "a", "network_mode": "b"}]}, "src")


# ---- compare

BASE = ContainerConfig(image="busybox", command=["sh"], env=["A=1", "B=2"], memory=64 << 20, labels={"l": "1"},
                       volumes=[Mount("/a", "/b")])


@pytest.mark.parametrize(("change", "in_place", "recreate"), [
    ({"memory": 128 << 20}, ["memory 64m → 128m"], []),
    ({"memory": None}, [], ["memory 64m → unlimited"]),
    ({"cpus": 1.0}, [], ["cpus null → 1.0"]),
    ({"restart": "always"}, ['restart "no" → "always"'], []),
    ({"env": ["A=1", "B=3", "C=4"]}, [], ["env C added", "env B changed"]),
    ({"env": ["A=1"]}, [], ["env B removed"]),
    ({"labels": {"m": "1"}}, [], ["label l removed", "label m added"]),
    ({"volumes": [Mount("/a", "/b", True)]}, [], ["mount /a:/b removed", "mount /a:/b:ro added"]),
    ({"blkio_weight": 100}, [], ["blkio weight null → 100"]),
    ({"storage_opts": {"size": "1g"}}, [], ['storage opts {} → {"size": "1g"}']),
    ({"image": "other", "auto_remove": True}, [], []),
    ({"memory": 32 << 20, "network": "host"}, ["memory 64m → 32m"], ['network "bridge" → "host"']),
])
def test_compare(change: dict[str, Any], in_place: list[str], recreate: list[str]) -> None:
    assert options.compare(BASE, BASE.replace(**change)) == (in_place, recreate)


def test_limits_change_in_place_only_while_set() -> None:
    limited = BASE.replace(cpus=0.5, pids_limit=10)
    assert options.compare(limited, limited.replace(cpus=2.0, pids_limit=20)) == (
        ["cpus 0.5 → 2.0", "pids limit 10 → 20"], [])
    assert options.compare(limited, limited.replace(pids_limit=None)) == ([], ["pids limit 10 → null"])


def test_only_given_fields_are_compared() -> None:
    adopted = BASE.replace(network="none", labels={"l": "1"})
    task = ContainerConfig(image="busybox", memory=64 << 20, labels={"l": "1", schema.MANAGED_LABEL: "true"})
    given = frozenset({"image", "memory", "labels"})
    assert options.compare(adopted, task, given) == ([], [])
    assert options.compare(adopted, task.replace(memory=32 << 20), given) == (["memory 64m → 32m"], [])
    # strict for a field the task leaves out: berth's default counts
    assert options.compare(adopted, task, given, {"network": "strict"}) == ([], ['network "none" → "bridge"'])
    assert options.compare(adopted, task, given, {"*": "strict"})[1][:2] == ['command ["sh"] → null',
                                                                            "env A removed"]
    assert options.compare(adopted, task.replace(memory=1 << 30), given, {"memory": "ignore"}) == ([], [])
    # allow_more_present: the container may have more
    more = task.replace(env=["A=1"])
    assert options.compare(adopted, more, given | {"env"}, {"env": "allow_more_present"}) == ([], [])
    assert options.compare(adopted, more, given | {"env"}) == ([], ["env B removed"])
    assert options.merged(adopted, task.replace(memory=1 << 30), ["memory"]).network == "none"
