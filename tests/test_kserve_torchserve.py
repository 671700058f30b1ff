"""KServe's TorchServe runtime: `twolevel-cli package --kserve DIR` writes the storage layout, and
TorchServe starts on it the way KServe's ``kserve-torchserve`` container does::

    torchserve --start --model-store=<storage>/model-store --ts-config=<storage>/config/config.properties

with ``TS_SERVICE_ENVELOPE`` set as KServe sets it. The only change to the written config is the
one a pod does not need: the addresses are rewritten to free loopback ports (the pod binds
0.0.0.0:8085). Then the shared request suite calls the v1 and v2 predict and explain routes.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("ts", reason="torchserve is not installed")
pytest.importorskip("yaml")

from kserve_suite import HANDLER_SECTION, expected_results, run_suite, server_process  # noqa: E402
from twolevel.serving.kserve_storage import read_properties, write_properties  # noqa: E402
from twolevel.serving.torchserve import free_port, java_available  # noqa: E402
from twolevel_cli.main import cli  # noqa: E402

pytestmark = [pytest.mark.server, pytest.mark.slow]

TEST_MODEL_CONFIG = """\
minWorkers: 1
maxWorkers: 1
batchSize: 4
maxBatchDelay: 20
responseTimeout: 300
""" + HANDLER_SECTION


def test_package_kserve_writes_the_layout(tmp_path, tiny_checkpoint):
    config = tmp_path / "model-config.yaml"
    config.write_text(TEST_MODEL_CONFIG)
    result = CliRunner().invoke(cli, ["package", "--model", str(tiny_checkpoint), "--config", str(config),
                                      "--kserve", str(tmp_path / "storage")])
    assert result.exit_code == 0, result.output
    props = read_properties(tmp_path / "storage" / "config" / "config.properties")
    assert (tmp_path / "storage" / "model-store" / "twolevel.mar").is_file()
    assert props["model_store"] == "/mnt/models/model-store"
    assert props["inference_address"] == "http://0.0.0.0:8085" == props["management_address"]
    assert props["enable_envvars_config"] == "false" and props["disable_token_authorization"] == "true"
    snapshot = json.loads(props["model_snapshot"])
    (version, entry), = snapshot["models"]["twolevel"].items()
    assert version == "tiny-test" and entry["marName"] == "twolevel.mar"
    assert (entry["batchSize"], entry["maxBatchDelay"], entry["responseTimeout"]) == (4, 20, 300)


@pytest.fixture(scope="module")
def kserve_torchserve(tmp_path_factory, tiny_checkpoint):
    if not java_available():
        pytest.skip("java is not installed: TorchServe's frontend needs Java 11+")
    root = tmp_path_factory.mktemp("kserve-torchserve")
    config = root / "model-config.yaml"
    config.write_text(TEST_MODEL_CONFIG)
    storage = root / "mnt-models"
    result = CliRunner().invoke(cli, ["package", "--model", str(tiny_checkpoint), "--config", str(config),
                                      "--kserve", str(storage)])
    assert result.exit_code == 0, result.output
    props = read_properties(storage / "config" / "config.properties")
    port, metrics = free_port(), free_port()
    props.update({"inference_address": f"http://127.0.0.1:{port}", "management_address": f"http://127.0.0.1:{port}",
                  "metrics_address": f"http://127.0.0.1:{metrics}", "grpc_inference_address": "127.0.0.1",
                  "grpc_management_address": "127.0.0.1", "grpc_inference_port": str(free_port()),
                  "grpc_management_port": str(free_port())})
    write_properties(storage / "config" / "config.properties", props, header="loopback ports for the test")
    run = root / "run"
    (run / "tmp").mkdir(parents=True)
    env = dict(os.environ, TMPDIR=str(run / "tmp"), LOG_LOCATION=str(run / "logs"), METRICS_LOCATION=str(run / "logs"),
               TS_SERVICE_ENVELOPE="kserve", PROTOCOL_VERSION="v1", OMP_NUM_THREADS="1", TWOLEVEL_THREADS="1")
    env.pop("TS_CONFIG_FILE", None)
    args = ["--start", "--foreground", f"--model-store={storage / 'model-store'}",
            f"--ts-config={storage / 'config' / 'config.properties'}"]
    cmd = [sys.executable, "-c", "import sys; from ts.model_server import start; sys.exit(start())", *args]
    base = f"http://127.0.0.1:{port}"
    # Ready when the model's workers are (TorchServe's describe-model route; management shares the port).
    with server_process(cmd, run, env, run / "console.log", f"{base}/models/twolevel",
                        lambda desc: all(w["status"] == "READY" for w in desc[0]["workers"])):
        yield base


def test_v1_and_v2_predict_and_explain_on_the_kserve_layout(kserve_torchserve, tiny_model, example_clip):
    audio = Path(example_clip).read_bytes()
    run_suite(kserve_torchserve, audio, expected_results(tiny_model, audio))
