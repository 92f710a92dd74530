"""The Dockerfile parser and docker's word rules (no root, no containers)."""

from __future__ import annotations

import pytest

from berth.errors import InvalidInput
from berth.image.buildconfig import exposed, healthcheck, parse_duration
from berth.image.buildsources import go_match_regex
from berth.image.dockerfile import decode, parse
from berth.image.shellwords import process_word, process_words, split_words

ENV = {"A": "one", "EMPTY": "", "B": "two words"}


@pytest.mark.parametrize(("word", "want"), [
    ("$A", "one"), ("${A}", "one"), ("${A:-x}", "one"), ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"),
    ("${A:+alt}", "alt"), ("${UNSET:+alt}", ""), ("${EMPTY:+alt}", ""), ("\\$A", "$A"), ("'$A'", "$A"),
    ('"$A"', "one"), ('"\\$A"', "$A"), ('"a\\b"', "a\\b"), ("a\\ b", "a b"), ("$", "$"), ("$1x", "x"),
    ("${A:-${B}}", "one"), ("${UNSET:-${B}}", "two words"), ("pre${A}post", "preonepost"), ("$UNSET", ""),
    ("'a\"b'", 'a"b'), ("\"a'b\"", "a'b"),
])
def test_words_expand_as_docker(word: str, want: str) -> None:
    assert process_word(word, ENV) == want


def test_escape_directive_changes_the_escape_character() -> None:
    assert process_word("`$A", ENV, escape="`") == "$A"
    assert process_word("\\$A", ENV, escape="`") == "\\one"


@pytest.mark.parametrize("word", ["${A", "'open", '"open', "${A:*x}", "${A?x}", "${UNSET:?must be set}"])
def test_bad_substitutions_are_one_line_errors(word: str) -> None:
    with pytest.raises(InvalidInput):
        process_word(word, ENV)


def test_words_split_outside_quotes() -> None:
    assert split_words('A="two words" B=x\\ y C=\'q r\'') == ['A="two words"', "B=x\\ y", "C='q r'"]
    assert process_words('80 "${A}" 53/udp', ENV) == ["80", "one", "53/udp"]


def test_parse_forms_flags_continuations_and_the_escape_directive() -> None:
    df = parse("# escape=`\n# a comment\nFROM bb AS x\nRUN echo a `\n  # dropped\n\n  b\n"
               "CMD ['echo','x']\nENTRYPOINT [\"/bin/echo\"]\nCOPY --chown=app:staff a b /d/\n"
               "ENV A=1 B=\"2 3\"\nENV OLD the rest here\nonbuild run echo hi\n"
               "HEALTHCHECK --interval=5s CMD [\"true\"]\nHEALTHCHECK NONE\n")
    assert df.escape == "`"
    ins = df.instructions
    assert [i.name for i in ins] == ["FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ENV", "ENV", "ONBUILD",
                                     "HEALTHCHECK", "HEALTHCHECK"]
    assert ins[1].args == ["echo a   b"] and not ins[1].json_form and ins[1].line == 4
    assert ins[2].args == ["['echo','x']"] and not ins[2].json_form  # not JSON: the shell form, as docker
    assert ins[3].args == ["/bin/echo"] and ins[3].json_form
    assert ins[4].flags == {"chown": "app:staff"} and ins[4].args == ["a", "b", "/d/"]
    assert ins[5].pairs == [("A", "1"), ("B", '"2 3"')]
    assert ins[6].pairs == [("OLD", "the rest here")]
    assert ins[7].args == ["run echo hi"] and ins[7].trigger is not None and ins[7].trigger.name == "RUN"
    assert ins[8].args == ["CMD", "true"] and ins[8].flags == {"interval": "5s"}
    assert ins[9].args == ["NONE"]


