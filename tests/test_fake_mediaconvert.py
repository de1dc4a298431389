"""The strict MediaConvert fake: documented rules refused at CreateJob, and job effects as the
documentation describes them (frame capture timing and size, inclusive clipping, rotation,
timecodes, the one-minute request-token window).

Videos are tiny and made here: in the "ramp" video frame k is a flat grey of luma 16 + 4k, so
every captured or encoded picture says which source frame it shows.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from highlights.aws import mediaconvert
from highlights.segments import Segment
from tests.fake_mediaconvert import MAX_INPUTS, FakeMediaConvert, rule_violations
from tests.media import make_split_colour_video, make_video, run_ffmpeg
from tests.mediaconvert_jobs import JobError, timecode_frames

REGION = "us-east-1"
BUCKET = "media-bucket"
ROLE = "arn:aws:iam::123456789012:role/mediaconvert"
RAMP_FPS = 25
RAMP_FRAMES = 50


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_ramp(path: Path, fps: str = str(RAMP_FPS), extra: tuple[str, ...] = ()) -> Path:
    run_ffmpeg(["-f", "lavfi", "-i", f"nullsrc=s=64x48:r={fps}:d={RAMP_FRAMES / RAMP_FPS},"
                "geq=lum=16+4*N:cb=128:cr=128", "-c:v", "libx264", "-qp", "0",
                "-pix_fmt", "yuv420p", *extra, str(path)])  # fmt: skip
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mediaconvert-sources")
    return {
        "ramp": make_ramp(folder / "ramp.mp4"),
        "ramp-tc": make_ramp(folder / "ramp-tc.mp4", extra=("-timecode", "01:00:00:00")),
        "ramp-12.5": make_ramp(folder / "ramp-12.5.mp4", fps="12.5"),
        "rotated": make_split_colour_video(folder / "rotated.mp4", 1.0, rotation=90),
        "upright": make_split_colour_video(folder / "upright.mp4", 1.0),
        "sound": make_video(folder / "sound.mp4", 2.0, size=(64, 48), audio=True),
        "long": make_video(
            folder / "long.mp4", 12.0, fps=25, size=(32, 32), pattern="color=c=gray"
        ),
    }


@pytest.fixture
def world(aws_credentials, tmp_path, videos):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        for name, path in videos.items():
            s3.upload_file(str(path), BUCKET, f"in/{name}.mp4")
        clock = Clock()
        yield s3, FakeMediaConvert(s3, tmp_path / "mediaconvert", clock=clock), clock


def url(name: str) -> str:
    return f"s3://{BUCKET}/in/{name}.mp4"


def submit(fake: FakeMediaConvert, settings: dict, token: str = "t-1", **extra) -> dict:
    job = fake.create_job(
        Role=ROLE, Settings=settings, ClientRequestToken=token,
        UserMetadata={"purpose": extra.pop("purpose", "test")}, **extra,
    )["Job"]  # fmt: skip
    assert job["Status"] == "SUBMITTED"
    return fake.get_job(Id=job["Id"])["Job"]


def refusal(fake: FakeMediaConvert, settings: dict, **extra) -> str:
    with pytest.raises(ClientError) as raised:
        fake.create_job(Role=ROLE, Settings=settings, **extra)
    assert raised.value.response["Error"]["Code"] == "BadRequestException"
    return raised.value.response["Error"]["Message"]


def proxy_group(destination: str, **description) -> dict:
    return {
        "Name": "Proxy",
        "OutputGroupSettings": {
            "Type": "FILE_GROUP_SETTINGS",
            "FileGroupSettings": {"Destination": destination},
        },
        "Outputs": [
            {
                "ContainerSettings": {"Container": "MP4", "Mp4Settings": {}},
                "Extension": "mp4",
                "VideoDescription": {
                    **description,
                    "CodecSettings": {
                        "Codec": "H_264",
                        "H264Settings": {"RateControlMode": "QVBR", "MaxBitrate": 1_000_000},
                    },
                },
            }
        ],
    }


def unscaled(duration: float = 2.0) -> mediaconvert.SourceInfo:
    """A source of unknown size: the builder then leaves every output at the source's size."""
    return mediaconvert.SourceInfo(duration, "25", False, width=0, height=0)


