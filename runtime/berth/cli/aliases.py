"""docker's management-command forms (`container ls`, `image rm`, `system info`, …) as a table
onto berth's verbs: the command line is rewritten before it is parsed, so both forms behave
the same in every respect."""

from __future__ import annotations

# (group, word) -> the berth command line it stands for
ALIASES: dict[tuple[str, str], list[str]] = {
    **{("container", w): ["ps"] for w in ("ls", "list", "ps")},
    **{("container", w): [w] for w in ("attach", "commit", "create", "diff", "exec", "export", "kill", "logs",
                                       "restart", "rm", "run", "start", "stop", "wait", "pause", "unpause", "port",
                                       "rename", "stats", "top", "update")},
    ("container", "inspect"): ["inspect", "--type", "container"],
    **{("image", w): ["images"] for w in ("ls", "list")},
    ("image", "inspect"): ["inspect", "--type", "image"],
    ("image", "rm"): ["rmi"],
    ("image", "remove"): ["rmi"],
    **{("image", w): [w] for w in ("build", "history", "import", "load", "pull", "push", "save", "tag")},
    ("system", "info"): ["info"],
    ("system", "events"): ["events"],
    ("system", "version"): ["version"],
}
GROUPS = ("container", "image", "system")


def help_lines(group: str) -> list[tuple[str, str]]:
    """(word, what it runs) of a group, for its --help."""
    return [(w, " ".join(to)) for (g, w), to in ALIASES.items() if g == group]


def rewrite(argv: list[str], command_at: int | None) -> list[str]:
    """argv with a management-command form replaced by the verb it maps to; command_at is the
    index of the command word (after the global options), None when there is none."""
    if command_at is None or command_at + 1 >= len(argv) or argv[command_at] not in GROUPS:
        return argv
    to = ALIASES.get((argv[command_at], argv[command_at + 1]))
    if to is None:
        return argv
    return argv[:command_at] + to + argv[command_at + 2:]
