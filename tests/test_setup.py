"""setup.sh as a new user on stock Debian runs it: a fresh clone, the system interpreter that
refuses pip installs outside a venv (PEP 668), then train.py with the environment's python."""

import os
import pathlib
import shutil
import subprocess
import time

import pytest
import tensorflow as tf
from conftest import REPO

DEBIAN_PYTHON = pathlib.Path("/usr/bin/python3")


def _run(args, cwd, env, timeout):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _site_packages(venv):
    """Top-level entries of the venv's site-packages with their mtimes: any pip install or
    uninstall rewrites at least one of them (a dist-info directory, the editable finder)."""
    (site,) = venv.glob("lib/python3*/site-packages")
    return sorted((path.name, path.stat().st_mtime_ns) for path in site.iterdir())


@pytest.fixture
def fresh_clone(tmp_path):
    """A clone of this checkout's committed HEAD (uncommitted edits are not in it); removed
    afterwards, as its .venv is ~2.6 GB."""
    clone = tmp_path / "dcgan"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    yield clone
    shutil.rmtree(clone)


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="needs Debian's /usr/bin/python3")
def test_setup_with_debian_python_in_a_fresh_clone(fresh_clone, tmp_path):
    # As from a shell with no environment active (CI runs the suite inside .venv).
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME")}
    env["PYTHON"] = str(DEBIAN_PYTHON)
    _run(["./setup.sh"], fresh_clone, env, timeout=1800)
    venv = fresh_clone / ".venv"
    before = _site_packages(venv)

    start = time.perf_counter()
    second = _run(["./setup.sh"], fresh_clone, env, timeout=300)
    seconds = time.perf_counter() - start
    assert _site_packages(venv) == before, "the second setup.sh run changed the venv"
    assert seconds < 120, f"the second setup.sh run took {seconds:.0f} s"
    # .venv and the install stamp are ignored: the checkout stays clean.
    assert _run(["git", "status", "--porcelain"], fresh_clone, env, timeout=60).stdout == ""

    # The line setup.sh prints makes `python` the venv's, whose dcgan is the clone's.
    activate = second.stdout.splitlines()[-1]
    assert activate == f". {venv}/bin/activate"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    show_dcgan = "python -c 'import dcgan; print(dcgan.__file__)'"
    imported = _run(["bash", "-c", f"{activate} && {show_dcgan}"], elsewhere, env, timeout=300)
    assert imported.stdout.strip() == str(fresh_clone / "dcgan" / "__init__.py")

    run_dir = tmp_path / "run"
    _run([str(venv / "bin" / "python"), str(fresh_clone / "train.py"), f"--run_dir={run_dir}",
          "--max_steps=2", "--train_examples=256", "--batch_size=64"], elsewhere, env,
         timeout=900)
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert checkpoint is not None and checkpoint.endswith("-2"), checkpoint
    assert (run_dir / "generator.keras").exists()