def capture_job(source: str, rate: Fraction, max_captures: int, **description) -> dict:
    """The builder's frame-capture job with its proxy replaced by `proxy_group`, tuned by hand."""
    settings = mediaconvert.frame_capture_settings(
        source, f"s3://{BUCKET}/frames/", f"s3://{BUCKET}/proxy/p", 1.0, unscaled()
    )
    settings["OutputGroups"].pop()
    output = settings["OutputGroups"][0]["Outputs"][0]
    output["VideoDescription"].update(description)
    output["VideoDescription"]["CodecSettings"]["FrameCaptureSettings"].update(
        FramerateNumerator=rate.numerator,
        FramerateDenominator=rate.denominator,
        MaxCaptures=max_captures,
        Quality=100,
    )
    settings["OutputGroups"].append(proxy_group(f"s3://{BUCKET}/proxy/p", Height=32))
    return settings


def download(s3, key: str, folder: Path) -> Path:
    local = folder / key.replace("/", "_")
    s3.download_file(BUCKET, key, str(local))
    return local


def keys(s3, prefix: str) -> list[str]:
    found = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in found)


def ramp_index(frame: av.VideoFrame) -> int:
    plane = np.frombuffer(frame.planes[0], np.uint8).reshape(-1, frame.planes[0].line_size)
    luma = plane[: frame.height, : frame.width].astype(float).mean()
    if frame.format.name.startswith("yuvj"):  # JPEG: full-range luma
        luma = 16 + luma * 219 / 255
    return round((luma - 16) / 4)


def captured_frames(s3, prefix: str, folder: Path) -> list[int]:
    indices = []
    for key in keys(s3, prefix):
        with av.open(str(download(s3, key, folder))) as image:
            indices.append(ramp_index(next(image.decode(video=0))))
    return indices


def encoded_frames(s3, key: str, folder: Path) -> list[int]:
    with av.open(str(download(s3, key, folder))) as video:
        return [ramp_index(frame) for frame in video.decode(video=0)]


def picture(s3, key: str, folder: Path) -> tuple[np.ndarray, float]:
    """First picture of an output (RGB) and the rotation its metadata asks players for."""
    with av.open(str(download(s3, key, folder))) as video:
        frame = next(video.decode(video=0))
        return frame.to_ndarray(format="rgb24"), frame.rotation


def colour(pixel: np.ndarray) -> str:
    return "red" if pixel[0] > 128 > pixel[2] else "blue" if pixel[2] > 128 > pixel[0] else "?"


# --- rules at CreateJob -----------------------------------------------------------------------


def test_frame_capture_only_job_is_refused(world):
    _, fake, _ = world
    settings = mediaconvert.frame_capture_settings(
        url("ramp"), f"s3://{BUCKET}/f/", f"s3://{BUCKET}/p/p", 5.0, unscaled()
    )
    settings["OutputGroups"] = settings["OutputGroups"][:1]
    message = refusal(fake, settings)
    assert (
        "MediaConvert doesn't support jobs that consist only of a frame capture output" in message
    )


def test_the_pipelines_frame_capture_job_is_accepted_with_its_proxy_apart(world, tmp_path):
    s3, fake, _ = world
    info = mediaconvert.SourceInfo(2.0, "25", True, width=64, height=48)
    settings = mediaconvert.frame_capture_settings(
        url("sound"), f"s3://{BUCKET}/frames/m/", f"s3://{BUCKET}/proxies/m/proxy", 5.0, info, 32
    )
    job = submit(fake, settings)
    assert job["Status"] == "COMPLETE", job.get("ErrorMessage")
    assert len(keys(s3, "frames/m/")) == 10
    assert keys(s3, "proxies/") == ["proxies/m/proxy.mp4"]
    image, _ = picture(s3, "frames/m/frame.0000000.jpg", tmp_path)
    assert image.shape[:2] == (32, 42)  # the short side asked for, aspect kept, even


