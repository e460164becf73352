"""CoreDNS answering a name wrongly (docs/faults.md #22): a block put into the Corefile of ConfigMap
kube-system/coredns, ahead of the kubernetes plugin, as an operator's stray edit would. Each injection
restarts CoreDNS and waits for it (bounded), so every pod answers from the edited Corefile before the suite
asks; the undo puts the Corefile back byte for byte and restarts it again (undo.ConfigMapRestore)."""

from __future__ import annotations

import json

from . import control
from .cluster import bin_dir
from .config import Node
from .proc import LabError
from .undo import ConfigMapRestore, UndoStep, restart_and_wait

NAMESPACE, CONFIGMAP, DEPLOYMENT, KEY = "kube-system", "coredns", "coredns", "Corefile"

# What each fault puts after the `errors` line of the `.:53` server block, at that line's indent.
BLOCKS = {
    # an /etc/hosts-style override of the API Service's name
    "hosts": [
        "hosts {",
        "    10.96.99.99 kubernetes.default.svc.cluster.local",
        "    fallthrough",
        "}",
    ],
    # a template answering the suite's own Service, in whichever netconform-* namespace a run creates
    "template": [
        "template IN A cluster.local {",
        '    match "^nc-server[.]netconform-[a-z0-9]+[.]svc[.]cluster[.]local[.]$"',
        '    answer "{{ .Name }} 5 IN A 10.96.99.98"',
        "    fallthrough",
        "}",
    ],
    # the API Service's name rewritten to another Service's: answered with kube-dns's ClusterIP
    "rewrite": ["rewrite name kubernetes.default.svc.cluster.local kube-dns.kube-system.svc.cluster.local"],
}


def with_block(corefile: str, block: list[str]) -> str:
    """The Corefile with `block` inserted after the first `errors` line (the lab's `.:53` block has one)."""
    lines = corefile.split("\n")
    at = next((i for i, line in enumerate(lines) if line.strip() == "errors"), None)
    if at is None:
        raise LabError(f"ConfigMap {NAMESPACE}/{CONFIGMAP}: no `errors` line in its Corefile to put a block after")
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    return "\n".join(lines[: at + 1] + [indent + line for line in block] + lines[at + 1 :])


def corefile() -> str:
    doc = json.loads(control.kubectl(bin_dir(), "-n", NAMESPACE, "get", "configmap", CONFIGMAP, "-o", "json"))
    text = doc.get("data", {}).get(KEY)
    if not isinstance(text, str):
        raise LabError(f"ConfigMap {NAMESPACE}/{CONFIGMAP} has no {KEY}")
    return text


def override(kind: str, node: Node) -> UndoStep:
    """Put BLOCKS[kind] into the Corefile and restart CoreDNS on it; the step that undoes it."""
    old = corefile()
    patch = json.dumps({"data": {KEY: with_block(old, BLOCKS[kind])}})
    control.kubectl(bin_dir(), "-n", NAMESPACE, "patch", "configmap", CONFIGMAP, "--type=merge", "-p", patch)
    undo = ConfigMapRestore(NAMESPACE, CONFIGMAP, KEY, old, DEPLOYMENT)
    try:
        restart_and_wait(NAMESPACE, DEPLOYMENT)
    except LabError:
        undo.apply(node)  # not recorded yet: put the Corefile back before saying why
        raise
    return undo


def hosts(node: Node) -> list[UndoStep]:
    return [override("hosts", node)]


def template(node: Node) -> list[UndoStep]:
    return [override("template", node)]


def rewrite(node: Node) -> list[UndoStep]:
    return [override("rewrite", node)]
