"""Errors netconform tells apart, and how an API error becomes one sentence."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit, urlunsplit

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
            message = redact(str(json.loads(body).get("message", "")))
        except (ValueError, AttributeError):
            message = redact(str(body).splitlines()[0] if str(body).strip() else "")[:200]
    if status == 403:
        return f"RBAC forbids netconform to {doing}: {message or reason} (apply suites/rbac.yaml or use a context that may)"
    if status == 401:
        return f"the API rejected the credentials while trying to {doing} (401 Unauthorized)"
    if status is not None:
        return f"could not {doing}: {status} {reason}{': ' + message if message else ''}"
    if isinstance(exc, API_TRANSPORT_ERRORS):
        cause = getattr(exc, "reason", None) or exc
        text = error_text(cause) if isinstance(cause, BaseException) else redact(str(cause))[:200]
        return f"could not {doing}: the API did not answer ({text})"
    return f"could not {doing}: {error_text(exc)}"


# What may carry a credential inside an error's text: userinfo in a URL, an Authorization header (or
# its value), a bearer token, a PEM block (a client key the kubernetes client was handed).
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@")
_AUTH_HEADER = re.compile(
    r"(?i)(['\"]?(?:authorization|x-auth-token|cookie|set-cookie)['\"]?\s*[:=]\s*)(['\"]?)[^'\",}\n]*"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?(?:-----END [A-Z ]+-----|$)", re.S)
ERROR_TEXT_LIMIT = 300


def redact(text: str) -> str:
    """`text` without the credentials an error or a URL may carry."""
    text = _PEM.sub("[PEM redacted]", text)
    text = _USERINFO.sub(r"\g<scheme>", text)
    text = _AUTH_HEADER.sub(r"\1\2[redacted]", text)
    return _BEARER.sub(r"\1 [redacted]", text)


def server_url(url: str | None) -> str:
    """An API server URL to print: without userinfo, query or fragment (a kubeconfig may put a password there)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url.split("?", 1)[0])
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def error_text(exc: BaseException, limit: int = ERROR_TEXT_LIMIT) -> str:
    """The one way an exception becomes text in any output: one line, bounded, without credentials.

    An ApiException's str() is its response headers and body (tokens, cookies, whole objects); it
    becomes its status, reason and the Status message instead.
    """
    if isinstance(exc, ApiException):
        message = ""
        if exc.body:
            try:
                message = str(json.loads(exc.body).get("message", ""))
            except (ValueError, AttributeError):
                message = ""
        text = f"{exc.status} {exc.reason or ''}".strip() + (f": {message}" if message else "")
    else:
        text = str(exc).strip()
    lines = [line.strip() for line in redact(text).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(exc).__name__
