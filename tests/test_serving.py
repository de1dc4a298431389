"""The inference server: payload formats, validation and a real gunicorn server over HTTP."""

from __future__ import annotations

import http.client
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

from highlights.aws.serving import (
    CSV,
    JSON,
    NPY,
    PayloadError,
    UnsupportedContentType,
    WindowShape,
    accepts_json,
    create_app,
    encode_windows,
    parse_server_options,
    parse_windows,
    read_prediction,
)
from highlights.errors import InputError
from highlights.model import ModelManifest, SequenceModel, build_model
from tests.recipes import a_recipe

REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "model_container" / "serve"
STEPS, FEATURE_DIM = 10, 16
CLASSES = ("OpenPlay", "PenaltyKick", "Corner")
SHAPE = WindowShape(STEPS, FEATURE_DIM)
MAX_BYTES = 200_000


CALIBRATED = {"threshold": 0.7, "low_threshold": 0.4, "buffer": 3.0, "min_length": 1.0,
              "merge_gap": 2.0}


def save_small_model(model_dir: Path) -> Path:
    keras.utils.set_random_seed(7)
    manifest = ModelManifest(
        classes=CLASSES,
        backbone="efficientnet_lite0",
        feature_dim=FEATURE_DIM,
        rate=5.0,
        window_length=2.0,
        window_stride=1.0,
        steps=STEPS,
        preset="compact",
        recipe=a_recipe(),
        decisions={"classes": {CLASSES[0]: CALIBRATED}},
    )
    network = build_model("compact", STEPS, FEATURE_DIM, len(CLASSES))
    return SequenceModel(network, manifest).save(model_dir)


def windows(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, STEPS, FEATURE_DIM)).astype(np.float32)


# --- payload parsing ------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [JSON, CSV, NPY])
def test_each_format_round_trips_windows_exactly(content_type: str) -> None:
    batch = windows(3)
    parsed = parse_windows(encode_windows(batch, content_type), content_type, SHAPE)
    assert parsed.dtype == np.float32
    np.testing.assert_array_equal(parsed, batch)


def test_json_accepts_a_bare_nested_list() -> None:
    batch = windows(2)
    parsed = parse_windows(json.dumps(batch.tolist()).encode(), JSON, SHAPE)
    np.testing.assert_array_equal(parsed, batch)


def test_content_type_parameters_are_ignored() -> None:
    batch = windows(1)
    body = encode_windows(batch, CSV)
    np.testing.assert_array_equal(parse_windows(body, "text/csv; charset=utf-8", SHAPE), batch)


def test_csv_row_is_one_window_flattened_frame_after_frame() -> None:
    batch = windows(1)
    row = ",".join(repr(float(v)) for v in batch[0].reshape(-1))
    parsed = parse_windows(row.encode(), CSV, SHAPE)
    np.testing.assert_array_equal(parsed[0, 1], batch[0, 1])


def test_csv_row_of_the_wrong_width_names_the_layout() -> None:
    with pytest.raises(PayloadError, match=r"row 1 has 5 values.*10 x 16 = 160"):
        parse_windows(b"1,2,3,4,5\n", CSV, SHAPE)


def test_wrong_window_shape_is_refused() -> None:
    with pytest.raises(PayloadError, match=r"\(windows, 10, 16\).*\(2, 9, 16\)"):
        parse_windows(encode_windows(np.zeros((2, 9, 16)), NPY), NPY, SHAPE)


def test_malformed_json_is_refused() -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        parse_windows(b'{"instances": [[[1, 2', JSON, SHAPE)


def test_ragged_json_is_refused() -> None:
    with pytest.raises(PayloadError, match="regular nested list"):
        parse_windows(b"[[[1, 2], [3]]]", JSON, SHAPE)


def test_npy_with_pickled_objects_is_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(PayloadError, match="not a .npy array"):
        parse_windows(buffer.getvalue(), NPY, SHAPE)


