"""Benchmark what an operator waits for, each figure against a baseline measured in the same run.

- **P1 responder checks**: ``ocsp_responder_check`` as an Ansible task over N certificates
  spread over 3 lab responders that answer after an injected delay (20 ms), against a
  serial ``openssl ocsp`` loop over the same certificates; with the physical bound
  (requests / concurrency x delay) and how close the task gets to it.
- **P2 handshake probes**: ``stapling_status`` as an Ansible task on the lab's Apache and
  nginx with N vhosts, against a serial ``openssl s_client -status`` loop over the same vhosts.
- **P3 discovery, end to end**: ``stapling_facts`` as an Ansible task (``ansible`` ad hoc,
  controller included) on generated cPanel EA4 trees, compact (the default) and
  ``detail: full`` (what every run returned before), with the bytes returned per site.
- **P4 fleet**: ``check_stapling`` and ``disable_stapling`` on 1 host and on 20 hosts (local
  connection, a private prefix and an apache2 each), ``forks`` = hosts, pipelining on, with
  the tasks per host and the CPU seconds per host (controller and, with a local connection,
  the modules too).
- **P5 the operator's wait**: ``check_stapling`` on one host whose Apache serves N TLS vhosts,
  against the seeds' manual loop for the same sites (``s_client -status`` plus
  ``openssl ocsp`` per site).

Every figure is the minimum and the median of ``--runs`` runs. Prints one table and writes
``bench/results.json``. Benches print; they never fail on a figure (timing assertions do not
belong in tests); ``--smoke`` runs each part at a tiny size, which a test does so they
cannot rot. Run: ``python bench/bench_fleet.py [--only P3] [--runs 3] [--smoke]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "unit" / "fixtures"))
# tests.conftest makes ansible_collections.ocsp.stapling importable from a checkout.
import tests.conftest  # noqa: E402,F401  pylint: disable=unused-import
import gen_cpanel_tree  # noqa: E402

from tests.integration.ansible_run import BIN, ansible_env, run_playbook  # noqa: E402
from tests.lab import inventory as lab_inventory  # noqa: E402
from tests.lab.fleet import Fleet  # noqa: E402
from tests.lab.lab import Lab, ResponderProcess  # noqa: E402
from tests.lab.pki import LabPKI  # noqa: E402
from tests.lab.responder import free_port  # noqa: E402
from tests.lab.pki import LEAF_HOSTS  # noqa: E402

RESULTS = REPO / "bench" / "results.json"
PLAYBOOKS = REPO / "playbooks"
# What a fleet run should set (docs/performance.md): pipelining halves the round trips per task.
FAST = {"ANSIBLE_PIPELINING": "True"}

FULL = {"P1": {"certificates": 1000, "delay": 0.02, "concurrency": 8}, "P2": {"vhosts": 1000},
        "P3": {"sizes": (1000, 5000, 10000)}, "P4": {"hosts": 20}, "P5": {"vhosts": 1000}}
SMOKE = {"P1": {"certificates": 6, "delay": 0.02, "concurrency": 8}, "P2": {"vhosts": 5}, "P3": {"sizes": (20, 40)}, "P4": {"hosts": 1}, "P5": {"vhosts": 5}}


# --------------------------------------------------------------------------- helpers


def timed(function, runs: int) -> tuple[list[float], object]:
    """Wall seconds of ``runs`` calls and the last call's return value."""
    seconds, value = [], None
    for _run in range(runs):
        start = time.perf_counter()
        value = function()
        seconds.append(time.perf_counter() - start)
    return seconds, value


def stats(seconds: list[float]) -> dict:
    return {"min": round(min(seconds), 3), "median": round(statistics.median(seconds), 3), "runs": len(seconds)}


