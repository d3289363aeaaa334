# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection builds, installs from its tarball, and works by FQCN from a playbook outside the repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(cmd, cwd, env=None):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_build_install_and_use_by_fqcn(tmp_path):
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    build = run([BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp_path, str(ROOT)], cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    tarball = tmp_path / f"smarthost-relay-{version}.tar.gz"
    assert tarball.is_file()

    names = tarfile.open(tarball).getnames()
    assert "MANIFEST.json" in names and "FILES.json" in names
    assert not [n for n in names if n.startswith((".venv", ".cache", ".git/", "bench/"))], names

    install_dir = tmp_path / "collections"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(install_dir), ANSIBLE_NOCOLOR="1")
    install = run([BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", install_dir, tarball],
                  cwd=tmp_path, env=env)
    assert install.returncode == 0, install.stdout + install.stderr
    listed = run([BIN / "ansible-galaxy", "collection", "list", "smarthost.relay", "--format", "json",
                  "-p", install_dir], cwd=tmp_path, env=env)
    assert version in listed.stdout, listed.stdout + listed.stderr

    playbook = tmp_path / "outside.yml"
    playbook.write_text((Path(__file__).parent / "files" / "outside_repo_playbook.yml").read_text())
    played = run([BIN / "ansible-playbook", "-i", "localhost,", "-c", "local", playbook], cwd=tmp_path, env=env)
    assert played.returncode == 0, played.stdout + played.stderr
    assert "failed=0" in played.stdout
    # Only the installed copy is on the collections path, so it served the play.
    found = json.loads(listed.stdout)
    assert list(found) == [str(install_dir / "ansible_collections")], found
