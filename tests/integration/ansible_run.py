"""Run a module or a playbook through real Ansible (local connection) and get parsed JSON back.

    from tests.integration.ansible_run import run_module
    result = run_module("ocsp.stapling.stapling_status", {"endpoints": [...]})
    result["endpoints"][0]["verdict"]

ansible-core has no JSON stdout callback of its own (``json`` lives in ansible.posix) and
its ``tree`` callback is deprecated (and drops ``failed``), so :func:`run_module` plays a
one-task playbook that registers the result and prints it with ``debug`` (a controller-side
action, no second module run on the host), and reads it back from the output's JSON. The collection is found through
``ANSIBLE_COLLECTIONS_PATH`` (set by tests/conftest.py); the module runs with this venv's
Python so the test sees exactly the code in the checkout.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLLECTIONS = REPO / ".cache" / "collections"
# run_module prints the registered result after this mark, base64-encoded JSON.
RESULT_MARK = "ocsp-stapling-test-result:"


class AnsibleRunError(AssertionError):
    """Ansible itself failed to run (not a module returning failed=true)."""


def ansible_env(extra: dict | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "tests" / "ansible.cfg"))
    env.update({
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    })
    env.update(extra or {})
    return env


def run_module(module: str, args: dict, *, check: bool = False, timeout: float = 300,
               env: dict | None = None) -> dict:
    """Run one module as a one-task play on localhost; return its registered result.

    The result includes ``failed``/``msg`` when the module failed (the task has
    ``ignore_errors``). Raises :class:`AnsibleRunError` when Ansible produced no result.
    """
    with tempfile.TemporaryDirectory(prefix="ansible-run-") as tmp:
        playbook = Path(tmp) / "run.yml"
        # JSON is YAML: no quoting surprises for the module's arguments.
        playbook.write_text(json.dumps([{
            "hosts": "localhost", "gather_facts": False, "connection": "local",
            "vars": {"ansible_python_interpreter": sys.executable},
            "tasks": [
                {"name": f"Run {module}", module: args, "register": "__run_module_result",
                 "ignore_errors": True},
                {"name": "Print the result", "ansible.builtin.debug": {
                    "msg": RESULT_MARK + "{{ __run_module_result | to_json | b64encode }}"}},
            ],
        }], indent=2))
        completed = run_playbook(playbook, check=check, timeout=timeout,
                                 env=dict({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"}, **(env or {})))
        encoded = re.search(re.escape(RESULT_MARK) + r"([A-Za-z0-9+/=]+)", completed.stdout)
        if not encoded:
            raise AnsibleRunError(f"ansible-playbook running {module} returned no result "
                                  f"(exit {completed.returncode}):\n{completed.stdout[-3000:]}\n"
                                  f"{completed.stderr[-3000:]}")
        result = json.loads(base64.b64decode(encoded.group(1)))
        result["_rc"] = completed.returncode
        result["_stderr"] = completed.stderr
        return result


def play_role(role: str, variables: dict, result_var: str, *, check: bool = False, timeout: float = 300,
              env: dict | None = None) -> dict:
    """Play ``role`` once on localhost with ``variables``; return ``{failed, msg, task, result}``.

    ``result`` is the role's ``result_var`` when it ran through; when a task failed, ``msg``
    and ``task`` are the failing task's message and name (the role is played in a block
    whose rescue keeps them). Both are printed by ``debug`` and read back from the output.
    """
    with tempfile.TemporaryDirectory(prefix="ansible-role-") as tmp:
        playbook = Path(tmp) / "role.yml"
        playbook.write_text(json.dumps([{
            "hosts": "localhost", "gather_facts": False, "connection": "local",
            "vars": dict(variables, ansible_python_interpreter=sys.executable),
            "tasks": [{"name": "Play the role", "block": [
                {"name": f"Role {role}", "ansible.builtin.include_role": {"name": role}},
                {"name": "Print the result", "ansible.builtin.debug": {
                    "msg": RESULT_MARK + "{{ {'failed': false, 'result': " + result_var + "} | to_json | b64encode }}"}},
            ], "rescue": [
                {"name": "Print the failure", "ansible.builtin.debug": {
                    "msg": RESULT_MARK + "{{ {'failed': true, 'msg': ansible_failed_result.msg | default(''), "
                                         "'task': ansible_failed_task.name} | to_json | b64encode }}"}},
            ]}],
        }], indent=2))
        completed = run_playbook(playbook, check=check, timeout=timeout, inventory="localhost,",
                                 env=dict({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"}, **(env or {})))
        encoded = re.search(re.escape(RESULT_MARK) + r"([A-Za-z0-9+/=]+)", completed.stdout)
        if not encoded:
            raise AnsibleRunError(f"ansible-playbook playing {role} produced no result (exit {completed.returncode}):\n"
                                  f"{completed.stdout[-3000:]}\n{completed.stderr[-2000:]}")
        return json.loads(base64.b64decode(encoded.group(1)))


def run_playbook(playbook: Path | str, *, extra_vars: dict | None = None, check: bool = False,
                 inventory: str | None = None, timeout: float = 600,
                 env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``ansible-playbook`` with the collection path set; the caller reads the outcome."""
    command = [str(BIN / "ansible-playbook"), str(playbook)]
    if inventory:
        command += ["-i", inventory]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if check:
        command.append("--check")
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          stdin=subprocess.DEVNULL, env=ansible_env(env), check=False)
