"""SageMaker for tests: Processing jobs, training jobs and endpoints run the real image in Docker.

Each entry point takes the very request a client sends to SageMaker (`CreateProcessingJob`,
`CreateTrainingJob`, `CreateModel`), checks it against the botocore model in full, and then does
what the documented container contracts say SageMaker does, with S3 on a moto server:

- Processing (`run_processing_job`): inputs copied from S3 to a host folder per instance,
  mounted at their `LocalPath`; `docker run --entrypoint` with `ContainerEntrypoint`,
  `ContainerArguments` and `Environment`, one container per instance, each with its own
  `/opt/ml/config/resourceconfig.json`; outputs uploaded from their `LocalPath` at the end.
- Training (`run_training_job`): the `/opt/ml` tree with `input/config/*.json` and channels,
  `docker run IMAGE train`, `/opt/ml/model` packed as `model.tar.gz`, `/opt/ml/output/failure`
  as the failure reason.
- Hosting (`Endpoint`): `docker run IMAGE serve` with the model unpacked at `/opt/ml/model`,
  `/ping` polled until healthy, and a SageMaker Runtime `InvokeEndpoint` front on loopback that
  passes requests on to the container's `/invocations`.

Containers run with `--network none` unless the caller asks for `network="host"` (a job that
calls AWS: the moto server and the runtime front listen on 127.0.0.1; `AWS_ENDPOINT_URL*`
variables point the job's boto3 at them, standing in for the job's role). The emulator never
imports the code under test: it knows only the documents and the Docker command line.
"""

from __future__ import annotations

import http.server
import io
import json
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.aws_strict import check_request

ACCOUNT = "123456789012"
REGION = "us-east-1"
# Processing inputs and outputs must live under this folder in the container: ProcessingS3Input /
# ProcessingS3Output LocalPath, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html
PROCESSING_ROOT = "/opt/ml/processing/"
# "the first 1 KB": ExitMessage and FailureReason, DescribeProcessingJob / DescribeTrainingJob
MAX_MESSAGE = 1024
# InvokeEndpoint: "Maximum payload size: 6 MB" (Body, API_runtime_InvokeEndpoint.html)
MAX_PAYLOAD = 6 * 1024 * 1024
# Hosting: the container must answer /ping with 200 "within 2 seconds", and begin passing health
# checks within the startup window (8 minutes by default; ContainerStartupHealthCheckTimeout-
# InSeconds moves it), https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html
PING_TIMEOUT = 2.0
STARTUP_SECONDS = 480.0
# "Customers' model containers must respond to requests within 60 seconds." (same page)
INVOCATION_TIMEOUT = 60.0
# InvokeEndpoint's CustomAttributes travel to and from the container in this header.
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


class EmulatorError(Exception):
    """A request the emulator refuses, as SageMaker would (ValidationException), or cannot run."""


@dataclass
class JobResult:
    """What DescribeProcessingJob / DescribeTrainingJob would say, plus the containers' logs."""

    name: str
    status: str  # Completed | Failed | Stopped
    failure_reason: str | None = None
    exit_message: str | None = None
    model_artifacts: str | None = None  # training: the S3 URI of model.tar.gz
    logs: dict[str, str] = field(default_factory=dict)  # host -> stdout and stderr

    def check(self) -> JobResult:
        """This result if the job completed; else an AssertionError with the reason and logs."""
        if self.status != "Completed":
            logs = "\n".join(f"--- {host}\n{text[-4000:]}" for host, text in self.logs.items())
            raise AssertionError(f"{self.name}: {self.status}: {self.failure_reason}\n{logs}")
        return self


# --- Docker ------------------------------------------------------------------------------------


def docker_problem() -> str | None:
    """Why the Docker daemon cannot be used here, or None when it can."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"the Docker daemon is not reachable: {probe.stderr.strip()[-300:]}"
    return None


def image_exists(image: str) -> bool:
    return subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, timeout=60
    ).returncode == 0


def _volume(host: Path, container: str, read_only: bool = False) -> list[str]:
    return ["-v", f"{host}:{container}{':ro' if read_only else ''}"]


def _environment(variables: Mapping[str, str]) -> list[str]:
    return [arg for name, value in sorted(variables.items()) for arg in ("-e", f"{name}={value}")]


# --- S3 on the moto server ---------------------------------------------------------------------


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise EmulatorError(f"{uri}: not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def list_keys(s3: Any, uri: str) -> list[str]:
    """S3Prefix: every object whose key starts with the URI's key prefix, sorted by key."""
    bucket, prefix = split_s3_uri(uri)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(keys)


