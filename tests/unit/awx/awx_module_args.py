"""Render the awx.awx tasks of an AWX playbook as Ansible would and check their arguments.

    python -m tests.unit.awx.awx_module_args awx/configure_awx.yml  ->  JSON on stdout

For every ``awx.awx.*`` task (once per loop item) the arguments are templated with the
play's ``vars``, its ``vars_files`` and ``item`` (lookups run, relative to the playbook),
and validated against the argument spec that module really builds: its ``main()`` is
called with ``ControllerAPIModule`` stopped at construction, which hands over the spec
and the constraints (``mutually_exclusive``, ``required_if`` ...); the AUTH_ARGSPEC that
every awx.awx module adds is merged in as ``ControllerModule.__init__`` does. Run in its
own process: it installs Ansible's collection loader, which the tests' plain imports of
this collection must not see. Needs awx.awx on ANSIBLE_COLLECTIONS_PATH
(tests/bin/install-awx-collection).
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path


class _Captured(Exception):
    def __init__(self, argument_spec: dict, constraints: dict):
        super().__init__("argument spec captured")
        self.argument_spec = argument_spec
        self.constraints = constraints


def _trusted(value):
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


def _plain(value):
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def module_spec(name: str) -> tuple[dict, dict]:
    """The full argument spec and constraints of awx.awx.<name>, as the module builds them."""
    controller_api = importlib.import_module("ansible_collections.awx.awx.plugins.module_utils.controller_api")
    module = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{name}")
    api_class = controller_api.ControllerAPIModule
    original = api_class.__init__

    def capture(self, argument_spec=None, **kwargs):
        raise _Captured(argument_spec or {}, kwargs)

    api_class.__init__ = capture
    try:
        module.main()
    except _Captured as captured:
        spec = dict(controller_api.ControllerModule.AUTH_ARGSPEC)
        spec.update(captured.argument_spec)
        constraints = {key: value for key, value in captured.constraints.items()
                       if key in ("mutually_exclusive", "required_together", "required_one_of",
                                  "required_if", "required_by")}
        return spec, constraints
    finally:
        api_class.__init__ = original
    raise AssertionError(f"awx.awx.{name}'s main() did not build a ControllerAPIModule")


def check(playbook: Path) -> list[dict]:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar

    init_plugin_loader(os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep))
    loader = DataLoader()
    loader.set_basedir(str(playbook.parent))
    results = []
    for play in loader.load_from_file(str(playbook)):
        variables = dict(play.get("vars") or {})
        for vars_file in play.get("vars_files") or []:
            variables.update(loader.load_from_file(str(playbook.parent / vars_file)))
        for task in play.get("tasks") or []:
            modules = [key for key in task if key.startswith("awx.awx.")]
            if not modules:
                continue
            name = modules[0].split(".", 2)[2]
            spec, constraints = module_spec(name)
            items = Templar(loader, variables=variables).template(_trusted(task["loop"])) if "loop" in task else [None]
            for item in items:
                templar = Templar(loader, variables=dict(variables, item=item))
                params = _plain(templar.template(_trusted(task[modules[0]])))
                validation = ArgumentSpecValidator(spec, **constraints).validate(dict(params))
                results.append({"task": task.get("name"), "module": modules[0],
                                "item": _plain(item), "params": params,
                                "errors": [str(error) for error in validation.errors]})
    return results


def main(argv: list[str]) -> int:
    json.dump(check(Path(argv[0]).resolve()), sys.stdout, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
