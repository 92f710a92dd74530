#!/usr/bin/env python3
"""The kernel lane: boot Debian's kernel in qemu with the guest root that scripts/kernel/image.sh
built, share this checkout into it read-only (9p, at the same path), run pytest steps inside and
bring the results out: the exit code, the pytest summary and a count of skips (a skip inside the
guest fails the lane: these tests are there to run).

    scripts/kernel/lane.py [--image DIR] [--timeout S] --step "PYTEST ARGS" [--step ...]
    scripts/kernel/lane.py --shell --step "COMMAND" [--step ...]

Each step runs in its own boot; between steps the guest reboots with its disks kept (the scratch
disk on /tmp and the spare disk /dev/vdc), so a step can check what survives a reboot. KVM is
used when a probe boot comes up quickly with it, otherwise software emulation (TCG)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QEMU = "qemu-system-x86_64"
PROBE_SECONDS = 10
SCRATCH_BYTES = 24 << 30
SPARE_BYTES = 4 << 30

STEP = """set -u
repo={repo}
mkdir -p "$repo"
mountpoint -q "$repo" || mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 repo "$repo"
venv="$repo/.venv"
# the checkout's venv on the guest's python3 (the same 3.11): its interpreter links point at the host's
if ! mountpoint -q "$venv/bin"; then
  mkdir -p /run/venv && cp -a "$venv/bin" /run/venv/bin
  for p in python python3 python3.11; do ln -sfn /usr/bin/python3 "/run/venv/bin/$p"; done
  sed -e 's|^home = .*|home = /usr/bin|' -e 's|^executable = .*|executable = /usr/bin/python3.11|' \\
    "$venv/pyvenv.cfg" >/run/venv/pyvenv.cfg
  mount --bind /run/venv/bin "$venv/bin" && mount --bind /run/venv/pyvenv.cfg "$venv/pyvenv.cfg"
