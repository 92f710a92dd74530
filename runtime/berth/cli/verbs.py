"""Which module of berth.cli registers each verb, so that a command imports and builds only its
own verb's parser (importing every CLI module costs more than most commands' own work).

"main" is berth.cli.main itself. A command word not listed here (a typo, an option first) gets
the full parser, which lists the real verbs. tests/unit/test_cli_verbs.py checks this table
against the full parser: every verb there is listed here, under the module that registers it."""

from __future__ import annotations

_BY_MODULE: dict[str, tuple[str, ...]] = {
    "main": ("info", "version", "host", "import", "save", "load", "pull", "push", "sign", "verify", "trust",
             "plan", "apply", "images", "tag", "rmi", "inspect", "history", "image", "container", "system",
             "storage"),
    "build": ("build",),
    "containers": ("run", "create", "start", "stop", "restart", "kill", "rm", "wait", "ps", "logs", "exec",
                   "attach", "diff", "commit", "export", "snapshot", "network", "container-exited"),
    "volumes": ("volume",),
    "mux": ("exec-mux",),
    "registry": ("login", "logout"),
    "daytwo": ("pause", "unpause", "port", "rename", "stats", "top", "update", "events", "container-health"),
    "cp": ("cp",),
    "checkpoint": ("checkpoint", "restore"),
}

VERBS: dict[str, str] = {verb: module for module, names in _BY_MODULE.items() for verb in names}


def module_of(verb: str | None) -> str | None:
    """The module that registers verb; None for no verb or an unknown one (build them all)."""
    return None if verb is None else VERBS.get(verb)
