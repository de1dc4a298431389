"""The inference HTTP app the SageMaker endpoint runs: payload formats, validation, prediction.

Wire format (one definition, used by the server and by `processing/score_windows.py`):

Request: a batch of windows, each `steps` feature vectors of `feature_dim` values, as
- `application/json`: `{"instances": [[[...], ...], ...]}` or the bare nested list (W, T, D);
- `text/csv`: one window per row, no header, the T*D values frame after frame
  (frame 0 values 0..D-1, then frame 1, ...), i.e. the window array flattened in C order;
- `application/x-npy`: one `.npy` array (W, T, D) of a numeric dtype (no pickles).
Response (`application/json`):
`{"classes": [...], "probabilities": [[...], ...], "decisions": {...}}`, one row of probabilities
per window; `decisions` are the model's calibrated decision settings
(class -> `SegmentConfig` fields, the manifest's `decisions.classes`), so a caller scoring through
the endpoint decides exactly as `highlights detect` does with the model on disk.
Feature recipe: a caller says which recipe (`highlights.recipe`) made its features with
`feature-recipe=<digest>` in SageMaker's CustomAttributes (the `X-Amzn-SageMaker-Custom-Attributes`
header, forwarded verbatim to the container). Windows of another recipe than the model's are
refused with 400; `GET /ping` answers with the model's recipe. A request that does not say is
answered: only the caller can know where its numbers came from.

Bad payloads get 400 with `{"error": "..."}`; an unsupported content type gets 415. Every
other error (an unknown path, a wrong method, a failure inside the model) is answered in JSON
too, never with an HTML page. Nothing is allocated from what a body merely declares: an .npy
header's shape must match the bytes that follow it, and JSON nested deeper than a window batch
can be is refused.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from highlights.errors import InputError
from highlights.recipe import FeatureRecipe
from highlights.windows import Predictor

if TYPE_CHECKING:
    from highlights.model import SequenceModel

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
CONTENT_TYPES = (JSON, CSV, NPY)
DEFAULT_MAX_BYTES = 6 * 1024 * 1024  # SageMaker's own limit for a real-time InvokeEndpoint payload
DEFAULT_MODEL_DIR = Path("/opt/ml/model")
DEFAULT_PORT = 8080
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
RECIPE_ATTRIBUTE = "feature-recipe"

log = logging.getLogger(__name__)


class PayloadError(InputError):
    """A request body that is malformed, the wrong shape or too large."""


class UnsupportedContentType(PayloadError):
    """A request in a format the server does not read."""


@dataclass(frozen=True)
class WindowShape:
    """The (steps, feature_dim) every window in a request must have."""

    steps: int
    feature_dim: int

    def describe(self) -> str:
        return f"(windows, {self.steps}, {self.feature_dim})"


def media_type(content_type: str | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def accepts_json(accept: str) -> bool:
    """Whether an Accept header (possibly a list, possibly absent) allows a JSON answer."""
    kinds = [media_type(part) for part in accept.split(",")]
    return not accept.strip() or any(kind in ("*/*", "application/*", JSON) for kind in kinds)


def parse_windows(body: bytes, content_type: str | None, shape: WindowShape) -> np.ndarray:
    """Decode a request body into a float32 (W, T, D) array, or raise PayloadError."""
    kind = media_type(content_type)
    readers: dict[str, Callable[[bytes, WindowShape], np.ndarray]] = {
        JSON: _read_json,
        CSV: _read_csv,
        NPY: _read_npy,
    }
    if kind not in readers:
        raise UnsupportedContentType(
            f"content type {content_type!r} is not supported; use one of {', '.join(CONTENT_TYPES)}"
        )
    if not body:
        raise PayloadError("the request body is empty")
    return check_windows(readers[kind](body, shape), shape)


def check_windows(array: np.ndarray, shape: WindowShape) -> np.ndarray:
    if array.ndim != 3 or array.shape[1:] != (shape.steps, shape.feature_dim):
        raise PayloadError(
            f"windows must have the shape {shape.describe()}, got {tuple(array.shape)}"
        )
    if len(array) == 0:
        raise PayloadError("the request holds no windows")
    if not np.isfinite(array).all():
        raise PayloadError("the windows contain NaN or infinite values")
    return array.astype(np.float32, copy=False)


def _read_json(body: bytes, shape: WindowShape) -> np.ndarray:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(
            f"the JSON body is nested far deeper than windows {shape.describe()} can be"
        ) from None
    if isinstance(document, dict):
        if "instances" not in document:
            raise PayloadError('a JSON object must hold the windows under "instances"')
        document = document["instances"]
    if not isinstance(document, list):
        raise PayloadError("JSON windows must be a nested list (windows, steps, features)")
    try:
        return np.asarray(document, dtype=np.float32)
    except (ValueError, TypeError):
        raise PayloadError(
            f"JSON windows must be a regular nested list of numbers {shape.describe()}"
        ) from None


def _read_csv(body: bytes, shape: WindowShape) -> np.ndarray:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("the CSV body is not UTF-8 text") from None
    width = shape.steps * shape.feature_dim
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise PayloadError(
                f"CSV row {number} has {len(row)} values; a window is one row of "
                f"{shape.steps} x {shape.feature_dim} = {width} values"
            )
        try:
            rows.append(np.array(row).astype(np.float32))
        except ValueError:
            raise PayloadError(f"CSV row {number} holds a value that is not a number") from None
    if not rows:
        raise PayloadError("the CSV body holds no rows")
    return np.stack(rows).reshape(len(rows), shape.steps, shape.feature_dim)


_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _read_npy(body: bytes, shape: WindowShape) -> np.ndarray:
    """The array in an .npy body, read in place once its header is shown to fit the body."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in _NPY_HEADER_READERS:
            raise ValueError(f"format version {version[0]}.{version[1]} is not read here")
        dims, fortran_order, dtype = _NPY_HEADER_READERS[version](stream)
    except (ValueError, OSError, EOFError) as exc:
        raise PayloadError(f"the body is not a .npy array: {exc}") from None
    if dtype.kind not in "fiu":
        raise PayloadError(f"the body is not a .npy array of numbers (its dtype is {dtype})")
    count = math.prod(dims)
    data = len(body) - stream.tell()
    if min(dims, default=0) < 0 or count * dtype.itemsize != data:
        raise PayloadError(
            f"the .npy header declares an array of shape {dims} and dtype {dtype} "
            f"({count * dtype.itemsize} bytes), but {data} bytes follow it"
        )
    array = np.frombuffer(body, dtype=dtype, count=count, offset=stream.tell())
    return array.reshape(dims, order="F" if fortran_order else "C")


