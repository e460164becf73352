"""A small in-memory Kubernetes API on 127.0.0.1 for pytester tests (no cluster needed).

It serves exactly the calls netconform makes (version, access reviews, nodes, namespaces,
DaemonSets, Services, pods, EndpointSlices, events) and one extra endpoint, POST /fake/dial, that
answers like `probe dial` would in a healthy cluster (or with an injected fault). fakeexec.py
points netconform's exec transport at it, since the real exec is a websocket into a container.
It is a model of the API's shapes, not of Kubernetes: the lab e2e tests cover the real thing.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

NOW = "2026-01-01T00:00:00Z"


@dataclass
class Faults:
    not_ready_image: str | None = None  # pods stay in ImagePullBackOff for this image
    exec_broken_on: str | None = None  # exec into the client pod on this node fails (transport)
    drop_to_node: str | None = None  # every dial to a pod/NodePort on this node times out
    masquerade_from: str | None = None  # cross-node traffic from this node arrives from its .0 address
    forbidden: set[str] = field(default_factory=set)  # "verb resource" the caller may not do
    dial_delay_s: float = 0.0  # `probe dial` takes this long (to interrupt a run mid-way)


class FakeCluster:
    def __init__(self, node_count: int = 3) -> None:
        self.lock = threading.Lock()
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.deleted_namespaces: list[str] = []
        self.daemonsets: dict[tuple[str, str], dict[str, Any]] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[str, list[dict[str, Any]]] = {}
        self.node_ports = itertools.count(30080)
        self.cluster_ips = itertools.count(10)
        self.rr = itertools.count()
        self.nodes = [self._node(i) for i in range(1, node_count + 1)]

    # ------------------------------------------------------------- objects

    @staticmethod
    def _node(i: int) -> dict[str, Any]:
        return {
            "metadata": {
                "name": f"lab-node-{i}",
                "labels": {"kubernetes.io/hostname": f"lab-node-{i}", "pool": "odd" if i % 2 else "even"},
                "annotations": {"flannel.alpha.coreos.com/public-ip": f"127.0.0.{10 + i}"},
            },
            "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": f"127.0.0.{10 + i}"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {
                    "kernelVersion": "6.1.0",
                    "osImage": "fake",
                    "kubeletVersion": "v1.34.0",
                    "architecture": "amd64",
                    "bootID": "x",
                    "containerRuntimeVersion": "fake://1",
                    "kubeProxyVersion": "",
                    "machineID": "x",
                    "operatingSystem": "linux",
                    "systemUUID": "x",
                },
            },
        }

    def node_names(self) -> list[str]:
        return [n["metadata"]["name"] for n in self.nodes]

    def _pod(self, ns: str, ds: dict[str, Any], node_index: int, node: str) -> dict[str, Any]:
        role = ds["spec"]["template"]["metadata"]["labels"]["netconform.io/role"]
        name = f"{ds['metadata']['name']}-{node.rsplit('-', 1)[-1]}x"
        ip = f"10.244.{node_index}.{10 if role == 'server' else 20}"
        image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
        broken = self.faults.not_ready_image == image
        waiting = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
        return {
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": ds["spec"]["template"]["metadata"]["labels"],
                "creationTimestamp": NOW,
            },
            "spec": {"nodeName": node, "containers": [{"name": "probe", "image": image}]},
            "status": {
                "phase": "Pending" if broken else "Running",
                "podIP": None if broken else ip,
                "conditions": [{"type": "Ready", "status": "False" if broken else "True"}],
                "containerStatuses": [
                    {
                        "name": "probe",
                        "image": image,
                        "imageID": "",
                        "ready": not broken,
                        "restartCount": 0,
                        "state": waiting if broken else {"running": {}},
                    }
                ],
            },
        }

    # ------------------------------------------------------------- dial model

    def _pods_of(self, ns: str, role: str) -> list[dict[str, Any]]:
        return [p for p in self.pods.get(ns, []) if p["metadata"]["labels"]["netconform.io/role"] == role]

    def dial(self, ns: str, pod_name: str, spec: dict[str, Any]) -> tuple[int, str]:
        client = next((p for p in self._pods_of(ns, "client") if p["metadata"]["name"] == pod_name), None)
        if client is None:
            return 404, f"pod {pod_name} not found"
        src_node = client["spec"]["nodeName"]
        if self.faults.exec_broken_on == src_node:
            return 500, "websocket: bad handshake"
        servers = self._pods_of(ns, "server")
        by_ip = {p["status"]["podIP"]: p for p in servers}
        node_ip = {n["status"]["addresses"][0]["address"]: n["metadata"]["name"] for n in self.nodes}
        svc_ip = {s["spec"].get("clusterIP"): s for (n, _), s in self.services.items() if n == ns}
        results = []
        for t in spec["targets"]:
            if t["proto"] == "dns":
                results.append(self._resolve(ns, t, servers))
                continue
            if t["host"] in by_ip:
                candidates = [by_ip[t["host"]]]
            elif t["host"] in node_ip:
                local = any(
                    s["spec"].get("externalTrafficPolicy") == "Local"
                    and any(p.get("nodePort") == t["port"] for p in s["spec"]["ports"])
                    for s in svc_ip.values()
                )
                candidates = [p for p in servers if p["spec"]["nodeName"] == node_ip[t["host"]]] if local else servers
            elif t["host"] in svc_ip:
                candidates = servers
            else:
                candidates = []
            attempts = []
            for _ in range(t["count"]):
                server = candidates[next(self.rr) % len(candidates)] if candidates else None
                dst_node = node_ip.get(t["host"]) or (server["spec"]["nodeName"] if server else None)
                if server is None or self.faults.drop_to_node in (dst_node, server["spec"]["nodeName"]):
                    attempts.append(
                        {
                            "ok": False,
                            "error": "timeout",
                            "detail": "i/o timeout",
                            "connect_ms": 0,
                            "total_ms": spec["timeout_ms"],
                        }
                    )
                    continue
                seen = client["status"]["podIP"]
                if self.faults.masquerade_from == src_node and server["spec"]["nodeName"] != src_node:
                    seen = client["status"]["podIP"].rsplit(".", 1)[0] + ".0"
                attempts.append(
                    {
                        "ok": True,
                        "error": "",
                        "detail": "",
                        "connect_ms": 0.3,
                        "total_ms": 0.9,
                        "server_hostname": server["metadata"]["name"],
                        "server_node": server["spec"]["nodeName"],
                        "client_ip_seen": seen,
                    }
                )
            results.append({**{k: t[k] for k in ("id", "proto", "host", "port")}, "attempts": attempts})
        source = {"hostname": pod_name, "ips": [client["status"]["podIP"]]}
        return 200, json.dumps({"source": source, "results": results})

    def _resolve(self, ns: str, t: dict[str, Any], servers: list[dict[str, Any]]) -> dict[str, Any]:
        name = t["host"]
        svc = self.services.get((ns, "nc-server"), {})
        if name.startswith("nc-headless"):
            addresses = sorted(p["status"]["podIP"] for p in servers)
        elif name.startswith("nc-server"):
            addresses = [svc.get("spec", {}).get("clusterIP")]
        elif name.startswith("kubernetes.default"):
            addresses = ["10.96.0.1"]
        else:
            addresses = []
        ok = bool(addresses)
        attempt = {
            "ok": ok,
            "error": "" if ok else "dns",
            "detail": "" if ok else f"lookup {name}: no such host",
            "connect_ms": 0,
            "total_ms": 1.0,
        }
        return {"id": t["id"], "proto": "dns", "host": name, "port": 0, "attempts": [attempt], "addresses": addresses}

    # ------------------------------------------------------------- REST

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            return self._route(method, path, query, body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        selector = (query.get("labelSelector") or [""])[0]
        path = path.rstrip("/") or "/"
        if path == "/version":
            return 200, {
                "major": "1",
                "minor": "34",
                "gitVersion": "v1.34.0-fake",
                "gitCommit": "x",
                "gitTreeState": "clean",
                "buildDate": NOW,
                "goVersion": "go1.24",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            attrs = body["spec"]["resourceAttributes"]
            resource = attrs["resource"] + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
            return 201, {**body, "status": {"allowed": f"{attrs['verb']} {resource}" not in self.faults.forbidden}}
        if path == "/api/v1/nodes":
            return 200, _list([n for n in self.nodes if _matches(n, selector)])
        if path == "/api/v1/namespaces" and method == "GET":
            return 200, _list([n for n in self.namespaces.values() if _matches(n, selector)])
        if path == "/api/v1/namespaces" and method == "POST":
            if "create namespaces" in self.faults.forbidden:
                return 403, _status(
                    403,
                    "Forbidden",
                    'namespaces is forbidden: User "fake" cannot create resource '
                    '"namespaces" in API group "" at the cluster scope',
                )
            name = body["metadata"]["name"]
            if name in self.namespaces:
                return 409, _status(409, "AlreadyExists", f'namespaces "{name}" already exists')
            obj = {**body, "status": {"phase": "Active"}}
            obj["metadata"].setdefault("creationTimestamp", NOW)
            self.namespaces[name] = obj
            return 201, obj
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)", path)
        if m:
            name = m.group(1)
            if name not in self.namespaces:
                return 404, _status(404, "NotFound", f'namespaces "{name}" not found')
            if method == "DELETE":
                del self.namespaces[name]
                self.pods.pop(name, None)
                self.deleted_namespaces.append(name)
                return 200, _status(200, "Success", "")
            return 200, self.namespaces[name]
        if path == "/api/v1/namespaces/default/services/kubernetes":
            return 200, {
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443, "protocol": "TCP"}]},
            }
        m = re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/daemonsets", path)
        if m and method == "POST":
            ns = m.group(1)
            if ns not in self.namespaces:
                return 404, _status(404, "NotFound", f'namespaces "{ns}" not found')
            self.daemonsets[(ns, body["metadata"]["name"])] = body
            terms = body["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]["nodeSelectorTerms"]
            if any(len(t["matchFields"][0]["values"]) != 1 for t in terms):  # what the real API rejects
                return 422, _status(
                    422, "Invalid", "must be only one value when `operator` is 'In' for node field selector"
                )
            wanted = [t["matchFields"][0]["values"][0] for t in terms]
            for index, node in enumerate(self.node_names(), start=1):
                if node in wanted:
                    self.pods.setdefault(ns, []).append(self._pod(ns, body, index, node))
            return 201, body
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/services", path)
        if m and method == "POST":
            ns = m.group(1)
            spec = body["spec"]
            if spec.get("clusterIP") != "None":
                spec["clusterIP"] = f"10.96.{next(self.cluster_ips)}.{len(self.services) + 1}"
            for port in spec["ports"]:
                if spec.get("type") == "NodePort":
                    port["nodePort"] = next(self.node_ports)
            self.services[(ns, body["metadata"]["name"])] = body
            return 201, body
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path)
        if m:
            return 200, _list(self.pods.get(m.group(1), []))
        m = re.fullmatch(r"/apis/discovery.k8s.io/v1/namespaces/([^/]+)/endpointslices", path)
        if m:
            ns = m.group(1)
            ready = [p for p in self._pods_of(ns, "server") if p["status"]["podIP"]]
            slices = [
                {
                    "metadata": {"name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [p["status"]["podIP"]], "conditions": {"ready": True}} for p in ready],
                }
                for (n, name) in self.services
                if n == ns
            ]
            return 200, _list(slices)
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/events", path)
        if m:
            return 200, _list([])
        return 404, _status(404, "NotFound", f"the fake API does not serve {method} {path}")


def _matches(obj: dict[str, Any], selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {}, "items": items}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeAPIServer:
    """Serve a FakeCluster on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, cluster: FakeCluster | None = None) -> None:
        self.cluster = cluster or FakeCluster()
        model = self.cluster

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                if url.path == "/fake/dial":
                    time.sleep(model.faults.dial_delay_s)
                    with model.lock:
                        code, text = model.dial(body["namespace"], body["pod"], body["spec"])
                    payload = text.encode()
                else:
                    code, obj = model.handle(self.command, url.path, parse_qs(url.query), body)
                    payload = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeAPIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def kubeconfig_for(server: str, context: str = "fake") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": f"{context}-cluster", "cluster": {"server": server}}],
            "users": [{"name": "fake-user", "user": {"token": "fake-token"}}],
            "contexts": [{"name": context, "context": {"cluster": f"{context}-cluster", "user": "fake-user"}}],
        }
    )


def wait_until(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
