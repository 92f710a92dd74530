#!/usr/bin/python3
"""PID 1 of a fleet system container: make this host's SSH keys and start sshd when asked
(FLEET_SSHD=1), then reap every orphan (berth's conmon and container processes end up here)
until SIGTERM."""

import os
import signal
import subprocess
import sys
import time


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    if os.environ.get("FLEET_SSHD") == "1":
        subprocess.run(["ssh-keygen", "-A"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["/usr/sbin/sshd"], check=True)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(1)


if __name__ == "__main__":
    main()
