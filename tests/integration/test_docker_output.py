"""Output that scripts read, as docker 20.10 prints it: `inspect` JSON against docker's shape
(tests/data/docker-inspect-shape.json) and against a real dockerd's output for the same image and
flags; Go templates, ps/images/history/logs flags and filters, version/info, and the
management-command forms."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time

import pytest

from tests.conftest import berth, wait_for
from tests.peers import dockerd

SHAPE = json.load(open(os.path.join(os.path.dirname(__file__), "..", "data", "docker-inspect-shape.json")))
CREATE_FLAGS = ["--network", "none", "-e", "X=1", "-l", "a=b", "-v", "/tmp:/mnt:ro", "--tmpfs", "/run",
                "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "--cap-add", "NET_ADMIN",
                "--cap-drop", "CHOWN", "--restart", "on-failure:3", "-w", "/tmp", "-u", "1000", "--read-only",
                "--hostname", "h1"]


def json_type(v: object) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object"}[type(v)]


def shape_problems(value: object, shape: object, path: str = "") -> list[str]:
    """Where value departs from a shape of docker-inspect-shape.json (missing keys, other types)."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: {json_type(value)}, docker has an object"]
        out = []
        for k, s in shape.items():
            if k == "*":
                for vk, vv in value.items():
                    out += shape_problems(vv, s, f"{path}.{vk}")
            elif k not in value:
                out.append(f"{path}.{k}: missing")
            else:
                out += shape_problems(value[k], s, f"{path}.{k}")
        return out
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: {json_type(value)}, docker has an array"]
        return [p for i, item in enumerate(value) for p in shape_problems(item, shape[0], f"{path}[{i}]")]
    assert isinstance(shape, str)
    return [] if json_type(value) in shape.split("|") else [f"{path}: {json_type(value)}, docker has {shape}"]


def optional_problems(value: dict[str, object], optional: dict[str, object]) -> list[str]:
    out = []
    for section, keys in optional.items():
        for k, s in keys.items():  # type: ignore[attr-defined]
            inner = value.get(section) or {}
            if isinstance(inner, dict) and inner.get(k) is not None:
                out += shape_problems(inner[k], s, f".{section}.{k}")
    return out


@pytest.fixture
def env(berth_env: dict[str, str], busybox_tar: str) -> dict[str, str]:
    e = dict(berth_env, BERTH_DRIVER="overlay")
    berth(e, "import", busybox_tar, "bb")
    return e


