"""Fetch, patch and compile mmcv with its ops from the registry's source archive.

mmcv 2.1.0 (the newest that mmdet 3.3.0 accepts) has no binary wheel on PyPI, and its
``setup.py`` asks for ``-std=c++14``/``-std=c++17`` while torch >= 2.10's headers need C++20.
``scripts/setup.sh`` calls this script, with the project's venv python, when no prebuilt wheel
is at hand:

    python scripts/build_mmcv.py prepare DIR     # download, unpack, patch, check metadata
    python scripts/build_mmcv.py build CACHE     # prepare + compile; the wheel lands in CACHE

Every step that runs mmcv's ``setup.py`` runs in *this* interpreter's environment
(``--no-build-isolation``): an isolated build environment gets the newest setuptools, which has
no ``pkg_resources``, and mmcv's ``setup.py`` imports it.

The compile shows one refreshed line (units done of total, elapsed, estimate) and writes its
full output to ``CACHE/build/mmcv-<version>.log``. The wheel is written to a temporary folder and
moved into ``CACHE`` only when complete, so an interrupted or failed build never leaves a wheel
that looks finished; the unpacked, patched source under ``CACHE/build`` is kept, so a re-run
resumes the compile where ninja stopped. A failure prints what to check.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

MMCV_VERSION = "2.1.0"
#: mmcv's setup.py hard-codes these; torch's headers need C++20.
OLD_STD = re.compile(r"-std=c\+\+1[47]")
NEW_STD = "-std=c++20"
PATCHED_MARK = ".kd_det-patched"
UNIT = re.compile(r"^\[(\d+)/(\d+)\]")


class BuildError(RuntimeError):
    """A step of the mmcv build failed; the message says what to check."""


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def run_logged(cmd: list[str], log: Path, what: str, cwd: Path | None = None, env=None) -> None:
    """Run ``cmd`` with its output appended to ``log``; raise BuildError naming ``what``."""
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise BuildError(f"{what} failed (exit {proc.returncode})\n{tail(log)}")


def tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join("    " + line for line in text[-lines:])


def download(dest: Path, log: Path, version: str = MMCV_VERSION) -> Path:
    """Download mmcv's source archive into ``dest`` (metadata prepared in this venv)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = pip("download", "--no-deps", "--no-build-isolation", "--no-binary", ":all:")
    run_logged([*cmd, "-d", str(dest), f"mmcv=={version}"], log, "downloading mmcv's source")
    archive = dest / f"mmcv-{version}.tar.gz"
    if not archive.is_file():
        raise BuildError(f"pip download left no {archive.name} in {dest}")
    return archive


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest``; returns the source folder."""
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    src = dest / archive.name.removesuffix(".tar.gz")
    if not (src / "setup.py").is_file():
        raise BuildError(f"{archive} did not unpack to a folder with setup.py")
    return src


def patch(src: Path) -> int:
    """Replace mmcv's C++14/17 flags by C++20 in ``setup.py``; returns how many were replaced.

    Raises BuildError when nothing is left that asks for C++14/17 *and* no C++20 flag is there
    (the archive changed under us) — a silent no-op would fail only minutes into the compile.
    """
    setup_py = src / "setup.py"
    text = setup_py.read_text()
    new, count = OLD_STD.subn(NEW_STD, text)
    if NEW_STD not in new:
        raise BuildError(f"{setup_py} has no -std flag to patch; mmcv's setup.py changed")
    setup_py.write_text(new)
    (src / PATCHED_MARK).write_text(f"{count} flags patched to {NEW_STD}\n")
    return count


def check_metadata(src: Path, log: Path) -> Path:
    """Run ``setup.py egg_info`` in this venv (no compile); returns the PKG-INFO path.

    The archive ships an ``mmcv.egg-info`` of its own; it is removed first, so the PKG-INFO
    checked is the one this environment's setuptools wrote.
    """
    shutil.rmtree(src / "mmcv.egg-info", ignore_errors=True)
    env = dict(os.environ, MMCV_WITH_OPS="1")
    run_logged(
        [sys.executable, "setup.py", "-q", "egg_info"], log, "mmcv's metadata step", src, env
    )
    pkg_info = src / "mmcv.egg-info" / "PKG-INFO"
    if not pkg_info.is_file():
        raise BuildError(f"egg_info wrote no {pkg_info}")
    if f"Version: {MMCV_VERSION}" not in pkg_info.read_text():
        raise BuildError(f"{pkg_info} does not describe mmcv {MMCV_VERSION}")
    return pkg_info


def prepare(workdir: Path, log: Path) -> Path:
    """Download, unpack, patch and check mmcv's source under ``workdir``; returns the source.

    An already prepared source (marked after patching) is reused, so a re-run resumes.
    """
    src = workdir / f"mmcv-{MMCV_VERSION}"
    if (src / PATCHED_MARK).is_file():
        return src
    shutil.rmtree(src, ignore_errors=True)
    archive = download(workdir, log)
    src = unpack(archive, workdir)
    patch(src)
    check_metadata(src, log)
    return src


def fmt(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def compile_wheel(src: Path, out: Path, log: Path, jobs: int) -> Path:
    """Build the wheel of ``src`` into ``out`` showing one refreshed progress line."""
    env = dict(os.environ, MMCV_WITH_OPS="1", MAX_JOBS=str(jobs))
    cmd = pip("wheel", "-v", "--no-build-isolation", "--no-deps", "-w", str(out), str(src))
    done, start = 0, time.monotonic()
    tty = sys.stdout.isatty()
    last_print = 0.0
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(
            cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            match = UNIT.match(line.strip())
            if not match:
                continue
            done, total = int(match[1]), int(match[2])
            elapsed = time.monotonic() - start
            eta = elapsed / done * (total - done) if done else 0.0
            status = (
                f"[mmcv] compiled {done}/{total} units, {fmt(elapsed)} elapsed, ~{fmt(eta)} left"
            )
            # a terminal gets one refreshed line; a log file a line every 30 s
            if tty:
                print("\r" + status, end="", flush=True)
            elif time.monotonic() - last_print > 30 or done == total:
                print(status, flush=True)
                last_print = time.monotonic()
        code = proc.wait()
    if tty:
        print()
    if code:
        raise BuildError(f"compiling mmcv failed (exit {code}) after {done} units\n{tail(log)}")
    wheels = sorted(out.glob(f"mmcv-{MMCV_VERSION}-*.whl"))
    if not wheels:
        raise BuildError(f"the build finished but left no mmcv wheel in {out}")
    return wheels[0]


def hints(cache: Path, log: Path) -> str:
    try:
        compiler = subprocess.run(["c++", "--version"], capture_output=True, text=True)
        cxx = compiler.stdout.splitlines()[0] if compiler.stdout else "no output"
    except OSError:
        cxx = "no c++ compiler on PATH (install g++ >= 10: apt-get install g++)"
    free_gib = shutil.disk_usage(cache if cache.exists() else cache.parent).free / 2**30
    return (
        "What to check:\n"
        f"  * the compiler: {cxx} (C++20 needs g++ >= 10 or clang >= 10)\n"
        f"  * disk: {free_gib:.1f} GiB free under {cache}\n"
        f"  * the full log: {log}\n"
        f"  * to start from scratch instead of resuming: rm -rf {cache / 'build'}"
    )


def build(cache: Path, jobs: int) -> Path:
    """Prepare and compile mmcv; the finished wheel is moved into ``cache``."""
    workdir = cache / "build"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"mmcv-{MMCV_VERSION}.log"
    try:
        src = prepare(workdir, log)
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            wheel = compile_wheel(src, Path(tmp), log, jobs)
            final = cache / wheel.name
            shutil.move(str(wheel), str(final.with_suffix(".part")))
            os.replace(final.with_suffix(".part"), final)  # atomic: the wheel is whole or absent
    except BuildError as err:
        raise SystemExit(f"[mmcv] {err}\n{hints(cache, log)}") from None
    shutil.rmtree(src, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="download, unpack, patch and check metadata (no compile)")
    p.add_argument("workdir", type=Path)
    b = sub.add_parser("build", help="prepare and compile; the wheel is moved into CACHE")
    b.add_argument("cache", type=Path)
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        log = args.workdir / "prepare.log"
        args.workdir.mkdir(parents=True, exist_ok=True)
        try:
            src = prepare(args.workdir, log)
        except BuildError as err:
            raise SystemExit(f"[mmcv] {err}\n(log: {log})") from None
        print(src)
    else:
        print(build(args.cache, args.jobs))


if __name__ == "__main__":
    main()
