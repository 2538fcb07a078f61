"""Every error the API answers with, mapped here and nowhere else.

The envelope is always `{"error": {"code", "message", "field"?, ...}}`:
- a `MeterbillError` answers with its own status, code, message, field and details (Stripe's
  request id among them when Stripe failed);
- request validation answers 422 naming the first bad field (all of them under `errors`),
  except a body that is not JSON at all, which is 400 `invalid_json`;
- Starlette's own HTTP errors (unknown route, wrong method, missing token) keep their status;
- anything else is a 500 that shows an incident id and nothing of the internals, and logs the
  traceback under that id.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from meterbill.domain.errors import MeterbillError

log = logging.getLogger("meterbill.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_body(
    code: str, message: str, field: str | None = None, **extra: Any
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    error.update({k: v for k, v in extra.items() if v is not None})
    return {"error": error}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MeterbillError, _meterbill_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _meterbill_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MeterbillError)
    details = dict(getattr(exc, "details", None) or {})
    # The envelope's own keys win over a detail that happens to share a name.
    for key in ("code", "message", "field"):
        details.pop(key, None)
    status = int(exc.status)
    if status >= 500:
        log.warning("%s %s failed: %s (%s) %s", request.method, request.url.path, exc.code,
                    exc.message, details)
    return JSONResponse(error_body(exc.code, exc.message, exc.field, **details), status)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_describe(error) for error in exc.errors()]
    invalid_json = next((p for p in problems if p["type"] == "json_invalid"), None)
    if invalid_json is not None:
        return JSONResponse(error_body("invalid_json", invalid_json["message"]), 400)
    first: dict[str, Any] = problems[0] if problems else {"field": None,
                                                          "message": "Invalid request."}
    listing = [{"field": p["field"], "message": p["message"]} for p in problems]
    body = error_body("invalid_request", first["message"], first["field"], errors=listing)
    return JSONResponse(body, 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 401:
        return unauthorized_response(str(exc.detail))
    code = _HTTP_CODES.get(status, "http_error")
    if status == 404 and exc.detail == "Not Found":
        message = f"No such route: {request.method} {request.url.path}"
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return JSONResponse(error_body(code, message), status, headers=exc.headers)


def unauthorized_response(message: str) -> JSONResponse:
    """The 401 of a missing or wrong API token (also sent by auth.TokenFirst, before routing)."""
    return JSONResponse(error_body(_HTTP_CODES[401], message), 401,
                        headers={"WWW-Authenticate": "Bearer"})


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    incident = "inc_" + secrets.token_hex(6)
    log.error("unexpected error %s on %s %s", incident, request.method, request.url.path,
              exc_info=exc)
    message = f"Internal server error (incident {incident}); the details are in the server log."
    return JSONResponse(error_body("internal_error", message, incident_id=incident), 500)


def _describe(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic error as `{type, field, message}` with a sentence a person can act on."""
    kind = str(error.get("type", ""))
    loc: Sequence[Any] = error.get("loc", ())
    where = loc[0] if loc else "body"
    path = [str(part) for part in loc[1:]]
    field = ".".join(path) or None
    ctx = error.get("ctx") or {}
    if isinstance(ctx.get("field"), str):
        # A rule over several fields (a model validator) names the field it is about; its
        # message is written for people already.
        return {"type": kind, "field": ctx["field"], "message": str(error.get("msg"))}
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        at = f" at character {position}" if position is not None else ""
        return {"type": kind, "field": None,
                "message": f"The request body is not valid JSON: {reason}{at}."}
    if kind == "missing":
        if field is None:
            message = "A JSON request body is required."
        else:
            message = f"{field} is required."
    elif kind == "model_attributes_type" and field is None:
        message = "The request body must be a JSON object."
    elif kind == "extra_forbidden":
        message = f"{field} is not a known field."
    elif kind == "string_pattern_mismatch":
        message = f"{field} has an invalid format: {_pattern_hint(field)}"
    else:
        message = f"{field or where}: {error.get('msg', 'is invalid')}."
    return {"type": kind, "field": field, "message": message}


def _pattern_hint(field: str | None) -> str:
    leaf = (field or "").rsplit(".", 1)[-1]
    hints = {
        "tenant_id": "1-128 letters, digits and _ . : @ - (starting with a letter or digit).",
        "email": "expected an address like name@example.com.",
        "customer_id": "expected a Stripe customer id (cus_...).",
        "payment_method_id": "expected a Stripe payment method id (pm_...).",
        "subscription_id": "expected a Stripe subscription id (sub_...).",
    }
    return hints.get(leaf, "it does not match the expected pattern.")