def encode_windows(windows: np.ndarray, content_type: str) -> bytes:
    """The request body for `windows` (W, T, D) in one of the supported formats."""
    batch = np.asarray(windows, dtype=np.float32)
    kind = media_type(content_type)
    if kind == NPY:
        buffer = io.BytesIO()
        np.save(buffer, batch, allow_pickle=False)
        return buffer.getvalue()
    if kind == JSON:
        return json.dumps({"instances": batch.tolist()}).encode("utf-8")
    if kind == CSV:
        buffer_text = io.StringIO()
        # repr-precision floats so the server sees exactly the float32 values we hold
        np.savetxt(buffer_text, batch.reshape(len(batch), -1), delimiter=",", fmt="%.9g")
        return buffer_text.getvalue().encode("utf-8")
    raise UnsupportedContentType(
        f"content type {content_type!r} is not supported; use one of {', '.join(CONTENT_TYPES)}"
    )


def prediction_document(
    classes: Sequence[str],
    probabilities: np.ndarray,
    decisions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "classes": list(classes),
        "probabilities": np.asarray(probabilities).tolist(),
        "decisions": dict(decisions or {}),
    }


class Prediction(NamedTuple):
    classes: tuple[str, ...]
    probabilities: np.ndarray  # (W, C) float32
    decisions: dict[str, Any]  # class -> calibrated settings; empty when the model has none


def read_prediction(body: bytes | str) -> Prediction:
    """Parse a response body."""
    try:
        document = json.loads(body)
        classes = tuple(str(name) for name in document["classes"])
        probabilities = np.asarray(document["probabilities"], dtype=np.float32)
        decisions = document.get("decisions", {})
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PayloadError(f"the prediction response is not understood: {exc}") from None
    if not isinstance(decisions, dict):
        raise PayloadError("the prediction response's 'decisions' is not an object")
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        raise PayloadError(
            f"the prediction response has probabilities of shape {probabilities.shape} "
            f"for {len(classes)} classes"
        )
    return Prediction(classes, probabilities, decisions)


def recipe_attribute(recipe: FeatureRecipe) -> str:
    """The CustomAttributes value that says features were made by `recipe`."""
    return f"{RECIPE_ATTRIBUTE}={recipe.digest}"


def stated_recipe(custom_attributes: str) -> str | None:
    """The recipe digest a request's CustomAttributes (`key=value`, `;`-separated) states."""
    for item in custom_attributes.split(";"):
        key, _, value = item.partition("=")
        if key.strip().lower() == RECIPE_ATTRIBUTE:
            return value.strip()
    return None


