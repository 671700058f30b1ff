"""deploy/ manifests: no cluster here, so each is checked against a vendored minimal subset of
KServe's InferenceService CRD schema (tests/data), and against what the code serves."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "inferenceservice-v1beta1.schema.json").read_text())
MANIFESTS = sorted((ROOT / "deploy").glob("*.yaml"))


def load(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1, path
    return docs[0]


def test_both_runtimes_have_a_manifest():
    assert {p.name for p in MANIFESTS} >= {"kserve-torchserve.yaml", "kserve-native.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_a_valid_inference_service(path):
    jsonschema.validate(load(path), SCHEMA)


def test_schema_refuses_what_the_cluster_would():
    good = load(ROOT / "deploy" / "kserve-torchserve.yaml")
    for mutate in (lambda m: m["spec"]["predictor"]["model"].update(storageURI="x"),       # misspelt field
                   lambda m: m["spec"]["predictor"].update(scaleMetric="latency"),         # not an enum value
                   lambda m: m["spec"]["predictor"]["model"].pop("modelFormat"),           # required
                   lambda m: m["metadata"].update(name="Two_Level"),                       # not a DNS-1035 name
                   lambda m: m.update(apiVersion="serving.kserve.io/v1alpha1")):
        bad = json.loads(json.dumps(good))
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


def test_torchserve_manifest_matches_the_layout_and_runtime():
    model = load(ROOT / "deploy" / "kserve-torchserve.yaml")["spec"]["predictor"]["model"]
    assert model["runtime"] == "kserve-torchserve" and model["modelFormat"]["name"] == "pytorch"
    assert model["protocolVersion"] in ("v1", "v2")


def test_native_manifest_starts_the_cli_server_with_probes_it_serves():
    pytest.importorskip("kserve")
    from twolevel.serving.kserve_server import OPEN_PATHS

    (container,) = load(ROOT / "deploy" / "kserve-native.yaml")["spec"]["predictor"]["containers"]
    assert container["command"] == ["twolevel-cli", "kserve"]
    args = container["args"]
    port = int(args[args.index("--port") + 1])
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert container["ports"][0]["containerPort"] == port == container["readinessProbe"]["httpGet"]["port"]
    assert container["readinessProbe"]["httpGet"]["path"] in OPEN_PATHS
    assert any(e["name"] == "TWOLEVEL_TOKEN" and "secretKeyRef" in e.get("valueFrom", {}) for e in container["env"])
