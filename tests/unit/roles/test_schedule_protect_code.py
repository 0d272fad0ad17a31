"""The schedule role installs the keeper's and the relay's code on the host: its file list
(roles/schedule/tasks/protect.yml) must hold everything those two import from the
collection, found by reading their imports, so a new shared module cannot be forgotten."""
from __future__ import annotations

import ast
from pathlib import Path

import yaml
from tests.unit.paths import REPO

MODULE_UTILS = REPO / "plugins" / "module_utils"
PREFIX = "ansible_collections.ocsp.stapling.plugins.module_utils."


def installed_list() -> list[str]:
    tasks = yaml.safe_load((REPO / "roles" / "schedule" / "tasks" / "protect.yml").read_text())
    for task in tasks:
        found = (task.get("ansible.builtin.set_fact") or {}).get("__schedule_protect_code")
        if found:
            return found
    raise AssertionError("protect.yml sets no __schedule_protect_code list")


def imports_of(relative: str) -> set[str]:
    tree = ast.parse((MODULE_UTILS / relative).read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.startswith(PREFIX):
                path = name[len(PREFIX):].replace(".", "/")
                if (MODULE_UTILS / f"{path}.py").is_file():
                    found.add(f"{path}.py")
    return found


def closure(*roots: str) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(imports_of(current))
    packages = {str(Path(path).parent / "__init__.py") for path in seen}
    return seen | packages


def test_the_installed_code_holds_everything_the_keeper_and_the_relay_import():
    needed = closure("protect/keeper.py", "protect/relay.py")
    missing = sorted(needed - set(installed_list()))
    assert not missing, f"add to __schedule_protect_code in roles/schedule/tasks/protect.yml: {missing}"
    assert "ocsp/der.py" in needed        # the reader proves it follows imports across folders
