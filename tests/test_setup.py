"""The from-source set-up of mmcv: the same code ``scripts/setup.sh`` runs on a fresh machine.

CI installs a prebuilt mmcv wheel, so without these tests a change in pip or setuptools could
break every new user's set-up while the suite stays green. The fast tests download mmcv's
source archive (a registry download of about 600 kB), patch it and run its metadata step in
this venv, without compiling. ``make test-build`` compiles it (22 min on 2 cores, measured).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "build_mmcv.py"


def load_script():
    spec = importlib.util.spec_from_file_location("build_mmcv", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_mmcv = load_script()


def test_setup_sh_builds_mmcv_with_this_script():
    text = (REPO / "scripts" / "setup.sh").read_text()
    assert 'scripts/build_mmcv.py" build "$CACHE/wheels"' in text
    assert "pip download" not in text  # one way: the download lives in build_mmcv.py only


def test_prepare_downloads_patches_and_checks_metadata(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "prepare", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr + (tmp_path / "prepare.log").read_text()
    src = Path(proc.stdout.strip().splitlines()[-1])
    assert src == tmp_path / f"mmcv-{build_mmcv.MMCV_VERSION}"
    setup_py = (src / "setup.py").read_text()
    assert build_mmcv.OLD_STD.search(setup_py) is None
    assert setup_py.count("-std=c++20") >= 3
    pkg_info = (src / "mmcv.egg-info" / "PKG-INFO").read_text()
    assert f"Version: {build_mmcv.MMCV_VERSION}" in pkg_info
    # a second call reuses the prepared source instead of downloading again
    mtime = (src / "setup.py").stat().st_mtime
    again = subprocess.run([sys.executable, str(SCRIPT), "prepare", str(tmp_path)], timeout=60)
    assert again.returncode == 0
    assert (src / "setup.py").stat().st_mtime == mtime


def test_patch_replaces_old_standards(tmp_path):
    (tmp_path / "setup.py").write_text("a = ['-std=c++14']\nb = ['-std=c++17', '-O3']\n")
    assert build_mmcv.patch(tmp_path) == 2
    assert (tmp_path / "setup.py").read_text() == "a = ['-std=c++20']\nb = ['-std=c++20', '-O3']\n"


def test_patch_refuses_a_setup_py_without_a_standard_flag(tmp_path):
    (tmp_path / "setup.py").write_text("extra_compile_args = ['-O3']\n")
    with pytest.raises(build_mmcv.BuildError, match="no -std flag"):
        build_mmcv.patch(tmp_path)


def test_failed_step_names_the_step_and_shows_the_log(tmp_path):
    log = tmp_path / "log.txt"
    with pytest.raises(build_mmcv.BuildError, match="the step failed .exit 3.") as err:
        build_mmcv.run_logged(
            [sys.executable, "-c", "print('compiler said no'); raise SystemExit(3)"],
            log,
            "the step",
        )
    assert "compiler said no" in str(err.value)
    hints = build_mmcv.hints(tmp_path, log)
    assert str(log) in hints and "GiB free" in hints and "compiler" in hints


@pytest.mark.build
def test_build_is_interruptible_and_resumes(tmp_path):
    """Kill the compile after a few units: no wheel appears; a re-run finishes and the wheel has ops."""
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(SCRIPT), "build", str(cache)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    log = cache / "build" / f"mmcv-{build_mmcv.MMCV_VERSION}.log"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if log.exists() and "[3/" in log.read_text(errors="replace"):
            break
        time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(cache.glob("mmcv-*.whl")), "an interrupted build must leave no wheel"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compiled" in done.stdout  # the progress line
    wheel = Path(done.stdout.strip().splitlines()[-1])
    assert wheel.parent == cache and wheel.is_file()
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("mmcv/_ext") and n.endswith(".so") for n in names), names[:20]
