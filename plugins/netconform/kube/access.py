"""The permission preflight: ask the API, before anything is deployed, whether the caller may do
every verb the run will use (SelfSubjectAccessReview), so a missing grant is one sentence up front."""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from kubernetes import client as k8s

__all__ = ["Permission", "missing_permissions"]


@dataclass(frozen=True)
class Permission:
    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    name: str = ""  # one object only (RBAC resourceNames), checked in `namespace`
    namespace: str = ""

    def __str__(self) -> str:
        kind = self.resource + (f"/{self.subresource}" if self.subresource else "")
        what = f"{self.verb} {kind}{'.' + self.group if self.group else ''}"
        return f"{what} {self.namespace}/{self.name}" if self.name else what


def missing_permissions(api: k8s.ApiClient, wanted: tuple[Permission, ...]) -> list[Permission]:
    """Which of `wanted` the caller lacks (reviews run concurrently).

    An API that refuses the review itself is not an answer: then nothing is reported missing and
    the first forbidden call explains itself.
    """
    authz = k8s.AuthorizationV1Api(api)

    def allowed(perm: Permission) -> bool:
        review = k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    verb=perm.verb,
                    resource=perm.resource,
                    group=perm.group,
                    subresource=perm.subresource or None,
                    name=perm.name or None,
                    namespace=perm.namespace or None,
                )
            )
        )
        try:
            status = authz.create_self_subject_access_review(review).status
        except k8s.ApiException:
            return True
        return bool(status and status.allowed)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(allowed, wanted))
    return [perm for perm, ok in zip(wanted, verdicts, strict=True) if not ok]
