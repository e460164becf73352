"""KWOK: install it from the Go module proxy (once, cached), and its configuration: which nodes it plays
and the stages that make them Ready and their pods Running and Ready with an address.

The stages are written here after KWOK's own node-fast, node-heartbeat and pod-fast stages
(kustomize/stage/ in kubernetes-sigs/kwok), trimmed to what the suite looks at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import config
from .proc import SimError

MANAGED = "kwok.x-k8s.io/node=fake"  # the annotation every simulated node carries; KWOK plays those only


def say(text: str) -> None:
    print(f"[sim {time.strftime('%H:%M:%S')}] {text}", flush=True)


def ensure_installed() -> Path:
    """`go install sigs.k8s.io/kwok/cmd/kwok@<version>` into the cache, unless it is there (idempotent)."""
    if os.access(config.KWOK_BIN, os.X_OK):
        return config.KWOK_BIN
    if not shutil.which("go"):
        raise SimError("`go` is not installed; KWOK is built with it (ci/lab-build/install-deps.sh installs it)")
    say(f"installing KWOK {config.KWOK_VERSION} from the Go module proxy (once; a few minutes)")
    config.KWOK_BIN.parent.parent.mkdir(parents=True, exist_ok=True)
    gobin = Path(tempfile.mkdtemp(prefix=".kwok-", dir=config.KWOK_BIN.parent.parent))
    log = config.KWOK_BIN.parent.parent / "kwok-build.log"
    env = {**os.environ, "GOBIN": str(gobin), "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    try:
        with open(log, "ab") as fh:
            done = subprocess.run(
                ["go", "install", "-trimpath", "-ldflags", "-s -w", f"{config.KWOK_MODULE}@{config.KWOK_VERSION}"],
                cwd=gobin,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=1800,
            )
        if done.returncode != 0:
            raise SimError(f"building KWOK {config.KWOK_VERSION} failed; see {log}")
        config.KWOK_BIN.parent.mkdir(parents=True, exist_ok=True)
        (gobin / "kwok").replace(config.KWOK_BIN)
    except subprocess.TimeoutExpired:
        raise SimError(f"building KWOK {config.KWOK_VERSION} did not finish within 30 min; see {log}") from None
    finally:
        shutil.rmtree(gobin, ignore_errors=True)
    return config.KWOK_BIN


_CONDITIONS = """\
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
"""

# The simulated nodes are created with their addresses, capacity and nodeInfo (ci/simlib/nodes.py):
# KWOK only has to report them Ready, then keep renewing that (the heartbeat).
NODE_READY = (
    """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: sim-node-ready
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
"""
    + _CONDITIONS
    + """\
      phase: Running
"""
)

NODE_HEARTBEAT = (
    f"""\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: sim-node-heartbeat
spec:
  resourceRef: {{apiGroup: v1, kind: Node}}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: In
      values: ['True']
  delay:
    durationMilliseconds: {config.HEARTBEAT_MS}
    jitterDurationMilliseconds: {config.HEARTBEAT_MS + config.HEARTBEAT_JITTER_MS}
  next:
    statusTemplate: |
"""
    + _CONDITIONS
    + """\
  immediateNextStage: true
"""
)

# A scheduled pod becomes Running and Ready at once, with an address from its node's podCIDR
# (KWOK's PodIPsWith) and the node's InternalIP as hostIP; a deleted pod goes at once.
POD_READY = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: sim-pod-ready
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.status.phase'
      operator: In
      values: ['Pending']
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range list "PodScheduled" "Initialized" "ContainersReady" "Ready" }}
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: {{ . | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ with NodeIPsWith .spec.nodeName }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
"""

POD_DELETE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: sim-pod-delete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: Exists
  next:
    delete: true
"""


def configuration() -> str:
    """KWOK's --config: options, then the four stages."""
    options = f"""\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  manageNodesWithAnnotationSelector: {MANAGED}
  cidr: 10.127.0.0/24
  nodeLeaseDurationSeconds: 0
  nodePlayStageParallelism: 8
  podPlayStageParallelism: 8
  enableDebuggingHandlers: false
  enableProfilingHandler: false
"""
    return "---\n".join([options, NODE_READY, NODE_HEARTBEAT, POD_READY, POD_DELETE])


def start_argv(kwok: Path, config_path: Path) -> list[str]:
    # No --server-address and no node port: KWOK serves nothing, it only talks to the API server.
    return [
        str(kwok),
        "--config",
        str(config_path),
        "--kubeconfig",
        str(config.KUBECONFIG),
        "--manage-nodes-with-annotation-selector",
        MANAGED,
        "--node-lease-duration-seconds",
        "0",
    ]
