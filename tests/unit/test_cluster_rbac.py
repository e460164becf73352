"""suites/rbac.yaml grants exactly what netconform checks for, role by role (and the code uses)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from netconform.kube.access import Permission
from netconform.plugin.permissions import ROLES

RBAC = Path(__file__).resolve().parents[2] / "suites" / "rbac.yaml"


def documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


def granted(role_name: str) -> set[Permission]:
    role = next(d for d in documents() if d["kind"] == "ClusterRole" and d["metadata"]["name"] == role_name)
    perms = set()
    for rule in role["rules"]:
        names = rule.get("resourceNames") or [""]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                kind, _, sub = resource.partition("/")
                for verb in rule["verbs"]:
                    for name in names:
                        perms.add(Permission(verb, kind, group, sub, name, "kube-system" if name else ""))
    return perms


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_grants_exactly_what_its_feature_checks(role: str) -> None:
    assert granted(role) == set(ROLES[role])


def test_every_role_is_bound_to_the_service_account() -> None:
    bound = {d["roleRef"]["name"] for d in documents() if d["kind"] == "ClusterRoleBinding"}
    assert bound == set(ROLES) == {d["metadata"]["name"] for d in documents() if d["kind"] == "ClusterRole"}


def test_no_wildcards() -> None:
    assert not any("*" in str(p) for role in ROLES for p in granted(role))


def test_websocket_exec_needs_get_and_create() -> None:
    verbs = {p.verb for p in ROLES["netconform"] if p.subresource == "exec"}
    assert verbs == {"get", "create"}
