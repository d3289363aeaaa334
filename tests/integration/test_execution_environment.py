# -*- coding: utf-8 -*-
# Copyright (c) smarthost.relay maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""execution-environment.yml produces a complete ansible-builder build context, offline.

Only ``ansible-builder create`` runs: no image is built and no registry, Galaxy server or package
index is contacted (proxies point at a closed port to make sure). Building the image needs the base
image from its registry, which this project's test bed does not have.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EE_FILE = ROOT / "execution-environment.yml"
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "no_proxy": "", "NO_PROXY": "", "ANSIBLE_GALAXY_SERVER_LIST": "", "PIP_NO_INDEX": "1"}


def run(cmd, cwd):
    env = dict(os.environ, **OFFLINE)
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def galaxy_version():
    return yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))["version"]


def definition():
    return yaml.safe_load(EE_FILE.read_text(encoding="utf-8"))


def collection_requirements(ee):
    galaxy = ee["dependencies"]["galaxy"]
    return galaxy["collections"] if isinstance(galaxy, dict) else yaml.safe_load(galaxy)["collections"]


def test_definition_installs_this_version_of_the_collection():
    ee = definition()
    assert ee["version"] == 3
    wanted = "collections/smarthost-relay-%s.tar.gz" % galaxy_version()
    names = [c["name"] for c in collection_requirements(ee)]
    assert wanted in names, (
        "execution-environment.yml must install %s (galaxy.yml's version); update dependencies.galaxy" % wanted)


def test_create_builds_the_context_offline(tmp_path):
    ee = definition()
    version = galaxy_version()
    work, context = tmp_path / "work", tmp_path / "context"
    # The definition and the files it names, as they would sit in a checkout, plus the collection
    # tarball where additional_build_files expects it.
    work.mkdir()
    shutil.copy(EE_FILE, work / EE_FILE.name)
    for entry in ("python", "system"):
        name = ee["dependencies"].get(entry)
        if isinstance(name, str):
            assert (ROOT / name).is_file(), "%s names %s, which does not exist" % (EE_FILE.name, name)
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, work / name)
    build = run([BIN / "ansible-galaxy", "collection", "build", "--output-path", work / "dist", ROOT], cwd=tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr

    created = run([BIN / "ansible-builder", "create", "-f", EE_FILE.name, "--output-filename", "Containerfile",
                   "-c", context], cwd=work)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "No matches" not in created.stdout + created.stderr, created.stdout + created.stderr

    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    assert 'ARG EE_BASE_IMAGE="%s"' % ee["images"]["base_image"]["name"] in containerfile
    assert "ansible-galaxy collection install" in containerfile

    build_dir = context / "_build"
    requirements = yaml.safe_load((build_dir / "requirements.yml").read_text(encoding="utf-8"))
    tarball_name = "collections/smarthost-relay-%s.tar.gz" % version
    assert {"name": tarball_name, "type": "file"} in requirements["collections"]
    # The tarball in the context is this collection, at galaxy.yml's version.
    with tarfile.open(build_dir / tarball_name) as tarball:
        manifest = json.load(tarball.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("smarthost", "relay", version)

    python = [line.split("#")[0].strip() for line in (build_dir / "requirements.txt").read_text().splitlines()]
    assert "netaddr" in python
    assert (build_dir / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()
