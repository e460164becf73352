"""The CI templates users copy (ci/templates/) and the release workflow (.github/workflows/release.yml):
what actionlint and the JSON schemas (ci/lint-templates) cannot know. No network, no GitHub, no GitLab:
the YAML is parsed, and the shell that decides something (the gate's closing, the image checks, the
version check) is run in bash with stand-ins for ci/gate, ci/images, kind and docker."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "ci" / "templates"
GITHUB = TEMPLATES / "github-actions.yml"
GITLAB = TEMPLATES / "gitlab-ci.yml"
KIND = TEMPLATES / "kind-3-nodes.yaml"
RELEASE = REPO / ".github" / "workflows" / "release.yml"
GITLAB_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache"}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict[str, Any]) -> Any:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def step_index(all_steps: list[dict[str, Any]], needle: str) -> int:
    hits = [i for i, s in enumerate(all_steps) if needle in (s.get("run") or "") or needle in (s.get("uses") or "")]
    assert hits, f"no step runs or uses {needle!r}"
    return hits[0]


def lab_images() -> dict[str, str]:
    """The image references the suite pulls by default (the lab builds its images under exactly these)."""
    tree = ast.parse((REPO / "ci" / "lablib" / "config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["IMAGES"]:
            return ast.literal_eval(node.value)
    raise AssertionError("ci/lablib/config.py has no IMAGES")


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a CI script as GitHub (`shell: bash`) and GitLab run them: bash -eo pipefail."""
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True
    )


def stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


# ---------------------------------------------------------------- GitHub Actions


