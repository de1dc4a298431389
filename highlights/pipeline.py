"""The detect pipeline: one definition, run whole by the CLI or a stage per Airflow task.

Each `stage_*` function reads the files the previous stage wrote and writes its own into a work
or output folder, so a runner can put any stage in its own process (or Airflow task) and re-run it
safely: outputs are written under a temporary name and renamed, names are deterministic, and each
stage notes what it wrote in the folder's manifest (`highlights.outputs.folder`), so that only
files this program wrote are ever replaced or removed.

`run_detect` runs them all into a staging folder inside the output folder, under the folder's
lock, and swaps the complete result in at the end: a crash leaves the old result or the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from highlights.backbones import Backbone, load_backbone
from highlights.config import Config, Decisions
from highlights.damage import DecodeDamage, check_damage, ranges_from_array, ranges_to_array
from highlights.decisions import decide, record_windows
from highlights.features import FeatureCache, load_features, save_features
from highlights.files import atomic_path, file_sha256
from highlights.local.mail import EmlNotifier, SmtpNotifier
from highlights.local.sqlite import SQLiteResults
from highlights.model import ModelManifest, SequenceModel, read_model_dir
from highlights.notify import Notifier
from highlights.openvino_classifier import OpenVinoSequenceModel, load_scoring_model
from highlights.outputs.clips import cut_clip, make_reel, thumbnail
from highlights.outputs.folder import OutputFolder
from highlights.outputs.notification import build_notification
from highlights.outputs.report import write_report
from highlights.outputs.segments_json import read_segments_json
from highlights.outputs.timelines import TIMELINE_FILES, write_timelines
from highlights.recipe import recipe_of
from highlights.results import ResultsStore
from highlights.segments import Segment
from highlights.video import VideoInfo, probe
from highlights.windows import WindowScores, score_sequence

log = logging.getLogger(__name__)

FEATURES_FILE = "features.npz"
SCORES_FILE = "scores.npz"
SEGMENTS_FILE = "segments.json"
HTML_REPORT_FILE = "report.html"
EMAIL_FILE = "notification.eml"
REEL_FILE = "highlights-reel.mp4"
RESULTS_DB = "results.sqlite"
CLIPS_DIR = "clips"
WORK_DIR = "work"


@dataclass(frozen=True)
class DetectResult:
    match_id: str
    video: VideoInfo
    segments: list[Segment]
    segments_json: Path
    clips: list[Path]
    reel: Path | None
    report: Path | None
    timelines: list[Path]
    notification: str


def match_id_for_digest(digest: str) -> str:
    """A stable id for a local video: the first 16 hex digits of its content's sha256."""
    return digest[:16]


def config_for_model(config: Config, manifest: ModelManifest) -> Config:
    """Sampling rate, window, backbone and what ran it must be those the model was trained
    with: features of another backend or precision would not fit its recipe. The decision
    settings are the model's calibrated ones (`Config.policy_for` puts the user's on top)."""
    aligned = config.replace(
        decisions=Decisions.from_dict(
            manifest.decisions.get("classes", {}), source=f"{manifest.backbone} model manifest"
        ),
        backbone=manifest.backbone,
        backbone_backend=manifest.recipe.backend,
        backbone_precision=manifest.recipe.precision,
        **{
            "sampling.rate": manifest.rate,
            "window.length": manifest.window_length,
            "window.stride": manifest.window_stride,
        },
    )
    if aligned != config.replace(window=aligned.window):
        log.info(
            "using the model's settings: backbone %s (%s %s), %.3g frames/s, "
            "%.3g s windows every %.3g s",
            manifest.backbone,
            manifest.recipe.backend,
            manifest.recipe.precision,
            manifest.rate,
            manifest.window_length,
            manifest.window_stride,
        )
    return aligned


def claim_output_dir(out_dir: Path, match_id: str, force: bool = False) -> None:
    """Refuse a folder that holds anything but an earlier run on this same video (unless `force`);
    finish or undo a run that died there; mark the folder as this video's."""
    OutputFolder(out_dir).claim(match_id, force=force)


def stage_features(
    video: Path,
    work_dir: Path,
    config: Config,
    progress: bool = False,
    digest: str | None = None,
    backbone: Backbone | None = None,
) -> Path:
    """Sample frames and run the backbone (loaded from `config` unless given, cached per
    video); write `features.npz`.

    Damaged stretches are logged and kept in the features; a video damaged past
    `decode.max_damaged_share` is refused (VideoError) once its features are cached.
    """
    backbone = backbone or load_backbone(
        config.backbone,
        config.backbone_weights,
        config.backbone_backend,
        config.backbone_precision,
        cache_dir=config.cache_dir,
    )
    sequence = FeatureCache(config.cache_dir).get_or_extract(
        video,
        backbone,
        config.sampling.rate,
        batch_size=config.batch_size,
        progress=progress,
        digest=digest,
        checkpoint_every=config.checkpoint_frames,
    )
    damage = sequence.damage
    check_damage(damage, config.decode.max_damaged_share, video)
    if damage:
        log.warning("%s: could not decode all of it: %s", video, damage.describe())
    path = work_dir / FEATURES_FILE
    save_features(sequence, path)
    return path


