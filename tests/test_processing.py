"""The SageMaker Processing entrypoints, run for real on temporary folders.

Frames are made the way MediaConvert's frame capture names them (`<name>.NNNNNNN.jpg`, 0-based,
7 digits); AWS services are moto's (DynamoDB, sagemaker-runtime with queued endpoint replies).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tarfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import boto3
import keras
import numpy as np
import pytest
import requests
from moto import mock_aws

from highlights.aws.dynamodb import DynamoDBResults
from highlights.aws.frame_capture import (
    CapturedFrame,
    frame_indices,
    list_captured_frames,
    load_shard,
    load_shards,
    parse_capture_name,
    read_captured_frame,
    save_shard,
    shard,
)
from highlights.aws.serving import CSV, JSON, encode_windows, prediction_document
from highlights.config import SegmentConfig, WindowConfig
from highlights.errors import InputError, ModelError, VideoError
from highlights.features import FeatureSequence, load_features
from highlights.model import ModelManifest, SequenceModel, build_model
from highlights.outputs.segments_json import SegmentsFile, read_segments_json
from highlights.results import window_records
from highlights.sampling import sample_frames
from highlights.segments import Segment, find_segments
from highlights.video import FrameGeometry
from highlights.windows import WindowScores, score_sequence
from processing import extract_features, score_windows
from processing.score_windows import EndpointScorer
from tests.media import make_video
from tests.mediaconvert_jobs import read_source, run_job
from tests.recipes import a_recipe

RATE = 5.0
SECONDS = 6.0
CAPTURE = "match"
REGION = "us-east-1"
TABLE = "highlights-results"
CLASSES = ("OpenPlay", "PenaltyKick", "Corner")
SMALL_DIM = 16


def capture_frames(video: Path, folder: Path, rate: float = RATE, name: str = CAPTURE) -> Path:
    """JPEGs as MediaConvert's frame capture writes them, made by the MediaConvert fake's own
    reading of the documentation (tests/mediaconvert_jobs.py), not by our sampler's rule."""
    exact = Fraction(rate).limit_denominator(1001)
    capture = {
        "FramerateNumerator": exact.numerator,
        "FramerateDenominator": exact.denominator,
        "MaxCaptures": 10_000_000,
        "Quality": 95,
    }
    settings = {
        "Inputs": [{"FileInput": f"s3://in/{video.name}", "TimecodeSource": "ZEROBASED"}],
        "OutputGroups": [{
            "OutputGroupSettings": {
                "Type": "FILE_GROUP_SETTINGS",
                "FileGroupSettings": {"Destination": f"s3://out/{name}"},
            },
            "Outputs": [{
                "ContainerSettings": {"Container": "RAW"},
                "Extension": "jpg",
                "VideoDescription": {
                    "CodecSettings": {"Codec": "FRAME_CAPTURE", "FrameCaptureSettings": capture}
                },
            }],
        }],
    }  # fmt: skip
    source = read_source(f"s3://in/{video.name}", video)
    _, files = run_job(settings, [source], folder.parent / f"{folder.name}-job")
    folder.mkdir(parents=True, exist_ok=True)
    for made in files:
        shutil.copy(made.local, folder / made.url.rsplit("/", 1)[1])
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "match.mp4", SECONDS, size=(320, 240))


