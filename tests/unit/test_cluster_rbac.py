"""suites/rbac.yaml grants exactly what plugins.cluster checks for (and the suite uses)."""

from __future__ import annotations

from pathlib import Path

import yaml
from netconform.kube.access import Permission
from netconform.plugin.permissions import REQUIRED_PERMISSIONS

RBAC = Path(__file__).resolve().parents[2] / "suites" / "rbac.yaml"


def granted() -> set[Permission]:
    role = next(d for d in yaml.safe_load_all(RBAC.read_text()) if d and d["kind"] == "ClusterRole")
    perms = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                name, _, sub = resource.partition("/")
                for verb in rule["verbs"]:
                    perms.add(Permission(verb, name, group, sub))
    return perms


def test_rbac_yaml_matches_the_access_check_exactly() -> None:
    assert granted() == set(REQUIRED_PERMISSIONS)


def test_no_wildcards() -> None:
    assert not any("*" in str(p) for p in granted())
