"""Stand-in for the get-pip.py bootstrap ansible-test downloads (unreachable from these machines).

ansible-test runs it in a fresh virtualenv with pip's install arguments, e.g.
``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``. Bootstrap pip from the
interpreter's own ensurepip, then let that pip install what was asked (from the package index).
"""

import subprocess
import sys

subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.run([sys.executable, "-m", "pip", "install", *args], check=False).returncode)