@pytest.mark.parametrize(("text", "want"), [
    ("FROM bb\nENV\n", "line 2: ENV requires at least one argument"),
    ("FROM bb\nENV A\n", "line 2: ENV A needs a value"),
    ('FROM bb\nCOPY ["a"\n', "line 2: COPY requires at least two arguments"),
    ("FROM bb\nFROOB x\n", "line 2: unknown instruction: FROOB"),
    ("FROM bb\nCOPY --chmod=644 a b\n", "line 2: unknown flag: --chmod"),
    ("FROM bb\nSHELL /bin/bash -c\n", "line 2: SHELL requires the arguments to be a JSON array"),
    ("FROM bb\nONBUILD FROM x\n", "line 2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM bb\nHEALTHCHECK --retries=3 NONE\n", "line 2: HEALTHCHECK NONE takes no other arguments"),
    ("FROM bb\nHEALTHCHECK --bogus=1 CMD true\n", "line 2: unknown flag: --bogus"),
    ("FROM bb\nUSER a b\n", "line 2: USER requires exactly one argument"),
    ("# escape=x\nFROM bb\n", "line 1: invalid escape token"),
    ("\n\n", "contains no instructions"),
])
def test_syntax_errors_name_the_line(text: str, want: str) -> None:
    with pytest.raises(InvalidInput, match=want):
        parse(text, "Dockerfile")


def test_non_utf8_names_the_line() -> None:
    with pytest.raises(InvalidInput, match="line 2: not UTF-8"):
        decode(b"FROM bb\nRUN echo \xff\xfe\n", "Dockerfile")


def test_copy_of_non_string_json_is_the_word_form() -> None:
    # docker: [1, 2] is not a JSON array of strings, so the words are "[1," and "2]"
    ins = parse("FROM bb\nCOPY [1, 2]\n").instructions[1]
    assert ins.args == ["[1,", "2]"] and not ins.json_form


@pytest.mark.parametrize(("pattern", "name", "hit"), [
    ("*.txt", "a.txt", True), ("*.txt", "d/a.txt", False), ("?.txt", "ab.txt", False), ("[ab].txt", "b.txt", True),
    ("[ab].txt", "c.txt", False), ("[^ab].txt", "c.txt", True), ("[a-c].txt", "b.txt", True),
    ("d/*.txt", "d/x.txt", True), ("\\*.txt", "*.txt", True), ("\\*.txt", "a.txt", False),
])
def test_wildcards_follow_go_filepath_match(pattern: str, name: str, hit: bool) -> None:
    assert bool(go_match_regex(pattern).match(name)) is hit


def test_durations_ports_and_healthcheck() -> None:
    assert parse_duration("1m30s", "x") == 90 * 10**9 and parse_duration("500ms", "x") == 5 * 10**8
    assert parse_duration("1.5s", "x") == 1_500_000_000 and parse_duration("0", "x") == 0
    with pytest.raises(InvalidInput):
        parse_duration("5 parsecs", "x")
    assert exposed(["80", "53/UDP", "7000-7001"]) == ["80/tcp", "53/udp", "7000/tcp", "7001/tcp"]
    assert healthcheck(["CMD-SHELL", "true"], {"interval": "5s", "retries": "3"}) == \
        {"Test": ["CMD-SHELL", "true"], "Interval": 5 * 10**9, "Retries": 3}
    with pytest.raises(InvalidInput, match="less than 1ms"):
        healthcheck(["CMD", "true"], {"timeout": "10us"})


def test_dockerignore_follows_docker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from berth.image.buildsources import Ignore

    (tmp_path / ".dockerignore").write_text("# comment\n*/temp*\n*.key\n!keep.key\n**/*.log\nbuild/\n/abs\n")
    ignored = Ignore(str(tmp_path))
    for rel, want in (("a/tempfile", True), ("a/b/tempfile", False), ("tempfile", False), ("x.key", True),
                      ("keep.key", False), ("d/x.key", False), ("x.log", True), ("a/b/c.log", True),
                      ("build", True), ("build/out/x", True), ("abs", True), ("abs/x", True), ("src/main.c", False)):
        assert ignored(rel) is want, rel
