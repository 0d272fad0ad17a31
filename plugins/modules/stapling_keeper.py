#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_keeper
short_description: Hold a verified OCSP response per certificate on the host and refresh it early
version_added: 0.2.0
description:
  - The keeper of the C(protected) stapling mode. For each certificate it asks the
    responder (from this host), verifies the answer with the host's C(openssl ocsp)
    (signature and signer chain, CertID, thisUpdate/nextUpdate) and writes it as DER,
    atomically, only when it verified, is inside its validity and is newer than the one
    held. Errors, older responses and responses failing verification never replace a
    valid held response; they are recorded as the certificate's last error.
  - Refreshes once half the validity has passed or a third is left; after a failure it
    retries after 30 s, doubling to O(backoff_cap), with jitter.
  - Per certificate a state file C(<state_dir>/<name>.json) records the held response's
    thisUpdate, nextUpdate and status, its age, the next refresh, the last error and the
    consecutive failures; the relay and monitoring read it.
  - For nginx a certificate may name a O(certificates[].snippet) included by its server
    block. The keeper writes C(ssl_stapling_file) there while a valid response is held and
    the fallback (nginx's own fetch, or stapling off) from shortly before nextUpdate, since
    nginx serves that file with no expiry check; after a change it runs
    O(configtest_command) and O(reload_command) and puts the snippet back if the
    configtest fails.
  - Uses only the Python standard library and the C(openssl) command on the managed host.
author:
  - ocsp.stapling maintainers (@ocsp-stapling)
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
    details: Reports which certificates would be refreshed; fetches and writes nothing.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    support: full
    description: When run twice in a row with the same arguments, the second run reports no change.
    details: A second run fetches nothing until a refresh is due.
  platform:
    support: full
    platforms: posix
    description: Target OS/families that can be operated against.
options:
  action:
    description:
      - V(refresh) refreshes every certificate whose refresh is due (all with O(force)).
      - V(status) reports the state and changes nothing.
      - V(prune) removes from the configuration at O(config_path) every certificate that is not
        in O(certificates) or whose O(certificates[].snippet) no longer exists (the site left
        protected mode), with its state file and held response, so the timer neither writes its
        include back nor reloads the server for it and monitoring stops reporting it as
        protected; with none left the configuration is removed, and the timer and the relay
        skip a missing one. The nginx role runs it after every change.
    type: str
    default: refresh
    choices: [refresh, status, prune]
  certificates:
    description:
      - The certificates to keep responses for.
      - With O(action=prune), the certificates still in protected mode (only their names are used).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: A file-name-safe name; the response is C(<state_dir>/<name>.der) unless O(certificates[].response) is set.
        type: str
        required: true
      cert:
        description: The leaf certificate (PEM) on the host.
        type: path
        required: true
      issuer:
        description: The issuing CA certificate (PEM) on the host.
        type: path
        required: true
      url:
        description: The responder URL; default the certificate's AIA OCSP URL.
        type: str
      ca_file:
        description: Trust anchors for the responder's signature (C(openssl ocsp -CAfile)).
        type: path
        default: /etc/ssl/certs/ca-certificates.crt
      va_file:
        description: Responder certificates trusted as they are (C(openssl ocsp -VAfile)).
        type: path
      response:
        description: Where the held DER response is written.
        type: path
      snippet:
        description: An nginx include the keeper switches between C(ssl_stapling_file) and the fallback.
        type: path
      fallback:
        description: What the snippet says when no valid response is held; V(fetch) is nginx's own stapling.
        type: str
        choices: [fetch, "off"]
        default: fetch
      trusted_certificate:
        description: C(ssl_trusted_certificate) written with the V(fetch) fallback (with C(ssl_stapling_verify on)).
        type: path
  state_dir:
    description: Where responses and state files live.
    type: path
    default: /var/lib/ocsp-stapling/keeper
  config_path:
    description:
      - Also write the keeper configuration (JSON) here, for the timer and the relay
        (C(python3 -m ...protect.keeper --config) / C(...protect.relay --config)).
      - Required with O(action=prune), which edits it.
    type: path
  force:
    description: Refresh every certificate now, due or not.
    type: bool
    default: false
  openssl:
    description: The openssl command.
    type: str
    default: openssl
  timeout:
    description: Seconds allowed for one responder exchange.
    type: float
    default: 10
  backoff_cap:
    description: The longest wait between retries after failures, seconds.
    type: float
    default: 3600
  configtest_command:
    description: Run after a snippet change, before the reload (nginx C(-t)); a list, or a string split like a shell.
    type: raw
    default: []
  reload_command:
    description: Run after a new response or a snippet change (nginx C(-s reload)); a list, or a string split like a shell.
    type: raw
    default: []
  pid_file:
    description:
      - The server's pid file (nginx's C(pid)). After a reload the keeper waits until the master's
        workers from before it have exited, since until then they serve the previous stapling
        file; without it the reload is reported as soon as the command returns.
    type: path
  settle_timeout:
    description: The longest wait, seconds, for the previous workers to exit after a reload (see O(pid_file)).
    type: float
    default: 30