def stage_scores(
    features_path: Path,
    model_dir: Path,
    work_dir: Path,
    config: Config,
    model: SequenceModel | OpenVinoSequenceModel | None = None,
) -> Path:
    """Classify every window with the sequence model (loaded unless given); write `scores.npz`."""
    sequence = load_features(features_path)
    if model is None:
        model = load_scoring_model(model_dir, config.backbone_backend, config.cache_dir)
    model.manifest.check_features(sequence.recipe, str(features_path))
    scores = score_sequence(sequence, config.window, model)
    path = work_dir / SCORES_FILE
    save_scores(scores, path)
    return path


def save_scores(scores: WindowScores, path: Path) -> None:
    damage = scores.damage
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            starts=scores.starts,
            ends=scores.ends,
            probabilities=scores.probabilities,
            classes=np.array(scores.classes),
            damaged=scores.damaged,
            frames=np.array([damage.sampled_frames, damage.damaged_frames], dtype=np.int64),
            damaged_ranges=ranges_to_array(damage.ranges),
        )


def load_scores(path: Path) -> WindowScores:
    with np.load(path) as data:
        sampled, damaged = (int(n) for n in data["frames"])
        return WindowScores(
            starts=data["starts"],
            ends=data["ends"],
            probabilities=data["probabilities"],
            classes=tuple(str(c) for c in data["classes"]),
            damaged=data["damaged"],
            damage=DecodeDamage(sampled, damaged, ranges_from_array(data["damaged_ranges"])),
        )


def stage_segments(
    scores_path: Path,
    video: Path,
    targets: Sequence[str],
    config: Config,
    work_dir: Path,
    store: ResultsStore | None,
    match_id: str,
) -> Path:
    """Merge passing windows into ranges; record every window (unless `store` is None); write
    `segments.json`."""
    path = work_dir / SEGMENTS_FILE
    decide(
        load_scores(scores_path),
        targets,
        {target: config.policy_for(target) for target in targets},
        probe(video).duration,
        path,
        video_name=video.name,
        match_id=match_id,
        store=store,
    )
    OutputFolder(work_dir).record([path])
    return path


def clip_name(index: int, segment: Segment) -> str:
    """Deterministic, sortable clip file names, so a re-run replaces rather than adds."""
    return f"clip-{index:03d}_{segment.start:09.3f}-{segment.end:09.3f}.mp4"


def stage_clips(
    video: Path, segments_path: Path, out_dir: Path, config: Config, progress: bool = False
) -> list[Path]:
    """Cut one clip and thumbnail per range; drop this program's earlier clips that no longer
    apply (the folder's manifest lists them; nothing else in `clips/` is touched)."""
    segments = read_segments_json(segments_path).segments
    wanted = [out_dir / CLIPS_DIR / clip_name(i, s) for i, s in enumerate(segments, start=1)]
    for segment, path in tqdm(
        list(zip(segments, wanted, strict=True)), desc="clips", unit="clip", disable=not progress
    ):
        cut_clip(video, segment, path, copy=config.output.copy)
        thumbnail(video, (segment.start + segment.end) / 2, path.with_suffix(".jpg"))
    written = [p for clip in wanted for p in (clip, clip.with_suffix(".jpg"))]
    folder = OutputFolder(out_dir)
    earlier = [out_dir / rel for rel in folder.files() if rel.startswith(f"{CLIPS_DIR}/")]
    folder.discard([p for p in earlier if p not in written])
    folder.record(written)
    return wanted


def stage_reel(clips: Sequence[Path], out_dir: Path) -> Path | None:
    reel = out_dir / REEL_FILE
    if not clips:
        OutputFolder(out_dir).discard([reel])
        return None
    made = make_reel(list(clips), reel)
    OutputFolder(out_dir).record([made])
    return made


def stage_timelines(
    video: Path, segments_path: Path, clips: Sequence[Path], out_dir: Path
) -> list[Path]:
    """Write the highlights as editor timelines (`highlights.otio`, `.edl`, `.xml`); with no
    highlights, remove this program's earlier ones."""
    segments = read_segments_json(segments_path).segments
    folder = OutputFolder(out_dir)
    if not segments:
        folder.discard([out_dir / name for name in TIMELINE_FILES])
        return []
    clip_files = [clip.relative_to(out_dir).as_posix() for clip in clips]
    written = write_timelines(probe(video), segments, out_dir, clip_files)
    folder.record(written)
    return written


