"""The verb → module table of berth.cli.verbs: a command builds (and imports) only its own verb's
parser, and that parser is the same one the full parser has."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from berth.cli import aliases, verbs
from berth.cli.main import build_parser


def _choices(p) -> dict:  # type: ignore[no-untyped-def]
    return p._subparsers._group_actions[0].choices


FULL = _choices(build_parser(None))


def test_every_verb_of_the_full_parser_is_in_the_table_and_nothing_else():
    assert set(FULL) == set(verbs.VERBS)


@pytest.mark.parametrize("verb", sorted(FULL))
def test_the_verbs_own_parser_is_the_full_parsers(verb):
    alone = _choices(build_parser(verb))
    assert list(alone) == [verb]
    assert alone[verb].format_help() == FULL[verb].format_help()
    # groups (host, image, system, ...): their sub-commands too
    sub = FULL[verb]._subparsers
    if sub is not None:
        for word, sp in sub._group_actions[0].choices.items():
            assert alone[verb]._subparsers._group_actions[0].choices[word].format_help() == sp.format_help()


def test_aliases_rewrite_to_verbs_in_the_table():
    for to in aliases.ALIASES.values():
        assert verbs.module_of(to[0]) is not None, to


def test_unknown_words_and_no_word_get_the_full_parser():
    assert verbs.module_of(None) is None
    assert verbs.module_of("no-such-verb") is None


# Run in a fresh interpreter: for each verb, forget the CLI modules, build that verb's parser and
# list which CLI modules got imported.
_PROBE = """
import json, sys
from berth.cli import main, verbs
keep = {"berth.cli", "berth.cli.main", "berth.cli.parser", "berth.cli.verbs", "berth.cli.aliases"}
out = {}
for verb in verbs.VERBS:
    for name in [m for m in sys.modules if m.startswith("berth.cli.") and m not in keep]:
        del sys.modules[name]
    main.build_parser(verb)
    out[verb] = sorted(m.removeprefix("berth.cli.") for m in sys.modules if m.startswith("berth.cli."))
print(json.dumps(out))
"""


def test_a_verb_imports_no_other_verbs_module():
    r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    imported = json.loads(r.stdout)
    registrars = set(verbs.VERBS.values()) - {"main"}
    for verb, modules in imported.items():
        own = verbs.VERBS[verb]
        others = registrars - {own}
        assert not others & set(modules), f"berth {verb} imports {sorted(others & set(modules))}"
        if own != "main":
            assert own in modules
    # the hot path: a container verb imports none of the modules only other verbs use
    for verb in ("run", "create", "start", "wait", "rm"):
        assert not {"about", "inspectcmd", "build", "daytwo"} & set(imported[verb]), imported[verb]
