"""The Go template subset of --format / inspect -f: expected outputs are what docker 20.10 (Go
text/template with docker's functions) prints for the same template and data."""

from __future__ import annotations

import pytest

from berth.cli import render
from berth.cli.gotemplate import Context, TemplateError, go_sprintf, parse, tabwriter

DATA = {
    "Id": "abc123",
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 42, "ExitCode": 0},
    "Config": {"Env": ["PATH=/bin", "A=1"], "Labels": {"b": "2", "a": "1"}, "Cmd": ["sh", "-c", "x"]},
    "Args": [],
    "Mounts": None,
}


@pytest.mark.parametrize(("template", "expected"), [
    ("{{.State.Status}}", "running"),
    ("{{.Name}} {{.State.Pid}}", "/web 42"),
    ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
    ("{{json .Args}}", "[]"),
    ("{{json .Mounts}}", "null"),
    ("{{.State.Running}}", "true"),
    ('{{join .Config.Cmd " "}}', "sh -c x"),
    ('{{index .Config.Labels "a"}}', "1"),
    ("{{index .Config.Env 1}}", "A=1"),
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[PATH=/bin][A=1]"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:PATH=/bin 1:A=1 "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "a=1,b=2,"),  # maps range in key order
    ("{{range .Args}}x{{else}}none{{end}}", "none"),
    ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
    ('{{if ne .State.Status "running"}}a{{else if .State.Running}}b{{else}}c{{end}}', "b"),
    ("{{if and .State.Running (eq .State.ExitCode 0)}}ok{{end}}", "ok"),
    ("{{if not .State.Running}}x{{else}}y{{end}}", "y"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{$n := .Name}}{{$n | upper}}", "/WEB"),
    ("{{.Name | upper | lower}}", "/web"),
    ('{{lower "ABC" | title}}', "Abc"),
    ("{{len .Config.Env}}", "2"),
    ('{{split "a:b:c" ":"}}', "[a b c]"),
    ('{{index (split "a:b:c" ":") 2}}', "c"),
    ('{{printf "%s-%d" .Name .State.Pid}}', "/web-42"),
    ('{{printf "%-6s|" .Name}}', "/web  |"),
    ('{{printf "%q" .Name}}', '"/web"'),
    ("{{.State}}", "map[ExitCode:0 Pid:42 Running:true Status:running]"),
    ("{{.Config.Env}}", "[PATH=/bin A=1]"),
    ("{{.NoSuchKey}}", "<no value>"),
    ("a  {{- .Name -}}  b", "a/webb"),
    ("{{/* a comment */}}x", "x"),
    ('{{pad .Name 1 2}}|', " /web  |"),
    ('{{truncate .Id 3}}', "abc"),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{println .Name}}", "/web\n"),
    ("{{print .State.Pid .State.Pid}}", "42 42"),
    ("{{(index .Config.Env 0)}}", "PATH=/bin"),
])
def test_renders_like_go(template: str, expected: str) -> None:
    assert parse(template).render(DATA) == expected


@pytest.mark.parametrize(("template", "message"), [
    ("{{.ID", "template parsing error: template: :1: unclosed action"),
    ("{{nosuch .X}}", 'template parsing error: template: :1: function "nosuch" not defined'),
    ("{{if .X}}a", "template parsing error: template: :1: unexpected EOF"),
    ("{{end}}", "template parsing error: template: :1: unexpected {{end}}"),
    ("x\n{{range}}{{end}}", "template parsing error: template: :2: missing value for range"),
    ("{{.A | }}", "template parsing error: template: :1: missing command"),
    ("{{(.A}}", "template parsing error: template: :1: unclosed left paren"),
    ('{{"abc}}', "template parsing error: template: :1: unterminated quoted string"),
])
def test_bad_templates_fail_with_one_line_like_docker(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        parse(template)
    assert str(e.value) == message


def test_struct_contexts_reject_unknown_fields_and_take_method_arguments() -> None:
    row = Context("*formatter.containerContext", {"ID": "abc", "Label": lambda k: {"a": "1"}.get(k, "")})
    assert parse('{{.ID}} {{.Label "a"}}/{{.Label "z"}}').render(row) == "abc 1/"
    with pytest.raises(TemplateError, match="^template: :1:5: executing \"\" at <.Nope>: can't evaluate field Nope in "
                                            "type \\*formatter.containerContext$"):
        parse("ab {{.Nope}}").render(row)


def test_execution_errors_name_the_action() -> None:
    with pytest.raises(TemplateError, match=':1:2: executing "" at <index .Config.Env 5>: .*out of range'):
        parse("{{index .Config.Env 5}}").render(DATA)
    with pytest.raises(TemplateError, match="range can't iterate over /web"):
        parse("{{range .Name}}{{end}}").render(DATA)


def test_printf_verbs() -> None:
    assert go_sprintf("%5d|%-3d|%x|%.2f|%t|%v|%%", 7, 1, 255, 1.5, True, [1, 2]) == "    7|1  |ff|1.50|true|[1 2]|%"
    assert go_sprintf("%s") == "%!s(MISSING)"


def test_table_directive_headers_and_alignment_like_docker() -> None:
    rows = [Context("c", {"ID": "0123456789ab", "Names": "web"}), Context("c", {"ID": "ab", "Names": "a-much-longer"})]
    out = render.lines("table {{.ID}}\\t{{.Names}}", rows, {"ID": "CONTAINER ID", "Names": "NAMES"})
    assert out == ["CONTAINER ID   NAMES", "0123456789ab   web", "ab             a-much-longer"]
    # a plain template: one line per item, no header; \t is a tab
    assert render.lines("{{.ID}}\\t{{.Names}}", rows) == ["0123456789ab\tweb", "ab\ta-much-longer"]
    # an unknown header field falls back to its upper-cased name
    assert render.lines("table {{.Names}}\\t{{.Size}}", [], {"Names": "NAMES"}) == ["NAMES     SIZE"]


def test_tabwriter_min_width_and_padding() -> None:
    assert tabwriter(["a\tb", "ccc\td"]) == ["a         b", "ccc       d"]
