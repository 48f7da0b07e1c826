"""Clients of the training API: over HTTP (``httpx``), or in-process on a :class:`TrainingService`.

Both expose the same three calls, so the study runs against a remote server or, on a machine without
FastAPI/uvicorn, directly against local workers.
"""

from __future__ import annotations

from typing import Protocol

from cs336_scaling.run_spec import InvalidRunSpec, RunSpec, validated_spec
from cs336_scaling.service import RunFailed, TrainingService
from cs336_scaling.store import BudgetExceeded, UnknownApiKey


class ApiError(RuntimeError):
    """An error answer of the API: its status code and ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class TrainingApi(Protocol):
    def loss(self, spec: RunSpec) -> float: ...

    def total_flops_used(self) -> float: ...

    def previous_runs(self) -> list[dict]: ...


class HttpTrainingApi:
    """The course's API (or our server) at ``base_url``; a run can take a while, hence the long timeout."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 3600.0):
        import httpx

        self.api_key = api_key
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s)

    def _get(self, path: str, **params):
        response = self._http.get(path, params={**params, "api_key": self.api_key})
        body = response.json()
        if response.status_code != 200:
            raise ApiError(
                response.status_code, body.get("message", str(body)) if isinstance(body, dict) else str(body)
            )
        return body

    def loss(self, spec: RunSpec) -> float:
        params = {
            "d_model": spec.d_model,
            "num_layers": spec.num_layers,
            "num_heads": spec.num_heads,
            "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate,
            "train_flops": int(spec.train_flops),
        }
        return float(self._get("/loss", **params)["loss"])

    def total_flops_used(self) -> float:
        """Spend so far; the course's server answers 422 for a key with no queries, which means nothing spent."""
        try:
            return float(self._get("/total_flops_used"))
        except ApiError as err:
            if err.status == 422 and err.message.startswith("No queries"):
                return 0.0
            raise

    def previous_runs(self) -> list[dict]:
        return self._get("/previous_runs")["previous_runs"]

    def close(self) -> None:
        self._http.close()


class InProcessTrainingApi:
    """The same calls straight on a :class:`TrainingService`, with the API's validation and error statuses."""

    def __init__(self, service: TrainingService, api_key: str):
        self.service = service
        self.api_key = api_key

    def loss(self, spec: RunSpec) -> float:
        try:
            spec = validated_spec(**vars(spec))
            return self.service.loss(self.api_key, spec).loss
        except InvalidRunSpec as err:
            raise ApiError(404, str(err)) from err
        except UnknownApiKey as err:
            raise ApiError(422, err.message) from err
        except BudgetExceeded as err:
            raise ApiError(403, err.message) from err
        except RunFailed as err:
            raise ApiError(500, str(err)) from err

    def total_flops_used(self) -> float:
        return self.service.store.total_flops_used(self.api_key)

    def previous_runs(self) -> list[dict]:
        return self.service.store.previous_runs(self.api_key)
