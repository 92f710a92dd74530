# -*- coding: utf-8 -*-
"""Shared by berth's Ansible modules: the import guard, opening the engine, failing cleanly."""

from __future__ import annotations

import sys
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    from berth import config as berth_config
    from berth.engine import Engine
    from berth.errors import BerthError

    HAS_BERTH = True
    BERTH_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by require_berth
    HAS_BERTH = False
    BERTH_IMPORT_ERROR = traceback.format_exc()
    BerthError = Exception  # type: ignore[misc,assignment]

COMMON_ARGS = dict(
    root=dict(type="path"),
    runroot=dict(type="path"),
    driver=dict(type="str"),
)


def require_berth(module):
    if not HAS_BERTH:
        module.fail_json(
            msg=missing_required_lib("berth") + f" The interpreter was {sys.executable}: set "
            "ansible_python_interpreter to the Python that has berth installed.",
            exception=BERTH_IMPORT_ERROR,
        )


def open_engine(module, report=False):
    """The Engine of the module's root; report=True (the *_info modules) only looks: it creates
    and records nothing."""
    settings = berth_config.load(root=module.params.get("root"), runroot=module.params.get("runroot"),
                                 driver=module.params.get("driver"))
    return Engine(settings, report=report)


def run(module, fn, report=False):
    """Call fn(engine); a berth error becomes a clean failure (one line, no traceback)."""
    require_berth(module)
    try:
        with open_engine(module, report) as engine:
            return fn(engine)
    except BerthError as e:
        module.fail_json(msg=str(e))
    except OSError as e:
        module.fail_json(msg=f"{e.strerror or e} ({e.filename})" if getattr(e, "filename", None) else str(e))


def converge(module, engine, desired, prune=False):
    """Plan a desired state and, outside check mode, carry it out; returns the actions."""
    actions = engine.plan(desired, prune=prune)
    if actions and not module.check_mode:
        engine.apply(actions)
    return actions


def exit_with_plan(module, actions, key=None, info=None):
    """exit_json with the plan's result and, when given, what the object looks like now."""
    result = plan_result(actions)
    if key is not None and info is not None:
        result[key] = info
    module.exit_json(**result)


def plan_result(actions):
    """changed + a diff whose 'prepared' text gives every action with its reasons."""
    lines = [a.describe() for a in actions]
    before = {}
    after = {}
    for a in actions:
        if getattr(a, "before", None) is not None or getattr(a, "after", None) is not None:
            before.setdefault(a.target, a.before)
            after[a.target] = a.after
    diff = {"prepared": "\n".join(lines) + ("\n" if lines else "")}
    if before or after:
        diff.update(before=before, after=after)
    return {
        "changed": bool(actions),
        "actions": [{"action": a.kind, "target": a.target, "reasons": a.reasons} for a in actions],
        "diff": diff,
    }


def inspect_each(names, inspect):
    """inspect(name) for each name, leaving out the ones that do not exist."""
    from berth.errors import NotFound

    out = []
    for n in names:
        try:
            out.append(inspect(n))
        except NotFound:
            continue
    return out
