"""Every overlay renders with ``kubectl kustomize`` and validates against the Kubernetes schemas.

``kubernetes-validate`` bundles the OpenAPI schemas of each Kubernetes release and works offline;
strict mode also rejects unknown fields (a misspelt ``matchLabelKeys`` would otherwise pass
silently). Custom resources (the ServiceMonitor) have no schema there and are checked by hand.
The optional component is rendered through a throwaway overlay outside the repository, as an
operator's own kustomization would include it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from unit.project.test_deploy import ROOT, kustomize

#: The oldest release whose API we rely on (matchLabelKeys on topology spread: beta since 1.27,
#: on by default) and the newest the bundled schemas know.
VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
COMPONENT = ROOT / "deploy" / "kubernetes" / "components" / "servicemonitor"


def _with_component(tmp_path: Path) -> list[dict[str, Any]]:
    # kustomize takes only relative paths to other kustomizations.
    root, component = (os.path.relpath(path, tmp_path) for path in (ROOT, COMPONENT))
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{root}]\ncomponents: [{component}]\n"
    )
    return kustomize(tmp_path)


def _validate(docs: list[dict[str, Any]], version: str) -> list[str]:
    custom = []
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            custom.append(doc)
            continue
        kubernetes_validate.validate(doc, version, strict=True)
    return [f"{doc['kind']}/{doc['metadata']['name']}" for doc in custom]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_default_overlay_validates(version: str) -> None:
    docs = kustomize(ROOT)
    assert _validate(docs, version) == []
    assert {doc["kind"] for doc in docs} >= {"Deployment", "Service", "ConfigMap", "NetworkPolicy"}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_servicemonitor_overlay_validates_and_scrapes_the_ops_port(tmp_path: Path, version: str) -> None:
    docs = _with_component(tmp_path)
    assert _validate(docs, version) == ["ServiceMonitor/gateway"]
    by_kind_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    monitor = by_kind_name[("ServiceMonitor", "gateway")]
    service = by_kind_name[("Service", "gateway-metrics")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["ops"]
    assert [port["name"] for port in service["spec"]["ports"]] == ["ops"]
    pod_labels = by_kind_name[("Deployment", "gateway")]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_a_wrong_field_is_caught() -> None:
    """The validation can fail: a misspelt field in a rendered Deployment is rejected."""
    deployment = next(doc for doc in kustomize(ROOT) if doc["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["matchLabelKey"] = ["pod-template-hash"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