def row(part: str, what: str, baseline_label: str, baseline: list[float], measured_label: str,
        measured: list[float], goal: str, **extra) -> dict:
    base, meas = stats(baseline), stats(measured)
    # Progress as it comes: a long run that is stopped still shows what it measured.
    print(f"{part} {what}: {baseline_label} {base['min']} s, {measured_label} {meas['min']} s", flush=True)
    return {"part": part, "what": what, "baseline": baseline_label, "baseline_s": base,
            "measured": measured_label, "measured_s": meas,
            # Baseline over measured: above 1 the collection is faster; for growth rows below.
            "ratio": round(base["min"] / meas["min"], 2) if meas["min"] else None,
            "goal": goal, **extra}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {ok: n, changed: n, skipped: n, ...}}."""
    found = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            found[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return found


def play(playbook: Path, inventory: Path, forks: int, extra_vars: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(FAST, ANSIBLE_FORKS=str(forks))
    done = run_playbook(playbook, inventory=str(inventory), extra_vars=extra_vars, timeout=3600, env=env)
    return done


# --------------------------------------------------------------------------- P1


def issue_leaves(pki: LabPKI, urls: list[str], count: int, directory: Path) -> list[tuple[Path, str]]:
    """``count`` leaves of the lab intermediate, round-robin over ``urls``: (file, url)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())  # one key: only the certificates differ
    issuer = pki.intermediate
    now = dt.datetime.now(dt.timezone.utc)
    out = []
    for index in range(count):
        url = urls[index % len(urls)]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bench{index}.lab.test")]))
                .issuer_name(issuer.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))]), critical=False)
                .sign(issuer.key, hashes.SHA256()))
        path = directory / f"bench{index}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out.append((path, url))
    return out


def serial_ocsp_loop(openssl: str, chain: Path, leaves: list[tuple[Path, str]]) -> int:
    answered = 0
    for path, url in leaves:
        done = subprocess.run([openssl, "ocsp", "-issuer", str(chain), "-cert", str(path), "-url", url,
                               "-noverify", "-timeout", "10"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=30, check=False)
        answered += "This Update" in done.stdout
    return answered


def check_task(chain: Path, leaves: list[tuple[Path, str]], concurrency: int, directory: Path) -> None:
    playbook = directory / "check.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [{"ocsp.stapling.ocsp_responder_check": {
            "certificates": [{"path": str(path), "issuer_files": [str(chain)]} for path, _url in leaves],
            "per_certificate": True, "concurrency": concurrency, "timeout": 10}, "register": "check"},
            {"ansible.builtin.assert": {"that": ["check.responders | length == 3 or check.responders | length == %d"
                                                 % min(3, len(leaves))]}}],
    }]))
    done = run_playbook(playbook, timeout=1800, env=FAST)
    if done.returncode != 0:
        raise RuntimeError(f"ocsp_responder_check task failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")


def bench_p1(size: dict, runs: int, work: Path) -> list[dict]:
    openssl = shutil.which("openssl") or "openssl"
    pki = LabPKI.create(work / "pki", ocsp_url="http://127.0.0.1:1/")
    responders = [ResponderProcess(work / "pki", free_port(), free_port(), log=work / f"responder{i}.log")
                  for i in range(3)]
    try:
        for responder in responders:
            responder.start()
            responder.control(f"set?delay={size['delay']}")
            responder.set_mode("slow")
        leaves = issue_leaves(pki, [r.url for r in responders], size["certificates"], work / "leaves")
        chain = pki.intermediate.cert_path
        serial, answered = timed(lambda: serial_ocsp_loop(openssl, chain, leaves), runs)
        task, _seconds = timed(lambda: check_task(chain, leaves, size["concurrency"], work), runs)
    finally:
        for responder in responders:
            responder.stop()
    bound = len(leaves) / size["concurrency"] * size["delay"]
    result = row("P1", f"check {len(leaves)} certificates, 3 responders", "serial openssl ocsp loop", serial,
                 "ocsp_responder_check task", task, ">= 20x, within 2x of the bound", certificates=len(leaves),
                 delay_s=size["delay"], concurrency=size["concurrency"], bound_s=round(bound, 3),
                 task_over_bound=round(min(task) / bound, 2), serial_answered=answered)
    return [result]


