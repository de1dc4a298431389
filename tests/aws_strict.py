"""Strict validation of every AWS request a test makes, against the botocore service models.

The validator itself is `highlights/aws/validation.py` (`request_violations`, `check_request`),
which `highlights aws-plan` uses too. `strict_aws()` applies it to every request any
boto3/botocore or aiobotocore client makes while it is active (the Airflow triggers use
aiobotocore), and records them:

    with strict_aws() as log:
        ...                                   # a violation raises StrictValidationError
    log.calls("s3", "PutObject")              # what was sent

The check runs on the parameters as the client is about to serialize them, after botocore's own
parameter handlers: S3's `CopySource` dict has become the model's string, SSE-C keys their
base64 and MD5 members, `ChecksumMode` the value botocore sets. Request checksums and
`Content-MD5` are computed later as headers, not members. Presigned URLs go through the same
step, so `generate_presigned_url` is checked too. A violation a caller swallows still fails:
the context raises at exit for every violation it recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from highlights.aws.validation import (  # noqa: F401 (the tests import them from here)
    StrictValidationError,
    Violation,
    _violations,
    check_request,
    request_violations,
    service_model,
)

# --- every request a test makes -------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    service: str  # botocore service name: "s3", "mediaconvert", ...
    operation: str  # API name: "PutObject", "CreateJob", ...
    params: dict[str, Any]  # as serialized, after botocore's parameter handlers
    presigned: bool = False  # made by generate_presigned_url/post, not sent


@dataclass
class RequestLog:
    """Requests seen while `strict_aws` is active, and the violations among them."""

    requests: list[Request] = field(default_factory=list)
    failures: list[StrictValidationError] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def calls(self, service: str, operation: str | None = None) -> list[Request]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.service == service and (operation is None or r.operation == operation)
            ]

    def record(self, request: Request) -> None:
        violations = _violations(
            service_model(request.service).operation_model(request.operation), request.params
        )
        with self.lock:
            self.requests.append(request)
            if violations:
                failure = StrictValidationError(
                    f"{request.service} {request.operation}", violations
                )
                self.failures.append(failure)
                raise failure


def _observe(log: RequestLog, client: Any, params: Any, operation_model: Any, context: Any) -> None:
    request = Request(
        service=client.meta.service_model.service_name,
        operation=operation_model.name,
        params=dict(params),
        presigned=bool((context or {}).get("is_presign_request")),
    )
    log.record(request)


@contextmanager
def strict_aws(*, fail_at_exit: bool = True) -> Iterator[RequestLog]:
    """Validate and record every AWS request made while active (botocore and aiobotocore).

    Each request is checked just before it is serialized; a violation raises
    `StrictValidationError` in the caller. With `fail_at_exit`, leaving the block also raises
    if any request broke its model, so a violation swallowed by the code under test still fails.
    """
    from botocore.client import BaseClient

    log = RequestLog()
    sync_emit = BaseClient._emit_api_params

    def emit(self, api_params, operation_model, context):
        params = sync_emit(self, api_params, operation_model, context)
        _observe(log, self, params, operation_model, context)
        return params

    patches: list[tuple[type, Any, Any]] = [(BaseClient, sync_emit, emit)]
    try:
        from aiobotocore.client import AioBaseClient
    except ImportError:  # aiobotocore is an extra of the Airflow provider
        AioBaseClient = None
    if AioBaseClient is not None:
        async_emit = AioBaseClient._emit_api_params

        async def emit_async(self, api_params, operation_model, context):
            params = await async_emit(self, api_params, operation_model, context)
            _observe(log, self, params, operation_model, context)
            return params

        patches.append((AioBaseClient, async_emit, emit_async))
    for cls, _, patched in patches:
        cls._emit_api_params = patched
    try:
        yield log
    finally:
        for cls, original, _ in patches:
            cls._emit_api_params = original
    if fail_at_exit and log.failures:
        every = [
            Violation(f"{failure.what}: {v.path}" if v.path else failure.what, v.problem)
            for failure in log.failures
            for v in failure.violations
        ]
        raise StrictValidationError(f"{len(log.failures)} request(s) made in the block", every)