def test_frame_capture_beside_a_video_output_is_accepted(world, tmp_path):
    s3, fake, _ = world
    job = submit(fake, capture_job(url("ramp"), Fraction(5), 100))
    assert job["Status"] == "COMPLETE", job.get("ErrorMessage")
    assert len(keys(s3, "frames/")) == 10
    assert keys(s3, "proxy/") == ["proxy/p.mp4"]
    assert len(encoded_frames(s3, "proxy/p.mp4", tmp_path)) == RAMP_FRAMES
    details = [g["OutputDetails"][0] for g in job["OutputGroupDetails"]]
    assert [d["VideoDetails"] for d in details] == [
        {"WidthInPx": 64, "HeightInPx": 48},
        {"WidthInPx": 42, "HeightInPx": 32},  # Height only: scaled evenly
    ]


def test_more_than_150_inputs_are_refused_and_todays_reel_stays_within(world):
    _, fake, _ = world
    segments = [Segment(i * 0.01, i * 0.01 + 0.005, 1, "x") for i in range(200)]
    reel = mediaconvert.reel_settings(url("ramp"), segments, f"s3://{BUCKET}/reel", 25, False)
    assert len(reel["Inputs"]) <= MAX_INPUTS
    assert rule_violations({"Settings": reel}) == []
    reel["Inputs"] = reel["Inputs"][:1] * (MAX_INPUTS + 1)
    assert "'You can have up to 150 inputs in a job.' Got 151" in refusal(fake, reel)


def test_outputs_sharing_a_group_need_name_modifiers(world):
    _, fake, _ = world
    settings = capture_job(url("ramp"), Fraction(5), 10)
    proxy = settings["OutputGroups"].pop()["Outputs"][0]
    settings["OutputGroups"][0]["Outputs"].append(proxy)
    message = refusal(fake, settings)
    assert "Settings.OutputGroups[0].Outputs[0].NameModifier" in message
    assert "Name modifier is required" in message
    for output, modifier in zip(settings["OutputGroups"][0]["Outputs"], ("-f", "-p"), strict=True):
        output["NameModifier"] = modifier
    assert submit(fake, settings)["Status"] == "COMPLETE"


def test_clipping_needs_a_start_or_an_end(world):
    _, fake, _ = world
    clip = mediaconvert.clip_settings(url("ramp"), Segment(0.4, 0.8, 1, "x"), "s3://b/c", 25, False)
    clip["Inputs"][0]["InputClippings"] = [{}]
    assert "may be left blank, but not both" in refusal(fake, clip)


def test_request_token_longer_than_64_ascii_characters_is_refused(world):
    _, fake, _ = world
    clip = mediaconvert.clip_settings(url("ramp"), Segment(0.4, 0.8, 1, "x"), "s3://b/c", 25, False)
    assert "up to 64 ASCII characters" in refusal(fake, clip, ClientRequestToken="x" * 65)
    assert "up to 64 ASCII characters" in refusal(fake, clip, ClientRequestToken="tête")


def test_settings_outside_the_model_are_a_bad_request(world):
    _, fake, _ = world
    settings = capture_job(url("ramp"), Fraction(5), 10)
    capture = settings["OutputGroups"][0]["Outputs"][0]["VideoDescription"]["CodecSettings"]
    capture["FrameCaptureSettings"]["Quality"] = 101
    message = refusal(fake, settings)
    assert "FrameCaptureSettings.Quality: 101 > max 100" in message


def test_request_token_dedupes_for_one_minute_only(world):
    _, fake, clock = world
    clip = mediaconvert.clip_settings(
        url("ramp"), Segment(0.4, 0.8, 1, "x"), f"s3://{BUCKET}/c", 25, False
    )
    first = submit(fake, clip, token="clip-token")
    clock.now += 59.9
    assert submit(fake, clip, token="clip-token")["Id"] == first["Id"]
    clock.now += 0.2  # 60.1 s after the first request
    second = submit(fake, clip, token="clip-token")
    assert second["Id"] != first["Id"]
    assert len(fake.jobs) == 2


