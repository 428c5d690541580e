"""`volt-assets presign` and `volt-assets serve` on the real S3 endpoint.

What the endpoint enforces: moto 5 serves a presigned GET whatever its signature (it checks
signatures only of `Authorization` headers, and only when its IAM emulation is switched on)
and ignores expiry. So the signature is verified here independently, with the SigV4 query
algorithm AWS documents: the URL's signature is the one S3 computes from the secret key, and
for a URL with another expiry or another key it is not (real S3 answers such a URL 403
SignatureDoesNotMatch; no local S3 endpoint here checks presigned signatures to ask).
"""

import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from volt_assets.cli import main as cli
from volt_assets.cli.presign import Presigner
from volt_assets.cli.serve import create_app
from volt_assets.devstack import stack

TOKEN = "t0ken-for-tests-5b1f0c"
PICTURE = b"\x89PNG\r\n\x1a\n" + b"picture bytes " * 100  # stored as-is: presign never reads it


@pytest.fixture
def pictures(volt_env):
    """Component 42 has a picture (and its thumbnail); 43 only a thumbnail."""
    put = volt_env.s3.put_object
    put(
        Bucket=volt_env.bucket,
        Key="images/components/42/relay.png",
        Body=PICTURE,
        ContentType="image/png",
    )
    put(
        Bucket=volt_env.bucket,
        Key="images/components/42/thumb_relay.png",
        Body=b"thumb",
        ContentType="image/png",
    )
    put(
        Bucket=volt_env.bucket,
        Key="images/components/43/thumb_x.png",
        Body=b"thumb",
        ContentType="image/png",
    )
    return volt_env


def sigv4_query_signature(url: str, secret: str) -> str:
    """The signature S3 expects for a presigned GET `url` (AWS SigV4, query-string auth)."""
    parts = urlsplit(url)
    params = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"
    ]
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params))
    headers = dict(params)["X-Amz-SignedHeaders"]
    assert headers == "host"
    canonical = "\n".join(
        ["GET", parts.path, query, f"host:{parts.netloc}\n", headers, "UNSIGNED-PAYLOAD"]
    )
    amz_date = dict(params)["X-Amz-Date"]
    _, date, region, service, _ = dict(params)["X-Amz-Credential"].split("/")
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def query(url: str) -> dict:
    return dict(parse_qsl(urlsplit(url).query))