def test_kind_cluster_has_no_default_cni_and_flannels_network() -> None:
    kind = load(KIND)
    net = kind["networking"]
    assert net["disableDefaultCNI"] is True  # kindnet off: flannel is what the diagnosis knows
    assert net["podSubnet"] == "10.244.0.0/16"  # flannel's net-conf.json Network
    assert net["kubeProxyMode"] == "iptables"
    roles = [n["role"] for n in kind["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 2  # cross-node pairs, gate needs 2

    gh = load(GITHUB)
    create = steps(gh, "network")[step_index(steps(gh, "network"), "kind create cluster")]["run"]
    assert "--config ci/templates/kind-3-nodes.yaml" in create
    assert '--image "$KIND_NODE_IMAGE"' in create
    assert re.fullmatch(r"kindest/node:v[\d.]+@sha256:[0-9a-f]{64}", gh["env"]["KIND_NODE_IMAGE"])


def test_github_installs_a_pinned_flannel_release_and_waits_for_ready_nodes() -> None:
    gh = load(GITHUB)
    env = gh["env"]
    lab_versions = dict(
        line.split("=", 1)
        for line in (REPO / "ci" / "lab-build" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert env["FLANNEL_VERSION"] == lab_versions["FLANNEL_VERSION"]  # the flannel the lab verifies against
    s = steps(gh, "network")
    create, flannel = step_index(s, "kind create cluster"), step_index(s, "kube-flannel.yml")
    assert create < flannel
    run = s[flannel]["run"]
    url = "https://github.com/flannel-io/flannel/releases/download/$FLANNEL_VERSION/kube-flannel.yml"
    assert f'kubectl apply -f "{url}"' in run
    assert "latest" not in run
    # flannel's CNI config delegates to `bridge`, which kind's node image does not ship: copied in first
    assert run.index("/opt/cni/bin/bridge") < run.index("kubectl apply")
    assert "plugins/main/bridge@$CNI_PLUGINS_VERSION" in s[step_index(s, "go install")]["run"]
    assert "kubectl wait --for=condition=Ready nodes --all" in run
    assert "vxlan" in run  # the step checks flannel's backend
    gate = step_index(s, "ci/gate baseline")
    assert flannel < gate


def test_github_builds_the_probe_from_source_and_kind_loads_it_before_the_suite() -> None:
    gh = load(GITHUB)
    s = steps(gh, "network")
    build = step_index(s, "ci/images build")
    run = s[build]["run"]
    assert run.index("ci/images build") < run.index("kind load image-archive dist/images/probe.oci.tar")
    assert build < step_index(s, "ci/gate baseline")
    assert '--probe-image "$PROBE_IMAGE"' in s[step_index(s, "ci/gate baseline")]["run"]
    assert '--probe-image "$PROBE_IMAGE"' in s[step_index(s, "ci/gate check")]["run"]


def test_github_pulls_and_loads_the_suites_agent_image() -> None:
    gh = load(GITHUB)
    assert gh["env"]["AGENT_IMAGE"] == lab_images()["agent"]
    s = steps(gh, "network")
    run = s[step_index(s, 'docker pull --platform "$platform" "$AGENT_IMAGE"')]["run"]
    assert run.index("docker pull") < run.index("kind load image-archive")
    assert step_index(s, "docker pull") < step_index(s, "ci/gate baseline")


def test_github_declares_the_permissions_its_junit_publisher_needs() -> None:
    gh = load(GITHUB)
    assert gh["permissions"] == {"contents": "read"}
    for name, job in gh["jobs"].items():
        if any("publish-unit-test-result-action" in (st.get("uses") or "") for st in job["steps"]):
            perms = job["permissions"]
            assert perms["checks"] == "write", name
            assert perms["pull-requests"] == "write", name
            assert perms["contents"] == "read", name


def test_github_gate_is_around_the_upgrade_and_closed_always() -> None:
    gh = load(GITHUB)
    s = steps(gh, "network")
    baseline, check = step_index(s, "ci/gate baseline"), step_index(s, "ci/gate check")
    upgrade = [i for i, st in enumerate(s) if st.get("name", "").startswith("upgrade")]
    assert len(upgrade) == 1 and baseline < upgrade[0] < check
    close = s[step_index(s, "ci/gate close")]
    assert close["if"] == "always()"
    for needle in ("ci/report", "publish-unit-test-result-action", "upload-artifact"):
        assert s[step_index(s, needle)]["if"] == "always()", needle


def node_version_at_least_20_19(version: str) -> bool:
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.\d+)?", version)
    assert m, f"node version {version!r}"
    return (int(m.group(1)), int(m.group(2) if m.group(2) is not None else 99)) >= (20, 19)


def test_github_sets_up_node_20_19_or_newer_for_allure_3() -> None:
    s = steps(load(GITHUB), "network")
    node = s[step_index(s, "actions/setup-node")]
    assert node_version_at_least_20_19(str(node["with"]["node-version"]))
    assert not node_version_at_least_20_19("20.18") and node_version_at_least_20_19("20.19.1")
    assert not node_version_at_least_20_19("18")


def test_github_template_and_release_pin_every_action() -> None:
    for path in (GITHUB, RELEASE):
        for name, job in load(path)["jobs"].items():
            for st in job["steps"]:
                if "uses" in st:
                    ref = st["uses"].rsplit("@", 1)
                    assert len(ref) == 2 and ref[1] not in ("main", "master", "latest"), f"{path.name} {name}: {st}"


def probe_step_env(tmp_path: Path, node_digest: str) -> tuple[str, Path, dict[str, str]]:
    """The template's probe-image step with stand-ins: ci/images prints a reference as it does, kind lists
    three nodes, docker exec ... ctr prints what a node has."""
    built = "sha256:" + "a" * 64
    stub(
        tmp_path / "ci" / "images",
        "mkdir -p dist/images && : > dist/images/probe.oci.tar\n"
        'echo "image-build: probe for linux/amd64, linux/arm64" >&2\n'
        f'echo "ghcr.io/netconform/probe:0.1.0@{built}"\n',
    )
    bin_dir = tmp_path / "bin"
    stub(bin_dir / "kind", 'case "$1" in get) printf "nc-control-plane\\nnc-worker\\nnc-worker2\\n";; esac\n')
    stub(
        bin_dir / "docker",
        'echo "REF TYPE DIGEST SIZE PLATFORMS LABELS"\n'
        f'echo "ghcr.io/netconform/probe:0.1.0 application/vnd.oci.image.index.v1+json {node_digest} 4.1 MiB '
        'linux/amd64,linux/arm64 -"\n',
    )
    github_env = tmp_path / "github_env"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CLUSTER": "nc", "GITHUB_ENV": str(github_env)}
    s = steps(load(GITHUB), "network")
    return s[step_index(s, "ci/images build")]["run"], github_env, env


def test_github_probe_step_accepts_the_built_digest_on_every_node(tmp_path: Path) -> None:
    script, github_env, env = probe_step_env(tmp_path, "sha256:" + "a" * 64)
    done = bash(script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert github_env.read_text() == "PROBE_IMAGE=ghcr.io/netconform/probe:0.1.0\n"


def test_github_probe_step_pasted_into_a_shell_outside_actions(tmp_path: Path) -> None:
    script, github_env, env = probe_step_env(tmp_path, "sha256:" + "a" * 64)
    del env["GITHUB_ENV"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script + 'echo "then: $PROBE_IMAGE"\n'],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "then: ghcr.io/netconform/probe:0.1.0" in done.stdout


def test_github_probe_step_fails_when_a_node_has_another_image(tmp_path: Path) -> None:
    script, github_env, env = probe_step_env(tmp_path, "sha256:" + "b" * 64)
    done = bash(script, tmp_path, env)
    assert done.returncode == 1
    assert "nc-control-plane has ghcr.io/netconform/probe:0.1.0 as 'sha256:bbbb" in done.stderr
    assert not github_env.exists()


# ---------------------------------------------------------------- GitLab CI


def gitlab_jobs() -> dict[str, dict[str, Any]]:
    doc = load(GITLAB)
    jobs = {}
    for name, job in doc.items():
        if name in GITLAB_KEYWORDS or name.startswith(".") or not isinstance(job, dict):
            continue
        parents = job.get("extends") or []
        merged: dict[str, Any] = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            merged.update(doc[parent])
        jobs[name] = {**merged, **job}
    return jobs


def lines(job: dict[str, Any], *parts: str) -> str:
    out: list[str] = []
    for part in parts:
        for entry in job.get(part) or []:
            out.extend(entry if isinstance(entry, list) else [entry])
    return "\n".join(out) + "\n"


def test_gitlab_renders_the_report_with_node_20_19_or_newer() -> None:
    report_jobs = {n: j for n, j in gitlab_jobs().items() if "netconform report" in lines(j, "script")}
    assert report_jobs
    for name, job in report_jobs.items():
        m = re.fullmatch(r"node:([\d.]+)(?:-[a-z]+)?", job["image"])
        assert m, f"{name}: {job['image']} is not an official node image"
        assert node_version_at_least_20_19(m.group(1)), f"{name}: {job['image']}: Allure 3 needs Node >= 20.19"
        assert "nodejs" not in lines(job, "before_script", "script")  # not Debian bookworm's nodejs (18)


def test_gitlab_pages_only_on_the_default_branch() -> None:
    pages = gitlab_jobs()["pages"]
    rules = pages["rules"]
    assert [r["if"] for r in rules] == ["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"]
    assert "when" not in pages and "only" not in pages and "except" not in pages
    assert pages["artifacts"]["paths"] == ["public"]


def test_gitlab_gate_jobs_publish_junit_and_keep_their_state() -> None:
    jobs = gitlab_jobs()
    assert jobs["gate-baseline"]["artifacts"]["reports"]["junit"] == "reports/gate/baseline/junit.xml"
    assert jobs["gate-check"]["artifacts"]["reports"]["junit"] == "reports/gate/check/junit.xml"
    for name in ("gate-baseline", "gate-check"):
        assert jobs[name]["artifacts"]["when"] == "always"
        assert "reports/gate/" in jobs[name]["artifacts"]["paths"]
    assert jobs["gate-check"]["needs"] == ["gate-baseline", "upgrade"]
    assert jobs["upgrade"]["when"] == "manual" and jobs["upgrade"]["allow_failure"] is False
    assert jobs["gate-close"]["when"] == "always"
    stages = load(GITLAB)["stages"]
    assert stages.index(jobs["gate-close"]["stage"]) > stages.index(jobs["gate-check"]["stage"])


def fake_gate(tmp_path: Path, baseline_exit: int) -> Path:
    """Stand-ins on PATH (gate_path): `netconform gate PHASE` records its arguments; `python3 -m pip
    install` (the before_script) does nothing."""
    calls = tmp_path / "gate-calls"
    stub(
        tmp_path / "bin" / "netconform",
        '[ "$1" = gate ] || exit 9\nshift\n'
        f'echo "$*" >> {calls}\ncase "$1" in baseline) exit {baseline_exit};; check) exit 1;; *) exit 0;; esac\n',
    )
    stub(tmp_path / "bin" / "python3", '[ "$1 $2 $3" = "-m pip install" ] || exit 9\n')
    return calls


def gate_path(tmp_path: Path, **env: str) -> dict[str, str]:
    return {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", **env}


@pytest.mark.parametrize(
    ("baseline_exit", "after_script_closes", "gate_close_job_closes"),
    [
        (0, False, True),  # open for the check; the last stage closes it if the check never ran
        (1, True, True),  # any failure: ours to close
        (3, True, True),  # the suite or the gate could not run
        (2, False, False),  # found a gate already open: another pipeline's, left alone
    ],
)
def test_gitlab_closes_the_gate_whatever_the_baseline_did(
    tmp_path: Path, baseline_exit: int, after_script_closes: bool, gate_close_job_closes: bool
) -> None:
    jobs = gitlab_jobs()
    calls = fake_gate(tmp_path, baseline_exit)
    env = {"NETCONFORM_ARGS": "-n 2 --node-limit 3"}
    done = bash(lines(jobs["gate-baseline"], "before_script", "script"), tmp_path, gate_path(tmp_path, **env))
    assert done.returncode == baseline_exit, done.stderr
    assert calls.read_text() == "baseline -- -n 2 --node-limit 3\n"  # the arguments split as meant
    status = "success" if baseline_exit == 0 else "failed"
    after = bash(lines(jobs["gate-baseline"], "after_script"), tmp_path, gate_path(tmp_path, CI_JOB_STATUS=status))
    assert after.returncode == 0, after.stderr
    assert calls.read_text().count("close") == int(after_script_closes)

    calls.write_text("")
    done = bash(lines(jobs["gate-close"], "before_script", "script"), tmp_path, gate_path(tmp_path))
    assert done.returncode == 0, done.stderr
    assert calls.read_text() == ("close\n" if gate_close_job_closes else "")


def test_gitlab_baseline_cancelled_before_it_finished_is_closed(tmp_path: Path) -> None:
    calls = fake_gate(tmp_path, 0)  # no baseline.exit written: the job was cancelled or timed out
    after = bash(
        lines(gitlab_jobs()["gate-baseline"], "after_script"), tmp_path, gate_path(tmp_path, CI_JOB_STATUS="canceled")
    )
    assert after.returncode == 0, after.stderr
    assert calls.read_text() == "close\n"


def test_gitlab_check_closes_the_gate_passed_or_blocked(tmp_path: Path) -> None:
    jobs = gitlab_jobs()
    calls = fake_gate(tmp_path, 0)
    done = bash(
        lines(jobs["gate-check"], "before_script", "script"), tmp_path, gate_path(tmp_path, NETCONFORM_ARGS="-n 2")
    )
    assert done.returncode == 1  # the stand-in check blocks: the job fails
    after = bash(lines(jobs["gate-check"], "after_script"), tmp_path, gate_path(tmp_path, CI_JOB_STATUS="failed"))
    assert after.returncode == 0
    assert calls.read_text() == "check -- -n 2\nclose\n"


# ---------------------------------------------------------------- release workflow


def test_release_runs_on_version_tags_with_least_privilege_per_job() -> None:
    rel = load(RELEASE)
    assert triggers(rel) == {"push": {"tags": ["v*"]}}
    assert rel["permissions"] == {}
    jobs = rel["jobs"]
    with_id_token = [n for n, j in jobs.items() if j.get("permissions", {}).get("id-token") == "write"]
    assert with_id_token == ["pypi"]
    assert any("pypa/gh-action-pypi-publish" in (s.get("uses") or "") for s in jobs["pypi"]["steps"])
    assert jobs["pypi"]["environment"] == "pypi"
    assert jobs["image"]["permissions"]["packages"] == "write"
    login = next(s for s in jobs["image"]["steps"] if "docker/login-action" in (s.get("uses") or ""))
    assert login["with"] == {
        "registry": "ghcr.io",
        "username": "${{ github.actor }}",
        "password": "${{ secrets.GITHUB_TOKEN }}",
    }
    assert [n for n, j in jobs.items() if j.get("permissions", {}).get("contents") == "write"] == ["github-release"]
    for name in ("image", "python"):
        assert jobs[name]["needs"] == "version"


def test_release_builds_pushes_and_attaches() -> None:
    jobs = load(RELEASE)["jobs"]
    image_runs = "\n".join(s.get("run") or "" for s in jobs["image"]["steps"])
    assert image_runs.index("ci/images build") < image_runs.index('ci/images push "$IMAGE_REPO"')
    assert load(RELEASE)["env"]["IMAGE_REPO"] == "ghcr.io/netconform"
    assert "python -m build --sdist --wheel" in "\n".join(s.get("run") or "" for s in jobs["python"]["steps"])
    gh_release = next(s for s in jobs["github-release"]["steps"] if "action-gh-release" in (s.get("uses") or ""))
    files = gh_release["with"]["files"].split()
    assert {"release/*.tar.gz", "release/*.whl", "release/probe.oci.tar", "release/probe-image.txt"} <= set(files)


@pytest.mark.parametrize(("tag", "ok"), [("v{version}", True), ("v{version}.1", False), ("{version}", False)])
def test_release_version_check_compares_the_tag_with_pyproject(tmp_path: Path, tag: str, ok: bool) -> None:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    check = next(s for s in load(RELEASE)["jobs"]["version"]["steps"] if s.get("id") == "check")
    out = tmp_path / "github_output"
    python_dir = str(Path(sys.executable).parent)
    env = {"TAG": tag.format(version=version), "GITHUB_OUTPUT": str(out), "PATH": f"{python_dir}:{os.environ['PATH']}"}
    done = bash(check["run"], REPO, env)
    assert (done.returncode == 0) is ok, done.stdout + done.stderr
    if ok:
        assert out.read_text() == f"version={version}\n"
    else:
        assert f"is not the package version v{version}" in done.stdout


# ---------------------------------------------------------------- what the templates call


def test_templates_call_scripts_that_exist() -> None:
    text = GITHUB.read_text() + GITLAB.read_text() + RELEASE.read_text()
    called = sorted(set(re.findall(r"(?<![\w/.-])ci/([a-z][a-z-]*[a-z])(?![\w./-])", text)))
    assert {"bootstrap", "gate", "report", "images"} <= set(called)
    missing = [c for c in called if not (REPO / "ci" / c).is_file()]
    if missing == ["images"]:
        pytest.skip("ci/images (the probe image build, another change) is not in the tree yet")
    assert not missing, f"the templates call ci/{missing} which do not exist"


# ---------------------------------------------------------------- the composite action (operators' repositories)

ACTION = TEMPLATES / "netconform" / "action.yml"


def pyproject_version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def test_action_and_gitlab_install_this_version_from_pypi_and_call_no_clone_script() -> None:
    pin = f"netconform=={pyproject_version()}"
    assert load(ACTION)["inputs"]["package"]["default"] == pin
    assert load(GITLAB)["variables"]["NETCONFORM_PACKAGE"] == pin
    for path in (ACTION, GITLAB):
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        assert not re.findall(r"(?<![\w/.-])ci/[a-z]", code), f"{path.name} calls a script of a netconform clone"


@pytest.mark.parametrize(
    ("command", "args", "called"),
    [
        ("gate baseline", "-n 2 -k test_dns", "gate baseline -- -n 2 -k test_dns"),
        ("gate close", "", "gate close --"),
        ("run", "--node-limit 3", "run -- --node-limit 3"),
        ("report", "--results reports/gate/check/allure-results", "report --results reports/gate/check/allure-results"),
    ],
)
def test_action_passes_command_and_args_to_netconform(tmp_path: Path, command: str, args: str, called: str) -> None:
    calls = tmp_path / "calls"
    stub(tmp_path / "bin" / "netconform", f'echo "$*" >> {calls}\n')
    stub(tmp_path / "bin" / "python3", f'echo "python3 $*" >> {calls}\n')
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "COMMAND": command, "ARGS": args, "PACKAGE": "netconform==9"}
    for step in action["runs"]["steps"]:
        assert step["shell"] == "bash"
        done = bash(step["run"], tmp_path, env)
        assert done.returncode == 0, done.stderr
    assert calls.read_text() == f"{called}\n"  # netconform is on PATH (the stand-in): not installed again
