"""The lab's own end-to-end check: node 1 reaches node N by pod IP, ClusterIP, NodePort and DNS."""
from __future__ import annotations

import json

from . import config, control, proc
from .cluster import bin_dir, say
from .proc import LabError

NS = "netconform-lab-smoke"


def _pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "probe", "image": config.IMAGES["probe"], "args": ["serve"],
                "env": [{"name": "NODE_NAME", "value": node}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}}]}}


def run_smoke() -> None:
    bins = bin_dir()
    count = config.node_count()
    first, last = config.nodes(count)[0], config.nodes(count)[-1]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server", "namespace": NS},
               "spec": {"type": "NodePort", "selector": {"app": "server"},
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
             _pod("client", first.name), _pod("server", last.name), service]
    try:
        control.kubectl(bins, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                     "items": items}))
        control.kubectl(bins, "-n", NS, "wait", "--for=condition=Ready", "pod/client", "pod/server",
                        "--timeout=90s", timeout=100)
        server_ip = control.kubectl(bins, "-n", NS, "get", "pod", "server", "-o", "jsonpath={.status.podIP}")
        svc = json.loads(control.kubectl(bins, "-n", NS, "get", "svc", "server", "-o", "json"))
        targets = [
            {"id": f"pod {server_ip}", "proto": "tcp", "host": server_ip, "port": 8080, "count": 1},
            {"id": "clusterip", "proto": "tcp", "host": svc["spec"]["clusterIP"], "port": 8080, "count": 1},
            {"id": "nodeport", "proto": "tcp", "host": last.ip, "port": svc["spec"]["ports"][0]["nodePort"],
             "count": 1},
            {"id": "dns", "proto": "dns", "host": f"kubernetes.default.svc.{config.CLUSTER_DOMAIN}", "port": 0,
             "count": 1},
        ]
        spec = json.dumps({"timeout_ms": 3000, "concurrency": 8, "targets": targets})
        out = proc.wait_for("the smoke dial to succeed", lambda: _dial_ok(bins, spec), 60, 3.0)
        say(f"smoke check passed: {first.name} -> {last.name} by pod IP, ClusterIP, NodePort; DNS {out}")
    finally:
        control.kubectl(bins, "delete", "namespace", NS, "--wait=false", "--ignore-not-found", check=False)


def _dial_ok(bins, spec: str) -> str | None:
    raw = control.kubectl(bins, "-n", NS, "exec", "client", "--", "/probe", "dial", "--spec", spec)
    results = json.loads(raw)["results"]
    failed = [f"{r['id']}: {r['attempts'][0]['error'] if r.get('attempts') else r.get('error')}" for r in results
              if not (r.get("addresses") or (r.get("attempts") and all(a["ok"] for a in r["attempts"])))]
    if failed:
        raise _NotYet("; ".join(failed))
    return ",".join(next(r["addresses"] for r in results if r["proto"] == "dns"))


class _NotYet(Exception):
    pass


def check_or_explain() -> None:
    try:
        run_smoke()
    except LabError as err:
        raise LabError(f"the smoke check failed: {err}") from None
