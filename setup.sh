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

# Reinstall only when setup.cfg changed since the last install from this checkout.
stamp=build/.installed-setup-cfg.sha256
if ! sha256sum --status -c "$stamp" 2>/dev/null \
    || ! "$PYTHON" -c "import importlib.util as u, sys
sys.exit(not all(map(u.find_spec, ['dcgan', 'tensorflow', 'tensorflow_datasets', 'importlib_resources'])))"; then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  mkdir -p build && sha256sum setup.cfg > "$stamp"
fi

"$PYTHON" -m dcgan.data
