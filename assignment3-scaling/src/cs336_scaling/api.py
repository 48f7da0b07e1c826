"""The HTTP face of the training service, shaped like the course's API (2025).

``GET /loss`` answers ``{"loss", "total_flops_used"}``; ``GET /total_flops_used`` a bare float;
``GET /previous_runs`` ``{"previous_runs": [...]}``. Every error answers ``{"message": ...}``:
404 for a value outside the allowed ranges (as the course did), 422 for an unknown key, a key with no
queries yet on ``/total_flops_used``, or a missing/mistyped parameter, 403 when the key's budget cannot
pay for the run, 500 when the training run itself failed.

The API key travels in the query string (``api_key=``, the course's interface) or in an ``X-API-Key`` header.
Query strings end up in access logs, so while the app runs, uvicorn's access log shows ``api_key=[redacted]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cs336_scaling.run_spec import InvalidRunSpec, validated_spec
from cs336_scaling.service import RunFailed, TrainingService
from cs336_scaling.store import BudgetExceeded, UnknownApiKey

ACCESS_LOGGER = "uvicorn.access"
_KEY_IN_QUERY = re.compile(r"([?&]api(?:_|%5[fF])key=)[^&#\s]*")


class RedactApiKeys(logging.Filter):
    """Replaces the value of ``api_key=`` in a log record's arguments (uvicorn logs the path with its query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
        return True


def redact(text: str) -> str:
    return _KEY_IN_QUERY.sub(r"\1[redacted]", text)


class ApiKeyParameterError(ValueError):
    """No API key in the request, or two different ones."""


def request_api_key(
    api_key: Annotated[str | None, Query()] = None, x_api_key: Annotated[str | None, Header()] = None
) -> str:
    """The key from the query string or the ``X-API-Key`` header (both: they must agree)."""
    if api_key is not None and x_api_key is not None and api_key != x_api_key:
        raise ApiKeyParameterError("the api_key parameter and the X-API-Key header differ")
    key = api_key if api_key is not None else x_api_key
    if key is None:
        raise ApiKeyParameterError("missing required parameter: api_key (or an X-API-Key header)")
    return key


ApiKey = Annotated[str, Depends(request_api_key)]


def _message(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"message": message})


@asynccontextmanager
async def _redacted_access_log(app: FastAPI) -> AsyncIterator[None]:
    redactor = RedactApiKeys()
    logging.getLogger(ACCESS_LOGGER).addFilter(redactor)
    try:
        yield
    finally:
        logging.getLogger(ACCESS_LOGGER).removeFilter(redactor)


def create_app(service: TrainingService) -> FastAPI:
    app = FastAPI(
        title="CS336 training API",
        description="Final loss of a real training run for a FLOPs budget.",
        lifespan=_redacted_access_log,
    )

    @app.exception_handler(ApiKeyParameterError)
    async def no_key(request: Request, err: ApiKeyParameterError) -> JSONResponse:
        return _message(422, str(err))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        name = first["loc"][-1]
        if first["type"] == "missing":
            return _message(422, f"missing required parameter: {name}")
        return _message(422, f"{name}: {first['msg']}, got {first.get('input')!r}")

    @app.exception_handler(InvalidRunSpec)
    async def out_of_range(request: Request, err: InvalidRunSpec) -> JSONResponse:
        return _message(404, str(err))

    @app.exception_handler(UnknownApiKey)
    async def unknown_key(request: Request, err: UnknownApiKey) -> JSONResponse:
        return _message(422, err.message)

    @app.exception_handler(BudgetExceeded)
    async def over_budget(request: Request, err: BudgetExceeded) -> JSONResponse:
        return _message(403, err.message)

    @app.exception_handler(RunFailed)
    async def run_failed(request: Request, err: RunFailed) -> JSONResponse:
        return _message(500, str(err))

    @app.get("/loss")
    def loss(
        d_model: int,
        num_layers: int,
        num_heads: int,
        batch_size: int,
        learning_rate: float,
        train_flops: float,
        api_key: ApiKey,
    ) -> dict:
        """Train (or look up) the configuration and answer its final loss; blocks until the run is done."""
        spec = validated_spec(d_model, num_layers, num_heads, batch_size, learning_rate, train_flops)
        answer = service.loss(api_key, spec)
        return {"loss": answer.loss, "total_flops_used": answer.total_flops_used}

    @app.get("/total_flops_used")
    def total_flops_used(api_key: ApiKey):
        if service.store.query_count(api_key) == 0:
            return _message(422, f"No queries found for API key: {api_key}")
        return service.store.total_flops_used(api_key)

    @app.get("/previous_runs")
    def previous_runs(api_key: ApiKey) -> dict:
        return {"previous_runs": service.store.previous_runs(api_key)}

    return app
