"""infra/ holds what a team needs to run lamops on a cluster: these tests keep it parseable, secret-free and
in step with the code (the environment variables it sets are the ones lamops and its libraries read)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from lamops.config import load_config

INFRA = ROOT / "infra"
COMPOSE = INFRA / "compose" / "docker-compose.yml"
ENV_EXAMPLE = INFRA / "compose" / ".env.example"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
RAY_CLUSTER = INFRA / "ray" / "cluster.yaml"
KUBERAY = INFRA / "kuberay"

# Files that may hold configuration values (not the DeepSpeed JSON, which holds none of this kind).
INFRA_FILES = sorted(
    p
    for p in INFRA.rglob("*")
    if p.is_file() and (p.suffix in {".yaml", ".yml", ".sql", ".example"} or "Dockerfile" in p.name)
)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _compose() -> dict:
    return _load(COMPOSE)


def _api_key_env() -> str:
    return load_config(ROOT / "params.yaml").llm.api_key_env


def test_every_yaml_file_parses():
    files = sorted([*INFRA.rglob("*.yaml"), *INFRA.rglob("*.yml")])
    assert len(files) >= 7, files
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path} is empty"


def test_compose_has_the_team_services_with_healthchecks():
    services = _compose()["services"]
    for name in ("postgres", "minio", "mlflow", "prefect-server", "prefect-worker"):
        assert name in services, f"compose lacks {name}"
        assert "test" in services[name].get("healthcheck", {}), f"{name} has no healthcheck"
    # The one-shot bucket creation runs once MinIO is healthy, and MLflow waits for it.
    assert services["createbuckets"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["createbuckets"]["condition"] == "service_completed_successfully"
    assert services["prefect-worker"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"


def test_mlflow_server_runs_on_postgres_and_serves_s3_artifacts():
    command = _compose()["services"]["mlflow"]["command"]
    flags = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}
    assert flags["--backend-store-uri"].startswith("postgresql+psycopg2://")
    assert flags["--artifacts-destination"].startswith("s3://")
    assert "--serve-artifacts" in command
    assert flags["--host"] == "0.0.0.0"
    # MLflow 3 rejects Host headers outside localhost / private IPs: the service name must be allowed.
    assert "mlflow:5000" in flags["--allowed-hosts"]
    assert _compose()["services"]["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_prefect_server_has_its_own_database_and_the_worker_polls_the_process_pool():
    services = _compose()["services"]
    env = services["prefect-server"]["environment"]
    assert env["PREFECT_SERVER_DATABASE_DRIVER"] == "postgresql+asyncpg"
    assert env["PREFECT_SERVER_DATABASE_NAME"] == "prefect"
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "mlflow"
    assert "CREATE DATABASE prefect" in (INFRA / "compose" / "initdb" / "10-prefect.sql").read_text()
    assert services["prefect-server"]["command"][:2] == ["server", "start"]
    worker = services["prefect-worker"]
    assert worker["command"][:2] == ["worker", "start"]
    assert "lamops-process" in " ".join(worker["command"])
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"


def test_compose_reads_every_secret_from_the_environment():
    services = _compose()["services"]
    secret = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|API_KEY|TOKEN")
    seen = 0
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if secret.search(key):
                seen += 1
                assert re.fullmatch(r"\$\{[A-Z0-9_]+(:[?-][^}]*)?\}", str(value)), f"{name}.{key}={value!r}"
    assert seen >= 8
    # Every variable compose reads is in .env.example, so a copy of it is a complete configuration.
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"[A-Z0-9_]+=", line)
    }
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert used <= example, f"not in .env.example: {sorted(used - example)}"
    assert "infra/compose/.env" in (ROOT / ".gitignore").read_text().splitlines()


# Literal credentials: AWS key ids, private keys, and NAME: value / NAME=value assignments of secret-looking
# names whose value is not a placeholder (empty, ${VAR}, CHANGE_ME) or a secretKeyRef.
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_ASSIGNMENT = re.compile(r"^\s*-?\s*([A-Z][A-Z0-9_]*)\s*[:=]\s*(.*)$")
_SECRET_NAME = re.compile(r"(^|_)(PASSWORD|SECRET|TOKEN)(_|$)|(ACCESS|API)_KEY$")
_PLACEHOLDER = re.compile(r"""^["']?(\$\{[A-Za-z0-9_:?\- ./]+\}|CHANGE_ME)?["']?\s*(#.*)?$""")


def test_no_infra_file_holds_a_credential():
    assert INFRA_FILES
    for path in INFRA_FILES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            where = f"{path.relative_to(ROOT)}:{number}"
            assert not _AWS_KEY_ID.search(line), f"{where}: an AWS access key id"
            assert not _PRIVATE_KEY.search(line), f"{where}: a private key"
            if line.lstrip().startswith("#"):
                continue
            match = _ASSIGNMENT.match(line)
            if match and _SECRET_NAME.search(match.group(1)):
                assert _PLACEHOLDER.match(match.group(2).strip()), f"{where}: literal secret {line.strip()!r}"
            assert not re.search(r"://[^/\s:@$]+:[^/\s@$]+@", line), f"{where}: a password in a URI"


def _pod_specs(spec: dict) -> list[tuple[str, dict]]:
    pods = [("head", spec["headGroupSpec"]["template"]["spec"])]
    pods += [(g["groupName"], g["template"]["spec"]) for g in spec["workerGroupSpecs"]]
    return pods


def test_kuberay_manifests_are_ray_v1_with_gpu_workers_and_secret_refs():
    cluster = _load(KUBERAY / "raycluster.yaml")
    job = _load(KUBERAY / "rayjob.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["entrypoint"].startswith("lamops pipeline")
    # The job's cluster is the long-lived one's: one definition of pods, mounts and credentials.
    assert job["spec"]["rayClusterSpec"] == cluster["spec"]

    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]
    assert int(gpu["limits"]["nvidia.com/gpu"]) >= 1
    assert gpu["requests"]["nvidia.com/gpu"] == gpu["limits"]["nvidia.com/gpu"]
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]

    secret = _load(KUBERAY / "secrets.example.yaml")
    config = _load(KUBERAY / "configmap.yaml")
    claims = {d["metadata"]["name"] for d in yaml.safe_load_all((KUBERAY / "storage.yaml").read_text())}
    for group, pod in _pod_specs(cluster["spec"]):
        container = pod["containers"][0]
        assert container["image"].startswith("lamops"), group
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", _api_key_env()} <= set(refs), group
        assert all("value" not in e for e in container["env"]), f"{group}: a literal env value"
        for name, ref in refs.items():
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], (
                group,
                name,
            )
        assert [s["configMapRef"]["name"] for s in container["envFrom"]] == [config["metadata"]["name"]]
        used_claims = {
            v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
        }
        assert used_claims <= claims, group
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/app/data", "/app/models"} <= mounts, f"{group}: outputs must be on the shared volume"