notes:
  - "The response files are written with mode C(0644): OCSP responses are public."
seealso:
  - module: ocsp.stapling.nginx_stapling_plan
"""

EXAMPLES = r"""
- name: Refresh the held responses now
  ocsp.stapling.stapling_keeper:
    force: true
    certificates:
      - name: www.example.com
        cert: /etc/ssl/example/cert.pem
        issuer: /etc/ssl/example/chain.pem
        snippet: /etc/nginx/ocsp-stapling/www.example.com.conf
    configtest_command: [/usr/sbin/nginx, -t]
    reload_command: [/usr/sbin/nginx, -s, reload]
    config_path: /etc/ocsp-stapling/keeper.json

- name: Stop keeping responses for the sites that left protected mode
  ocsp.stapling.stapling_keeper:
    action: prune
    certificates: "{{ still_protected }}"
    config_path: /etc/ocsp-stapling/keeper.json

- name: Report what is held
  ocsp.stapling.stapling_keeper:
    action: status
    certificates: "{{ stapling_keeper_certificates }}"
  register: keeper
"""

RETURN = r"""
certificates:
  description:
    - One entry per certificate (none with O(action=prune)), the state file's content plus C(valid), C(due), C(age)
      (seconds since thisUpdate) and C(*_iso) times; after V(refresh) also C(refreshed) and
      C(changed); in check mode C(would_refresh).
    - C(active) is false for a certificate whose O(certificates[].snippet) no longer exists (the
      site left protected mode); nothing is fetched, written or reloaded for it.
    - State keys C(held), C(cert_status), C(this_update), C(next_update), C(next_refresh),
      C(last_error), C(consecutive_failures), C(url), C(certid), C(served) (V(file),
      V(fetch) or V(off) for a snippet).
  returned: always
  type: list
  elements: dict
reload:
  description:
    - The configtest and reload run after a change (C(ran), C(ok), C(configtest), C(reload), C(error)).
    - C(settled) is true once the workers from before the reload have exited (null without O(pid_file)),
      and C(warning) says which were still running after O(settle_timeout).
  returned: when O(action=refresh)
  type: dict
protected_until:
  description: The earliest nextUpdate among the valid held responses (ISO 8601), null if none is valid.
  returned: when O(action) is V(refresh) or V(status)
  type: str
pruned:
  description: Certificates removed from the configuration by O(action=prune).
  returned: when O(action=prune)
  type: list
  elements: str
removed:
  description: Files O(action=prune) removed (or would remove, in check mode).
  returned: when O(action=prune)
  type: list
  elements: str
message:
  description: What happened, as a sentence.
  returned: always
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.change.atomic_write import write_atomic
from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import split_command
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import Keeper, KeeperError, iso, prune_config
from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import finish, run_or_fail

CERTIFICATE_SPEC = dict(
    name=dict(type="str", required=True),
    cert=dict(type="path", required=True),
    issuer=dict(type="path", required=True),
    url=dict(type="str"),
    ca_file=dict(type="path", default="/etc/ssl/certs/ca-certificates.crt"),
    va_file=dict(type="path"),
    response=dict(type="path"),
    snippet=dict(type="path"),
    fallback=dict(type="str", choices=["fetch", "off"], default="fetch"),
    trusted_certificate=dict(type="path"),
)