def test_presign_prints_a_sigv4_url_that_fetches_the_exact_bytes(pictures, capsys):
    assert cli.main(["presign", "42", "--hours", "2"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["success"] is True
    data = answer["data"]
    assert (data["componentId"], data["expiresInHours"]) == ("42", 2)
    expires = dt.datetime.fromisoformat(data["expiresAt"].replace("Z", "+00:00"))
    assert abs(expires - dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)) < dt.timedelta(minutes=1)

    url = data["imageUrl"]
    assert url.startswith(
        os.environ["AWS_ENDPOINT_URL"] + f"/{pictures.bucket}/images/components/42/relay.png?"
    )
    params = query(url)
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Expires"] == "7200"
    assert params["X-Amz-Credential"].endswith(
        f"/{os.environ['AWS_DEFAULT_REGION']}/s3/aws4_request"
    )

    got = httpx.get(url)
    assert got.status_code == 200 and got.content == PICTURE
    assert got.headers["content-type"] == "image/png"

    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert params["X-Amz-Signature"] == sigv4_query_signature(url, secret)
    # What a user could tamper with is signed: S3 recomputes the signature over the URL it gets
    # and compares it with the one the URL carries; for these they differ (S3: 403).
    longer = url.replace("X-Amz-Expires=7200", "X-Amz-Expires=604800")
    other_key = url.replace("/42/relay.png", "/42/thumb_relay.png")
    for tampered in (longer, other_key):
        assert tampered != url
        assert query(tampered)["X-Amz-Signature"] != sigv4_query_signature(tampered, secret), (
            tampered
        )


@pytest.mark.parametrize(
    "argv, code, error",
    [
        (["presign", "43"], 1, "component 43 has no picture"),
        (["presign", "0"], 2, "componentId must be a positive integer"),
        (["presign", "4x"], 2, "componentId must be a positive integer"),
        (
            ["presign", "42", "--hours", "169"],
            2,
            "expirationHours must be a whole number from 1 to 168",
        ),
        (
            ["presign", "42", "--hours", "0"],
            2,
            "expirationHours must be a whole number from 1 to 168",
        ),
    ],
)
def test_presign_errors(pictures, capsys, argv, code, error):
    assert cli.main(argv) == code
    assert json.loads(capsys.readouterr().out) == {"success": False, "error": error}


@pytest.fixture
def client(pictures):
    with TestClient(create_app(TOKEN, Presigner.from_env())) as c:
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    "path, headers, status",
    [
        ("/component-image-url/42", AUTH, 200),
        ("/component-image-url/42?expirationHours=1", AUTH, 200),
        ("/component-image-url/42?expirationHours=168", AUTH, 200),
        ("/component-image-url/42", {}, 401),
        ("/component-image-url/42", {"Authorization": "Bearer wrong"}, 401),
        ("/component-image-url/42", {"Authorization": f"Bearer {TOKEN}x"}, 401),
        ("/component-image-url/42", {"Authorization": f"Basic {TOKEN}"}, 401),
        ("/component-image-url/abc", {}, 401),  # the token first: nothing is told without it
        ("/component-image-url/abc", AUTH, 400),
        ("/component-image-url/0", AUTH, 400),
        ("/component-image-url/-3", AUTH, 400),
        ("/component-image-url/1.5", AUTH, 400),
        ("/component-image-url/42?expirationHours=0", AUTH, 400),
        ("/component-image-url/42?expirationHours=169", AUTH, 400),
        ("/component-image-url/42?expirationHours=2.5", AUTH, 400),
        ("/component-image-url/42?expirationHours=", AUTH, 400),
        ("/component-image-url/43", AUTH, 404),  # only a thumbnail
        ("/component-image-url/999", AUTH, 404),
    ],
)
def test_api_statuses(client, path, headers, status):
    response = client.get(path, headers=headers)
    assert response.status_code == status
    body = response.json()
    assert response.headers["cache-control"] == "no-store"
    if status == 200:
        assert body["success"] is True
        assert set(body["data"]) == {"componentId", "imageUrl", "expiresAt", "expiresInHours"}
        assert body["data"]["componentId"] == "42"
        hours = int(dict(parse_qsl(urlsplit(path).query)).get("expirationHours", 24))
        assert body["data"]["expiresInHours"] == hours
        assert query(body["data"]["imageUrl"])["X-Amz-Expires"] == str(hours * 3600)
    else:
        assert body == {"success": False, "error": body["error"]} and body["error"]
        assert TOKEN not in body["error"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_openapi_documents_the_endpoint(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/component-image-url/{componentId}"]["get"]
    assert {"200", "400", "401", "404"} <= set(operation["responses"])
    assert any(p["name"] == "expirationHours" for p in operation["parameters"])
    assert client.get("/nowhere").json() == {"success": False, "error": "Not Found"}


def wait_for_port(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {process.stdout.read()}")
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("serve did not start")


def test_serve_over_real_http_never_logs_the_token(pictures, tmp_path):
    port = stack.free_port()
    env = {**os.environ, "VOLT_API_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "volt_assets.cli.main", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_port(base, process)
        answer = httpx.get(f"{base}/component-image-url/42?expirationHours=3", headers=AUTH).json()
        assert answer["data"]["expiresInHours"] == 3
        assert httpx.get(answer["data"]["imageUrl"]).content == PICTURE
        assert (
            httpx.get(
                f"{base}/component-image-url/42", headers={"Authorization": "Bearer nope"}
            ).status_code
            == 401
        )
        # a client putting the token in the query string is told to use the header
        for leaked in (f"token={TOKEN}", f"expirationHours=2&access_token={TOKEN}", f"x={TOKEN}"):
            refused = httpx.get(f"{base}/component-image-url/42?{leaked}")
            assert refused.status_code == 400
            assert "Authorization: Bearer" in refused.json()["error"]
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert "GET /component-image-url/42?expirationHours=3" in output  # the access log is on
    assert 'GET /component-image-url/42?token=[redacted] HTTP/1.1" 400' in output
    assert "?expirationHours=2&access_token=[redacted]" in output
    assert "?x=[redacted]" in output
    assert TOKEN not in output and "X-Amz-Signature" not in output


def test_serve_refuses_to_start_without_a_token(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("VOLT_API_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    assert cli.main(["serve", "--port", str(stack.free_port())]) == 2
    assert "VOLT_API_TOKEN is not set" in capsys.readouterr().err