fi
cd "$repo"
export BERTH_VM_SPARE_DISK=/dev/vdc  # a blank disk for direct-lvm
echo "BERTH-VM-STEP {n}:" {what}
BERTH_VM_STEP={n} timeout {seconds} {command}
rc=$?
{reboot}
exit $rc
"""
PYTEST = '"$venv/bin/python" -m pytest -p no:cacheprovider -v -rs --junitxml=/lane/junit-{n}.xml {args}'


def read(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read().strip()


def log(msg: str) -> None:
    print(f"kernel-lane: {msg}", flush=True)


def probe_kvm(image: str, lane: str) -> bool:
    """Whether a KVM guest comes up here (on some hosts it hangs right after the firmware)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    out = os.path.join(lane, "probe.log")
    argv = [QEMU, "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", f"file:{out}", "-kernel", os.path.join(image, "vmlinuz"),
            "-initrd", os.path.join(image, "initramfs.gz"), "-append", "console=ttyS0 quiet berth.probe"]
    try:
        subprocess.run(argv, capture_output=True, timeout=PROBE_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return False
    return "BERTH-VM-PROBE-OK" in read(out)


def sparse(path: str, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def qemu_argv(image: str, lane: str, kvm: bool, console: str) -> list[str]:
    accel = ["-accel", "kvm", "-cpu", "host"] if kvm else ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return [QEMU, *accel, "-smp", "2", "-m", "3072", "-nodefaults", "-no-user-config", "-display", "none",
            "-monitor", "none", "-serial", f"file:{console}", "-nic", "none",
            "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initramfs.gz"),
            "-append", "console=ttyS0 quiet loglevel=3 panic=0",
            "-drive", f"file={os.path.join(image, 'root.img')},format=raw,if=virtio,snapshot=on",
            "-drive", f"file={os.path.join(lane, 'scratch.img')},format=raw,if=virtio,cache=unsafe",
            "-drive", f"file={os.path.join(lane, 'spare.img')},format=raw,if=virtio,cache=unsafe",
            "-virtfs", f"local,path={REPO},mount_tag=repo,security_model=none,readonly=on",
            "-virtfs", f"local,path={lane},mount_tag=lane,security_model=none"]


def follow(proc: subprocess.Popen[bytes], console: str, boot_timeout: float, deadline: float) -> str:
    """Print the guest's console as it comes; stop the VM when it does not come up in boot_timeout
    (per boot) or runs past the deadline. Returns "" when qemu ended by itself, else the reason."""
    pos = 0
    booted_at = time.monotonic()
    up = False
    partial = ""
    while True:
        ended = proc.poll() is not None
        if os.path.exists(console):
            with open(console, "rb") as f:
                f.seek(pos)
                chunk = f.read()
            pos += len(chunk)
            partial += chunk.decode("utf-8", "replace").replace("\r", "")
            *lines, partial = partial.split("\n")
            for line in lines:
                print(f"  | {line}", flush=True)
                if line.startswith("BERTH-VM-UP"):
                    up = True
                elif line.startswith("BERTH-VM-REBOOT"):
                    up, booted_at = False, time.monotonic()
                elif "Kernel panic" in line or line.startswith("BERTH-VM-FAILED"):
                    return f"the guest failed: {line.strip()}"
        if ended:
            if partial:
                print(f"  | {partial}", flush=True)
            return ""
        now = time.monotonic()
        if not up and now - booted_at > boot_timeout:
            return f"the guest did not come up within {boot_timeout:.0f} s (its console: {console})"
        if now > deadline:
            return f"the guest ran past the lane's time limit (its console: {console})"
        time.sleep(0.5)


def junit_counts(path: str) -> dict[str, int] | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {k: sum(int(s.get(k, "0")) for s in suites) for k in ("tests", "failures", "errors", "skipped")}


def skipped_cases(path: str) -> list[str]:
    root = ET.parse(path).getroot()
    return [f"{c.get('classname')}::{c.get('name')}: {(c.find('skipped').get('message') or '').strip()}"
            for c in root.iter("testcase") if c.find("skipped") is not None]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=os.path.join(REPO, ".cache", "kernel"))
    ap.add_argument("--timeout", type=float, default=900, help="hard limit for the whole lane, seconds")
    ap.add_argument("--boot-timeout", type=float, default=150, help="limit for each boot to come up, seconds")
    ap.add_argument("--accel", choices=("auto", "kvm", "tcg"), default=os.environ.get("BERTH_VM_ACCEL", "auto"))
    ap.add_argument("--step", action="append", required=True, help="pytest arguments for one boot")
    ap.add_argument("--shell", action="store_true", help="the steps are shell commands (run in the checkout), not "
                    "pytest arguments: a step passes when it exits 0")
    args = ap.parse_args()
    start = time.monotonic()
    deadline = start + args.timeout
    for f in ("vmlinuz", "initramfs.gz", "root.img"):
        if not os.path.exists(os.path.join(args.image, f)):
            log(f"no VM image in {args.image} ({f} is missing): make test-kernel builds it")
            return 2
    if shutil.which(QEMU) is None:
        log(f"{QEMU} is missing (apt-get install qemu-system-x86)")
        return 2
    if not os.path.exists(os.path.join(REPO, ".venv", "bin", "berth")):
        log("the checkout has no .venv with berth (make setup)")
        return 2
    lane = os.path.join(args.image, "run")
    shutil.rmtree(lane, ignore_errors=True)
    os.makedirs(lane)
    sparse(os.path.join(lane, "scratch.img"), SCRATCH_BYTES)
    sparse(os.path.join(lane, "spare.img"), SPARE_BYTES)
    steps = args.step
    for n, step in enumerate(steps, 1):
        reboot = "touch /lane/reboot" if n < len(steps) else ""
        with open(os.path.join(lane, f"step-{n}.sh"), "w") as f:
            command = f"sh -c {shlex.quote(step)}" if args.shell else PYTEST.format(n=n, args=step)
            f.write(STEP.format(repo=shlex.quote(REPO), n=n, what=shlex.quote(step if args.shell else f"pytest {step}"),
                                command=command, seconds=int(args.timeout), reboot=reboot))
    kvm = args.accel == "kvm" or (args.accel == "auto" and probe_kvm(args.image, lane))
    log(f"booting {read(os.path.join(args.image, 'version'))} with "
        f"{'KVM' if kvm else 'software emulation (TCG)'}, {len(steps)} step(s), limit {args.timeout:.0f} s")
    console = os.path.join(lane, "console.log")
    proc = subprocess.Popen(qemu_argv(args.image, lane, kvm, console), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        problem = follow(proc, console, args.boot_timeout, deadline)
    finally:
        if proc.poll() is None:
            proc.kill()
        qemu_out = proc.communicate(timeout=30)[0].decode(errors="replace").strip()
    if qemu_out:
        print(f"  qemu: {qemu_out}", flush=True)
    for disk in ("scratch.img", "spare.img"):  # the console log and the junit files stay for a look
        os.unlink(os.path.join(lane, disk))
    ok = not problem
    if problem:
        log(problem)
    for n in range(1, len(steps) + 1):
        rc_file, junit = os.path.join(lane, f"rc-{n}"), os.path.join(lane, f"junit-{n}.xml")
        rc = read(rc_file) if os.path.exists(rc_file) else None
        if args.shell and rc is not None:
            log(f"step {n}: exit {rc}")
            ok = ok and rc == "0"
            continue
        counts = junit_counts(junit)
        if rc is None or counts is None:
            log(f"step {n}: did not finish")
            ok = False
            continue
        log(f"step {n}: pytest exit {rc}; {counts['tests']} tests, {counts['failures']} failed, "
            f"{counts['errors']} errors, {counts['skipped']} skipped")
        for s in skipped_cases(junit):
            log(f"step {n}: skipped in the guest (a failure here): {s}")
        ok = ok and rc == "0" and counts["skipped"] == 0 and counts["tests"] > 0
    log(f"{'PASSED' if ok else 'FAILED'} in {time.monotonic() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