def test_ray_cluster_launcher_config():
    cfg = _load(RAY_CLUSTER)
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = [name for name in types if name != cfg["head_node_type"]]
    assert workers and any("gpu" in name for name in workers)
    assert cfg["provider"]["type"] == "aws"
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    assert any("ray start --address=$RAY_HEAD_IP:6379" in c for c in cfg["worker_start_ray_commands"])
    # The secrets file travels from outside the repository and is sourced before `ray start`.
    ((remote, local),) = cfg["file_mounts"].items()
    assert local.startswith("~/") and not (ROOT / local[2:]).exists()
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any(f". {remote}" in c for c in cfg[key]), key
    # The image's ENTRYPOINT is `lamops`: the launcher's `docker run ... bash` needs it cleared.
    assert '--entrypoint=""' in cfg["docker"]["run_options"]


def test_dockerfile_pins_torch_installs_with_constraints_and_runs_as_a_user():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG TORCH_SPEC=torch==2\.13\.0$", text, re.M)
    assert "torch==2.13.0" in (ROOT / "scripts" / "constraints.txt").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    assert '"${TORCH_SPEC}"' in text
    assert "pip install -c scripts/constraints.txt ." in text
    assert "--no-build-isolation" in text  # DeepSpeed built against the installed torch
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["lamops"\]$', text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for path in ("data/", "models/", "mlruns/", ".venv", ".git", ".dvc/cache"):
        assert path in ignored, f".dockerignore lacks {path}"


def test_env_var_names_are_the_ones_the_code_reads():
    src = "\n".join(p.read_text() for p in (ROOT / "src" / "lamops").rglob("*.py"))
    # Read by lamops itself.
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "AWS_ENDPOINT_URL", "PROFILE_ENV_VAR"):
        assert name in src, name
    assert re.search(r'PROFILE_ENV_VAR = "LAMOPS_PROFILE"', src)
    # Read by the libraries (Prefect, MLflow's S3 store, boto3) and documented by lamops.
    assert "PREFECT_API_URL" in (ROOT / "src" / "lamops" / "cli.py").read_text()
    import mlflow.environment_variables as mlflow_env

    assert mlflow_env.MLFLOW_S3_ENDPOINT_URL.name == "MLFLOW_S3_ENDPOINT_URL"
    assert mlflow_env.MLFLOW_SERVER_ALLOWED_HOSTS.name == "MLFLOW_SERVER_ALLOWED_HOSTS"

    wanted = {
        "MLFLOW_TRACKING_URI",
        "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PREFECT_API_URL",
        _api_key_env(),
    }
    worker_env = set(_compose()["services"]["prefect-worker"]["environment"])
    assert wanted | {"RAY_ADDRESS", "LAMOPS_PROFILE"} <= worker_env
    configmap = set(_load(KUBERAY / "configmap.yaml")["data"])
    secret = set(_load(KUBERAY / "secrets.example.yaml")["stringData"])
    assert wanted <= configmap | secret
    assert not configmap & secret
    cluster_env = {
        line.split("=", 1)[0]
        for line in (INFRA / "ray" / "cluster.env.example").read_text().splitlines()
        if re.match(r"[A-Z0-9_]+=", line)
    }
    assert wanted <= cluster_env


def test_deepspeed_configs_cover_every_size():
    names = {p.name for p in (INFRA / "deepspeed").glob("*.json")}
    assert {"zero2_cpu.json", "zero2_gpu_bf16.json", "zero3_gpu_bf16_offload.json"} <= names
    for profile, expected in (("tiny", "zero2_cpu.json"), ("paper", "zero2_gpu_bf16.json")):
        cfg = load_config(ROOT / "params.yaml", profile=profile)
        assert cfg.train.deepspeed_config.name == expected
        assert cfg.path(cfg.train.deepspeed_config).is_file()


def _docker_compose() -> list[str] | None:
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
    return ["docker", "compose"] if probe.returncode == 0 else None


@pytest.mark.skipif(_docker_compose() is None, reason="docker compose is not installed")
def test_docker_compose_config_accepts_the_file():
    done = subprocess.run(
        [*_docker_compose(), "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
