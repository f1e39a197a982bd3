#!/usr/bin/env bash
# Installs everything dcgan needs on a fresh Debian machine (run as root), offline data
# included. Idempotent: a second run checks, finds everything in place and changes nothing.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

if ! dpkg-query -W -f='${Status}' dataset-fashion-mnist 2>/dev/null | grep -q "ok installed"; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist
fi

# Reinstall only when setup.cfg changed or the installed dcgan is another checkout's.
# The check runs from / so that this directory's own dcgan/ cannot answer for the install.
stamp=build/.installed-setup-cfg.sha256
if ! sha256sum --status -c "$stamp" 2>/dev/null \
    || ! (cd / && "$PYTHON" -c "import importlib.util as u, os, sys
mods = ['dcgan', 'tensorflow', 'tensorflow_datasets', 'importlib_resources', 'tensorboard']
sys.exit(not all(map(u.find_spec, mods))
         or os.path.dirname(u.find_spec('dcgan').origin) != sys.argv[1])" "$PWD/dcgan"); then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  mkdir -p build && sha256sum setup.cfg > "$stamp"
fi

"$PYTHON" -m dcgan.data
