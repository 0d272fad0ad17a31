"""The execution environment's build context: ``ansible-builder create``, offline.

The collection tarball is built (``ansible-galaxy collection build``) into dist/ beside a
copy of execution-environment.yml, requirements.txt and bindep.txt, as the EE's build
instructions say; ``ansible-builder create`` then writes the build context without
pulling an image or reaching a registry. The context is judged by what an image built
from it would hold: the collection installed in the final stage, the Python requirements
every third-party import under plugins/ needs (no more), and the system packages bindep
selects for the EE's platform (no test-only ones).
"""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from tests.unit.paths import REPO

BIN = Path(sys.executable).parent
# The EE's base image is CentOS Stream 9 (dnf): the platform profiles bindep sees there.
EE_PROFILES = ["default", "platform:rpm", "platform:redhat", "platform:centos", "platform:centos-9"]


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~;\[ ]", line, 1)[0].lower())
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported under plugins/ that are neither stdlib nor Ansible -> files."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("ansible", "ansible_collections", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    builder = BIN / "ansible-builder"
    if not builder.exists():
        pytest.fail(f"{builder} not found: pip install -r test-requirements.txt")
    work = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(REPO / name, work / name)
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path",
                            str(work / "dist")], capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    create = subprocess.run([str(builder), "create", "-f", "execution-environment.yml", "-c", "context",
                             "--output-filename", "Containerfile"], cwd=work, capture_output=True, text=True,
                            timeout=120, check=False)
    assert create.returncode == 0, create.stdout + create.stderr
    assert "Complete!" in create.stdout, create.stdout
    return work / "context"


def test_the_context_installs_the_collection_in_the_final_image(context):
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    assert (context / "_build" / "collection" / f"ocsp-stapling-{version}.tar.gz").is_file()
    containerfile = (context / "Containerfile").read_text()
    final = containerfile.split("FROM base AS final", 1)
    assert len(final) == 2, containerfile
    # Steps of a stage that is not written are dropped silently (append_galaxy without galaxy
    # requirements): the install must be in the final stage, before it drops root.
    install = final[1].find("ansible-galaxy collection install --offline -p /usr/share/ansible/collections")
    assert 0 <= install < final[1].find("USER 1000"), final[1]
    assert final[1].find("COPY _build/collection/") < install
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, re.M).group(1)
    tested = re.search(r"^ansible-core\S*", (REPO / "test-requirements.txt").read_text(), re.M).group(0)
    assert tested in refs.split(), (refs, tested)


def test_the_python_requirements_are_what_the_controller_side_imports(context):
    assert (context / "_build" / "requirements.txt").read_text() == (REPO / "requirements.txt").read_text()
    imports = third_party_imports()
    distributions = metadata.packages_distributions()
    needed = {dist.lower() for module in imports for dist in distributions.get(module, [module])}
    listed = requirement_names(context / "_build" / "requirements.txt")
    assert needed <= listed, f"imported under plugins/ but not in requirements.txt: {needed - listed} ({imports})"
    assert listed <= needed, f"requirements.txt lists what nothing under plugins/ imports: {listed - needed}"
    # Only controller-side code may import them: a managed host has the standard library only.
    for module, files in imports.items():
        assert not [f for f in files if f.startswith("plugins/modules/")], (module, files)


def test_bindep_gives_the_ee_its_packages_and_no_test_ones(context):
    from bindep.depends import Depends

    text = (context / "_build" / "bindep.txt").read_text()
    assert text == (REPO / "bindep.txt").read_text()
    depends = Depends(text)
    ee = {rule[0] for rule in depends.active_rules(EE_PROFILES)}
    assert ee == {"openssl", "openssh-clients"}, ee
    tests = {rule[0] for rule in depends.active_rules(["test", "platform:dpkg"])}
    assert {"nginx", "apache2", "prometheus", "prometheus-node-exporter"} <= tests