# --- frame capture ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (Fraction(5), [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]),
        (Fraction(3), [0, 8, 16, 25, 33, 41]),  # frame on screen at n/3 s: floor(25n/3)
        (Fraction(1, 2), [0]),  # one capture every 2 s of a 2 s video
        (Fraction(50), [k // 2 for k in range(100)]),  # faster than the source repeats frames
    ],
)
def test_capture_n_shows_the_frame_on_screen_at_n_over_the_rate(world, tmp_path, rate, expected):
    s3, fake, _ = world
    job = submit(fake, capture_job(url("ramp"), rate, 1000))
    assert job["Status"] == "COMPLETE", job.get("ErrorMessage")
    assert captured_frames(s3, "frames/", tmp_path) == expected
    assert keys(s3, "frames/")[0] == "frames/frame.0000000.jpg"


def test_every_frame_of_a_long_input_can_be_captured(world):
    s3, fake, _ = world
    job = submit(fake, capture_job(url("long"), Fraction(25), 1000))
    assert job["Status"] == "COMPLETE", job.get("ErrorMessage")
    assert len(keys(s3, "frames/")) == 300
    assert keys(s3, "frames/")[-1] == "frames/frame.0000299.jpg"


def test_captures_stop_at_max_captures(world, tmp_path):
    s3, fake, _ = world
    submit(fake, capture_job(url("ramp"), Fraction(5), 4))
    assert captured_frames(s3, "frames/", tmp_path) == [0, 5, 10, 15]


def test_capture_size_follows_width_and_height(world, tmp_path):
    s3, fake, _ = world
    job = submit(fake, capture_job(url("ramp"), Fraction(1), 10, Width=96, Height=96))
    image, _ = picture(s3, "frames/frame.0000000.jpg", tmp_path)
    assert image.shape == (96, 96, 3)
    assert image[2, 48].max() < 10  # DEFAULT scaling pads (black bars), never stretches
    assert job["OutputGroupDetails"][0]["OutputDetails"][0]["VideoDetails"]["WidthInPx"] == 96


# --- clipping --------------------------------------------------------------------------------


def test_clip_includes_the_frame_of_its_end_timecode(world, tmp_path):
    s3, fake, _ = world
    clip = mediaconvert.clip_settings(
        url("ramp"), Segment(0.4, 0.8, 1, "x"), f"s3://{BUCKET}/clips/c0", 25, False
    )
    assert clip["Inputs"][0]["InputClippings"] == [
        {"StartTimecode": "00:00:00:10", "EndTimecode": "00:00:00:19"}
    ]
    assert submit(fake, clip)["Status"] == "COMPLETE"
    assert encoded_frames(s3, "clips/c0.mp4", tmp_path) == list(range(10, 20))


def test_reel_joins_its_clippings_in_time_order(world, tmp_path):
    s3, fake, _ = world
    segments = [Segment(1.2, 1.32, 1, "x"), Segment(0.2, 0.28, 1, "x")]
    reel = mediaconvert.reel_settings(url("ramp"), segments, f"s3://{BUCKET}/reel", 25, False)
    assert submit(fake, reel)["Status"] == "COMPLETE"
    assert encoded_frames(s3, "reel.mp4", tmp_path) == [5, 6, 30, 31, 32]


def test_clip_with_sound_keeps_the_sound_of_its_frames(world, tmp_path):
    s3, fake, _ = world
    clip = mediaconvert.clip_settings(
        url("sound"), Segment(0.4, 1.2, 1, "x"), f"s3://{BUCKET}/clips/s", 25, True
    )
    assert submit(fake, clip)["Status"] == "COMPLETE"
    with av.open(str(download(s3, "clips/s.mp4", tmp_path))) as video:
        assert video.streams.audio, "the clip lost its sound"
        seconds = float(video.streams.audio[0].duration * video.streams.audio[0].time_base)
    assert abs(seconds - 0.8) < 0.05


def test_clipping_outside_the_input_fails_the_job(world):
    _, fake, _ = world
    clip = mediaconvert.clip_settings(url("ramp"), Segment(1.0, 3.0, 1, "x"), "s3://b/c", 25, False)
    job = submit(fake, clip)
    assert job["Status"] == "ERROR"
    assert "frames 25-74 are outside" in job["ErrorMessage"]


