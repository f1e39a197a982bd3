#!/usr/bin/env bash
# Installs everything dcgan needs on a fresh Debian machine (run as root), offline data
# included. Idempotent: a second run checks, finds everything in place and changes nothing.
#
# It installs into the active virtualenv or conda environment if there is one, else into
# .venv in this checkout, made with $PYTHON's own venv module: Debian's, Ubuntu's and
# Fedora's interpreters refuse pip installs outside a venv (PEP 668), and one path for
# every machine means CI tests the path users take.
set -euo pipefail
cd "$(dirname "$0")"
checkout=$PWD
PYTHON=${PYTHON:-python3}

debian_packages=()
if [[ -z ${VIRTUAL_ENV:-}${CONDA_PREFIX:-} ]]; then
  venv=.venv
  # Debian ships the venv module's pip bootstrap (ensurepip) as python3.X-venv.
  if [[ ! -x $venv/bin/python ]] && ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
    venv_package=$("$PYTHON" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')
    debian_packages+=("$venv_package")
  fi
fi
if ! dpkg-query -W -f='${Status}' dataset-fashion-mnist 2>/dev/null | grep -q "ok installed"; then
  debian_packages+=(dataset-fashion-mnist)
fi
if ((${#debian_packages[@]})); then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${debian_packages[@]}"
fi

if [[ -n ${venv:-} ]]; then
  [[ -x $venv/bin/python ]] || "$PYTHON" -m venv "$venv"
  python=$checkout/$venv/bin/python
else
  python=$PYTHON
  # .venv names the environment dcgan is installed in either way, so that the README's
  # `.venv/bin/python -m pytest` runs the tests in it; a real .venv is never replaced.
  if [[ -L .venv || ! -e .venv ]]; then
    ln -sfn "${VIRTUAL_ENV:-$CONDA_PREFIX}" .venv
  fi
fi

# Reinstall only when setup.cfg changed since the last install into this environment, or
# the environment's dcgan is another checkout's. The check runs from / so that this
# directory's own dcgan/ cannot answer for the install.
prefix=$(cd / && "$python" -c "import sys; print(sys.prefix)")
stamp=build/.installed-setup-cfg.$(printf %s "$prefix" | sha256sum | cut -c1-16).sha256
if ! sha256sum --status -c "$stamp" 2>/dev/null \
    || ! (cd / && "$python" -c "import importlib.util as u, os, sys
mods = ['dcgan', 'tensorflow', 'tensorflow_datasets', 'importlib_resources', 'tensorboard']
sys.exit(not all(map(u.find_spec, mods))
         or os.path.dirname(u.find_spec('dcgan').origin) != sys.argv[1])" "$checkout/dcgan"); then
  "$python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  mkdir -p build && sha256sum setup.cfg > "$stamp"
fi

"$python" -m dcgan.data
if [[ -n ${venv:-} ]]; then
  echo "dcgan is installed in $checkout/$venv. Activate it for the README's python commands:"
  echo ". $checkout/$venv/bin/activate"
else
  echo "dcgan is installed in the active environment $prefix (linked as .venv)."
fi