# --------------------------------------------------------------------------- P2


def serial_status_loop(openssl: str, port: int, names: list[str]) -> int:
    stapled = 0
    for name in names:
        done = subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-status"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
        stapled += "OCSP Response Status: successful" in done.stdout
    return stapled


def status_task(port: int, names: list[str], directory: Path) -> int:
    """stapling_status as one Ansible task (action plugin judging every staple included)."""
    playbook = directory / "status.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [{"ocsp.stapling.stapling_status": {
            "endpoints": [{"host": "127.0.0.1", "port": port, "server_name": name} for name in names]},
            "register": "status"},
            {"ansible.builtin.assert": {"that": ["status.summary.verdicts.good == %d" % len(names)]}}],
    }]))
    done = run_playbook(playbook, timeout=1800, env=FAST)
    if done.returncode != 0:
        raise RuntimeError(f"stapling_status task failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return len(names)


def bench_p2(size: dict, runs: int, work: Path) -> list[dict]:
    openssl = shutil.which("openssl") or "openssl"
    rows = []
    with Lab.start(work / "p2-lab", extra_sites=size["vhosts"]) as lab:
        names = list(LEAF_HOSTS.values())[:1] + [f"good{i}.lab.test" for i in range(size["vhosts"])]
        for server in ("apache", "nginx"):
            port = lab.server(server).port
            # Warm every vhost: nginx fetches lazily per server block, Apache per certificate.
            serial_status_loop(openssl, port, names)
            serial, stapled = timed(lambda: serial_status_loop(openssl, port, names), runs)
            task, _seconds = timed(lambda: status_task(port, names, work), runs)
            rows.append(row("P2", f"probe {len(names)} vhosts, {server}", "serial s_client -status loop", serial,
                            "stapling_status task", task, ">= 10x", vhosts=len(names), serial_stapled=stapled))
    return rows


# --------------------------------------------------------------------------- P3


def facts_task(root: str, conf: str, detail: str, cpu: list[float] | None = None) -> int:
    """stapling_facts as an Ansible task (ad hoc, controller included); returns the bytes printed.

    Appends the CPU seconds of the run (controller and module alike, local connection) to
    ``cpu``: on a machine shared with other work they say more than the wall time.
    """
    before = children_cpu()
    done = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-m", "ocsp.stapling.stapling_facts",
         "-a", json.dumps({"root": root, "apache_config": conf, "run_binaries": False, "detail": detail}),
         "-e", f"ansible_python_interpreter={sys.executable}", "-c", "local", "-o"],
        capture_output=True, text=True, timeout=1800, env=ansible_env(FAST), check=False, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"stapling_facts failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if cpu is not None:
        cpu.append(children_cpu() - before)
    return len(done.stdout.split("=>", 1)[1].encode())


def bench_p3(size: dict, runs: int, work: Path) -> list[dict]:
    rows, compact = [], {}
    for count in size["sizes"]:
        root = work / f"p3-ea4-{count}"
        conf = gen_cpanel_tree.write_tree(str(root), gen_cpanel_tree.domains(count), 4)
        full_cpu: list[float] = []
        compact_cpu: list[float] = []
        try:
            full_s, full_bytes = timed(lambda: facts_task(str(root), conf, "full", full_cpu), runs)
            compact_s, compact_bytes = timed(lambda: facts_task(str(root), conf, "compact", compact_cpu), runs)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        compact[count] = compact_s
        rows.append(row("P3", f"stapling_facts task, EA4 {count} vhosts", "detail: full", full_s,
                        "compact (default)", compact_s, "5k <= 4 s, <= 300 B/site", vhosts=count,
                        bytes_full=full_bytes, bytes_compact=compact_bytes,
                        bytes_per_site_full=round(full_bytes / count), bytes_per_site_compact=round(compact_bytes / count),
                        cpu_s_full=round(min(full_cpu), 2), cpu_s_compact=round(min(compact_cpu), 2)))
    sizes = sorted(compact)
    for small, big in zip(sizes, sizes[1:]):
        # Growth: the bigger tree over the smaller one, against the ratio of their sizes.
        growth = row("P3", f"growth {small} -> {big} vhosts (compact)", f"{small} vhosts", compact[small],
                     f"{big} vhosts", compact[big], f"<= {2.2 * big / small / 2:.1f}x" if big == 2 * small else "linear")
        growth["ratio"] = round(min(compact[big]) / min(compact[small]), 2)
        growth["note"] = "ratio = big / small (lower is better)"
        rows.append(growth)
    return rows


