"""Stand-in for get-pip.py, which ansible-test downloads from its own CI host to put pip into the
virtual environments of its sanity tests: the same job without that download. pip comes from the
interpreter's own ensurepip, then the packages asked for (pip==VERSION, ...) from the configured index."""

import ensurepip
import os
import subprocess
import sys

env = dict(os.environ)
ensurepip.bootstrap()
packages = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", *packages],
               env=env, check=True, timeout=600)
