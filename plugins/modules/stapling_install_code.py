#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_install_code
short_description: Install the protected-mode keeper's and relay's code on a web server in one step
version_added: 0.4.0
description:
  - Writes each of O(files) under O(dest), creating directories as needed, and replaces a file
    only when its content or mode differs (atomically, by rename).
  - Used by the C(ocsp.stapling.schedule) role to put the collection's standard-library keeper
    and relay modules on the host's C(PYTHONPATH) in one task instead of one copy per file.
  - Uses only the Python standard library on the managed host.
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reports which files would change; writes nothing.
  diff_mode:
    support: none
    description: The files are the collection's own code; RV(changed_files) names what changes.
  platform:
    support: full
    platforms: posix
    description: Any POSIX host.
options:
  dest:
    description: The directory the files are installed under (the keeper's and relay's C(PYTHONPATH)).
    type: path
    required: true
  files:
    description:
      - Path relative to O(dest) -> the file's text. A path that leaves O(dest) is refused.
    type: dict
    required: true
  mode:
    description: The files' mode, octal.
    type: str
    default: "0644"
seealso:
  - module: ocsp.stapling.stapling_keeper
"""

EXAMPLES = r"""
- name: Install two files of the collection's code
  ocsp.stapling.stapling_install_code:
    dest: /usr/local/lib/ocsp-stapling
    files:
      ansible_collections/ocsp/stapling/plugins/module_utils/protect/relay.py: "{{ lookup('ansible.builtin.file', 'relay.py', rstrip=false) }}"
"""

RETURN = r"""
files:
  description: One entry per file (C(path), C(changed), C(created)).
  returned: always
  type: list
  elements: dict
changed_files:
  description: The paths written (that would be written, in check mode).
  returned: always
  type: list
  elements: str
msg:
  description: What was done, as a sentence.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import finish, run_or_fail
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.install import InstallError, install

ARGUMENT_SPEC = dict(
    dest=dict(type="path", required=True),
    files=dict(type="dict", required=True),
    mode=dict(type="str", default="0644"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        mode = int(module.params["mode"], 8)
    except ValueError:
        module.fail_json(msg=f"mode is {module.params['mode']!r}; expected an octal mode such as 0644.")
    files = {str(path): str(text) for path, text in module.params["files"].items()}
    result = run_or_fail(module, lambda: install(module.params["dest"], files, mode, module.check_mode), (InstallError,),
                         f"stapling_install_code stopped on an unexpected error: {{error}}. Inspect {module.params['dest']}.")
    finish(module, result)


if __name__ == "__main__":
    main()
