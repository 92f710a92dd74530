"""overlay's own checks, beside the driver (as containers/storage keeps drivers/overlay/check.go):
the mount options berth always passes, and a trial mount in a private mount namespace that tells
whether several lower dirs mount, whether the upper dir stays a faithful diff and whether the
volatile option (no sync of the upper dir at unmount) is there. Nothing here
changes the host: the trial happens in a temporary directory inside `unshare --mount`."""

from __future__ import annotations

import json
import os
import shutil
import sys

from berth.proc import run

OVERLAY_PARAMS = "/sys/module/overlay/parameters"
# part of the key the trial's answer is remembered under: a trial that learns more gets a new one
TRIAL_VERSION = 2

# Run in a child process inside `unshare --mount`: the trial mounts vanish with it.
_OVERLAY_TRIAL = r"""
import json, os, sys
base, opts = sys.argv[1], sys.argv[2]
res = {}
def sh(*a):
    import subprocess
    return subprocess.run(list(a), capture_output=True, text=True)
for d in ("l1/d", "l1/d1", "l2/d", "l3", "work", "merged", "l4", "work4"):
    os.makedirs(os.path.join(base, d))
os.setxattr(os.path.join(base, "l2/d"), "trusted.overlay.opaque", b"y")
data = f"{opts}lowerdir={base}/l2:{base}/l1,upperdir={base}/l3,workdir={base}/work"
r = sh("mount", "-t", "overlay", "overlay", "-o", data, f"{base}/merged")
res["multiple_lowers"] = r.returncode == 0
res["mount_error"] = r.stderr.strip()
if r.returncode == 0:
    open(f"{base}/merged/d/f", "w").close()
    try:
        os.getxattr(f"{base}/l3/d", "trusted.overlay.opaque")
        res["native_diff"] = "opaque flag erroneously copied up"
    except OSError:
        res["native_diff"] = ""
    try:
        os.rename(f"{base}/merged/d1", f"{base}/merged/d2")
        try:
            os.getxattr(f"{base}/l3/d2", "trusted.overlay.redirect")
            res["native_diff"] = res["native_diff"] or "redirect_dir is on (directory renames are redirects)"
        except OSError:
            pass
    except OSError as e:
        if e.errno != 18:
            res["native_diff"] = res["native_diff"] or f"rename check failed: {e}"
    os.chmod(f"{base}/merged/d", 0o700)
    res["metacopy"] = False
    sh("umount", f"{base}/merged")
    data = f"{opts}lowerdir={base}/l1,upperdir={base}/l4,workdir={base}/work4,volatile"
    res["volatile"] = sh("mount", "-t", "overlay", "overlay", "-o", data, f"{base}/merged").returncode == 0
    if res["volatile"]:
        sh("umount", f"{base}/merged")
print(json.dumps(res))
"""


def probe_overlay(options: str, filesystems: list[str]) -> dict[str, object]:
    """Trial-mount overlay with our options (multiple lowers, native-diff checks)."""
    if "overlay" not in filesystems:
        return {"multiple_lowers": False, "mount_error": "overlay is not in /proc/filesystems",
                "native_diff": "overlay missing"}
    import tempfile  # only for the trial, which runs once per boot

    tmp = tempfile.mkdtemp(prefix="berth-probe-")
    try:
        cp = run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", _OVERLAY_TRIAL,
                  tmp, options], check=False, timeout=30)
        if cp.returncode != 0:
            return {"multiple_lowers": False, "mount_error": cp.stderr.decode(errors="replace").strip()[-300:],
                    "native_diff": "probe failed"}
        return json.loads(cp.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def overlay_mount_options() -> str:
    """Options berth always passes, so that native diff stays valid whatever the module defaults."""
    opts = []
    if os.path.exists(f"{OVERLAY_PARAMS}/index"):
        opts.append("index=off")
    if os.path.exists(f"{OVERLAY_PARAMS}/redirect_dir"):
        opts.append("redirect_dir=off")
    if os.path.exists(f"{OVERLAY_PARAMS}/metacopy"):
        opts.append("metacopy=off")
    return ",".join(opts) + ("," if opts else "")
