"""berth: a container runtime in Python, driven by Ansible."""

from berth import trace  # noqa: F401  (first: the trace clock starts at the first berth import)
from berth.errors import BerthError

__all__ = ["BerthError", "Engine"]


def __getattr__(name: str) -> object:
    if name == "Engine":
        from berth.engine import Engine

        return Engine
    raise AttributeError(name)