ARGUMENT_SPEC = dict(
    action=dict(type="str", default="refresh", choices=["refresh", "status", "prune"]),
    certificates=dict(type="list", elements="dict", required=True, options=CERTIFICATE_SPEC),
    state_dir=dict(type="path", default="/var/lib/ocsp-stapling/keeper"),
    config_path=dict(type="path"),
    force=dict(type="bool", default=False),
    openssl=dict(type="str", default="openssl"),
    timeout=dict(type="float", default=10),
    backoff_cap=dict(type="float", default=3600),
    configtest_command=dict(type="raw", default=[]),
    reload_command=dict(type="raw", default=[]),
    pid_file=dict(type="path"),
    settle_timeout=dict(type="float", default=30),
)


def keeper_config(params: dict) -> dict:
    config = {key: params[key] for key in ("certificates", "state_dir", "openssl", "timeout", "backoff_cap",
                                           "pid_file", "settle_timeout")}
    for key in ("configtest_command", "reload_command"):
        config[key] = split_command(params[key]) or []
    return config


def prune(params: dict, check_mode: bool) -> dict:
    outcome = prune_config(params["config_path"], [spec["name"] for spec in params["certificates"]], check_mode)
    verb = "Would stop" if check_mode else "Stopped"
    message = (f"{verb} keeping responses for {', '.join(outcome['pruned'])} (no longer in protected mode)."
               if outcome["pruned"] else "Every certificate in the keeper configuration is still in protected mode.")
    return {"changed": outcome["changed"], "pruned": outcome["pruned"], "removed": outcome["removed"],
            "certificates": [], "message": message}


def run(params: dict, check_mode: bool) -> dict:
    if params["action"] == "prune":
        return prune(params, check_mode)
    config = keeper_config(params)
    keeper = Keeper(config["certificates"], state_dir=config["state_dir"], openssl=config["openssl"],
                    timeout=config["timeout"], configtest_command=config["configtest_command"],
                    reload_command=config["reload_command"], backoff_cap=config["backoff_cap"],
                    pid_file=config["pid_file"], settle_timeout=config["settle_timeout"])
    result = {"changed": False}
    if params["config_path"]:
        text = json.dumps(config, indent=2, sort_keys=True) + "\n"
        try:
            with open(params["config_path"], encoding="utf-8") as handle:
                same = handle.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            result["changed"] = True
            if not check_mode:
                write_atomic(params["config_path"], text, mode=0o644)
    if params["action"] == "status":
        entries = keeper.status()
        result["certificates"] = entries
    else:
        outcome = keeper.refresh(force=params["force"], check_mode=check_mode)
        entries = outcome["certificates"]
        result.update(certificates=entries, reload=outcome["reload"])
        result["changed"] = result["changed"] or outcome["changed"]
    valid = [entry["next_update"] for entry in entries if entry.get("valid")]
    result["protected_until"] = iso(min(valid)) if valid else None
    failing = [entry["name"] for entry in entries if entry.get("last_error")]
    if check_mode and params["action"] == "refresh":
        due = [entry["name"] for entry in entries if entry.get("would_refresh")]
        result["message"] = f"Would refresh {len(due)} of {len(entries)} certificate(s): {', '.join(due) or 'none'}."
    elif failing:
        result["message"] = (f"{len(entries) - len(failing)} of {len(entries)} certificate(s) refreshed without error; "
                             f"last errors for {', '.join(failing)} (the held responses are kept: see last_error).")
    else:
        result["message"] = f"{len(entries)} certificate(s) held; protected until {result['protected_until']}."
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("action", "prune", ("config_path",))])
    result = run_or_fail(module, lambda: run(module.params, module.check_mode), (KeeperError,),
                         "stapling_keeper stopped on an unexpected error: {error}. Inspect "
                         f"{module.params['state_dir']} and the certificate paths, then run again.")
    reload_result = result.get("reload") or {}
    if reload_result.get("warning"):
        module.warn(reload_result["warning"])
    if reload_result.get("ran") and not reload_result.get("ok"):
        module.fail_json(msg=reload_result["error"], **result)
    finish(module, result)


if __name__ == "__main__":
    main()
