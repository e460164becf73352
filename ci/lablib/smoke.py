"""The lab's own end-to-end check: node 1 reaches node N by pod IP, ClusterIP, NodePort and DNS (each IP
family the variant has), and the API server reaches a pod through its pod proxy (the control plane is a
node of the pod network)."""

from __future__ import annotations

import json

from . import config, control, proc
from .cluster import bin_dir, say
from .proc import LabError

NS = "netconform-lab-smoke"


def _pod(name: str, node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "probe",
                    "image": config.IMAGES["probe"],
                    "args": ["serve"],
                    "env": [{"name": "NODE_NAME", "value": node}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
                }
            ],
        },
    }


def run_smoke() -> None:
    bins = bin_dir()
    var = config.variant()
    count = config.node_count()
    first, last = config.nodes(count)[0], config.nodes(count)[-1]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "server", "namespace": NS},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "server"},
            **({"ipFamilyPolicy": "RequireDualStack"} if var.dual else {}),
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
    }
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        _pod("client", first.name),
        _pod("server", last.name),
        service,
    ]
    # The namespace of an earlier smoke check is deleted without waiting: `apply` into it while it
    # terminates would patch the old pods, and the namespace would vanish under the dial.
    control.kubectl(bins, "delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=90s", timeout=100)
    try:
        control.kubectl(
            bins, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        )
        control.kubectl(
            bins, "-n", NS, "wait", "--for=condition=Ready", "pod/client", "pod/server", "--timeout=90s", timeout=100
        )
        pod = json.loads(control.kubectl(bins, "-n", NS, "get", "pod", "server", "-o", "json"))
        server_ips = [a["ip"] for a in pod["status"].get("podIPs", [])] or [pod["status"]["podIP"]]
        svc = json.loads(control.kubectl(bins, "-n", NS, "get", "svc", "server", "-o", "json"))
        cluster_ips = svc["spec"].get("clusterIPs") or [svc["spec"]["clusterIP"]]
        node_port = svc["spec"]["ports"][0]["nodePort"]
        targets = [{"id": f"pod {ip}", "proto": "tcp", "host": ip, "port": 8080, "count": 1} for ip in server_ips]
        targets += [
            {"id": f"clusterip {ip}", "proto": "tcp", "host": ip, "port": 8080, "count": 1} for ip in cluster_ips
        ]
        targets += [
            {"id": f"nodeport {ip}", "proto": "tcp", "host": ip, "port": node_port, "count": 1}
            for ip in last.node_ips(var)
        ]
        names = [f"kubernetes.default.svc.{config.CLUSTER_DOMAIN}"]
        if var.dual:  # a dual-stack Service: CoreDNS must answer A and AAAA
            names.append(f"server.{NS}.svc.{config.CLUSTER_DOMAIN}")
        targets += [{"id": f"dns {name}", "proto": "dns", "host": name, "port": 0, "count": 1} for name in names]
        expected = {f"dns {names[-1]}": set(cluster_ips)} if var.dual else {}
        spec = json.dumps({"timeout_ms": 3000, "concurrency": 8, "targets": targets})
        out = proc.wait_for("the smoke dial to succeed", lambda: _dial_ok(bins, spec, expected), 60, 3.0)
        whoami = proc.wait_for(
            "the API server's pod proxy to reach the server pod",
            lambda: json.loads(
                control.kubectl(bins, "get", "--raw", f"/api/v1/namespaces/{NS}/pods/server:8080/proxy/whoami")
            ),
            30,
            2.0,
        )
        say(
            f"smoke check passed: {first.name} -> {last.name} by pod IP, ClusterIP, NodePort "
            f"({', '.join(server_ips + cluster_ips)}); DNS {out}; "
            f"API server -> pod proxy -> server (seen from {whoami.get('client_ip', whoami)})"
        )
    finally:
        control.kubectl(bins, "delete", "namespace", NS, "--wait=false", "--ignore-not-found", check=False)


def _dial_ok(bins, spec: str, expected: dict[str, set[str]]) -> str | None:
    raw = control.kubectl(bins, "-n", NS, "exec", "client", "--", "/probe", "dial", "--spec", spec)
    results = json.loads(raw)["results"]
    failed = [
        f"{r['id']}: {r['attempts'][0]['error'] if r.get('attempts') else r.get('error')}"
        for r in results
        if not (r.get("addresses") or (r.get("attempts") and all(a["ok"] for a in r["attempts"])))
    ]
    failed += [
        f"{r['id']} answered {r.get('addresses')}, expected {sorted(expected[r['id']])}"
        for r in results
        if r["id"] in expected and set(r.get("addresses") or []) != expected[r["id"]]
    ]
    if failed:
        raise _NotYet("; ".join(failed))
    return "; ".join(f"{r['host']} -> {','.join(r['addresses'])}" for r in results if r["proto"] == "dns")


class _NotYet(Exception):
    pass


def check_or_explain() -> None:
    try:
        run_smoke()
    except LabError as err:
        raise LabError(f"the smoke check failed: {err}") from None