# --------------------------------------------------------------------------- P4


def fleet_runs(count: int, runs: int, work: Path) -> dict:
    """check and disable on ``count`` local hosts: wall seconds, tasks and CPU per host."""
    out = {}
    with Fleet.start(work / f"p4-fleet-{count}", count=count, ssh=False, sites=("good",)) as fleet:
        inventory = fleet.write_inventory(work / f"p4-inventory-{count}.json")
        host = next(iter(fleet.hosts))
        for action in ("check", "disable"):
            seconds, cpu, tasks = [], [], None
            for _run in range(runs):
                if action == "disable":
                    fleet.lab.responder.set_mode("down")
                cpu_before = children_cpu()
                start = time.perf_counter()
                done = play(PLAYBOOKS / f"{action}_stapling.yml", inventory, forks=count,
                            extra_vars={"reason": "bench", "ticket": "BENCH"} if action == "disable" else None)
                seconds.append(time.perf_counter() - start)
                cpu.append(children_cpu() - cpu_before)
                if done.returncode != 0:
                    raise RuntimeError(f"{action}_stapling failed on {count} hosts:\n{done.stdout[-4000:]}")
                counts = recap(done.stdout).get(host, {})
                # ok counts the changed tasks too.
                tasks = counts.get("ok", 0) + counts.get("skipped", 0)
                if action == "disable" and _run < runs - 1:
                    # Back to stapling on for the next run: the operator's enable, forced.
                    fleet.lab.responder.set_mode("good")
                    back = play(PLAYBOOKS / "enable_stapling.yml", inventory, forks=count, extra_vars={"force": True})
                    if back.returncode != 0:
                        raise RuntimeError(f"enable_stapling failed on {count} hosts:\n{back.stdout[-4000:]}")
            out[action] = {"seconds": seconds, "cpu_per_host": round(min(cpu) / count, 2), "tasks_per_host": tasks}
    return out


def bench_p4(size: dict, runs: int, work: Path) -> list[dict]:
    one = fleet_runs(1, runs, work)
    # The smoke size is one host: the run measured is the baseline run (ratio 1), so the
    # part still plays check and disable for real at a third of the cost.
    many = one if size["hosts"] == 1 else fleet_runs(size["hosts"], runs, work)
    rows = []
    for action in ("check", "disable"):
        result = row("P4", f"{action}_stapling, 1 vs {size['hosts']} hosts, forks {size['hosts']}",
                     "1 host", one[action]["seconds"], f"{size['hosts']} hosts", many[action]["seconds"], "<= 3x",
                     hosts=size["hosts"], tasks_per_host=many[action]["tasks_per_host"],
                     cpu_s_per_host_1=one[action]["cpu_per_host"], cpu_s_per_host_n=many[action]["cpu_per_host"])
        result["ratio"] = round(min(many[action]["seconds"]) / min(one[action]["seconds"]), 2)
        result["note"] = "ratio = N hosts / 1 host (lower is better)"
        rows.append(result)
    return rows


# --------------------------------------------------------------------------- P5


