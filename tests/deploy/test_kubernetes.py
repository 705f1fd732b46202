"""deploy/k8s: every manifest validated offline against the Kubernetes schemas (kubernetes-validate,
strict: unknown fields are errors), then the wiring: probes on the health endpoint, paths mounted,
secrets named as bondbot reads them, the NetworkPolicy's exact allow list.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (pip install kubernetes-validate)")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
#: The oldest Kubernetes still maintained upstream when this was written, and the newest schema shipped.
VERSIONS = ("1.32.0", kv.latest_version())


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _manifests() -> list[str]:
    return sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _one(kind: str) -> dict[str, Any]:
    found = [d for name in _manifests() for d in _docs(name) if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", _manifests())
def test_manifest_is_valid_kubernetes(name: str, version: str) -> None:
    for doc in _docs(name):
        kv.validate(doc, version, strict=True)  # raises ValidationError with the path of the fault


def test_validation_is_not_blind() -> None:
    deployment = _one("Deployment")
    deployment["spec"]["replica"] = 2  # a typo: strict validation must refuse it
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(set(_manifests()) - {"secret.example.yaml"})
    assert kustomization["images"][0]["name"] == _one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]


def test_deployment_two_replicas_probes_on_the_health_endpoint() -> None:
    d = _one("Deployment")
    assert d["spec"]["replicas"] == 2
    pod = d["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 40
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    (port,) = [p for p in c["ports"] if p["name"] == "health"]
    assert str(port["containerPort"]) == env["BONDBOT_HEALTH_PORT"] and env["BONDBOT_HEALTH_HOST"] == "0.0.0.0"
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    containerfile = (REPO / "deploy" / "Containerfile").read_text()
    uid = re.search(r"^USER (\d+):(\d+)$", containerfile, re.M)
    assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}


def test_every_path_is_mounted_and_the_config_is_what_bondbot_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _one("Deployment")
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    def volume_for(path: str) -> dict[str, Any]:
        best = max((m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), key=len, default=None)
        assert best is not None, f"{path} is not inside any volumeMount"
        return volumes[mounts[best]["name"]]

    for var in ("BONDBOT_INVENTORY", "BONDBOT_SLACK_AUTHZ", "BONDBOT_KNOWN_HOSTS"):
        vol = volume_for(env[var])
        assert vol["configMap"]["name"] == _one("ConfigMap")["metadata"]["name"], var
        assert Path(env[var]).name in _one("ConfigMap")["data"], f"{var}: the ConfigMap has no {Path(env[var]).name}"
    assert "emptyDir" in volume_for(env["BONDBOT_DATA_DIR"])
    creds = volume_for(env["CREDENTIALS_DIRECTORY"])["secret"]["secretName"]
    secrets = {s["metadata"]["name"]: s for s in _docs("secret.example.yaml")}
    assert set(secrets[creds]["stringData"]) == {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "BONDBOT_DATABASE_URL"}
    assert not any(k.startswith("SLACK_") for k in env), "tokens come from the Secret's files"
    assert secrets[creds]["stringData"]["BONDBOT_DATABASE_URL"].startswith("postgresql+psycopg://")

    # The ConfigMap's files, parsed by bondbot's own loaders, and the SSH key path inside a mount.
    data = _one("ConfigMap")["data"]
    from bot.authz import load_policy
    from ssh_exec import load_inventory

    (tmp_path / "authz.yaml").write_text(data["authz.yaml"])
    assert load_policy(tmp_path / "authz.yaml", env={}).approver_users
    (tmp_path / "inventory.yaml").write_text(data["inventory.yaml"])
    inventory = yaml.safe_load(data["inventory.yaml"])
    load_inventory(tmp_path / "inventory.yaml", check=False)
    for host in inventory["hosts"].values():
        vol = volume_for(host["key"])
        assert vol["secret"]["secretName"] in secrets and Path(host["key"]).name in secrets[vol["secret"]["secretName"]]["stringData"]

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.delenv("BONDBOT_DATABASE_URL", raising=False)
    (tmp_path / "BONDBOT_DATABASE_URL").write_text(secrets[creds]["stringData"]["BONDBOT_DATABASE_URL"])
    from bondbot import settings

    assert settings.database_url() == secrets[creds]["stringData"]["BONDBOT_DATABASE_URL"]


def test_network_policy_allows_only_dns_database_slack_and_ssh() -> None:
    np = _one("NetworkPolicy")["spec"]
    assert np["podSelector"] == _one("Deployment")["spec"]["selector"]
    assert sorted(np["policyTypes"]) == ["Egress", "Ingress"]
    assert np["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8081}]}]
    allowed = sorted((p["protocol"], p["port"]) for rule in np["egress"] for p in rule["ports"])
    assert allowed == [("TCP", 22), ("TCP", 53), ("TCP", 443), ("TCP", 5432), ("UDP", 53)]
    for rule in np["egress"]:
        assert rule.get("to"), "every egress rule names its destination"
        ports = {p["port"] for p in rule["ports"]}
        if ports == {443}:
            (block,) = rule["to"]
            assert block["ipBlock"]["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in block["ipBlock"]["except"]
