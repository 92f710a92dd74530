"""image / container / system prune: what goes, what stays (in use, tagged, a kept image's build
steps), and the confirmation a non-interactive caller must give with --force."""

from __future__ import annotations

import json

from tests.conftest import berth


def image_ids(env: dict[str, str]) -> set[str]:
    return {i["Id"] for i in json.loads(berth(env, "images", "--format", "json", "-a").stdout)}


def test_prune(berth_env: dict[str, str], busybox_tar: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(berth_env, BERTH_DRIVER="overlay")
    base = berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb").stdout.strip()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:bb\nRUN echo one > /one\nRUN echo two > /two\n")
    v1 = berth(env, "build", "-q", "-t", "app:latest", str(ctx)).stdout.strip()
    (ctx / "Dockerfile").write_text("FROM busybox:bb\nRUN echo one > /one\nRUN echo three > /three\n")
    v2 = berth(env, "build", "-q", "-t", "app:latest", str(ctx)).stdout.strip()  # v1 loses its tag
    step1 = (image_ids(env) - {base, v1, v2}).pop()  # RUN echo one: shared by both builds
    # without -a, `images` shows the tagged ones and the dangling v1, not the build step under v2
    shown = {i["Id"] for i in json.loads(berth(env, "images", "--format", "json").stdout)}
    assert shown == {base, v1, v2}
    stopped = berth(env, "create", "--network", "none", "busybox:bb", "true").stdout.strip()

    cp = berth(env, "image", "prune", check=False)
    assert cp.returncode == 1 and "--force" in cp.stderr and image_ids(env) == {base, v1, v2, step1}
    out = berth(env, "image", "prune", "-f").stdout
    assert f"deleted: {v1}" in out and "Total reclaimed space" in out
    # v2's build step stays (it is v2's ancestor and its build cache); so does everything tagged
    assert image_ids(env) == {base, v2, step1}
    rebuilt = berth(env, "build", "-t", "app:latest", str(ctx))
    assert rebuilt.stdout.strip() == v2 and rebuilt.stderr.count("Using cache") == 2

    # -a: every unused image; busybox:bb stays while a container (even a stopped one) uses it
    berth(env, "image", "prune", "-a", "-f")
    assert image_ids(env) == {base}
    running = berth(env, "run", "-d", "--network", "none", "busybox:bb", "sleep", "1000").stdout.strip()
    out = berth(env, "container", "prune", "-f").stdout
    assert "Deleted Containers" in out and berth(env, "ps", "-aq").stdout.split() == [running[:12]]
    assert stopped[:12] not in berth(env, "ps", "-aq").stdout
    berth(env, "rm", "-f", running)
    out = berth(env, "system", "prune", "-a", "-f").stdout
    assert f"deleted: {base}" in out and image_ids(env) == set()
    assert json.loads(berth(env, "storage", "check", "--format", "json").stdout)["problems"] == []


def test_system_df(berth_env: dict[str, str], busybox_tar: str) -> None:
    env = dict(berth_env, BERTH_DRIVER="overlay")
    berth(env, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:bb")
    base_size = json.loads(berth(env, "inspect", "busybox:bb").stdout)[0]["Size"]
    berth(env, "run", "--name", "writer", "--network", "none", "busybox:bb", "sh", "-c",
          "head -c 1048576 /dev/zero > /data")
    berth(env, "commit", "writer", "withdata:1")
    running = berth(env, "run", "-d", "--network", "none", "busybox:bb", "sleep", "1000").stdout.strip()
    rows = {r["Type"]: r for r in json.loads(berth(env, "system", "df", "--format", "json").stdout)}
    images, containers = rows["Images"], rows["Containers"]
    assert (images["Total"], images["Active"]) == (2, 1)
    # busybox's layer counted once although both images hold it; only withdata's layer can go
    assert images["Size"] >= base_size + 1048576 and images["Reclaimable"] == images["Size"] - base_size
    assert (containers["Total"], containers["Active"]) == (2, 1)
    assert containers["Size"] >= 1048576 and containers["Reclaimable"] >= 1048576
    table = berth(env, "system", "df").stdout
    assert table.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    berth(env, "rm", "-f", running)