def manual_loop(openssl: str, lab: Lab, names: list[str]) -> int:
    """The seeds' runbook by hand: per site, what it staples, then ask the responder."""
    leaf = lab.pki.leaves["good"]
    answered = 0
    for name in names:
        subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{lab.apache.port}", "-servername", name,
                        "-status"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        done = subprocess.run([openssl, "ocsp", "-issuer", str(leaf.chain_path), "-cert", str(leaf.cert_path),
                               "-url", lab.responder.url, "-noverify", "-timeout", "10"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
        answered += ": good" in done.stdout
    return answered


def bench_p5(size: dict, runs: int, work: Path) -> list[dict]:
    openssl = shutil.which("openssl") or "openssl"
    with Lab.start(work / "p5-lab", servers=("apache",), extra_sites=size["vhosts"]) as lab:
        names = list(LEAF_HOSTS.values()) + [f"good{i}.lab.test" for i in range(size["vhosts"])]
        inventory = work / "p5-inventory.json"
        inventory.write_text(json.dumps(lab_inventory.inventory(lab.record(), python=sys.executable)))
        manual, answered = timed(lambda: manual_loop(openssl, lab, names), runs)

        def check() -> None:
            done = play(PLAYBOOKS / "check_stapling.yml", inventory, forks=1)
            if done.returncode != 0:
                raise RuntimeError(f"check_stapling failed:\n{done.stdout[-4000:]}")
        checked, _seconds = timed(check, runs)
    return [row("P5", f"check one host, Apache {len(names)} vhosts", "manual s_client + openssl ocsp loop", manual,
                "check_stapling", checked, ">= 10x", vhosts=len(names), manual_answered_good=answered)]


# --------------------------------------------------------------------------- main

PARTS = {"P1": bench_p1, "P2": bench_p2, "P3": bench_p3, "P4": bench_p4, "P5": bench_p5}


def print_table(rows: list[dict]) -> None:
    print("%-4s %-46s %-36s %15s %-22s %15s %8s  %s" % (
        "part", "what", "baseline", "min/med s", "measured", "min/med s", "ratio", "goal"))
    for item in rows:
        base, meas = item["baseline_s"], item["measured_s"]
        print("%-4s %-46s %-36s %7.2f/%7.2f %-22s %7.2f/%7.2f %7.2fx  %s" % (
            item["part"], item["what"][:46], item["baseline"][:36], base["min"], base["median"],
            item["measured"][:22], meas["min"], meas["median"], item["ratio"] or 0, item["goal"]))
        extras = {k: v for k, v in item.items() if k not in (
            "part", "what", "baseline", "baseline_s", "measured", "measured_s", "ratio", "goal")}
        if extras:
            print("     " + ", ".join(f"{k}={v}" for k, v in extras.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(PARTS), help="run only this part (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each figure (min and median)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run: checks the bench still works")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--vhosts", type=int, help="vhosts for P2 and P5 (default 1000)")
    parser.add_argument("--hosts", type=int, help="hosts for P4 (default 20)")
    parser.add_argument("--sizes", type=int, nargs="+", help="EA4 tree sizes for P3 (default 1000 5000 10000)")
    args = parser.parse_args(argv)
    sizes = json.loads(json.dumps(SMOKE if args.smoke else FULL))
    if args.vhosts:
        sizes["P2"]["vhosts"] = sizes["P5"]["vhosts"] = args.vhosts
    if args.hosts:
        sizes["P4"]["hosts"] = args.hosts
    if args.sizes:
        sizes["P3"]["sizes"] = sorted(args.sizes)
    runs = 1 if args.smoke else max(1, args.runs)
    rows: list[dict] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        for part in args.only or sorted(PARTS):
            work = Path(tmp) / part
            work.mkdir()
            print(f"--- {part}", flush=True)
            rows.extend(PARTS[part](sizes[part], runs, work))
    print_table(rows)
    record = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "smoke": args.smoke,
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(), "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print("cpus %s, load average %.1f before, %.1f after; recorded in %s"
          % (os.cpu_count(), load_before[0], record["load_average_after"][0], args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