def _relative(key: str, prefix: str) -> str:
    """Where an object lands below LocalPath: its key after the prefix's last folder."""
    folder = prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""
    return key[len(folder):]


def download(s3: Any, uri: str, keys: Sequence[str], folder: Path) -> None:
    bucket, prefix = split_s3_uri(uri)
    for key in keys:
        target = folder / _relative(key, prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))


def upload_folder(s3: Any, folder: Path, uri: str) -> list[str]:
    """Every file under `folder` to `uri` + its relative path; the keys written."""
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/")
    written = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}" if prefix else str(
            path.relative_to(folder).as_posix()
        )
        s3.upload_file(str(path), bucket, key)
        written.append(key)
    return written


# --- Processing --------------------------------------------------------------------------------


def _processing_inputs(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    inputs = []
    for item in request.get("ProcessingInputs", []):
        if "S3Input" not in item:
            raise EmulatorError(f"input {item['InputName']}: only S3Input is emulated")
        s3_input = item["S3Input"]
        # S3InputMode Pipe streams through a FIFO; only File mode copies files in.
        if s3_input.get("S3InputMode", "File") != "File":
            raise EmulatorError(f"input {item['InputName']}: only S3InputMode File is emulated")
        if s3_input["S3DataType"] != "S3Prefix":
            raise EmulatorError(f"input {item['InputName']}: only S3DataType S3Prefix is emulated")
        if not s3_input["LocalPath"].startswith(PROCESSING_ROOT):
            raise EmulatorError(
                f"input {item['InputName']}: LocalPath {s3_input['LocalPath']} must begin with "
                f"{PROCESSING_ROOT}"
            )
        inputs.append(item)
    return inputs


def _processing_outputs(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for item in outputs:
        if "S3Output" not in item:
            raise EmulatorError(f"output {item['OutputName']}: only S3Output is emulated")
        s3_output = item["S3Output"]
        if s3_output["S3UploadMode"] != "EndOfJob":
            raise EmulatorError(f"output {item['OutputName']}: only EndOfJob uploads are emulated")
        if not s3_output["LocalPath"].startswith(PROCESSING_ROOT):
            raise EmulatorError(
                f"output {item['OutputName']}: LocalPath must begin with {PROCESSING_ROOT}"
            )
    return outputs


def shard_keys(keys: Sequence[str], hosts: int) -> list[list[str]]:
    """ShardedByS3Key: each instance gets about 1/n of the objects and no object twice
    (S3DataDistributionType, API_ProcessingS3Input.html). Which object goes where is not
    documented; dealing them out in key order keeps every shard a spread of the whole."""
    return [list(keys[index::hosts]) for index in range(hosts)]


def run_processing_job(
    request: Mapping[str, Any],
    s3: Any,
    work: Path,
    *,
    network: str = "none",
    aws_environment: Mapping[str, str] | None = None,
) -> JobResult:
    """Run a CreateProcessingJob request to its end, as SageMaker Processing runs the container.

    https://docs.aws.amazon.com/sagemaker/latest/dg/byoc-run-image.html (entrypoint, arguments,
    exit status), .../build-your-own-processing-container.html (inputs, outputs, resource
    config), .../byoc-metadata.html (/opt/ml/output/message becomes ExitMessage).
    """
    check_request("sagemaker", "CreateProcessingJob", request)
    name = request["ProcessingJobName"]
    app = request["AppSpecification"]
    cluster = request["ProcessingResources"]["ClusterConfig"]
    count = cluster["InstanceCount"]
    hosts = [f"algo-{index}" for index in range(1, count + 1)]
    inputs = _processing_inputs(request)
    outputs = _processing_outputs(request)
    if network not in ("none", "host"):
        raise EmulatorError(f"network {network!r}: give 'none' or 'host'")
    if request.get("NetworkConfig", {}).get("EnableNetworkIsolation") and network != "none":
        raise EmulatorError(f"{name}: network isolation asked for, yet the job needs a network")

    folders = {host: work / name / host for host in hosts}
    for host, folder in folders.items():
        config = folder / "config"
        config.mkdir(parents=True)
        # "SageMaker Processing provides ... /opt/ml/config/resourceconfig.json": the host's name
        # and every host of the cluster (build-your-own-processing-container.html).
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": host, "hosts": hosts}), encoding="utf-8"
        )
        # ... and the job's own description in processingjobconfig.json.
        (config / "processingjobconfig.json").write_text(json.dumps(request), encoding="utf-8")
        (folder / "output").mkdir()
    for item in inputs:
        s3_input = item["S3Input"]
        keys = list_keys(s3, s3_input["S3Uri"])
        if s3_input.get("S3DataDistributionType", "FullyReplicated") == "ShardedByS3Key":
            shares = shard_keys(keys, count)
        else:
            shares = [keys] * count
        for host, share in zip(hosts, shares, strict=True):
            download(s3, s3_input["S3Uri"], share, folders[host] / "inputs" / item["InputName"])
    for host in hosts:
        for item in outputs:
            (folders[host] / "outputs" / item["OutputName"]).mkdir(parents=True)

    environment = {**request.get("Environment", {}), **(aws_environment or {})}
    entrypoint = app.get("ContainerEntrypoint", [])
    processes = {}
    for host in hosts:
        folder = folders[host]
        command = ["docker", "run", "--rm", "--name", f"{name}-{host}-{uuid.uuid4().hex[:6]}",
                   "--network", network, *_environment(environment)]
        command += _volume(folder / "config", "/opt/ml/config", read_only=True)
        command += _volume(folder / "output", "/opt/ml/output")
        for item in inputs:
            local = item["S3Input"]["LocalPath"]
            command += _volume(folder / "inputs" / item["InputName"], local)
        for item in outputs:
            local = item["S3Output"]["LocalPath"]
            command += _volume(folder / "outputs" / item["OutputName"], local)
        # `docker run --entrypoint [ContainerEntrypoint] [ImageUri] [ContainerArguments]`
        # (byoc-run-image.html); docker takes one executable there, the rest lead the arguments.
        if entrypoint:
            command += ["--entrypoint", entrypoint[0], app["ImageUri"], *entrypoint[1:]]
        else:
            command.append(app["ImageUri"])
        command += app.get("ContainerArguments", [])
        log = folder / "container.log"
        processes[host] = (subprocess.Popen(command, stdout=log.open("wb"),
                                            stderr=subprocess.STDOUT), log)

    deadline = time.monotonic() + request["StoppingCondition"]["MaxRuntimeInSeconds"]
    codes, stopped = {}, False
    for host, (process, _) in processes.items():
        try:
            codes[host] = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            stopped = True
            process.kill()
            codes[host] = process.wait()
    logs = {host: log.read_text(errors="replace") for host, (_, log) in processes.items()}
    messages = [
        (folders[host] / "output" / "message").read_text(encoding="utf-8")
        for host in hosts
        if (folders[host] / "output" / "message").is_file()
    ]
    exit_message = "".join(messages)[:MAX_MESSAGE] or None
    if stopped:
        return JobResult(name, "Stopped", "MaxRuntimeInSeconds exceeded", exit_message, logs=logs)
    failed = {host: code for host, code in codes.items() if code != 0}
    if failed:
        # Processing fails the job on a non-zero exit (byoc-run-image.html); EndOfJob outputs are
        # not uploaded for a failed job.
        reason = "; ".join(f"AlgorithmError: {host} exited with status {code}"
                           for host, code in failed.items())
        return JobResult(name, "Failed", reason[:MAX_MESSAGE], exit_message, logs=logs)
    for host in hosts:
        for item in outputs:
            upload_folder(s3, folders[host] / "outputs" / item["OutputName"],
                          item["S3Output"]["S3Uri"])
    return JobResult(name, "Completed", None, exit_message, logs=logs)


# --- Training ----------------------------------------------------------------------------------


def _pack(folder: Path, archive: Path) -> Path:
    """`folder`'s contents at the top of a gzipped tar, as SageMaker packs model.tar.gz."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def run_training_job(request: Mapping[str, Any], s3: Any, work: Path) -> JobResult:
    """Run a CreateTrainingJob request on one instance, as SageMaker runs a training image.

    https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-dockerfile.html
    (`docker run IMAGE train`), .../your-algorithms-training-algo-running-container.html (the
    /opt/ml/input tree), .../your-algorithms-training-algo-output.html (model.tar.gz),
    .../your-algorithms-training-signal-success-failure.html (exit status, output/failure).
    """
    check_request("sagemaker", "CreateTrainingJob", request)
    name = request["TrainingJobName"]
    spec = request["AlgorithmSpecification"]
    if "TrainingImage" not in spec:
        raise EmulatorError(f"{name}: only TrainingImage algorithms are emulated")
    mode = spec["TrainingInputMode"]
    if mode != "File":
        raise EmulatorError(f"{name}: only TrainingInputMode File is emulated")
    if request["ResourceConfig"].get("InstanceCount", 1) != 1:
        raise EmulatorError(f"{name}: only single-instance training is emulated")
    root = work / name / "opt-ml"
    config = root / "input" / "config"
    config.mkdir(parents=True)
    # "SageMaker AI makes the hyperparameters in a CreateTrainingJob request available in
    # /opt/ml/input/config/hyperparameters.json": an object of strings (the API's map type).
    (config / "hyperparameters.json").write_text(
        json.dumps(request.get("HyperParameters", {})), encoding="utf-8"
    )
    channels = request.get("InputDataConfig", [])
    # inputdataconfig.json: per channel its ContentType, TrainingInputMode, S3DistributionType
    # and RecordWrapperType, as in the documented example.
    document = {}
    for channel in channels:
        source = channel["DataSource"]["S3DataSource"]
        entry = {
            "TrainingInputMode": channel.get("InputMode", mode),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            entry["ContentType"] = channel["ContentType"]
        document[channel["ChannelName"]] = entry
        if source["S3DataType"] != "S3Prefix":
            raise EmulatorError(f"channel {channel['ChannelName']}: only S3Prefix is emulated")
        keys = list_keys(s3, source["S3Uri"])
        if not keys:
            raise EmulatorError(
                f"channel {channel['ChannelName']}: no objects at {source['S3Uri']}"
            )
        download(s3, source["S3Uri"], keys, root / "input" / "data" / channel["ChannelName"])
    (config / "inputdataconfig.json").write_text(json.dumps(document), encoding="utf-8")
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"],
                    "network_interface_name": "eth0"}),
        encoding="utf-8",
    )
    for folder in ("model", "output/data"):
        (root / folder).mkdir(parents=True)

    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"
    environment = {**request.get("Environment", {}),
                   "TRAINING_JOB_NAME": name, "TRAINING_JOB_ARN": arn}
    command = ["docker", "run", "--rm", "--name", f"{name}-{uuid.uuid4().hex[:6]}",
               "--network", "none", *_environment(environment),
               *_volume(root, "/opt/ml"), spec["TrainingImage"], "train"]
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True,
            timeout=request["StoppingCondition"]["MaxRuntimeInSeconds"],
        )
    except subprocess.TimeoutExpired as exc:
        return JobResult(name, "Stopped", "MaxRuntimeInSeconds exceeded",
                         logs={"algo-1": str(exc.stdout or "")})
    logs = {"algo-1": finished.stdout + finished.stderr}
    if finished.returncode != 0:
        failure = root / "output" / "failure"
        reason = failure.read_text(errors="replace") if failure.is_file() else (
            f"exited with status {finished.returncode}"
        )
        return JobResult(name, "Failed", f"AlgorithmError: {reason}"[:MAX_MESSAGE], logs=logs)
    # The model and output data go to S3OutputPath/<job name>/output/{model,output}.tar.gz.
    bucket, prefix = split_s3_uri(request["OutputDataConfig"]["S3OutputPath"])
    base = f"{prefix.rstrip('/')}/{name}/output".lstrip("/")
    packed = work / name / "packed"
    packed.mkdir()
    s3.upload_file(str(_pack(root / "model", packed / "model.tar.gz")), bucket,
                   f"{base}/model.tar.gz")
    s3.upload_file(str(_pack(root / "output" / "data", packed / "output.tar.gz")), bucket,
                   f"{base}/output.tar.gz")
    return JobResult(name, "Completed", model_artifacts=f"s3://{bucket}/{base}/model.tar.gz",
                     logs=logs)


# --- Hosting -----------------------------------------------------------------------------------


def _unpack(archive: bytes, folder: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")


class Endpoint:
    """A model served by `docker run IMAGE serve` behind an InvokeEndpoint front on loopback.

    Use as a context manager; `runtime_url` is the SageMaker Runtime endpoint URL to give boto3
    (`endpoint_url=` or `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`).
    """

    def __init__(self, name: str, model_request: Mapping[str, Any], s3: Any, work: Path) -> None:
        check_request("sagemaker", "CreateModel", model_request)
        check_request("sagemaker", "CreateEndpoint", {"EndpointName": name,
                                                      "EndpointConfigName": f"{name}-config"})
        self.name = name
        self._container = model_request["PrimaryContainer"]
        self._s3 = s3
        self._folder = work / f"endpoint-{name}"
        self._id: str | None = None
        self._server: http.server.ThreadingHTTPServer | None = None
        self.container_url = ""
        self.runtime_url = ""
        self.pings = 0
        self.invocations: list[tuple[str, int]] = []  # (content type, status) per request

    def __enter__(self) -> Endpoint:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        model_dir = self._folder / "model"
        model_dir.mkdir(parents=True)
        # "SageMaker AI copies your model artifacts from the S3 location to the /opt/ml/model
        # directory" and unpacks model.tar.gz there (your-algorithms-inference-code.html).
        if "ModelDataUrl" in self._container:
            bucket, key = split_s3_uri(self._container["ModelDataUrl"])
            _unpack(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read(), model_dir)
        # `docker run IMAGE serve` with port 8080 published on loopback only.
        command = ["docker", "run", "-d", "--rm", "--name", f"{self.name}-{uuid.uuid4().hex[:6]}",
                   "-p", "127.0.0.1::8080", *_environment(self._container.get("Environment", {})),
                   *_volume(model_dir, "/opt/ml/model", read_only=True),
                   self._container["Image"], "serve"]
        self._id = subprocess.run(command, capture_output=True, text=True, check=True,
                                  timeout=120).stdout.strip()
        port = subprocess.run(["docker", "port", self._id, "8080/tcp"], capture_output=True,
                              text=True, check=True, timeout=60).stdout.splitlines()[0]
        self.container_url = f"http://{port}"
        self._wait_healthy()
        self._serve_runtime()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            running = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self._id],
                                     capture_output=True, text=True, timeout=60)
            if running.stdout.strip() != "true":
                raise EmulatorError(f"endpoint {self.name}: the container exited while starting:"
                                    f"\n{self.logs()}")
            self.pings += 1
            try:
                with urllib.request.urlopen(f"{self.container_url}/ping",
                                            timeout=PING_TIMEOUT) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        raise EmulatorError(f"endpoint {self.name}: /ping not healthy within {STARTUP_SECONDS} s")

    @property
    def container_id(self) -> str | None:
        return self._id

    def logs(self) -> str:
        if self._id is None:
            return ""
        out = subprocess.run(["docker", "logs", self._id], capture_output=True, text=True,
                             timeout=60)
        return out.stdout + out.stderr

    def _serve_runtime(self) -> None:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                endpoint._invoke(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.runtime_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _invoke(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        """InvokeEndpoint: POST /endpoints/{EndpointName}/invocations, the body passed through
        with its ContentType and Accept (API_runtime_InvokeEndpoint.html)."""
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length)
        if handler.path != f"/endpoints/{self.name}/invocations":
            return _runtime_error(handler, 400, "ValidationError",
                                  f"Endpoint {handler.path.split('/')[2:3]} not found.")
        if length > MAX_PAYLOAD:
            return _runtime_error(handler, 400, "ValidationError",
                                  f"Request body of {length} bytes is over the {MAX_PAYLOAD} limit")
        headers = {
            "Content-Type": handler.headers.get("Content-Type", "application/octet-stream"),
            "Accept": handler.headers.get("Accept", "*/*"),
        }
        # CustomAttributes "is forwarded verbatim" to the container in this header.
        attributes = handler.headers.get(CUSTOM_ATTRIBUTES)
        if attributes is not None:
            headers[CUSTOM_ATTRIBUTES] = attributes
        request = urllib.request.Request(
            f"{self.container_url}/invocations", data=body, method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=INVOCATION_TIMEOUT) as answer:
                status, content_type, payload = (
                    answer.status, answer.headers.get("Content-Type", ""), answer.read()
                )
                returned = answer.headers.get(CUSTOM_ATTRIBUTES)
        except urllib.error.HTTPError as exc:
            status, payload, returned = exc.code, exc.read(), None
            content_type = exc.headers.get("Content-Type", "")
        self.invocations.append((handler.headers.get("Content-Type", ""), status))
        if status != 200:
            # A container error comes back as ModelError (424) with the container's status and
            # message (InvokeEndpoint Errors).
            return _runtime_error(handler, 424, "ModelError",
                                  f"Received client error ({status}) from primary",
                                  OriginalStatusCode=status,
                                  OriginalMessage=payload.decode("utf-8", "replace"))
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        if returned is not None:
            handler.send_header(CUSTOM_ATTRIBUTES, returned)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._id is not None:
            subprocess.run(["docker", "rm", "-f", self._id], capture_output=True, timeout=120)
            self._id = None


def _runtime_error(handler: http.server.BaseHTTPRequestHandler, status: int, kind: str,
                   message: str, **extra: object) -> None:
    body = json.dumps({"message": message, **extra}).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("x-amzn-ErrorType", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)

