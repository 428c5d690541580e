"""The Volt app's own integration: its Express route spawns the presign script with
`--component-id ID --expiration H` and answers its stdout parsed as JSON. `volt-assets presign`
in the script's place must give that route the README's answer, `componentId` a string.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from volt_assets.cli import main as cli
from volt_assets.cli.presign import Presigner
from volt_assets.cli.serve import create_app

PICTURE = b"\x89PNG\r\n\x1a\n" + b"route picture " * 50
VOLT_ASSETS = str(Path(sys.executable).parent / "volt-assets")

# The seed's route, word for word but for the command spawned (`volt-assets presign` in the
# place of `python scripts/python/week4/presigned_urls.py`), run with a stand-in for Express.
ROUTE_JS = r"""
const VOLT_ASSETS = process.argv[2];
const uploadRouter = { get: (path, handler) => { uploadRouter.handler = handler; } };

uploadRouter.get('/component-image-url/:componentId', async (req, res) => {
  const { componentId } = req.params;
  const { expirationHours = 24 } = req.query;

  try {
    const { spawn } = require('child_process');
    const pythonProcess = spawn(VOLT_ASSETS, [
      'presign',
      '--component-id', componentId,
      '--expiration', expirationHours
    ]);

    let result = '';
    pythonProcess.stdout.on('data', (data) => {
      result += data.toString();
    });

    pythonProcess.on('close', (code) => {
      if (code === 0) {
        const urlData = JSON.parse(result);
        res.json(urlData);
      } else {
        res.status(500).json({ error: 'Failed to generate presigned URL' });
      }
    });

  } catch (error) {
    res.status(500).json({ error: error.message });
  }
});

const req = JSON.parse(process.argv[3]);
const res = {
  statusCode: 200,
  status(code) { this.statusCode = code; return this; },
  json(body) { console.log(JSON.stringify({ status: this.statusCode, body })); },
};
uploadRouter.handler(req, res);
"""


@pytest.fixture
def picture(volt_env):
    """Component 42 has a picture (and a thumbnail); 43 has none."""
    put = volt_env.s3.put_object
    put(
        Bucket=volt_env.bucket,
        Key="images/components/42/fuse.png",
        Body=PICTURE,
        ContentType="image/png",
    )
    put(
        Bucket=volt_env.bucket,
        Key="images/components/42/thumb_fuse.png",
        Body=b"t",
        ContentType="image/png",
    )
    return volt_env


def call_route(tmp_path: Path, params: dict, query: dict) -> dict:
    script = tmp_path / "route.js"
    script.write_text(ROUTE_JS, encoding="utf-8")
    request = json.dumps({"params": params, "query": query})
    done = subprocess.run(
        ["node", str(script), VOLT_ASSETS, request],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize("query, hours", [({"expirationHours": "3"}, 3), ({}, 24)])
def test_the_apps_express_route_answers_with_volt_assets_presign(picture, tmp_path, query, hours):
    answer = call_route(tmp_path, {"componentId": "42"}, query)
    assert answer["status"] == 200
    body = answer["body"]
    assert body["success"] is True
    assert set(body["data"]) == {"componentId", "imageUrl", "expiresAt", "expiresInHours"}
    assert body["data"]["componentId"] == "42"
    assert body["data"]["expiresInHours"] == hours
    assert f"X-Amz-Expires={hours * 3600}" in body["data"]["imageUrl"]
    assert httpx.get(body["data"]["imageUrl"]).content == PICTURE


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_apps_route_answers_500_for_a_component_without_picture(picture, tmp_path):
    answer = call_route(tmp_path, {"componentId": "43"}, {})
    assert answer == {"status": 500, "body": {"error": "Failed to generate presigned URL"}}


def test_the_routes_argv_gets_the_json_alone_on_stdout_and_exit_0(picture, tmp_path):
    done = subprocess.run(
        [VOLT_ASSETS, "presign", "--component-id", "42", "--expiration", "5"],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("}\n") and done.stdout.count("\n") == 1
    answer = json.loads(done.stdout)
    assert (answer["success"], answer["data"]["componentId"], answer["data"]["expiresInHours"]) == (
        True,
        "42",
        5,
    )


@pytest.mark.parametrize(
    "argv, code, error",
    [
        (
            ["presign", "42", "--component-id", "7"],
            2,
            "give the component's id once: COMPONENT_ID or --component-id ID",
        ),
        (["presign"], 2, "give the component's id once: COMPONENT_ID or --component-id ID"),
        (["presign", "--component-id", "x1"], 2, "componentId must be a positive integer"),
        (
            ["presign", "--component-id", "42", "--expiration", "200"],
            2,
            "expirationHours must be a whole number from 1 to 168",
        ),
    ],
)
def test_presign_argument_errors(picture, capsys, argv, code, error):
    assert cli.main(argv) == code
    assert json.loads(capsys.readouterr().out) == {"success": False, "error": error}


def test_both_spellings_agree(picture, capsys):
    assert cli.main(["presign", "42", "--component-id", "42", "--hours", "2"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert (data["componentId"], data["expiresInHours"]) == ("42", 2)


def test_the_api_and_its_openapi_schema_say_component_id_is_a_string(picture):
    with TestClient(create_app("tok-9f2", Presigner.from_env())) as client:
        body = client.get(
            "/component-image-url/42", headers={"Authorization": "Bearer tok-9f2"}
        ).json()
        spec = client.get("/openapi.json").json()
    assert body["data"]["componentId"] == "42"
    ok = spec["paths"]["/component-image-url/{componentId}"]["get"]["responses"]["200"]
    ref = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    data_ref = spec["components"]["schemas"][ref]["properties"]["data"]["$ref"].rsplit("/", 1)[1]
    component_id = spec["components"]["schemas"][data_ref]["properties"]["componentId"]
    assert component_id["type"] == "string" and component_id["examples"] == ["123"]
