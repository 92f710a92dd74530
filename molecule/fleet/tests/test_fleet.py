"""testinfra checks of each fleet host, reached through the berth connection plugin."""

import json


def test_reached_inside_a_container(host):
    assert host.check_output("hostname").startswith("fleet-")
    # berth came from the collection's wheel into a virtualenv: no checkout is mounted
    assert host.file("/opt/berth/venv/bin/berth").exists
    assert not host.file("/opt/berth/runtime/berth").exists


def test_berth_uses_vfs_inside(host):
    info = json.loads(host.check_output("berth info --format json"))
    assert info["driver"] == "vfs"


def test_nested_containers_run(host):
    running = {c["Name"]: c for c in json.loads(host.check_output("berth ps --format json"))}
    assert {"web", "worker"} <= set(running)
    assert running["worker"]["Config"]["pids_limit"] == 20


def test_nested_web_answers_on_the_hosts_network(host):
    # the page holds the nested container's host name, which on the host's network is the host's
    assert host.check_output("busybox wget -qO- http://127.0.0.1:8080/index.html") == host.check_output("hostname")
