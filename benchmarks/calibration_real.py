"""Do calibrated decisions find the highlights of a real match better than a fixed threshold?

On the real clips in ../shared/data/videos (see SOURCES.md there): train on some, join others
that were never trained on into a match (its truth file written from the parts' lengths), detect
twice, with the model's calibrated settings and with a fixed 0.5 threshold and no hysteresis, and
print `highlights evaluate`'s segment precision / recall / F1 for both (all from this one run).

    .venv/bin/python benchmarks/calibration_real.py --work /tmp/calibration-real
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import imageio_ffmpeg  # noqa: E402

from highlights.config import Config  # noqa: E402
from highlights.evaluation import evaluate_paths, write_evaluation  # noqa: E402
from highlights.pipeline import run_detect  # noqa: E402
from highlights.training import train  # noqa: E402
from highlights.video import probe  # noqa: E402

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
TARGETS = ("TennisRally", "SoccerJuggling")
# Trained on (train, validation and test parts are chosen by `train` itself).
TRAINING = {
    "TennisRally": [f"tennis-tracking/video_input{n}.mp4" for n in (1, 3, 4, 5)],
    "SoccerJuggling": [
        "vision/v_SoccerJuggling_g23_c01.avi",
        "vision/v_SoccerJuggling_g24_c01.avi",
    ],
    "OtherSport": [
        "personalportfoliov29/v_Basketball_g01_c01.avi",
        "personalportfoliov29/v_Biking_g02_c05.avi",
        "personalportfoliov29/v_BreastStroke_g01_c01.avi",
        "personalportfoliov29/v_Diving_g01_c01.avi",
        "3DNet_Visualization/v_Shotput_g05_c02.avi",
        "3DNet_Visualization/BaseballSwingAnalysis_swing_baseball_u_nm_np1_ba_med_0.mp4",
        "tiny-ucf101/abseiling_k400.mp4",
        "vision/basketball.mp4",
        "fatgezim-portfolio/fatgezim-bela-soccer-winning-penalty.mp4",
    ],
}
# The match: never trained on. (label, file); label None is "not a highlight".
MATCH = [
    (None, "Football_analysis_system/08fd33_4.mp4"),
    ("TennisRally", "tennis-tracking/video_input6.mp4"),
    (None, "vision/R6llTwEh07w.mp4"),
    ("SoccerJuggling", "Text-To-Video-Finetuning/v_SoccerJuggling_g16_c01.mp4"),
    (None, "penalty-kick-prediction/test_video.mp4"),
    ("TennisRally", "tennis-tracking/video_input8.mp4"),
    (None, "vision/SOX5yA1l24A.mp4"),
    (None, "3DNet_Visualization/v_HeadMassage_g02_c05.avi"),
]
FPS = 25


def make_dataset(root: Path) -> Path:
    for label, names in TRAINING.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for name in names:
            link = root / label / Path(name).name
            if not link.exists():
                link.symlink_to(VIDEOS / name)
    return root


def make_match(out: Path) -> tuple[Path, Path]:
    """The match video (parts scaled into 640x360 at 25 fps, joined) and its truth file."""
    parts = [VIDEOS / name for _, name in MATCH]
    inputs: list[str] = []
    chains = []
    for index, part in enumerate(parts):
        inputs += ["-i", str(part)]
        chains.append(
            f"[{index}:v]scale=640:360:force_original_aspect_ratio=decrease,"
            f"pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS},format=yuv420p[v{index}]"
        )
    joined = "".join(f"[v{i}]" for i in range(len(parts)))
    graph = ";".join(chains) + f";{joined}concat=n={len(parts)}:v=1:a=0[out]"
    video = out / "match.mp4"
    if not video.exists():
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y",
                   *inputs, "-filter_complex", graph, "-map", "[out]", "-c:v", "libx264",
                   "-preset", "veryfast", str(video)]  # fmt: skip
        subprocess.run(command, check=True)
    highlights, start = [], 0.0
    for (label, _), part in zip(MATCH, parts, strict=True):
        # the fps filter keeps the frames that start inside the part: whole 1/25 s steps
        length = round(probe(part).duration * FPS) / FPS
        if label is not None:
            highlights.append(
                {"label": label, "start": round(start, 3), "end": round(start + length, 3)}
            )
        start += length
    truth = out / "truth.json"
    truth.write_text(json.dumps({
        "format": "sports-highlights/truth", "version": 1, "video": video.name,
        "highlights": highlights,
    }, indent=2) + "\n")  # fmt: skip
    return video, truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for everything made")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--validation-fraction", type=float, default=0.2, help="of each class's clips"
    )
    args = parser.parse_args(argv)
    if not VIDEOS.is_dir():
        print(f"real videos not found at {VIDEOS}", file=sys.stderr)
        return 2
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    config = Config(cache_dir=work / "cache").replace(
        **{"train.epochs": args.epochs, "train.validation_fraction": args.validation_fraction}
    )
    report = train(make_dataset(work / "data"), work / "model", config)
    print(report.format())
    video, truth = make_match(work)
    print(f"\nmatch: {video} ({probe(video).duration:.1f} s), truth: {truth}")
    fixed = config.replace(
        **{"segments.threshold": 0.5, "segments.min_length": 0.0, "segments.merge_gap": 0.0}
    ).without_hysteresis()
    results = {}
    for name, settings in (("calibrated", config), ("fixed 0.5, no hysteresis", fixed)):
        out = work / name.split()[0]
        detected = run_detect(video, work / "model", out, settings, list(TARGETS), force=True)
        evaluation = evaluate_paths(truth, detected.segments_json)
        write_evaluation(work / f"evaluation-{name.split()[0]}.json", evaluation)
        results[name] = evaluation
        print(f"\n== {name}: {len(detected.segments)} highlight(s)")
        for s in detected.segments:
            print(f"   {s.start:6.1f}-{s.end:6.1f} s  {s.label}  {s.score:.2f}")
        print(evaluation.format())
    print("\nSegment P / R / F1 (all target classes) at temporal IoU 0.3 and 0.5:")
    for name, evaluation in results.items():
        cells = []
        for score in evaluation.segments["all"]:
            if score.iou_threshold in (0.3, 0.5):
                cells.append(f"IoU {score.iou_threshold:.1f}: {score.precision:.2f} / "
                             f"{score.recall:.2f} / {score.f1:.2f}")  # fmt: skip
        print(f"  {name:<26} " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
