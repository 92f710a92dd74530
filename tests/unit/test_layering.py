"""The layering rules of DESIGN.md, read from the source (no root, nothing imported).

- storage knows nothing of images, containers or the Engine;
- image and container never import the Engine or the CLI (the Engine imports them);
- no module imports another module's _private name;
- SQL lives only in the stores (each table has one owner).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "runtime" / "berth"

FORBIDDEN = {
    "berth.storage": ("berth.image", "berth.container", "berth.engine", "berth.cli", "berth.declare"),
    "berth.image": ("berth.engine", "berth.cli"),
    "berth.container": ("berth.engine", "berth.cli"),
}
STORES = {"berth.db", "berth.storage.layers", "berth.image.store", "berth.container.store",
          "berth.container.volumestore"}
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
                 r"CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE|PRAGMA\s)", re.S)
# Known violations still to be removed. Each entry must still be a violation: once fixed, it has
# to be taken out of here.
PENDING: set[tuple[str, str]] = set()


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def _is_module(name: str) -> bool:
    base = PKG.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(module: str, tree: ast.Module) -> list[str]:
    """What module breaks: forbidden imports, _private names of other modules, SQL outside a store."""
    out = []
    imported: set[str] = set()
    aliases: dict[str, str] = {}  # local name -> module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                imported.add(a.name)
                if a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if _is_module(full):
                    imported.add(full)
                    aliases[a.asname or a.name] = full
                elif _private(a.name) and node.module != module:
                    out.append(f"imports {full}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            target = aliases.get(node.value.id)
            if target and target != module and target.startswith("berth"):
                out.append(f"uses {target}.{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and module not in STORES \
                and SQL.search(node.value):
            out.append(f"has SQL outside the stores: {node.value[:40]!r}")
    for layer, banned in FORBIDDEN.items():
        if module == layer or module.startswith(layer + "."):
            for name in sorted(imported):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    out.append(f"imports {name.rsplit('.', 1)[0] if not _is_module(name) else name}")
    return sorted(set(out))


def _all_violations() -> set[tuple[str, str]]:
    return {(m, v) for m, tree in _modules().items() for v in violations(m, tree)}


def test_layering_rules_hold() -> None:
    found = _all_violations() - PENDING
    assert not found, "layering broken:\n" + "\n".join(f"{m} {v}" for m, v in sorted(found))


def test_pending_exceptions_are_still_real() -> None:
    stale = PENDING - _all_violations()
    assert not stale, f"fixed, take them out of PENDING: {sorted(stale)}"


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("berth.storage.x", "from berth.image.store import Image", "imports berth.image.store"),
    ("berth.storage.x", "def f():\n    from berth.container import config", "imports berth.container.config"),
    ("berth.storage.x", "if TYPE_CHECKING:\n    from berth.engine import Engine", "imports berth.engine"),
    ("berth.image.x", "from berth.engine import Engine", "imports berth.engine"),
    ("berth.container.x", "import berth.cli.main", "imports berth.cli.main"),
    ("berth.engine", "from berth.image.signing import _repo_of", "imports berth.image.signing._repo_of"),
    ("berth.engine", "from berth.image import signing\nsigning._gpg([], None)", "uses berth.image.signing._gpg"),
    ("berth.engine", "q = 'SELECT id FROM layers WHERE x = ?'", "has SQL outside the stores"),
    ("berth.image.archive", "q = 'INSERT OR IGNORE INTO layer_blobs(a) VALUES (?)'", "has SQL outside the stores"),
])
def test_the_rules_catch(module: str, source: str, expected: str) -> None:
    assert any(v.startswith(expected) for v in violations(module, ast.parse(source))), violations(
        module, ast.parse(source))


@pytest.mark.parametrize(("module", "source"), [
    ("berth.image.store", "q = 'SELECT id FROM images'"),
    ("berth.engine", "from berth.image.store import ImageStore"),
    ("berth.image.x", "from berth.storage.layers import LayerStore"),
    ("berth.image.x", "from berth import __name__ as pkg"),
    ("berth.image.x", "msg = 'select an image from the list'"),
])
def test_the_rules_allow(module: str, source: str) -> None:
    assert violations(module, ast.parse(source)) == []
