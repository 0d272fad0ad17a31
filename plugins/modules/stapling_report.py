#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_report
short_description: Summarise a runbook run - one line per host, a JSON report, Prometheus gauges
version_added: 0.1.0
description:
  - Takes the C(stapling_outcome) each host of a runbook playbook leaves behind (set by the
    C(ocsp.stapling.stapling) role) and returns a table a person reads at a glance - host,
    servers, sites by staple verdict, the host's verdict, what changed.
  - Optionally writes a JSON report (O(json_path)) and a Prometheus textfile-collector file
    (O(prometheus_path)) for node_exporter's textfile collector, with ssl_exporter's
    C(ssl_ocsp_response_*) names where the meaning is the same and C(ocsp_stapling_*) gauges
    for the runbook's own series. Both are replaced atomically.
  - Meant to run once, on the controller (C(delegate_to=localhost), C(run_once=true)).
  - Reports describe a run; they change nothing on the managed hosts, so the module always
    returns C(changed=false) and runbook playbooks stay idempotent.
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
    details: Returns the summary; writes the files only when O(write_in_check_mode) is true.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    support: full
    platforms: posix
    description: Target OS/families that can be operated against.
options:
  outcomes:
    description: Host name to its C(stapling_outcome) dictionary.
    type: dict
    required: true
  hosts:
    description:
      - Every host the run targeted, in order. A host without an outcome (it failed or was
        unreachable) is listed as V(no_result).
      - Default the keys of O(outcomes), sorted.
    type: list
    elements: str
    default: []
  title:
    description: First line of the summary.
    type: str
    default: ""
  meta:
    description: Added to the JSON report's top level (playbook, action, run id, target).
    type: dict
    default: {}
  json_path:
    description: Where to write the JSON report; not written when empty.
    type: path
  prometheus_path:
    description:
      - Where to write the Prometheus textfile (it must end in C(.prom) for node_exporter's
        textfile collector); not written when empty.
    type: path
  write_in_check_mode:
    description: Write the report files in check mode too (a check run still reports findings).
    type: bool
    default: true
notes:
  - "Per site (labels C(host), C(server), C(site)): C(ssl_ocsp_response_stapled),
    C(ssl_ocsp_response_status) (0 good, 1 revoked, 2 unknown), C(ssl_ocsp_response_this_update),
    C(ssl_ocsp_response_next_update), C(ssl_ocsp_response_produced_at) (Unix seconds),
    C(ocsp_stapling_handshake_duration_seconds) and C(ocsp_stapling_staple_verdict) (labels
    C(responder), C(verdict), C(stapling))."
  - "Per host: C(ocsp_stapling_responder_reachable{host,responder,ip_family}) (C(ip_family) V(any),
    V(ipv4), V(ipv6)), C(ocsp_stapling_disabled_since_timestamp_seconds) (0 when not disabled by
    the collection), C(ocsp_stapling_reenable_consecutive_good_answers),
    C(ocsp_stapling_reenable_required_good_answers) and C(ocsp_stapling_host_verdict{host,verdict});
    per playbook C(ocsp_stapling_last_run_timestamp_seconds{action}) (the action in O(meta); the
    other actions' last runs are kept from the file being replaced)."
  - Alert rules for these series ship in the collection's C(prometheus/alerts.yml); see docs/monitoring.md.
seealso:
  - module: ocsp.stapling.stapling_record
"""

EXAMPLES = r"""
- name: Summarise the run
  ocsp.stapling.stapling_report:
    outcomes: "{{ dict(__hosts | zip(__hosts | map('extract', hostvars, 'stapling_outcome') | map('default', {}))) }}"
    hosts: "{{ __hosts }}"
    title: check_stapling
    json_path: /var/log/ocsp-stapling/last-run.json
    prometheus_path: /var/lib/node_exporter/textfile_collector/ocsp_stapling.prom
  delegate_to: localhost
  run_once: true
  register: stapling_report_result

- name: Print it
  ansible.builtin.debug:
    msg: "{{ stapling_report_result.summary_lines }}"
"""

RETURN = r"""
summary_lines:
  description: The table, one line per host, then one line per host that needs a next step.
  returned: always
  type: list
  elements: str
  sample:
    - "HOST   SERVERS       SITES (by staple verdict)  VERDICT              CHANGED"
    - "web01  apache,nginx  8: good 4, n/a 2, error 2  disable_recommended  nothing"
report:
  description: The JSON report (C(generated_at), O(meta), C(verdicts) count, C(hosts)).
  returned: always
  type: dict
files:
  description: The report files written.
  returned: always
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.report import (
    dump_json,
    json_report,
    prometheus_text,
    read_text,
    summary_lines,
    write_atomic,
)

ARGUMENT_SPEC = dict(
    outcomes=dict(type="dict", required=True),
    hosts=dict(type="list", elements="str", default=[]),
    title=dict(type="str", default=""),
    meta=dict(type="dict", default={}),
    json_path=dict(type="path"),
    prometheus_path=dict(type="path"),
    write_in_check_mode=dict(type="bool", default=True),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    outcomes = {host: value for host, value in params["outcomes"].items() if isinstance(value, dict) and value}
    hosts = params["hosts"] or sorted(params["outcomes"])
    lines = summary_lines(outcomes, hosts, params["title"])
    report = json_report(outcomes, hosts, params["meta"])
    files = []
    if not module.check_mode or params["write_in_check_mode"]:
        targets = [(params["json_path"], lambda: dump_json(report)),
                   (params["prometheus_path"], lambda: prometheus_text(
                       outcomes, hosts, action=params["meta"].get("action"),
                       previous=read_text(params["prometheus_path"])))]
        for path, render in targets:
            if not path:
                continue
            try:
                write_atomic(path, render())
            except OSError as exc:
                module.fail_json(msg=f"Could not write the report {path} on the controller ({exc.strerror}). "
                                     f"Create its directory or pick another path; the summary was: "
                                     f"{' | '.join(lines)}", summary_lines=lines,
                                 exception=traceback.format_exc())
            files.append(path)
    module.exit_json(changed=False, summary_lines=lines, report=report, files=files)


if __name__ == "__main__":
    main()