def stage_report(
    video: Path,
    scores_path: Path,
    segments_path: Path,
    clips: Sequence[Path],
    out_dir: Path,
    config: Config,
    reel: Path | None = None,
) -> Path:
    """The HTML report, beside the clips and reel it plays (linked by relative paths)."""
    document = read_segments_json(segments_path)
    path = out_dir / HTML_REPORT_FILE
    write_report(
        path,
        video_name=video.name,
        duration=document.duration,
        scores=load_scores(scores_path),
        targets=document.targets,
        threshold=document.policy.threshold,
        segments=document.segments,
        clips=[
            (
                segment,
                clip.relative_to(out_dir).as_posix(),
                clip.with_suffix(".jpg").relative_to(out_dir).as_posix(),
            )
            for segment, clip in zip(document.segments, clips, strict=True)
        ],
        reel=reel.relative_to(out_dir).as_posix() if reel else None,
    )
    OutputFolder(out_dir).record([path])
    return path


def stage_notify(
    video: Path,
    segments_path: Path,
    clips: Sequence[Path],
    reel: Path | None,
    report: Path | None,
    notifier: Notifier,
    config: Config,
) -> str:
    """Send (or write) the email listing the clips; return where it went."""
    document = read_segments_json(segments_path)
    notification = build_notification(
        video.name,
        document.segments,
        [(clip.name, clip.resolve().as_uri()) for clip in clips],
        report.resolve().as_uri() if report else None,
        sender=config.mail.sender,
        recipients=config.mail.recipients,
        extra_links=[("Highlight reel", reel.resolve().as_uri())] if reel else (),
    )
    message_id = notifier.send(notification)
    if isinstance(notifier, EmlNotifier):
        OutputFolder(notifier.path.parent).record([notifier.path])
        return str(notifier.path)
    return f"sent to {', '.join(notification.recipients)} ({message_id})"


def default_notifier(config: Config, out_dir: Path) -> Notifier:
    if config.mail.smtp_host:
        return SmtpNotifier(config.mail)
    return EmlNotifier(out_dir / EMAIL_FILE)


def run_detect(
    video: Path,
    model_dir: Path,
    out_dir: Path,
    config: Config,
    targets: Sequence[str],
    *,
    progress: bool = False,
    force: bool = False,
    store: ResultsStore | None = None,
    notifier: Notifier | None = None,
) -> DetectResult:
    """Every stage in order, for one video on this machine.

    The output folder is locked for the whole run (a second run into it gets OutputBusyError);
    the result is staged inside it and swapped in whole once every file is written.
    """
    info = probe(video)
    manifest, _ = read_model_dir(model_dir)
    config = config_for_model(config, manifest)
    model = load_scoring_model(model_dir, config.backbone_backend, config.cache_dir)
    backbone = load_backbone(
        config.backbone,
        config.backbone_weights,
        config.backbone_backend,
        config.backbone_precision,
        cache_dir=config.cache_dir,
    )
    # Refused before anything is written: features of another recipe mean nothing to the model.
    model.manifest.check_features(recipe_of(backbone, config.sampling.rate), str(video))
    digest = file_sha256(video)
    match_id = match_id_for_digest(digest)
    folder = OutputFolder(out_dir)
    with folder.lock():
        folder.claim(match_id, force=force)
        kept = []
        if store is None:
            folder.adopt(RESULTS_DB)
            kept.append(RESULTS_DB)
            store = SQLiteResults(out_dir / RESULTS_DB)
        staging = folder.begin_staging()
        work_dir = staging / WORK_DIR
        work_dir.mkdir()

        def placed(path: Path) -> Path:
            return out_dir / path.relative_to(staging)

        features = stage_features(video, work_dir, config, progress, digest, backbone=backbone)
        scores = stage_scores(features, model_dir, work_dir, config, model=model)
        # The windows are recorded once the result is in place (never for a refused result).
        segments_json = stage_segments(scores, video, targets, config, staging, None, match_id)
        clips = stage_clips(video, segments_json, staging, config, progress=progress)
        reel = stage_reel(clips, staging) if config.output.reel else None
        timelines = stage_timelines(video, segments_json, clips, staging)
        report = (
            stage_report(video, scores, segments_json, clips, staging, config, reel)
            if config.output.report
            else None
        )
        final_clips = [placed(clip) for clip in clips]
        final_reel = placed(reel) if reel else None
        final_report = placed(report) if report else None
        notifier = notifier or default_notifier(config, out_dir)
        # An .eml file in the folder is part of the result: staged with it, links to final places.
        mail_in_result = isinstance(notifier, EmlNotifier) and notifier.path.parent == out_dir
        if mail_in_result:
            staged_mail = EmlNotifier(staging / notifier.path.name)
            stage_notify(
                video, segments_json, final_clips, final_reel, final_report, staged_mail, config
            )
        folder.publish(staging, kept=kept)
        segments_json, scores = placed(segments_json), placed(scores)
        segments = read_segments_json(segments_json).segments
        record_windows(store, match_id, load_scores(scores), segments)
        sent = (
            str(notifier.path)
            if mail_in_result
            else stage_notify(
                video, segments_json, final_clips, final_reel, final_report, notifier, config
            )
        )
    return DetectResult(
        match_id=match_id,
        video=info,
        segments=segments,
        segments_json=segments_json,
        clips=final_clips,
        reel=final_reel,
        report=final_report,
        timelines=[placed(path) for path in timelines],
        notification=sent,
    )
