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


def test_tasks_ran_as_deploy_and_became_root(host):
    """The play connects as deploy (berth exec -u deploy) and becomes root with sudo: ansible's
    remote temporary directory (made by the connecting user for the image copy) belongs to
    deploy, the file that copy wrote belongs to root."""
    tmp = host.file("/home/deploy/.ansible/tmp")
    assert tmp.is_directory and tmp.user == "deploy"
    shipped = host.file("/var/tmp/busybox.tar")
    assert shipped.is_file and shipped.user == "root"
    assert host.check_output("sudo -l -U deploy").find("NOPASSWD: ALL") >= 0


def test_nested_containers_run(host):
    running = {c["Name"].lstrip("/"): c for c in json.loads(host.check_output("berth ps --format json"))}
    assert {"web", "worker"} <= set(running)
    worker = running["worker"]
    assert worker["HostConfig"]["PidsLimit"] == 20
    # the limit as the kernel holds it (the nested berth's cgroup), not only berth's record
    info = json.loads(host.check_output("berth inspect worker"))[0]
    pids_max = f"/sys/fs/cgroup/pids/{info['HostConfig']['CgroupParent']}/{info['Id']}/pids.max"
    assert host.file(pids_max).content_string.strip() == "20"


def test_nested_web_answers_on_the_hosts_network(host):
    # the page holds the nested container's host name, which on the host's network is the host's
    assert host.check_output("busybox wget -qO- http://127.0.0.1:8080/index.html") == host.check_output("hostname")
