"""The simulated nodes: names, addresses, podCIDRs, labels (a zone on most), as Node objects."""

from __future__ import annotations

import json
from typing import Any

from . import config
from .kwok import MANAGED

INDEX_LABEL = "netconform.dev/sim-index"  # `up` with fewer nodes deletes by it in one request


def manifest(i: int) -> dict[str, Any]:
    """Node i (1-based): Ready once KWOK plays it. Every 10th node has no zone label (a zone-less pool)."""
    name = config.node_name(i)
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "netconform.dev/sim-pool": "blue" if i % 2 else "green",
        INDEX_LABEL: str(i),
    }
    if i % 10:
        labels["topology.kubernetes.io/zone"] = config.ZONES[i % len(config.ZONES)]
    key, _, value = MANAGED.partition("=")
    ip = config.node_ip(i)
    vtep_mac = f"0e:5e:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                key: value,
                # what flanneld would announce (the inventory reads them; CNI detection says flannel)
                "flannel.alpha.coreos.com/backend-type": "vxlan",
                "flannel.alpha.coreos.com/backend-data": json.dumps({"VNI": 1, "VtepMAC": vtep_mac}),
                "flannel.alpha.coreos.com/public-ip": ip,
                "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {"podCIDR": config.pod_cidr(i), "podCIDRs": [config.pod_cidr(i)]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "KWOK simulated node",
                "kernelVersion": f"kwok-{config.KWOK_VERSION}",
                "kubeletVersion": f"kwok-{config.KWOK_VERSION}",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": f"kwok-{config.KWOK_VERSION}",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def node_list(indices: list[int]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [manifest(i) for i in indices]})
