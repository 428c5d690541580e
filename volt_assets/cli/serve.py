"""`volt-assets serve [--host 127.0.0.1] [--port 8080]`: presigned picture URLs over HTTP for
the Volt web shop's API, with OpenAPI documentation at `/docs`.

`GET /component-image-url/{componentId}?expirationHours=H` with `Authorization: Bearer
$VOLT_API_TOKEN` answers the same JSON as `volt-assets presign`. The token is compared in
constant time and checked before anything else, so a caller without it learns nothing (not
even whether an id is valid). The token is accepted in that header only: a request carrying
it in the query string (`?token=`, `?access_token=`, `?api_key=`, ... or any parameter whose
value is the token) is answered 400, saying to use the header. It never reaches a log:
uvicorn's access log records the method, path and query only, with the value of every such
parameter (and the token wherever it appears) written as `[redacted]`, and the URLs answered
are not logged either (each is a credential for its picture until it expires). Without
VOLT_API_TOKEN the command refuses to start.
"""

from __future__ import annotations

import argparse
import copy
import hmac
import logging
import os
import sys
from urllib.parse import quote, unquote_plus

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from volt_assets.cli.presign import (
    DEFAULT_HOURS,
    MAX_HOURS,
    Presigner,
    PresignError,
    error_answer,
    parse_component_id,
    parse_hours,
)

TOKEN_VARIABLE = "VOLT_API_TOKEN"
# query parameters a client may put a credential in (compared lower-case, `-` as `_`)
CREDENTIAL_PARAMS = frozenset(
    {"token", "access_token", "api_token", "apitoken", "api_key", "apikey", "key", "auth",
     "authorization", "bearer", "volt_api_token"}
)  # fmt: skip
REDACTED = "[redacted]"
QUERY_TOKEN_ERROR = (
    "send the token in the `Authorization: Bearer <token>` header, never in the query string "
    "(URLs end up in logs and histories)"
)


def is_credential(name: str, value: str, token: str) -> bool:
    """Whether a query parameter carries (or is named for) a credential."""
    return name.lower().replace("-", "_") in CREDENTIAL_PARAMS or bool(token and value == token)


def redacted_path(path: str, token: str) -> str:
    """A request's path and query as the access log may show it: credential parameters'
    values and the token itself, wherever it appears, replaced by REDACTED."""
    where, mark, query = path.partition("?")
    if mark:
        parts = []
        for part in query.split("&"):
            name, equals, value = part.partition("=")
            if is_credential(unquote_plus(name), unquote_plus(value), token):
                part = f"{name}{equals or '='}{REDACTED}"
            parts.append(part)
        path = f"{where}?{'&'.join(parts)}"
    for form in {token, quote(token, safe=""), quote(token)} if token else ():
        path = path.replace(form, REDACTED)
    return path


class RedactTokens(logging.Filter):
    """On uvicorn's access logger: the logged path goes through `redacted_path`."""

    def __init__(self, token: str = ""):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redacted_path(args[2], self.token), *args[3:])
        return True


def log_config(token: str) -> dict:
    """uvicorn's default logging, its access log through `RedactTokens`."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"redact_tokens": {"()": RedactTokens, "token": token}}
    config["handlers"]["access"]["filters"] = ["redact_tokens"]
    return config


class ImageUrl(BaseModel):
    componentId: str = Field(
        description='The component\'s id as a string, e.g. "123".', examples=["123"]
    )
    imageUrl: str
    expiresAt: str
    expiresInHours: int


class ImageUrlAnswer(BaseModel):
    success: bool = True
    data: ImageUrl


class ErrorAnswer(BaseModel):
    success: bool = False
    error: str


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_answer(message), headers=headers)


def create_app(token: str, presigner: Presigner | None = None) -> FastAPI:
    """The API answering with `presigner` (default: the lake bucket from the environment) to
    callers presenting `token`."""
    if not token:
        raise ValueError("an API token is required")
    expected = token.encode("utf-8")
    presigner = presigner or Presigner.from_env()
    bearer = HTTPBearer(auto_error=False, description=f"The value of {TOKEN_VARIABLE}.")
    app = FastAPI(
        title="Volt component pictures",
        description="Presigned, time-limited URLs of component pictures in the Volt data lake.",
        version="1",
    )

    @app.middleware("http")
    async def no_store(request, call_next):
        # a credential in the query string is refused before anything reads it
        if any(is_credential(n, v, token) for n, v in request.query_params.multi_items()):
            response = _error(400, QUERY_TOKEN_ERROR)
        else:
            response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"  # answers carry credentials
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        return _error(400, "invalid request")

    def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials.encode("utf-8") if credentials else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    @app.get(
        "/component-image-url/{componentId}",
        response_model=ImageUrlAnswer,
        dependencies=[Depends(require_token)],
        responses={status: {"model": ErrorAnswer} for status in (400, 401, 404, 503)},
        summary="A presigned URL of a component's picture",
    )
    def component_image_url(
        componentId: str,
        expirationHours: str | None = Query(
            None,
            description=f"How long the URL is valid, 1 to {MAX_HOURS} hours (default {DEFAULT_HOURS}).",
        ),
    ):
        # Both parameters are parsed here, not by FastAPI, so a bad one is a 400 in our format.
        try:
            return presigner.answer(parse_component_id(componentId), parse_hours(expirationHours))
        except PresignError as exc:
            return _error(exc.status, str(exc))

    return app


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.epilog = (
        f"Needs {TOKEN_VARIABLE}: callers send `Authorization: Bearer <token>`. OpenAPI at /docs."
    )


def run(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_VARIABLE, "")
    if not token.strip():
        print(
            f"volt-assets serve: {TOKEN_VARIABLE} is not set: refusing to serve picture URLs without a "
            "bearer token (set it in the environment or .env)",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    uvicorn.run(
        create_app(token),
        host=args.host,
        port=args.port,
        log_level="info",
        log_config=log_config(token),
        server_header=False,
    )
    return 0
