"""scripts/install-system-packages, the README's first step: apt-get only for what is
missing, directly as root, through sudo for a desktop user, and a clear message otherwise.

apt-get, dpkg-query, sudo and id are stand-ins on PATH that log their calls (the test
must not install anything or need root); the script itself is the real one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-system-packages"
NEEDED = ("libportaudio2 libgl1 libegl1 libglib2.0-0 libxkbcommon0 libxkbcommon-x11-0 "
          "libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1").split()

STUBS = {
    # Reports "install ok installed" for the packages listed in $INSTALLED.
    "dpkg-query": 'for p in $INSTALLED; do [ "$p" = "${@: -1}" ] && '
                  '{ printf "install ok installed"; exit 0; }; done; exit 1',
    "apt-get": 'echo "apt-get $*" >> "$CALLS"',
    "sudo": 'echo "sudo" >> "$CALLS"; exec "$@"',
    "id": 'echo "$FAKE_UID"',
    "python3": 'exit "$VENV_BROKEN"',  # 1: `python3 -m venv` would need python3-venv
}


def run(tmp_path, installed=NEEDED, uid=0, sudo=False, venv_broken=False, args=()):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STUBS.items():
        if name == "sudo" and not sudo:
            continue
        stub = bin_dir / name
        stub.write_text(f"#!{shutil.which('bash')}\n{body}\n")
        stub.chmod(0o755)
    for tool in ("env", "sed"):
        (bin_dir / tool).unlink(missing_ok=True)
        (bin_dir / tool).symlink_to(shutil.which(tool))
    calls = tmp_path / "calls.log"
    calls.write_text("")
    env = {"PATH": str(bin_dir), "CALLS": str(calls), "INSTALLED": " ".join(installed),
           "FAKE_UID": str(uid), "VENV_BROKEN": "1" if venv_broken else "0",
           "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run([shutil.which("bash"), str(SCRIPT), *args], env=env,
                            capture_output=True, text=True, timeout=30)
    return result, calls.read_text().splitlines()


def test_nothing_missing_installs_nothing_and_asks_for_no_sudo(tmp_path):
    result, calls = run(tmp_path, uid=1000, sudo=True)
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert "all 11 system packages are installed" in result.stdout


def test_as_root_without_sudo_apt_get_installs_what_is_missing(tmp_path):
    result, calls = run(tmp_path, installed=NEEDED[1:], uid=0, sudo=False)
    assert result.returncode == 0, result.stderr
    assert calls == ["apt-get update", "apt-get install -y libportaudio2"]


def test_a_desktop_user_installs_through_sudo(tmp_path):
    result, calls = run(tmp_path, installed=NEEDED[2:], uid=1000, sudo=True)
    assert result.returncode == 0, result.stderr
    assert calls == ["sudo", "apt-get update", "sudo", "apt-get install -y libportaudio2 libgl1"]


def test_the_test_suite_also_gets_xvfb_and_a_broken_venv_gets_python3_venv(tmp_path):
    result, calls = run(tmp_path, uid=0, venv_broken=True, args=["--test"])
    assert result.returncode == 0, result.stderr
    assert calls == ["apt-get update", "apt-get install -y xvfb python3-venv"]


def test_without_root_or_sudo_it_says_what_to_do_and_fails(tmp_path):
    result, calls = run(tmp_path, installed=(), uid=1000, sudo=False)
    assert result.returncode == 1
    assert calls == []
    assert result.stderr.count("\n") == 1  # one line
    assert "needs root: run this as root or install sudo" in result.stderr
    assert "libportaudio2" in result.stderr


def test_an_unknown_option_is_refused(tmp_path):
    result, calls = run(tmp_path, args=["--tests"])
    assert result.returncode == 2 and calls == []
    assert "unknown option '--tests'" in result.stderr


def test_the_script_is_executable_as_the_readme_runs_it():
    assert os.access(SCRIPT, os.X_OK)  # the README calls it by its path, not through bash
