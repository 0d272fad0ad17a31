#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_record
short_description: Keep the host-side record of a stapling disable, and the runbook's run lock
version_added: 0.1.0
description:
  - The state record exists only while stapling is off B(because this collection turned it
    off). The disable writes it (what changed, the settings before, when, why, the ticket,
    the run, the backups); the scheduled re-enable counts responder observations in it
    between runs and removes it once a good staple is served again.
  - An operator who disables stapling by hand writes no record, so the re-enable never
    touches that host.
  - The lock keeps two runbook runs (a scheduled one and a manual one) from interleaving on
    one host. It names its owner and expires after O(lock_ttl) seconds; an expired lock
    (a crashed run) is taken over with a warning, a held one fails with a message naming
    the holder and when it expires.
  - Files are written atomically (temporary file and rename in the same directory).
  - Uses only the Python standard library on the managed host.
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
    details: Reports what would be written, removed or locked; writes nothing.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    support: full
    platforms: posix
    description: Target OS/families that can be operated against.
options:
  action:
    description:
      - V(read) returns the record (or null).
      - V(write) records a disable; when a record exists, new servers are merged in and the
        first disable's time, reason and previous settings are kept.
      - V(observe) counts one responder observation (O(good)); a failure resets the count.
        Nothing is counted without a record.
      - V(clear) removes the record.
      - V(lock) takes the run lock for O(run_id); V(unlock) releases it if O(run_id) holds it.
    type: str
    required: true
    choices: [read, write, observe, clear, lock, unlock]
  path:
    description: The state record.
    type: path
    default: /var/lib/ocsp-stapling/state.json
  lock_path:
    description: The lock file. Default C(run.lock) in the directory of O(path).
    type: path
  run_id:
    description:
      - Identifies this run of the runbook. Required for V(write), V(lock) and V(unlock).
    type: str
  reason:
    description: Why stapling is disabled (V(write)).
    type: str
    default: ""
  ticket:
    description: The incident ticket (V(write)).
    type: str
    default: ""
  servers:
    description:
      - What the disable changed, one entry per web server (V(write)). Free-form
        dictionaries; by convention C(server), C(sites), C(changes), C(backups) and
        C(previous) (the stapling settings before the change).
    type: list
    elements: dict
    default: []
  good:
    description: Whether the responders answered correctly this time (V(observe)).
    type: bool
  detail:
    description: A sentence describing the observation (V(observe)).
    type: str
    default: ""
  required_good:
    description: Consecutive good observations needed before RV(ready) is true (V(observe)).
    type: int
    default: 3
  lock_ttl:
    description: Seconds after which a lock is considered left behind by a crashed run.
    type: int
    default: 1800
  pid:
    description: Process id recorded in the lock (the controller's C(ansible-playbook)).
    type: int
  owner:
    description: Who holds the lock, recorded for the message another run sees (V(lock)).
    type: str
    default: ""
notes:
  - >-
    The record is written with mode C(0640) (owner and group, so a monitoring group may read it)
    and the lock with C(0600); a record left C(0644) by an older version is tightened on its next write.
seealso:
  - module: ocsp.stapling.stapling_change
"""

EXAMPLES = r"""
- name: Take the run lock for this run
  ocsp.stapling.stapling_record:
    action: lock
    run_id: "{{ stapling_run_id }}"
    owner: "ansible-playbook on {{ lookup('ansible.builtin.pipe', 'hostname') }}"

- name: Record the disable
  ocsp.stapling.stapling_record:
    action: write
    run_id: "{{ stapling_run_id }}"
    reason: OCSP responder unreachable from the datacenter
    ticket: INC-4711
    servers:
      - server: apache
        changes: [/etc/apache2/conf-available/zz-ocsp-stapling.conf]
        previous: {SSLUseStapling: "on"}

- name: Count this run's responder check
  ocsp.stapling.stapling_record:
    action: observe
    good: "{{ ocsp_check.all_reachable }}"
    required_good: 3
  register: observation

- name: Release the lock
  ocsp.stapling.stapling_record:
    action: unlock
    run_id: "{{ stapling_run_id }}"
"""

RETURN = r"""
record_path:
  description: The state record's path.
  returned: always
  type: str
  sample: /var/lib/ocsp-stapling/state.json
exists:
  description: Whether a record exists after the action (would exist, in check mode).
  returned: always
  type: bool
record:
  description:
    - The record after the action (for V(clear), the record removed); null when there is none.
    - Keys C(disabled_by), C(disabled_at), C(disabled_at_timestamp), C(reason), C(ticket),
      C(run_id), C(servers), C(observations) (C(consecutive_good), C(last), C(history)).
  returned: always
  type: dict
consecutive_good:
  description: Consecutive good responder observations recorded; 0 without a record.
  returned: always
  type: int
ready:
  description: Whether O(required_good) consecutive good observations are recorded (V(observe)).
  returned: always
  type: bool
lock:
  description: The lock's content after V(lock), or the lock left in place after V(unlock).
  returned: when O(action) is V(lock) or V(unlock)
  type: dict
  sample: {run_id: 20250101T030000Z-4711, pid: 4242, owner: scheduled re-enable, expires_at: "2025-01-01T03:30:00Z"}
message:
  description: What happened, as a sentence.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.change.state_record import (
    RecordError,
    RunLock,
    StateRecord,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import finish, run_or_fail

ARGUMENT_SPEC = dict(
    action=dict(type="str", required=True, choices=["read", "write", "observe", "clear", "lock", "unlock"]),
    path=dict(type="path", default="/var/lib/ocsp-stapling/state.json"),
    lock_path=dict(type="path"),
    run_id=dict(type="str"),
    reason=dict(type="str", default=""),
    ticket=dict(type="str", default=""),
    servers=dict(type="list", elements="dict", default=[]),
    good=dict(type="bool"),
    detail=dict(type="str", default=""),
    required_good=dict(type="int", default=3),
    lock_ttl=dict(type="int", default=1800),
    pid=dict(type="int"),
    owner=dict(type="str", default=""),
)


def run(params: dict, check_mode: bool) -> dict:
    """Carry out one action; returns the module result (raises RecordError)."""
    record = StateRecord(params["path"], check_mode=check_mode)
    lock = RunLock(params["lock_path"] or os.path.join(os.path.dirname(params["path"]), "run.lock"),
                   check_mode=check_mode)
    action = params["action"]
    result = dict(changed=False, record_path=params["path"], ready=False, warnings=[])
    if action == "read":
        current = record.read()
        result.update(record=current, message="A disable by ocsp.stapling is recorded." if current
                      else "No disable by ocsp.stapling is recorded on this host.")
    elif action == "write":
        changed, current = record.write(params["run_id"], params["reason"], params["ticket"], params["servers"])
        result.update(changed=changed, record=current,
                      message=f"Recorded the disable in {params['path']}." if changed
                      else f"{params['path']} already records this disable.")
    elif action == "observe":
        changed, current, ready = record.observe(params["good"], params["detail"], params["run_id"] or "",
                                                 params["required_good"])
        count = ((current or {}).get("observations") or {}).get("consecutive_good", 0)
        if current is None:
            message = "No disable by ocsp.stapling is recorded; nothing to count."
        elif params["good"]:
            message = f"Responders answered correctly: {count} of {params['required_good']} consecutive good answers."
        else:
            message = "Responders still failing; the count of consecutive good answers stays at 0."
        result.update(changed=changed, record=current, ready=ready, message=message)
    elif action == "clear":
        changed, removed = record.clear()
        result.update(changed=changed, record=removed,
                      message=f"Removed the state record {params['path']}." if changed else "No state record to remove.")
    elif action == "lock":
        changed, held, warnings = lock.acquire(params["run_id"], params["lock_ttl"], params["pid"], params["owner"])
        result.update(changed=changed, lock=held, warnings=warnings, record=record.read(),
                      message=f"Run {params['run_id']!r} holds the lock {lock.path} until {held['expires_at']}.")
    else:
        changed, held, warnings = lock.release(params["run_id"])
        result.update(changed=changed, lock=held, warnings=warnings, record=record.read(),
                      message=f"Released the lock {lock.path}." if changed else "No lock of this run to release.")
    current = result.get("record") if action != "clear" else None
    result["exists"] = current is not None
    result["consecutive_good"] = int(((current or {}).get("observations") or {}).get("consecutive_good", 0))
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("action", "write", ["run_id"]), ("action", "lock", ["run_id"]),
                                        ("action", "unlock", ["run_id"]), ("action", "observe", ["good"])])
    result = run_or_fail(module, lambda: run(module.params, module.check_mode), (RecordError,),
                         f"stapling_record {module.params['action']} stopped on an unexpected error: {{error}}. "
                         f"Inspect {module.params['path']} and its directory, then run again.")
    finish(module, result)


if __name__ == "__main__":
    main()
