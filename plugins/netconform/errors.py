"""Errors netconform tells apart, and how an API error becomes one sentence."""

from __future__ import annotations

import json

import urllib3
from kubernetes.client import ApiException

# What a call to an API that went away raises (no HTTP status): refused, reset, timed out, TLS.
API_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)
# Any failed API call: an HTTP status from the API, or no answer at all.
API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


class NetconformError(Exception):
    """Base of every error netconform raises on purpose."""


class UsageError(NetconformError):
    """Something the user can fix (kubeconfig, context, RBAC, node selection).

    The plugin turns it into one sentence and exit code 4, without a traceback.
    """


def missing_extra(what: str, module: str, extra: str) -> UsageError:
    """`what` needs an optional dependency that is not installed: the one sentence, naming the extra."""
    return UsageError(f"{what} needs {module}, which is not installed: pip install 'netconform[{extra}]'")


class ProbeSetupError(NetconformError):
    """The probe workload could not be deployed or did not become Ready in time."""


class ProbeRunError(NetconformError):
    """`probe dial` could not be run in a pod (exec transport, API, bad output): not a network verdict."""


def api_error_sentence(exc: BaseException, doing: str) -> str:
    """One sentence for a failed API call made while `doing` (e.g. "create namespace netconform-x").

    Kubernetes puts a readable message in the Status body; use it when there is one.
    """
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None) or type(exc).__name__
    message = ""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = str(body)[:200]
    if status == 403:
        return f"RBAC forbids netconform to {doing}: {message or reason} (apply suites/rbac.yaml or use a context that may)"
    if status == 401:
        return f"the API rejected the credentials while trying to {doing} (401 Unauthorized)"
    if status is not None:
        return f"could not {doing}: {status} {reason}{': ' + message if message else ''}"
    if isinstance(exc, API_TRANSPORT_ERRORS):
        cause = getattr(exc, "reason", None) or exc
        return f"could not {doing}: the API did not answer ({str(cause).splitlines()[0][:200]})"
    return f"could not {doing}: {exc}"