def create_app(
    predictor: Predictor,
    shape: WindowShape,
    max_bytes: int = DEFAULT_MAX_BYTES,
    recipe: FeatureRecipe | None = None,
    decisions: Mapping[str, Any] | None = None,
) -> Flask:
    """The SageMaker inference app: `GET /ping` and `POST /invocations`.

    `recipe`: what made the features the model was trained on; requests that state another
    are refused. `decisions`: the model's calibrated settings, sent with every prediction.
    """
    app = Flask("highlights.aws.serving")
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    class_names = list(predictor.classes)

    @app.get("/ping")
    def ping() -> Response:
        status: dict[str, Any] = {"status": "ok", "classes": class_names}
        if recipe is not None:
            status["feature_recipe"] = {**recipe.to_dict(), "digest": recipe.digest}
        return _json(status, 200)

    @app.post("/invocations")
    def invocations() -> Response:
        accept = request.headers.get("Accept", "")
        if not accepts_json(accept):
            return _json({"error": f"responses are {JSON}; cannot answer Accept {accept!r}"}, 406)
        stated = stated_recipe(request.headers.get(CUSTOM_ATTRIBUTES, ""))
        if recipe is not None and stated is not None and stated != recipe.digest:
            return _json(
                {
                    "error": f"features made by recipe {stated}, but the model was trained on "
                    f"{recipe.describe()}; extract features with the model's recipe"
                },
                400,
            )
        try:
            windows = parse_windows(_read_body(max_bytes), request.content_type, shape)
        except UnsupportedContentType as exc:
            return _json({"error": str(exc)}, 415)
        except PayloadError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(prediction_document(class_names, predictor.predict(windows), decisions), 200)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> Response:
        return _json({"error": f"the request body is larger than {max_bytes} bytes"}, 400)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _json({"error": f"{error.name}: {error.description}"}, error.code or 500)

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> Response:
        log.exception("request %s %s failed", request.method, request.path)
        return _json({"error": f"internal error: {type(error).__name__}"}, 500)

    return app


def _read_body(max_bytes: int) -> bytes:
    """The request body, refused as soon as it passes `max_bytes`.

    Werkzeug checks a declared Content-Length against MAX_CONTENT_LENGTH, but passes a chunked
    body (which gunicorn has already de-chunked) through unbounded, so count what arrives.
    """
    parts, size = [], 0
    while chunk := request.stream.read(min(64 * 1024, max_bytes + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise RequestEntityTooLarge()
    return b"".join(parts)


def _json(document: Mapping[str, Any], status: int) -> Response:
    return Response(json.dumps(document), status=status, mimetype=JSON)


def load_app(model_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Flask:
    """Load the model saved in `model_dir` and build the app around it (raises ModelError)."""
    from highlights.model import SequenceModel

    model = SequenceModel.load(model_dir)
    manifest = model.manifest
    return create_app(
        model, window_shape(model), max_bytes, manifest.recipe, manifest.decisions.get("classes")
    )


def window_shape(model: SequenceModel) -> WindowShape:
    manifest = model.manifest
    return WindowShape(steps=manifest.steps, feature_dim=manifest.feature_dim)


@dataclass(frozen=True)
class ServerOptions:
    model_dir: Path = DEFAULT_MODEL_DIR
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    workers: int = 1
    timeout: int = 120  # seconds a worker may take to load the model or answer
    max_bytes: int = DEFAULT_MAX_BYTES
    # Started as root (as SageMaker starts the image), the workers that read requests switch to
    # this user; the master keeps root only to bind the port and watch them.
    user: str | None = None


def parse_server_options(argv: Sequence[str] | None, environ: Mapping[str, str]) -> ServerOptions:
    """Command-line flags, with SageMaker's environment variables as defaults."""
    parser = argparse.ArgumentParser(
        prog="serve", description="Serve the highlights sequence model the SageMaker way."
    )
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--workers",
        type=int,
        default=_env_int(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", 1),
        help="gunicorn workers (default: $SAGEMAKER_MODEL_SERVER_WORKERS or 1)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=_env_int(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 120),
        help="seconds (default: $SAGEMAKER_MODEL_SERVER_TIMEOUT or 120)",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=_env_int(environ, "HIGHLIGHTS_MAX_PAYLOAD_BYTES", DEFAULT_MAX_BYTES),
        help="largest request body accepted in bytes "
        f"(default: $HIGHLIGHTS_MAX_PAYLOAD_BYTES or {DEFAULT_MAX_BYTES})",
    )
    parser.add_argument(
        "--user",
        default=environ.get("HIGHLIGHTS_SERVE_USER") or None,
        help="when started as root, run the workers as this user and its group "
        "(default: $HIGHLIGHTS_SERVE_USER; the image sets it)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.timeout < 1 or args.max_bytes < 1:
        parser.error("--workers, --timeout and --max-bytes must be at least 1")
    return ServerOptions(
        model_dir=args.model_dir,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout=args.timeout,
        max_bytes=args.max_bytes,
        user=args.user,
    )


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name} must be an integer, got {value!r}") from None


def run_server(options: ServerOptions) -> None:
    """Run gunicorn in this process until it is stopped (SIGTERM)."""
    from gunicorn.app.base import BaseApplication

    class _Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{options.host}:{options.port}")
            self.cfg.set("workers", options.workers)
            self.cfg.set("timeout", options.timeout)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("accesslog", "-")
            if options.user and os.geteuid() == 0:
                self.cfg.set("user", options.user)
                self.cfg.set("group", options.user)

        def load(self) -> Flask:
            # Each worker loads the model itself: TensorFlow must not be imported before the fork.
            return load_app(options.model_dir, options.max_bytes)

    _Application().run()


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The container's `serve` command."""
    options = parse_server_options(argv, environ if environ is not None else {})
    if not options.model_dir.is_dir():
        raise InputError(f"{options.model_dir}: model folder not found")
    run_server(options)
    return 0
