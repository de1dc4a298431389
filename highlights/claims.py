"""Claim records: every attempt at one input, so a failed input is retried, then parked, never lost.

A claim is a small JSON record kept beside the input's results: a ledger file per inbox video
(`highlights.local.claims`), a `run.json` object per S3 upload (`highlights.aws.claims`). The
pipeline run writes it: its first task records the attempt, a failing task records its error,
its last task marks the input done. The dispatcher reads it, together with the state of the
attempt's run, and decides with `next_step` what happens next: start a run, wait, retry as a new
run, or park the input after `max_attempts` failures.

Run states are Airflow's (`queued`, `running`, `success`, `failed`) or None when no such run
exists; nothing here imports Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from highlights.errors import InputError

RUNNING, RETRY, DONE, FAILED = "running", "retry", "done", "failed"
RETRY_MARK = "__try"
_ERROR_CHARS = 4000  # an error is a traceback's last line or two, not a log


def attempt_run_id(first_run_id: str, attempt: int) -> str:
    """Run id of attempt `attempt` (from 1) of the input whose first run is `first_run_id`."""
    return first_run_id if attempt <= 1 else f"{first_run_id}{RETRY_MARK}{attempt}"


@dataclass(frozen=True)
class Attempt:
    run_id: str
    outcome: str = RUNNING  # running | failed | done
    error: str = ""


@dataclass(frozen=True)
class Claim:
    """One version of one input: every run that tried it, and where it stands."""

    input: str  # the file or s3:// URL, for people reading the record
    version: str  # size and mtime (inbox), ETag (S3): a new version starts over
    state: str = RUNNING  # running | retry | done | failed
    attempts: tuple[Attempt, ...] = ()

    @property
    def failures(self) -> int:
        return sum(1 for a in self.attempts if a.outcome == FAILED)

    @property
    def last_error(self) -> str:
        errors = [a.error for a in self.attempts if a.error]
        return errors[-1] if errors else ""

    def attempt(self, run_id: str) -> Attempt | None:
        return next((a for a in self.attempts if a.run_id == run_id), None)

    def started(self, run_id: str) -> Claim:
        """Run `run_id` has claimed the input (a retried task of the same run adds nothing)."""
        attempts = self.attempts if self.attempt(run_id) else (*self.attempts, Attempt(run_id))
        return replace(self, state=RUNNING, attempts=attempts)

    def succeeded(self, run_id: str) -> Claim:
        return replace(self._update(run_id, outcome=DONE), state=DONE)

    def noted_error(self, run_id: str, error: str) -> Claim:
        """A task of run `run_id` failed with `error` (several failing tasks: all are kept)."""
        current = self.attempt(run_id)
        earlier = current.error if current else ""
        text = f"{earlier}\n{error}" if earlier and error not in earlier else (earlier or error)
        return self._update(run_id, error=text[-_ERROR_CHARS:])

    def failed(self, run_id: str) -> Claim:
        return self._update(run_id, outcome=FAILED)

    def _update(self, run_id: str, **changes: str) -> Claim:
        if self.attempt(run_id) is None:
            return replace(self, attempts=(*self.attempts, Attempt(run_id, **changes)))
        attempts = tuple(replace(a, **changes) if a.run_id == run_id else a for a in self.attempts)
        return replace(self, attempts=attempts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> Claim:
        try:
            data = json.loads(text)
            attempts = tuple(Attempt(**a) for a in data.pop("attempts", []))
            return cls(**data, attempts=attempts)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: not a claim record ({exc})") from None


@dataclass(frozen=True)
class Step:
    """What the dispatcher does next for one input."""

    action: Literal["trigger", "wait", "park", "none"]
    run_id: str | None = None
    claim: Claim | None = field(default=None)  # a changed record to write first, or None


def current_run_id(claim: Claim | None, first_run_id: str) -> str:
    """The run that is (or should be) working on the input now."""
    if claim is None or not claim.attempts:
        return first_run_id
    last = claim.attempts[-1]
    if last.outcome == FAILED:
        return attempt_run_id(first_run_id, len(claim.attempts) + 1)
    return last.run_id


def next_step(
    claim: Claim | None,
    fresh: Claim,
    first_run_id: str,
    run_state: Callable[[str], str | None],
    max_attempts: int,
) -> Step:
    """Decide from the claim record and the current run's state; deterministic run ids.

    `fresh` is the record of the input as it is now, with no attempts: it replaces a missing
    record or one of an older version.

    No run yet: start it. Running: wait. Failed: record the failure, then start the next attempt,
    or park the input once `max_attempts` runs have failed. Done or parked: nothing.
    """
    if claim is not None and claim.version != fresh.version:
        claim = None  # a new version of the input: its attempts start from one
    if claim is not None and claim.state in (DONE, FAILED):
        return Step("none")
    run_id = current_run_id(claim, first_run_id)
    state = run_state(run_id)
    if state is None:
        return Step("trigger", run_id)
    if state == "success":
        return Step("none", run_id)
    if state != "failed":
        return Step("wait", run_id)
    failed = (claim or fresh).failed(run_id)
    if failed.failures >= max_attempts:
        return Step("park", run_id, replace(failed, state=FAILED))
    retry = replace(failed, state=RETRY)
    return Step("trigger", attempt_run_id(first_run_id, len(retry.attempts) + 1), retry)


def run_note(name: str, size: int, location: str) -> str:
    """The note shown beside a run in the Airflow UI: which file, how big, where."""
    return f"**{name}** ({_size(size)})\n\n{location}"


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