@pytest.fixture(scope="module")
def frames(video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture_frames(video, tmp_path_factory.mktemp("capture") / "frames")


# --- frame-capture files ----------------------------------------------------------------------


def test_capture_names_give_the_0_based_sequence_number() -> None:
    frame = parse_capture_name(Path("out/my.match.0000012.jpg"))
    assert frame is not None
    assert (frame.name, frame.sequence, frame.time(RATE)) == ("my.match", 12, 2.4)


@pytest.mark.parametrize("name", ["match.12.jpg", "match.jpg", "match.0000012.png", "0000012.jpg"])
def test_other_files_are_not_capture_frames(name: str) -> None:
    assert parse_capture_name(Path(name)) is None


def test_frames_are_listed_in_sequence_order_wherever_they_lie(
    frames: Path, tmp_path: Path
) -> None:
    mixed = tmp_path / "mixed"
    for index, path in enumerate(sorted(frames.iterdir(), reverse=True)):
        target = mixed / f"part{index % 3}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (mixed / "part0" / "manifest.txt").write_text("not a frame")
    listed = list_captured_frames(mixed)
    assert [f.sequence for f in listed] == list(range(int(SECONDS * RATE)))


def test_frames_of_two_captures_are_refused(frames: Path, tmp_path: Path) -> None:
    shutil.copytree(frames, tmp_path / "both")
    shutil.copy(frames / f"{CAPTURE}.0000000.jpg", tmp_path / "both" / "other.0000000.jpg")
    with pytest.raises(InputError, match="2 captures"):
        list_captured_frames(tmp_path / "both")


def test_a_sequence_number_twice_is_refused(frames: Path, tmp_path: Path) -> None:
    shutil.copytree(frames, tmp_path / "twice" / "a")
    (tmp_path / "twice" / "b").mkdir()
    shutil.copy(frames / f"{CAPTURE}.0000003.jpg", tmp_path / "twice" / "b")
    with pytest.raises(InputError, match="capture number 3 appears twice"):
        list_captured_frames(tmp_path / "twice")


def test_captured_frames_match_frames_sampled_from_the_video(frames: Path, video: Path) -> None:
    geometry = FrameGeometry(resize_short=256, crop=224)
    listed = list_captured_frames(frames)
    sampled = list(sample_frames(video, RATE, geometry))
    assert len(listed) == len(sampled)
    for frame, reference in zip(listed[::7], sampled[::7], strict=True):
        image = read_captured_frame(frame, RATE, geometry)
        assert (image.index, image.time) == (reference.index, reference.time)
        assert image.image.shape == (224, 224, 3) and image.image.dtype == np.uint8
        # only JPEG compression separates the two
        difference = np.abs(image.image.astype(int) - reference.image.astype(int)).mean()
        assert difference < 4, difference


def test_portrait_frames_are_resized_by_their_short_side_and_centre_cropped(tmp_path: Path) -> None:
    portrait = make_video(tmp_path / "portrait.mp4", 1.0, size=(120, 200))
    listed = list_captured_frames(capture_frames(portrait, tmp_path / "frames"))
    image = read_captured_frame(listed[0], RATE, FrameGeometry(resize_short=96, crop=64)).image
    assert image.shape == (64, 64, 3)


def test_a_corrupt_jpeg_is_a_video_error_naming_it(frames: Path, tmp_path: Path) -> None:
    bad = tmp_path / f"{CAPTURE}.0000000.jpg"
    bad.write_bytes((frames / f"{CAPTURE}.0000000.jpg").read_bytes()[:40])
    frame = list_captured_frames(tmp_path)[0]
    with pytest.raises(VideoError, match=str(bad)):
        read_captured_frame(frame, RATE, FrameGeometry(256, 224))


def test_shards_cover_every_frame_once(frames: Path) -> None:
    listed = list_captured_frames(frames)
    parts = shard(listed, 3)
    assert sorted(f.sequence for part in parts for f in part) == [f.sequence for f in listed]
    assert all(parts)


# --- feature shards ---------------------------------------------------------------------------


def small_sequence(count: int, rate: float = RATE, seed: int = 0) -> FeatureSequence:
    rng = np.random.default_rng(seed)
    return FeatureSequence(
        times=np.arange(count, dtype=np.float64) / rate,
        features=rng.normal(size=(count, SMALL_DIM)).astype(np.float32),
        backbone="efficientnet_lite0",
        rate=rate,
        recipe=a_recipe(rate=rate),
    )


def subset(seq: FeatureSequence, rows: np.ndarray) -> FeatureSequence:
    return FeatureSequence(
        seq.times[rows], seq.features[rows], seq.backbone, seq.rate, recipe=seq.recipe
    )


def write_interleaved_shards(seq: FeatureSequence, folder: Path, count: int = 3) -> None:
    """Shards as ShardedByS3Key could leave them: interleaved frames, files in any order."""
    for index in range(count):
        rows = np.arange(index, len(seq), count)
        path = folder / f"algo-{count - index}" / f"features-algo-{index}.npz"
        save_shard(subset(seq, rows), path)


def test_a_shard_keeps_frame_indices_and_is_a_features_file(tmp_path: Path) -> None:
    seq = subset(small_sequence(20), np.arange(3, 20, 4))
    path = save_shard(seq, tmp_path / "features-algo-1.npz")
    indices, loaded = load_shard(path)
    assert indices.tolist() == [3, 7, 11, 15, 19]
    np.testing.assert_array_equal(load_features(path).features, seq.features)
    np.testing.assert_array_equal(loaded.times, seq.times)


def test_interleaved_shards_merge_back_in_frame_order(tmp_path: Path) -> None:
    seq = small_sequence(31)
    write_interleaved_shards(seq, tmp_path)
    merged = load_shards(tmp_path)
    np.testing.assert_array_equal(merged.times, seq.times)
    np.testing.assert_array_equal(merged.features, seq.features)


def test_a_lost_shard_is_reported_as_missing_frames(tmp_path: Path) -> None:
    seq = small_sequence(30)
    save_shard(subset(seq, np.arange(0, 10)), tmp_path / "features-algo-1.npz")
    save_shard(subset(seq, np.arange(20, 30)), tmp_path / "features-algo-3.npz")
    with pytest.raises(InputError, match="frames 10 to 19 are missing"):
        load_shards(tmp_path)


def test_a_folder_without_shards_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no feature shards"):
        load_shards(tmp_path)


# --- extract_features.py (real EfficientNet-Lite0) --------------------------------------------


def run_extract(source: Path, output: Path, *extra: str) -> int:
    return extract_features.main(
        ["--input", str(source), "--output", str(output), "--capture-rate", str(RATE),
         "--batch-size", "8", *extra]
    )


@pytest.fixture(scope="module")
def single_pass(frames: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("single")
    assert run_extract(frames, output, "--shard-name", "all") == 0
    return output / "features-all.npz"


@pytest.mark.slow
def test_one_instance_writes_features_with_frame_indices_and_times(single_pass: Path) -> None:
    indices, seq = load_shard(single_pass)
    assert indices.tolist() == list(range(int(SECONDS * RATE)))
    np.testing.assert_allclose(seq.times, indices / RATE)
    assert seq.features.shape == (30, 1280) and seq.backbone == "efficientnet_lite0"


@pytest.mark.slow
def test_three_shards_merged_equal_the_single_pass(
    frames: Path, single_pass: Path, tmp_path: Path
) -> None:
    output = tmp_path / "output"
    for index, part in enumerate(shard(list_captured_frames(frames), 3), start=1):
        folder = tmp_path / f"input-{index}"  # what ShardedByS3Key leaves on instance algo-<index>
        folder.mkdir()
        for frame in part:
            shutil.copy(frame.path, folder)
        config = tmp_path / f"resourceconfig-{index}.json"
        config.write_text(json.dumps({"current_host": f"algo-{index}", "hosts": ["algo-1"]}))
        assert run_extract(folder, output, "--resource-config", str(config)) == 0
    assert sorted(p.name for p in output.iterdir()) == [
        "features-algo-1.npz", "features-algo-2.npz", "features-algo-3.npz"
    ]
    merged = load_shards(output)
    reference = load_features(single_pass)
    np.testing.assert_array_equal(merged.times, reference.times)
    np.testing.assert_allclose(merged.features, reference.features, atol=1e-5)


@pytest.mark.slow
def test_a_video_input_is_sampled_whole(video: Path, single_pass: Path, tmp_path: Path) -> None:
    folder = tmp_path / "input"
    folder.mkdir()
    shutil.copy(video, folder)
    assert run_extract(folder, tmp_path / "out", "--shard-name", "video") == 0
    indices, seq = load_shard(tmp_path / "out" / "features-video.npz")
    assert indices.tolist() == list(range(int(SECONDS * RATE)))
    # the same frames as the capture, up to JPEG compression
    reference = load_features(single_pass).features
    cosine = (seq.features * reference).sum(1) / (
        np.linalg.norm(seq.features, axis=1) * np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() > 0.9


def copy_frames(frames: list[CapturedFrame], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for frame in frames:
        shutil.copy(frame.path, folder)
    return folder


@pytest.mark.slow
def test_a_retried_job_takes_every_checkpointed_frame_whichever_instance_made_it(
    frames: Path, single_pass: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoints = ["--checkpoint-uri", str(tmp_path / "checkpoints"), "--checkpoint-every", "8"]
    even, _ = shard(list_captured_frames(frames), 2)
    # attempt 1: instance algo-1 embedded its share (the even frames); the job then failed
    first = copy_frames(even, tmp_path / "attempt-1")
    assert run_extract(first, tmp_path / "out-1", "--shard-name", "algo-1", *checkpoints) == 0
    # attempt 2 is sharded differently: one instance gets every frame
    with caplog.at_level(logging.INFO):
        assert run_extract(frames, tmp_path / "out-2", "--shard-name", "algo-2", *checkpoints) == 0
    assert "15 of 30 frames taken from checkpoints" in caplog.text
    indices, seq = load_shard(tmp_path / "out-2" / "features-algo-2.npz")
    reference = load_features(single_pass)
    assert indices.tolist() == list(range(30))
    np.testing.assert_array_equal(seq.times, reference.times)
    np.testing.assert_allclose(seq.features, reference.features, atol=1e-5)


@pytest.mark.slow
def test_checkpoints_can_live_in_s3(
    frames: Path, single_pass: Path, tmp_path: Path, aws_credentials: None
) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="work")
        checkpoints = ["--checkpoint-uri", "s3://work/match-42/checkpoints/"]
        assert run_extract(frames, tmp_path / "out-1", "--shard-name", "x", *checkpoints) == 0
        keys = [
            item["Key"]
            for item in s3.list_objects_v2(Bucket="work", Prefix="match-42/")["Contents"]
        ]
        assert keys == ["match-42/checkpoints/frames-000000000-000000029-30.npz"]
        (tmp_path / "out-1" / "features-x.npz").unlink()
        # a retry after the output was lost: every frame comes from S3, none is embedded
        assert run_extract(frames, tmp_path / "out-2", "--shard-name", "x", *checkpoints) == 0
    _, seq = load_shard(tmp_path / "out-2" / "features-x.npz")
    np.testing.assert_allclose(seq.features, load_features(single_pass).features, atol=1e-5)


@pytest.mark.slow
def test_a_retried_video_job_takes_its_checkpointed_frames(
    video: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "input"
    folder.mkdir()
    shutil.copy(video, folder)
    checkpoints = ["--checkpoint-uri", str(tmp_path / "checkpoints"), "--checkpoint-every", "8"]
    assert run_extract(folder, tmp_path / "out-1", "--shard-name", "v", *checkpoints) == 0
    with caplog.at_level(logging.INFO):
        assert run_extract(folder, tmp_path / "out-2", "--shard-name", "v", *checkpoints) == 0
    assert "resuming from checkpoint at frame 30" in caplog.text  # every frame was done
    first = load_features(tmp_path / "out-1" / "features-v.npz")
    second = load_features(tmp_path / "out-2" / "features-v.npz")
    np.testing.assert_array_equal(second.features, first.features)


def test_an_empty_shard_writes_nothing_and_succeeds(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    assert run_extract(tmp_path / "input", tmp_path / "out", "--shard-name", "algo-4") == 0
    assert not (tmp_path / "out").exists()


def test_a_missing_input_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_extract(tmp_path / "absent", tmp_path / "out", "--shard-name", "x") == 2
    assert f"{tmp_path / 'absent'}: input not found" in capsys.readouterr().err


# --- score_windows.py -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras.utils.set_random_seed(11)
    window = WindowConfig()
    manifest = ModelManifest(
        classes=CLASSES, backbone="efficientnet_lite0", feature_dim=SMALL_DIM, rate=RATE,
        window_length=window.length, window_stride=window.stride,
        steps=window.steps(RATE), preset="compact", recipe=a_recipe(rate=RATE),
    )
    network = build_model("compact", manifest.steps, SMALL_DIM, len(CLASSES))
    return SequenceModel(network, manifest).save(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def aws() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        DynamoDBResults(TABLE, client).create_table()
        yield client


FRAMES = 150  # 30 s at 5 frames/s: 29 windows of 2 s every 1 s
DURATION = 30.1
THRESHOLD = 0.34
TARGETS = ["PenaltyKick", "Corner"]


def score_args(features: Path, output: Path, *source: str) -> list[str]:
    return ["--features", str(features), "--output", str(output), *source,
            "--match-id", "match-42", "--table", TABLE, "--targets", ",".join(TARGETS),
            "--threshold", str(THRESHOLD), "--duration", str(DURATION), "--region", REGION]


def expected_scores(seq: FeatureSequence, model_dir: Path) -> WindowScores:
    return score_sequence(seq, WindowConfig(), SequenceModel.load(model_dir))


def expected_segments(scores: WindowScores) -> list[Segment]:
    # as detect decides without calibrated settings: hysteresis on, low = threshold - 0.15
    policy = SegmentConfig(threshold=THRESHOLD, low_threshold=0.19)
    return find_segments(scores, TARGETS, policy, DURATION)


def test_in_process_scoring_writes_an_item_per_window_and_segments(
    aws: object, small_model: Path, tmp_path: Path
) -> None:
    seq = small_sequence(FRAMES)
    write_interleaved_shards(seq, tmp_path / "features")
    assert score_windows.main(
        score_args(tmp_path / "features", tmp_path / "out", "--model", str(small_model))
    ) == 0

    scores = expected_scores(seq, small_model)
    segments = expected_segments(scores)
    assert segments, "the threshold should pick some windows of this model"
    stored = DynamoDBResults(TABLE, aws).get("match-42")
    expected = window_records("match-42", scores, segments)
    assert [(r.start_ms, r.end_ms, r.picked) for r in stored] == [
        (r.start_ms, r.end_ms, r.picked) for r in expected
    ]
    for got, want in zip(stored, expected, strict=True):
        assert got.scores == pytest.approx(want.scores, abs=1e-6)

    document = read_segments_json(tmp_path / "out" / "segments.json")
    assert [(s.start, s.end, s.label) for s in document.segments] == [
        (s.start, s.end, s.label) for s in segments
    ]
    assert document.duration == DURATION
    assert len(document.scores) == len(scores)


def test_a_model_tar_gz_from_sagemaker_is_unpacked(
    aws: object, small_model: Path, tmp_path: Path
) -> None:
    archive_dir = tmp_path / "model-input"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "model.tar.gz", "w:gz") as tar:
        for path in small_model.iterdir():
            tar.add(path, arcname=path.name)
    write_interleaved_shards(small_sequence(FRAMES), tmp_path / "features")
    assert score_windows.main(
        score_args(tmp_path / "features", tmp_path / "out", "--model", str(archive_dir))
    ) == 0
    assert len(DynamoDBResults(TABLE, aws).get("match-42")) == 29


def queue_endpoint_replies(bodies: list[str]) -> None:
    """moto's documented way to set what `invoke_endpoint` answers, one reply per request."""
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"region": REGION, "results": [
            {"Body": body, "ContentType": "application/json"} for body in bodies
        ]},
        timeout=10,
    )
    assert response.status_code == 201


def replies_for(
    probabilities: np.ndarray, sizes: list[int], decisions: dict | None = None
) -> list[str]:
    bounds = np.cumsum([0, *sizes])
    return [
        json.dumps(prediction_document(CLASSES, probabilities[a:b], decisions))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


# moto's invoke_endpoint reads the request body as UTF-8 text, so .npy bodies are tested
# against the real server in test_serving.py; JSON and CSV go through moto here.
@pytest.mark.parametrize("content_type", [JSON, CSV])
def test_endpoint_scoring_batches_requests_and_records_the_replies(
    aws: object, small_model: Path, tmp_path: Path, content_type: str
) -> None:
    seq = small_sequence(FRAMES)
    write_interleaved_shards(seq, tmp_path / "features")
    scores = expected_scores(seq, small_model)
    assert len(scores) == 29
    queue_endpoint_replies(replies_for(scores.probabilities, [10, 10, 9]))
    args = score_args(tmp_path / "features", tmp_path / "out", "--endpoint", "highlights-ep")
    assert score_windows.main(
        [*args, "--endpoint-batch", "10", "--content-type", content_type]
    ) == 0

    stored = DynamoDBResults(TABLE, aws).get("match-42")
    assert len(stored) == 29
    for got, row in zip(stored, scores.probabilities, strict=True):
        assert got.scores == pytest.approx(dict(zip(CLASSES, row.tolist(), strict=True)), abs=1e-6)
    document = read_segments_json(tmp_path / "out" / "segments.json")
    segments = expected_segments(scores)
    assert [(s.start, s.end) for s in document.segments] == [(s.start, s.end) for s in segments]


CALIBRATED = {  # what an endpoint serving a calibrated model sends with its predictions
    "PenaltyKick": {"threshold": 0.3, "low_threshold": 0.1, "buffer": 9.0, "min_length": 2.0,
                    "merge_gap": 4.0},
}


def score_through_a_calibrated_endpoint(
    small_model: Path, tmp_path: Path, threshold: bool
) -> tuple[WindowScores, SegmentsFile]:
    """Run the scoring job against an endpoint that sends CALIBRATED, with or without
    --threshold; the scores the endpoint answered and the segments.json the job wrote."""
    seq = small_sequence(FRAMES)
    write_interleaved_shards(seq, tmp_path / "features")
    scores = expected_scores(seq, small_model)
    queue_endpoint_replies(replies_for(scores.probabilities, [29], CALIBRATED))
    args = score_args(tmp_path / "features", tmp_path / "out", "--endpoint", "highlights-ep")
    if not threshold:
        args.remove("--threshold")
        args.remove(str(THRESHOLD))
    assert score_windows.main([*args, "--endpoint-batch", "29", "--content-type", JSON]) == 0
    return scores, read_segments_json(tmp_path / "out" / "segments.json")


def test_endpoint_scoring_decides_with_the_calibrated_settings_the_endpoint_sends(
    aws: object, small_model: Path, tmp_path: Path
) -> None:
    scores, document = score_through_a_calibrated_endpoint(small_model, tmp_path, False)
    # calibrated settings for PenaltyKick, the buffer the job was given (the default here);
    # Corner has none, so the defaults with hysteresis
    buffer = SegmentConfig().buffer
    assert document.decisions["PenaltyKick"] == SegmentConfig(0.3, 0.1, buffer, 2.0, 4.0)
    default = SegmentConfig()
    assert document.decisions["Corner"] == SegmentConfig(
        default.threshold, round(default.threshold - 0.15, 6), buffer
    )
    expected = find_segments(scores, TARGETS, document.decisions, DURATION)
    assert [(s.start, s.end) for s in document.segments] == [(s.start, s.end) for s in expected]


def test_a_threshold_given_to_the_job_overrides_the_endpoint_s_calibrated_one(
    aws: object, small_model: Path, tmp_path: Path
) -> None:
    _, document = score_through_a_calibrated_endpoint(small_model, tmp_path, True)
    decided = document.decisions["PenaltyKick"]
    assert (decided.threshold, decided.low_threshold) == (THRESHOLD, 0.1)
    assert (decided.min_length, decided.merge_gap) == (2.0, 4.0)


def test_an_endpoint_whose_decision_settings_change_mid_job_is_an_error(aws: object) -> None:
    batch = np.random.default_rng(5).normal(size=(4, 10, SMALL_DIM)).astype(np.float32)
    probabilities = np.random.default_rng(6).dirichlet(np.ones(len(CLASSES)), 4)
    queue_endpoint_replies(
        replies_for(probabilities, [2], CALIBRATED) + replies_for(probabilities[2:], [2])
    )
    client = boto3.client("sagemaker-runtime", region_name=REGION)
    scorer = EndpointScorer(client, "highlights-ep", a_recipe(), JSON)
    scorer.predict(batch[:2])
    with pytest.raises(ModelError, match="decision settings that changed"):
        scorer.predict(batch[2:])


def test_a_request_over_the_byte_limit_is_split_in_halves(aws: object) -> None:
    batch = np.random.default_rng(5).normal(size=(4, 10, SMALL_DIM)).astype(np.float32)
    probabilities = np.random.default_rng(6).dirichlet(np.ones(len(CLASSES)), 4)
    queue_endpoint_replies(replies_for(probabilities, [2, 2]))
    whole = len(encode_windows(batch, JSON))
    client = boto3.client("sagemaker-runtime", region_name=REGION)
    scorer = EndpointScorer(client, "highlights-ep", a_recipe(), JSON, max_bytes=whole - 1)
    np.testing.assert_allclose(scorer.predict(batch), probabilities, rtol=1e-6)
    assert scorer.requests == 2
    assert scorer.classes == CLASSES


def test_a_target_the_model_does_not_know_exits_2(
    aws: object, small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_interleaved_shards(small_sequence(12), tmp_path / "features")
    args = score_args(tmp_path / "features", tmp_path / "out", "--model", str(small_model))
    args[args.index("--targets") + 1] = "Goal"
    assert score_windows.main(args) == 2
    assert "Goal not among the model's classes" in capsys.readouterr().err
    assert not (tmp_path / "out" / "segments.json").exists()


def test_features_at_another_rate_than_the_model_exit_2(
    aws: object, small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_interleaved_shards(small_sequence(12, rate=2.0), tmp_path / "features")
    args = score_args(tmp_path / "features", tmp_path / "out", "--model", str(small_model))
    assert score_windows.main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert f"features made by {a_recipe(rate=2).describe()}" in error
    assert f"trained on {a_recipe(rate=RATE).describe()}" in error
    assert not (tmp_path / "out" / "segments.json").exists()


def test_features_from_other_weights_than_the_model_exit_2(
    aws: object, small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    seq = small_sequence(12)
    other = dataclasses.replace(seq, recipe=a_recipe(rate=RATE, weights_sha256="f" * 64))
    write_interleaved_shards(other, tmp_path / "features")
    args = score_args(tmp_path / "features", tmp_path / "out", "--model", str(small_model))
    assert score_windows.main(args) == 2
    assert "(weights ffffffffffff," in capsys.readouterr().err


def test_frame_indices_round_times_to_the_capture_number() -> None:
    assert frame_indices(np.array([0.0, 0.2, 0.4000001, 1.0]), 5.0).tolist() == [0, 1, 2, 5]


# --- the whole aws path on a synthetic match (real backbone, trained model) --------------------


@pytest.mark.slow
def test_the_aws_path_finds_the_goal_mouth_scenes_of_a_synthetic_match(
    aws: object, trained_model: Path, synthetic_match: tuple, tmp_path: Path
) -> None:
    from highlights.synthetic import EVENT_CLASS

    video, events = synthetic_match
    listed = list_captured_frames(capture_frames(video, tmp_path / "capture"))
    for index, part in enumerate(shard(listed, 2), start=1):
        folder = tmp_path / f"input-{index}"
        folder.mkdir()
        for frame in part:
            shutil.copy(frame.path, folder)
        assert run_extract(folder, tmp_path / "features", "--shard-name", f"algo-{index}") == 0
    args = score_args(tmp_path / "features", tmp_path / "out", "--model", str(trained_model))
    args[args.index("--targets") + 1] = EVENT_CLASS
    args[args.index("--threshold") + 1] = "0.5"
    args[args.index("--duration") + 1] = str(video_duration(video))
    assert score_windows.main(args) == 0

    found = read_segments_json(tmp_path / "out" / "segments.json").segments
    for event in events:
        assert any(s.start < event.end and event.start < s.end for s in found), (event, found)
    for segment in found:
        assert any(e.start - 2 < segment.end and segment.start < e.end + 2 for e in events), segment
    picked = [r for r in DynamoDBResults(TABLE, aws).get("match-42") if r.picked]
    assert picked and all(any(s.start < r.end and r.start < s.end for s in found) for r in picked)


def video_duration(video: Path) -> float:
    from highlights.video import probe

    return probe(video).duration