def test_embedded_timecode_is_the_default_timecode_source(world, tmp_path):
    s3, fake, _ = world
    destination = f"s3://{BUCKET}/clips/tc"
    clip = mediaconvert.clip_settings(
        url("ramp-tc"), Segment(0.4, 0.8, 1, "x"), destination, 25, False
    )
    assert clip["Inputs"][0]["TimecodeSource"] == "ZEROBASED"
    assert submit(fake, clip)["Status"] == "COMPLETE"
    del clip["Inputs"][0]["TimecodeSource"]  # EMBEDDED: the file starts at 01:00:00:00
    job = submit(fake, clip, token="t-2")
    assert (job["Status"], "outside" in job["ErrorMessage"]) == ("ERROR", True)
    clip["Inputs"][0]["InputClippings"] = [
        {"StartTimecode": "01:00:00:10", "EndTimecode": "01:00:00:19"}
    ]
    assert submit(fake, clip, token="t-3")["Status"] == "COMPLETE"
    assert encoded_frames(s3, "clips/tc.mp4", tmp_path) == list(range(10, 20))


# --- rotation ---------------------------------------------------------------------------------


def test_rotation_metadata_is_ignored_by_default_and_not_passed_through(world, tmp_path):
    s3, fake, _ = world
    clip = mediaconvert.clip_settings(
        url("rotated"), Segment(0, 0.4, 1, "x"), f"s3://{BUCKET}/clips/r", 25, False
    )
    clip["Inputs"][0]["VideoSelector"] = {}  # no Rotate: DEGREE_0
    assert submit(fake, clip)["Status"] == "COMPLETE"
    image, rotation = picture(s3, "clips/r.mp4", tmp_path)
    assert image.shape[:2] == (240, 320)  # as stored, sideways
    assert (colour(image[120, 5]), colour(image[120, 315])) == ("red", "blue")
    assert rotation == 0


def test_rotate_auto_turns_the_pictures_as_the_metadata_says(world, tmp_path):
    s3, fake, _ = world
    clip = mediaconvert.clip_settings(
        url("rotated"), Segment(0, 0.4, 1, "x"), f"s3://{BUCKET}/clips/a", 25, False
    )
    assert clip["Inputs"][0]["VideoSelector"] == {"Rotate": "AUTO"}  # as the pipeline asks
    assert submit(fake, clip)["Status"] == "COMPLETE"
    image, rotation = picture(s3, "clips/a.mp4", tmp_path)
    # metadata: 90 degrees counter-clockwise, so the left (red) half ends at the bottom
    assert image.shape[:2] == (320, 240)
    assert (colour(image[5, 120]), colour(image[315, 120])) == ("blue", "red")
    assert rotation == 0


def test_rotate_auto_applies_to_frame_capture(world, tmp_path):
    s3, fake, _ = world
    settings = capture_job(url("rotated"), Fraction(1), 1)
    assert settings["Inputs"][0]["VideoSelector"] == {"Rotate": "AUTO"}
    assert submit(fake, settings)["Status"] == "COMPLETE"
    image, _ = picture(s3, "frames/frame.0000000.jpg", tmp_path)
    assert image.shape[:2] == (320, 240)


def test_a_given_rotation_is_clockwise(world, tmp_path):
    s3, fake, _ = world
    clip = mediaconvert.clip_settings(
        url("upright"), Segment(0, 0.4, 1, "x"), f"s3://{BUCKET}/clips/cw", 25, False
    )
    clip["Inputs"][0]["VideoSelector"]["Rotate"] = "DEGREES_90"
    submit(fake, clip)
    image, _ = picture(s3, "clips/cw.mp4", tmp_path)
    assert (colour(image[5, 120]), colour(image[315, 120])) == ("red", "blue")


# --- timecodes ---------------------------------------------------------------------------------

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("timecode", "rate", "frame"),
    [
        ("00:00:01:00", Fraction(25), 25),
        ("00:00:01:00", NTSC, 30),  # non-drop-frame: 30 numbers a timecode second at 29.97
        ("01:00:00:00", NTSC, 108_000),
        ("00:00:59;29", NTSC, 1799),  # drop-frame (SMPTE 12M) published values
        ("00:01:00;02", NTSC, 1800),
        ("00:10:00;00", NTSC, 17_982),
        ("01:00:00;00", NTSC, 107_892),
        ("00:01:00;04", Fraction(60000, 1001), 3600),
        ("00:00:01:00", Fraction(24000, 1001), 24),
    ],
)
def test_timecodes_decode_to_frame_numbers(timecode, rate, frame):
    assert timecode_frames(timecode, rate) == frame