def make_containers(run: object) -> None:
    """The same three containers in berth and in docker: created with many flags, running, exited."""
    run("create", "--name", "c1", *CREATE_FLAGS, "bb", "sleep", "100")  # type: ignore[operator]
    run("run", "-d", "--name", "c2", "--network", "none", "bb", "sleep", "100")  # type: ignore[operator]
    run("run", "--name", "c3", "--network", "none", "bb", "sh", "-c", "echo out; exit 3")  # type: ignore[operator]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_inspect_validates_against_docker_shape(env: dict[str, str]) -> None:
    make_containers(lambda *a: berth(env, *a, check=False))
    port = free_port()
    berth(env, "run", "-d", "--name", "web", "-p", f"{port}:80", "bb", "sleep", "100")
    for name in ("c1", "c2", "c3", "web"):
        info = json.loads(berth(env, "inspect", name).stdout)[0]
        problems = shape_problems(info, SHAPE["container"]) + optional_problems(info, SHAPE["optional"]["container"])
        assert not problems, (name, problems)
        assert "Berth" in info and info["Name"] == f"/{name}"
    img = json.loads(berth(env, "inspect", "bb").stdout)[0]
    assert not shape_problems(img, SHAPE["image"]) + optional_problems(img, SHAPE["optional"]["image"])
    # the published port: in inspect (docker's nat.PortMap) and in ps's PORTS column
    web = json.loads(berth(env, "inspect", "web").stdout)[0]
    assert web["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    assert web["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert web["NetworkSettings"]["IPAddress"] and web["NetworkSettings"]["IPPrefixLen"] > 0
    ps = berth(env, "ps").stdout.splitlines()
    assert re.split(r"\s{3,}", ps[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    row = next(r for r in ps if r.endswith(" web"))
    assert f"   0.0.0.0:{port}->80/tcp   web" in row and "   bb   " in row
    berth(env, "rm", "-f", "web", "c2")


# what berth deliberately prints differently from docker, each with its reason
DELIBERATE = {
    ".Driver": "berth's driver names (overlay, not overlay2)",
    ".HostConfig.LogConfig.Type": "conmon's k8s-file log format, not json-file",
    ".HostConfig.MaskedPaths": "berth also masks /sys/devices/virtual/powercap (as later docker does)",
    ".HostConfig.MemorySwap": "berth sets no swap limit of its own (docker: twice --memory)",
    ".Config.AttachStdout": "berth always captures output to the log (docker: false with -d)",
    ".Config.AttachStderr": "as AttachStdout",
}


def test_inspect_templates_and_lists_like_docker(env: dict[str, str], tmp_path: str, busybox_tar: str) -> None:
    make_containers(lambda *a: berth(env, *a, check=False))
    with dockerd(str(tmp_path) + "/docker") as docker:
        def d(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*docker, *args], capture_output=True, text=True, timeout=300)

        assert d("import", busybox_tar, "bb").returncode == 0
        make_containers(d)
        wait_for(lambda: d("inspect", "-f", "{{.State.Status}}", "c3").stdout.strip() == "exited", what="c3 exits")
        # 1. every key docker prints is in berth's inspect, with docker's JSON type
        for name in ("c1", "c2", "c3"):
            theirs = json.loads(d("inspect", name).stdout)[0]
            ours = json.loads(berth(env, "inspect", name).stdout)[0]
            assert not same_keys(theirs, ours, SHAPE["container"]), name
        theirs = json.loads(d("image", "inspect", "bb").stdout)[0]
        ours = json.loads(berth(env, "image", "inspect", "bb").stdout)[0]
        assert not same_keys(theirs, ours, SHAPE["image"])
        # 2. the same templates print the same (values that differ deliberately are listed above)
        templates = [
            "{{.State.Status}}|{{.State.Running}}|{{.State.ExitCode}}|{{.State.OOMKilled}}|{{.Name}}|{{.Path}}|"
            "{{json .Args}}|{{.RestartCount}}|{{.Platform}}|{{json .ExecIDs}}",
            "{{.Config.Image}}|{{json .Config.Cmd}}|{{json .Config.Env}}|{{json .Config.Labels}}|{{.Config.User}}|"
            "{{.Config.WorkingDir}}|{{json .Config.Entrypoint}}|{{eq .Config.Hostname (slice .Id 0 12)}}",
            # (not {{json .HostConfig.RestartPolicy}}: docker falls back to its raw JSON for some templates,
            # and then prints objects with sorted keys)
            "{{json .HostConfig.Binds}}|{{.HostConfig.NetworkMode}}|{{.HostConfig.RestartPolicy.Name}}:"
            "{{.HostConfig.RestartPolicy.MaximumRetryCount}}|"
            "{{.HostConfig.AutoRemove}}|{{json .HostConfig.CapAdd}}|{{json .HostConfig.CapDrop}}|"
            "{{.HostConfig.Memory}}|{{json .HostConfig.PidsLimit}}|"
            "{{.HostConfig.ReadonlyRootfs}}|{{json .HostConfig.Tmpfs}}|{{.HostConfig.Privileged}}|"
            "{{.HostConfig.ShmSize}}|{{json .HostConfig.ReadonlyPaths}}|{{.HostConfig.IpcMode}}",
            "{{range .Mounts}}{{.Type}}:{{.Source}}:{{.Destination}}:{{.Mode}}:{{.RW}} {{end}}|"
            "{{.NetworkSettings.IPAddress}}|{{json .NetworkSettings.Ports}}|"
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}:{{$v.IPAddress}}{{end}}",
            "{{with .State}}{{if eq .Status \"running\"}}up {{gt .Pid 0}}{{else}}{{.Status | upper}}{{end}}{{end}}",
            # docker's Go field is NanoCPUs: it answers from its raw JSON, where every key must exist
            "{{.HostConfig.NanoCpus}}",
        ]
        for t in templates:
            for name in ("c1", "c2", "c3"):
                theirs_cp = d("inspect", "-f", t, name)
                assert berth(env, "inspect", "-f", t, name).stdout == theirs_cp.stdout, (t, name, theirs_cp.stderr)
        img_t = "{{json .RepoTags}}|{{json .RepoDigests}}|{{.Os}}|{{.Architecture}}|{{json .RootFS}}|" \
                "{{json .Config.Cmd}}|{{.Parent}}|{{.Author}}|{{json .Config.Labels}}"
        assert berth(env, "image", "inspect", "-f", img_t, "bb").stdout == d("image", "inspect", "-f", img_t,
                                                                             "bb").stdout
        # 3. ps, images and history through templates, and their default tables' columns
        for args in (["ps", "-a", "--format", "{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Ports}}|"
                                              "{{.Labels}}|{{.Mounts}}|{{.Networks}}|{{.LocalVolumes}}"],
                     ["ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}"],
                     ["ps", "-a", "--filter", "label=a=b", "-q", "--format", "{{.Names}}"],
                     ["ps", "--filter", "exited=3", "--format", "{{.Names}}"],
                     ["ps", "-a", "--filter", "name=c[12]", "--format", "table {{.Names}}\\t{{.Image}}"],
                     ["ps", "-a", "-n", "2", "--format", "{{.Names}}"],
                     ["ps", "-l", "--format", "{{.Names}}"],
                     ["images", "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}|{{.Containers}}"],
                     ["images", "--format", "table {{.Repository}}\\t{{.Tag}}"],
                     ["images", "bb:latest", "--format", "{{.Repository}}"],
                     ["images", "--filter", "reference=b*", "--format", "{{.Repository}}"],
                     ["images", "--filter", "dangling=true", "--format", "{{.Repository}}"],
                     ["container", "ls", "--format", "{{.Names}}"],
                     ["image", "ls", "--format", "{{.Tag}}"]):
            ours_out, theirs_out = berth(env, *args).stdout, d(*args).stdout
            if "{{.Status}}" in args[-1]:
                ours_out, theirs_out = (re.sub(r"\) .* ago", ") …", x) for x in (ours_out, theirs_out))
            if args[:2] == ["ps", "-a"] and "-q" in args:
                ours_out, theirs_out = len(ours_out.split()), len(theirs_out.split())  # IDs differ
            assert ours_out == theirs_out, args
        for args in (["ps", "-a"], ["images"], ["history", "bb"], ["system", "df"], ["ps", "-a", "-s"]):
            ours_head = re.split(r"\s{3,}", berth(env, *args).stdout.splitlines()[0].strip())
            theirs_head = re.split(r"\s{3,}", d(*args).stdout.splitlines()[0].strip())
            assert ours_head == theirs_head, args
        # 4. bad templates and filters: docker's words
        for args in (["ps", "--format", "{{.ID"], ["ps", "--format", "{{.Nope}}"], ["images", "--format", "{{.X"],
                     ["inspect", "-f", "{{.Nope}}", "c1"], ["inspect", "-f", "{{if}}", "c1"],
                     ["inspect", "-f", "{{index .Config.Cmd 5}}", "c1"]):
            ours_cp, theirs_cp = berth(env, *args, check=False), d(*args)
            assert ours_cp.returncode != 0 and theirs_cp.returncode != 0, args
            assert ours_cp.stderr.strip().removeprefix("berth: error: ") == theirs_cp.stderr.strip(), args


def same_keys(theirs: object, ours: object, shape: object, path: str = "") -> list[str]:
    """Keys docker prints that berth lacks or types differently (a null on either side is fine
    where docker's type is nullable: Go's nil slices, maps and pointers)."""
    if path in DELIBERATE:
        return []
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"{path}: berth has {json_type(ours)}"]
        if not isinstance(shape, dict):  # a map of data (labels, ports): its keys are values
            return []
        out = []
        for k, v in theirs.items():
            sub = shape.get(k, shape.get("*"))
            if k not in ours:
                out.append(f"{path}.{k}: missing")
            else:
                out += same_keys(v, ours[k], sub, f"{path}.{k}")
        return out
    if isinstance(theirs, list) and isinstance(ours, list):
        if theirs and ours and isinstance(shape, list):
            return same_keys(theirs[0], ours[0], shape[0], f"{path}[0]")
        return []
    if json_type(theirs) == json_type(ours):
        return []
    nullable = isinstance(shape, str) and "null" in shape.split("|")
    if nullable and "null" in (json_type(theirs), json_type(ours)):
        return []
    return [f"{path}: docker {json_type(theirs)}, berth {json_type(ours)}"]