def lying_npy(declared: tuple[int, ...], windows_held: int = 1) -> bytes:
    """An .npy body whose header declares `declared` but which holds a few windows' bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": declared}
    )
    return buffer.getvalue() + windows(windows_held).tobytes()


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_npy_whose_header_outgrows_its_body_is_refused_before_allocating() -> None:
    # The header asks for 64 MB; the body holds one window. Nothing that size may be made.
    body = lying_npy((100_000, STEPS, FEATURE_DIM))
    tracemalloc.start()
    try:
        with pytest.raises(PayloadError, match=r"\(100000, 10, 16\).*64000000 bytes.*640 bytes"):
            parse_windows(body, NPY, SHAPE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_npy_shorter_than_its_header_is_refused() -> None:
    with pytest.raises(PayloadError, match="declares an array of shape"):
        parse_windows(lying_npy((1, STEPS, FEATURE_DIM), windows_held=2), NPY, SHAPE)


def test_fortran_ordered_npy_reads_as_the_same_windows() -> None:
    batch = windows(2)
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(batch))
    np.testing.assert_array_equal(parse_windows(buffer.getvalue(), NPY, SHAPE), batch)


def test_deeply_nested_json_is_refused() -> None:
    with pytest.raises(PayloadError, match="nested far deeper"):
        parse_windows(deep_json(10_000), JSON, SHAPE)


def test_non_finite_values_are_refused() -> None:
    batch = windows(1)
    batch[0, 0, 0] = np.nan
    with pytest.raises(PayloadError, match="NaN"):
        parse_windows(encode_windows(batch, NPY), NPY, SHAPE)


def test_unknown_content_type_is_its_own_error() -> None:
    with pytest.raises(UnsupportedContentType, match="image/png"):
        parse_windows(b"\x89PNG", "image/png", SHAPE)


def test_prediction_response_must_match_its_classes() -> None:
    with pytest.raises(PayloadError, match="2 classes"):
        read_prediction(json.dumps({"classes": ["a", "b"], "probabilities": [[1.0]]}))


def test_a_non_numeric_worker_count_is_an_input_error() -> None:
    with pytest.raises(InputError, match="SAGEMAKER_MODEL_SERVER_WORKERS"):
        parse_server_options([], {"SAGEMAKER_MODEL_SERVER_WORKERS": "two"})


@pytest.mark.parametrize(
    ("accept", "ok"),
    [("", True), ("application/json", True), ("text/csv, application/json;q=0.9", True),
     ("*/*", True), ("text/csv", False), ("application/x-npy", False)],
)
def test_accept_headers_that_allow_json(accept: str, ok: bool) -> None:
    assert accepts_json(accept) is ok


def test_worker_count_defaults_from_the_sagemaker_environment() -> None:
    options = parse_server_options([], {"SAGEMAKER_MODEL_SERVER_WORKERS": "3"})
    assert (options.workers, options.port, options.host) == (3, 8080, "0.0.0.0")
    assert parse_server_options(["--workers", "2"], {}).workers == 2


# --- a real server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, body: bytes | None = None, content_type: str | None = None,
            headers: dict[str, str] | None = None, method: str | None = None) -> tuple[int, bytes]:
    method = method or ("POST" if body is not None else "GET")
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_small_model(tmp_path_factory.mktemp("serving") / "model")


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVE), "--model-dir", str(model_dir), "--host", "127.0.0.1",
         "--port", str(port), "--max-bytes", str(MAX_BYTES)],
        env={**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            raise AssertionError(f"serve exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if request(f"{url}/ping")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("serve did not answer /ping in time")


def test_ping_answers_once_the_model_is_loaded(server: str) -> None:
    status, body = request(f"{server}/ping")
    assert status == 200
    assert json.loads(body)["classes"] == list(CLASSES)
    assert json.loads(body)["feature_recipe"]["digest"] == a_recipe().digest


def test_windows_of_another_feature_recipe_get_400_naming_both(server: str) -> None:
    other = a_recipe(weights_sha256="0" * 64)
    status, body = request(
        f"{server}/invocations", encode_windows(windows(2), JSON), JSON,
        headers={"X-Amzn-SageMaker-Custom-Attributes": f"trace=7;feature-recipe={other.digest}"},
    )
    assert status == 400
    error = json.loads(body)["error"]
    assert "\n" not in error
    assert f"features made by recipe {other.digest}" in error
    assert f"trained on {a_recipe().describe()}" in error


def test_windows_stated_to_be_of_the_models_recipe_are_answered(server: str) -> None:
    status, body = request(
        f"{server}/invocations", encode_windows(windows(2), JSON), JSON,
        headers={"X-Amzn-SageMaker-Custom-Attributes": f"feature-recipe={a_recipe().digest}"},
    )
    assert status == 200, body


@pytest.mark.parametrize("content_type", [JSON, CSV, NPY])
def test_invocations_match_the_in_process_model(
    server: str, model_dir: Path, content_type: str
) -> None:
    batch = windows(4, seed=3)
    body = encode_windows(batch, content_type)
    status, body = request(f"{server}/invocations", body, content_type)
    assert status == 200, body
    classes, probabilities, decisions = read_prediction(body)
    assert classes == CLASSES
    assert decisions == {CLASSES[0]: CALIBRATED}, "the model's calibrated settings come along"
    expected = SequenceModel.load(model_dir).predict(batch)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_bare_json_list_is_accepted_over_http(server: str) -> None:
    status, body = request(f"{server}/invocations", json.dumps(windows(1).tolist()).encode(), JSON)
    assert status == 200
    assert read_prediction(body)[1].shape == (1, len(CLASSES))


def test_malformed_payload_gets_400_with_a_message(server: str) -> None:
    status, body = request(f"{server}/invocations", b"not json at all", JSON)
    assert status == 400
    assert "not valid JSON" in json.loads(body)["error"]


def test_wrong_shaped_payload_gets_400(server: str) -> None:
    batch = np.zeros((2, STEPS, FEATURE_DIM + 1), dtype=np.float32)
    status, body = request(f"{server}/invocations", encode_windows(batch, NPY), NPY)
    assert status == 400
    assert "(windows, 10, 16)" in json.loads(body)["error"]


def test_oversized_payload_gets_400(server: str) -> None:
    batch = windows(MAX_BYTES // (STEPS * FEATURE_DIM * 4) + 1)
    body = encode_windows(batch, NPY)
    assert len(body) > MAX_BYTES
    status, answer = request(f"{server}/invocations", body, NPY)
    assert status == 400
    assert f"larger than {MAX_BYTES} bytes" in json.loads(answer)["error"]


def test_unsupported_content_type_gets_415(server: str) -> None:
    status, body = request(f"{server}/invocations", b"\x89PNG", "image/png")
    assert status == 415
    assert "application/x-npy" in json.loads(body)["error"]


def test_unanswerable_accept_gets_406(server: str) -> None:
    status, _ = request(f"{server}/invocations", encode_windows(windows(1), NPY), NPY,
                        headers={"Accept": "text/csv"})
    assert status == 406


def json_error(body: bytes) -> str:
    """The message of a JSON error body (fails on an HTML page)."""
    return json.loads(body)["error"]


def test_npy_with_a_lying_header_gets_400_in_json(server: str) -> None:
    # 10^6 x 10^6 windows: 640 TB declared in a body of one window
    body = lying_npy((10**6, 10**6, FEATURE_DIM))
    status, answer = request(f"{server}/invocations", body, NPY)
    assert status == 400
    assert "declares an array of shape" in json_error(answer)


def test_10000_deep_json_gets_400_in_json(server: str) -> None:
    status, answer = request(f"{server}/invocations", deep_json(10_000), JSON)
    assert status == 400
    assert "nested far deeper" in json_error(answer)


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [("/nowhere", "GET", 404), ("/invocations", "GET", 405), ("/ping", "DELETE", 405)],
)
def test_unknown_paths_and_methods_are_answered_in_json(
    server: str, path: str, method: str, expected: int
) -> None:
    status, answer = request(f"{server}{path}", method=method)
    assert status == expected
    assert json_error(answer)


def test_an_oversized_chunked_body_gets_400_in_json(server: str) -> None:
    # No Content-Length to refuse up front: the limit must hold while the body streams in.
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b"[" + b"0," * 50_000 + b"0]" for _ in range(1))
    padding = (b" " * 50_000 for _ in range(MAX_BYTES // 50_000 + 2))
    connection.request(
        "POST", "/invocations", body=itertools.chain(chunks, padding),
        headers={"Content-Type": JSON}, encode_chunked=True,
    )  # fmt: skip
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    assert response.status == 400
    assert f"larger than {MAX_BYTES} bytes" in json_error(answer)


class _BrokenModel:
    """A model whose prediction fails the way a bug inside the server would."""

    classes = CLASSES

    def predict(self, batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("tensor exploded")


def test_an_unexpected_failure_is_a_json_500_without_internals() -> None:
    client = create_app(_BrokenModel(), SHAPE, MAX_BYTES).test_client()
    response = client.post(
        "/invocations", data=encode_windows(windows(1), NPY), content_type=NPY
    )
    assert response.status_code == 500
    assert response.mimetype == JSON
    assert response.get_json() == {"error": "internal error: RuntimeError"}


def test_serve_refuses_a_missing_model_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SERVE), "--model-dir", str(tmp_path / "nope"), "--port", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "model folder not found" in result.stderr


def test_serve_exits_naming_a_broken_model_instead_of_answering(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{")
    result = subprocess.run(
        [sys.executable, str(SERVE), "--model-dir", str(tmp_path), "--host", "127.0.0.1",
         "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert f"{tmp_path / 'manifest.json'}: not valid JSON" in result.stderr
