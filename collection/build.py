"""Build the berth.runtime collection from the sources where they live, install it, check it.

  build.py build [--dist DIR]            dist/berth-runtime-VERSION.tar.gz (and print its path)
  build.py install TARBALL DIR           ansible-galaxy collection install --offline into DIR
  build.py sanity TARBALL                ansible-test sanity on the tarball's contents

The collection is library/ (plugins/modules), module_utils/ (plugins/module_utils), plugins/,
roles/, playbooks/, this directory's galaxy.yml, meta/ and README.md, and a wheel of berth built
from the checkout (roles/berth_runtime/files/), which the berth_runtime role installs on hosts
without network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import tomllib

from berth.errors import BerthError
from berth.proc import run

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
# what `ansible-test sanity` checks on the built collection (ansible-test's own list, minus the
# test that needs its own pinned environment from the network: pylint)
SANITY_SKIP = ["pylint"]
SANITY_TIMEOUT = 600


def version() -> str:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        pkg = tomllib.load(f)["project"]["version"]
    with open(os.path.join(HERE, "galaxy.yml")) as f:
        galaxy = next(line.split(":", 1)[1].strip() for line in f if line.startswith("version:"))
    if galaxy != pkg:
        raise SystemExit(f"collection/galaxy.yml has version {galaxy}, pyproject.toml {pkg}: make them agree")
    return str(pkg)


def wheel(dest: str) -> str:
    """A wheel of berth built from a clean copy of the checkout (no network, no build isolation)."""
    with tempfile.TemporaryDirectory(prefix="berth-wheel-") as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        shutil.copy(os.path.join(REPO, "pyproject.toml"), src)
        shutil.copytree(os.path.join(REPO, "runtime"), os.path.join(src, "runtime"), ignore=SKIP)
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation",
             "-w", dest, src], what="building the berth wheel", timeout=300)
    built = [n for n in os.listdir(dest) if n.endswith(".whl")]
    if len(built) != 1:
        raise SystemExit(f"expected one wheel in {dest}, found {built}")
    return built[0]


def check_imports() -> None:
    """Modules reach the shared code through the collection, which is where it is once installed."""
    for name in sorted(os.listdir(os.path.join(REPO, "library"))):
        with open(os.path.join(REPO, "library", name)) as f:
            if name.endswith(".py") and "from ansible.module_utils.berth_common" in f.read():
                raise SystemExit(f"library/{name} imports ansible.module_utils.berth_common: import it as "
                                 "ansible_collections.berth.runtime.plugins.module_utils.berth_common")


def stage(root: str) -> None:
    """Lay the collection out under root from the checkout's sources."""
    check_imports()
    for name in ("galaxy.yml", "README.md"):
        shutil.copy(os.path.join(HERE, name), root)
    shutil.copytree(os.path.join(HERE, "meta"), os.path.join(root, "meta"), ignore=SKIP)
    plugins = os.path.join(root, "plugins")
    shutil.copytree(os.path.join(REPO, "library"), os.path.join(plugins, "modules"), ignore=SKIP)
    shutil.copytree(os.path.join(REPO, "module_utils"), os.path.join(plugins, "module_utils"), ignore=SKIP)
    for kind in sorted(os.listdir(os.path.join(REPO, "plugins"))):
        shutil.copytree(os.path.join(REPO, "plugins", kind), os.path.join(plugins, kind), ignore=SKIP)
    for tree in ("roles", "playbooks"):
        shutil.copytree(os.path.join(REPO, tree), os.path.join(root, tree), ignore=SKIP)
    files = os.path.join(root, "roles", "berth_runtime", "files")
    os.makedirs(files, exist_ok=True)
    wheel(files)


def build(dist: str) -> str:
    ver = version()
    os.makedirs(dist, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="berth-collection-") as tmp:
        root = os.path.join(tmp, "ansible_collections", "berth", "runtime")
        os.makedirs(root)
        stage(root)
        run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path",
             os.path.abspath(dist), root], what="ansible-galaxy collection build", timeout=300)
    out = os.path.join(dist, f"berth-runtime-{ver}.tar.gz")
    if not os.path.exists(out):
        raise SystemExit(f"ansible-galaxy wrote no {out}")
    return out


def install(tarball: str, dest: str) -> None:
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "--force", "-p", dest, tarball],
        what="ansible-galaxy collection install", timeout=300)


def bootstrap_pip() -> None:
    """ansible-test puts pip into the virtual environments of its sanity tests (kept between runs
    under ~/.ansible/test) with a get-pip script it downloads from its CI host unless the script is
    in its cache: ours (get_pip.py) does the same from ensurepip and the configured index."""
    cache = os.path.expanduser("~/.ansible/test/cache")
    os.makedirs(cache, exist_ok=True)
    for pip_version in ("24_2",):
        script = os.path.join(cache, f"get_pip_{pip_version}.py")
        if not os.path.exists(script):
            shutil.copy(os.path.join(HERE, "get_pip.py"), script)


def sanity(tarball: str) -> None:
    """ansible-test sanity on the built collection, unpacked where ansible-test wants it."""
    with tempfile.TemporaryDirectory(prefix="berth-sanity-") as tmp:
        root = os.path.join(tmp, "ansible_collections", "berth", "runtime")
        os.makedirs(root)
        with tarfile.open(tarball) as t:
            t.extractall(root, filter="data")
        argv = [os.path.join(BIN, "ansible-test"), "sanity", "--python", "3.11", "--local", "--color", "no"]
        for test in SANITY_SKIP:
            argv += ["--skip-test", test]
        env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', os.defpath)}")
        bootstrap_pip()
        cp = run(argv, cwd=root, env=env, check=False, timeout=SANITY_TIMEOUT, what="ansible-test sanity")
        sys.stdout.write(cp.stdout.decode(errors="replace"))
        sys.stderr.write(cp.stderr.decode(errors="replace"))
        if cp.returncode != 0:
            raise SystemExit(f"ansible-test sanity failed on {tarball}")


def main() -> None:
    p = argparse.ArgumentParser(prog="collection/build.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--dist", default=os.path.join(REPO, "dist"))
    i = sub.add_parser("install")
    i.add_argument("tarball")
    i.add_argument("dest")
    s = sub.add_parser("sanity")
    s.add_argument("tarball")
    a = p.parse_args()
    try:
        if a.cmd == "build":
            print(build(a.dist))
        elif a.cmd == "install":
            install(a.tarball, a.dest)
        else:
            sanity(a.tarball)
    except BerthError as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