def test_cli_flags_filters_logs_version_and_aliases(env: dict[str, str]) -> None:
    make_containers(lambda *a: berth(env, *a, check=False))
    # ps: running only by default; filters AND across keys, OR within one
    assert berth(env, "ps", "--format", "{{.Names}}").stdout.split() == ["c2"]
    assert berth(env, "ps", "-a", "--format", "{{.Names}}", "--filter", "status=created",
                 "--filter", "status=exited").stdout.split() == ["c3", "c1"]
    assert berth(env, "ps", "-a", "--filter", "status=exited", "--filter", "name=c1", "-q").stdout == ""
    assert berth(env, "ps", "--filter", "exited=3", "-q").stdout == ""  # running ones only, as in docker
    assert berth(env, "ps", "-a", "--filter", "ancestor=bb", "-q").stdout.split().__len__() == 3
    # docker's ancestor: also the containers of images built on it (not those of its base)
    berth(env, "commit", "--change", "CMD [\"true\"]", "c1", "child")
    berth(env, "run", "--name", "kid", "--network", "none", "child", "touch", "/tmp/made-by-kid")
    berth(env, "commit", "kid", "grandchild:1")  # a layer of its own on child's
    berth(env, "create", "--name", "grandkid", "--network", "none", "grandchild:1")
    assert berth(env, "ps", "-a", "--filter", "ancestor=bb", "-q").stdout.split().__len__() == 5
    assert sorted(berth(env, "ps", "-a", "--filter", "ancestor=child", "--format", "{{.Names}}").stdout.split()) == \
        ["grandkid", "kid"]
    assert berth(env, "ps", "-a", "--filter", "ancestor=grandchild:1", "--format", "{{.Names}}").stdout.split() == \
        ["grandkid"]
    berth(env, "rm", "kid", "grandkid")
    berth(env, "rmi", "grandchild:1", "child")
    cid = json.loads(berth(env, "inspect", "c1").stdout)[0]["Id"]
    assert berth(env, "ps", "-a", "--filter", f"id={cid[:5]}", "--no-trunc", "-q").stdout.strip() == cid
    assert berth(env, "ps", "-a", "--filter", "before=c3", "--format", "{{.Names}}").stdout.split() == ["c2", "c1"]
    assert berth(env, "ps", "-a", "--filter", "since=c1", "--format", "{{.Names}}").stdout.split() == ["c3", "c2"]
    cp = berth(env, "ps", "--filter", "bogus=1", check=False)
    assert cp.returncode == 1 and "Invalid filter 'bogus'" in cp.stderr and "Traceback" not in cp.stderr
    assert "Invalid filter 'status=nope'" in berth(env, "ps", "--filter", "status=nope", check=False).stderr
    sized = berth(env, "ps", "-a", "-s", "--format", "{{.Size}}").stdout.split("\n")[0]
    assert re.fullmatch(r"\d+(\.\d+)?[kMG]?B \(virtual \d+(\.\d+)?[kMG]?B\)", sized)
    # inspect: -f and --format, -s, --type; a missing key is an error, as in docker
    assert berth(env, "inspect", "--format", "{{.State.ExitCode}}", "c3").stdout == "3\n"
    sizes = json.loads(berth(env, "inspect", "-s", "c3").stdout)[0]
    assert isinstance(sizes["SizeRw"], int) and sizes["SizeRootFs"] >= sizes["SizeRw"]
    assert berth(env, "container", "inspect", "bb", check=False).returncode == 1
    assert berth(env, "image", "inspect", "-f", "{{.Id}}", "bb").stdout.startswith("sha256:")
    # images: REPO[:TAG], --digests, --no-trunc, -q
    berth(env, "tag", "bb", "other/bb:v2")
    assert berth(env, "images", "other/bb", "--format", "{{.Tag}}").stdout == "v2\n"
    assert berth(env, "images", "bb:nope", "-q").stdout == ""
    assert len(berth(env, "images", "-q").stdout.split()) == 1  # one image, two names
    assert berth(env, "images", "-q", "--no-trunc").stdout.startswith("sha256:")
    assert re.split(r"\s{3,}", berth(env, "images", "--digests").stdout.splitlines()[0]) == \
        ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    assert berth(env, "images", "--filter", "reference=other/*", "--format", "{{.Repository}}").stdout == "other/bb\n"
    assert berth(env, "images", "--filter", "dangling=false", "-q").stdout.strip()
    assert berth(env, "images", "--filter", "since=bb", "-q").stdout == ""
    # history: -q, --no-trunc, -H=false
    assert berth(env, "history", "-q", "bb").stdout.strip() == berth(env, "images", "-q").stdout.strip()
    raw = berth(env, "history", "-H=false", "--format", "{{.Size}} {{.CreatedSince}}", "bb").stdout.split()
    assert raw[0].isdigit() and re.match(r"\d{4}-\d\d-\d\dT", raw[1])
    assert berth(env, "history", "--no-trunc", "-q", "bb").stdout.startswith("sha256:")
    # logs: -t, --since, --until, --tail
    wait_for(lambda: berth(env, "logs", "c3").stdout == "out\n", what="c3's output in its log")
    stamped = berth(env, "logs", "-t", "c3").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z out\n", stamped)
    assert berth(env, "logs", "--since", "1h", "c3").stdout == "out\n"
    assert berth(env, "logs", "--until", "1h", "c3").stdout == ""
    assert berth(env, "logs", "--since", str(int(time.time()) + 60), "c3").stdout == ""
    assert berth(env, "logs", "--until", "2999-01-01T00:00:00Z", "--tail", "all", "c3").stdout == "out\n"
    assert berth(env, "logs", "--tail", "0", "c3").stdout == ""
    bad = berth(env, "logs", "--since", "yesterday", "c3", check=False)
    assert bad.returncode == 1 and "invalid value for --since" in bad.stderr
    # version, info, management forms
    assert re.fullmatch(r"berth version \S+, python \S+\n", berth(env, "--version").stdout)
    assert berth(env, "version", "-f", "{{.Client.Version}}").stdout.strip() == \
        berth(env, "version", "--format", "{{.Server.Version}}").stdout.strip()
    assert berth(env, "info", "-f", "{{.Driver}}|{{.Containers}}|{{.ContainersRunning}}|{{.Images}}").stdout == \
        "overlay|3|1|1\n"
    assert berth(env, "system", "info", "--format", "{{.Berth.driver}}").stdout == "overlay\n"
    assert json.loads(berth(env, "system", "df", "--format", "{{json .}}").stdout.splitlines()[0])["Type"] == "Images"
    berth(env, "container", "stop", "-t", "0", "c2")
    berth(env, "container", "rm", "c2")
    assert berth(env, "container", "ls", "-a", "--format", "{{.Names}}").stdout.split() == ["c3", "c1"]
    berth(env, "image", "rm", "other/bb:v2")
    assert berth(env, "image", "ls", "--format", "{{.Repository}}").stdout == "bb\n"