@pytest.mark.parametrize(
    ("timecode", "rate", "problem"),
    [
        ("00:01:00;00", NTSC, "drop-frame skips"),
        ("00:00:00;10", Fraction(25), "drop-frame timecode needs 29.97 or 59.94"),
        ("00:00:00:25", Fraction(25), "not a valid timecode"),
        ("00:00:01:00", Fraction(25, 2), "Not documented"),
        ("00:00:01:00@25", Fraction(25), "not modelled"),
    ],
)
def test_timecodes_the_documentation_does_not_allow_fail(timecode, rate, problem):
    with pytest.raises(JobError, match=problem):
        timecode_frames(timecode, rate)


def test_clipping_a_source_at_an_undocumented_rate_fails_the_job(world):
    _, fake, _ = world
    clip = mediaconvert.clip_settings(
        url("ramp-12.5"), Segment(0.4, 0.8, 1, "x"), "s3://b/c", 12.5, False
    )
    job = submit(fake, clip)
    assert job["Status"] == "ERROR"
    assert "Not documented" in job["ErrorMessage"]


# --- the rest of the API ----------------------------------------------------------------------


def test_settings_the_fake_does_not_act_on_fail_the_job(world):
    _, fake, _ = world
    clip = mediaconvert.clip_settings(url("ramp"), Segment(0.4, 0.8, 1, "x"), "s3://b/c", 25, False)
    clip["Inputs"][0]["Crop"] = {"Height": 32, "Width": 32, "X": 0, "Y": 0}
    job = submit(fake, clip)
    assert job["Status"] == "ERROR"
    assert "not modelled by FakeMediaConvert: Settings.Inputs[0].Crop.Height" in job["ErrorMessage"]


def test_injected_failure_ends_the_job_in_error_with_its_message(world):
    _, fake, _ = world
    fake.fail["clip-000"] = "Unable to open input file"
    clip = mediaconvert.clip_settings(url("ramp"), Segment(0.4, 0.8, 1, "x"), "s3://b/c", 25, False)
    job = submit(fake, clip, purpose="clip-000")
    assert (job["Status"], job["ErrorMessage"]) == ("ERROR", "Unable to open input file")


def test_probe_reports_rate_size_and_clockwise_rotation(world):
    _, fake, _ = world
    [ramp, rotated] = fake.probe(
        InputFiles=[{"FileUrl": url("ramp")}, {"FileUrl": url("rotated")}]
    )["ProbeResults"]
    video = ramp["Container"]["Tracks"][0]["VideoProperties"]
    assert video["FrameRate"] == {"Numerator": 25, "Denominator": 1}
    assert (video["Width"], video["Height"]) == (64, 48)
    assert ramp["Container"]["Duration"] == 2.0
    assert "Rotation" not in video
    # stored 320x240, shown turned 90 degrees counter-clockwise, i.e. 270 clockwise
    assert rotated["Container"]["Tracks"][0]["VideoProperties"]["Rotation"] == 270


def test_unknown_job_is_not_found(world):
    _, fake, _ = world
    with pytest.raises(ClientError) as raised:
        fake.get_job(Id="1700000000000-000009")
    assert raised.value.response["Error"]["Code"] == "NotFoundException"


def test_missing_input_fails_the_job_as_the_service_words_it(world):
    _, fake, _ = world
    clip = mediaconvert.clip_settings(
        f"s3://{BUCKET}/in/absent.mp4", Segment(0.4, 0.8, 1, "x"), "s3://b/c", 25, False
    )
    job = submit(fake, clip)
    assert job["Status"] == "ERROR"
    assert job["ErrorMessage"].startswith(
        f"Unable to open input file [s3://{BUCKET}/in/absent.mp4]"
    )
