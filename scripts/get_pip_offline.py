"""Stand-in for the get-pip.py bootstrap script that ansible-test downloads from a host these
machines cannot reach. ansible-test runs it inside a fresh virtualenv with pip's options and
the packages to install (pip==<version>, setuptools, wheel); this does the same with the
interpreter's own ensurepip and then pip from the package index.

ansible-test hides every pip configuration (PIP_CONFIG_FILE=/dev/null): the system CA bundle
is passed explicitly so that a TLS-inspecting proxy trusted by the system is trusted here too;
the pip installed here (24.2 and later) then uses the system trust store by itself."""

import ensurepip
import os
import subprocess
import sys

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if os.path.isfile(SYSTEM_CA):
    args = ["--cert", SYSTEM_CA] + args
ensurepip.bootstrap(upgrade=True)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
