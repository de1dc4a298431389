"""Claim records and the dispatcher's decision: start, wait, retry, park; deterministic run ids."""

from __future__ import annotations

import pytest

from highlights.claims import Claim, attempt_run_id, next_step
from highlights.errors import InputError
from highlights.local.claims import FileClaims

FIRST = "local__cup-0123456789ab"
FRESH = Claim(input="/in/cup.mp4", version="100-1")


def states(**by_run: str):
    return lambda run_id: by_run.get(run_id)


def test_an_unclaimed_input_starts_its_first_run():
    step = next_step(None, FRESH, FIRST, states(), max_attempts=3)
    assert (step.action, step.run_id, step.claim) == ("trigger", FIRST, None)


def test_a_started_run_that_exists_is_waited_for():
    for state in ("queued", "running"):
        step = next_step(None, FRESH, FIRST, states(**{FIRST: state}), 3)
        assert (step.action, step.run_id) == ("wait", FIRST)


def test_a_claimed_input_whose_run_is_running_is_waited_for():
    claim = FRESH.started(FIRST)
    assert next_step(claim, FRESH, FIRST, states(**{FIRST: "running"}), 3).action == "wait"


def test_a_failed_run_is_retried_as_a_new_run_with_a_deterministic_id():
    claim = FRESH.started(FIRST).noted_error(FIRST, "features: broken")
    step = next_step(claim, FRESH, FIRST, states(**{FIRST: "failed"}), 3)
    assert (step.action, step.run_id) == ("trigger", f"{FIRST}__try2")
    assert step.claim.state == "retry"
    assert [(a.run_id, a.outcome, a.error) for a in step.claim.attempts] == [
        (FIRST, "failed", "features: broken")
    ]


def test_the_retry_is_requested_again_until_its_run_exists():
    retrying = next_step(FRESH.started(FIRST), FRESH, FIRST, states(**{FIRST: "failed"}), 3).claim
    step = next_step(retrying, FRESH, FIRST, states(**{FIRST: "failed"}), 3)
    assert (step.action, step.run_id, step.claim) == ("trigger", f"{FIRST}__try2", None)


def test_a_run_that_failed_before_claiming_still_counts():
    step = next_step(None, FRESH, FIRST, states(**{FIRST: "failed"}), 3)
    assert (step.action, step.run_id) == ("trigger", f"{FIRST}__try2")
    assert step.claim.failures == 1 and step.claim.input == FRESH.input


def test_after_max_attempts_failures_the_input_is_parked():
    claim = FRESH.started(FIRST).failed(FIRST).started(f"{FIRST}__try2")
    step = next_step(claim, FRESH, FIRST, states(**{f"{FIRST}__try2": "failed"}), 2)
    assert step.action == "park"
    assert step.claim.state == "failed" and step.claim.failures == 2


def test_done_and_parked_inputs_are_left_alone():
    done = FRESH.started(FIRST).succeeded(FIRST)
    assert next_step(done, FRESH, FIRST, states(), 3).action == "none"
    parked = Claim("/in/cup.mp4", "100-1", state="failed")
    assert next_step(parked, FRESH, FIRST, states(), 3).action == "none"


def test_a_successful_run_needs_nothing_more():
    claim = FRESH.started(FIRST)
    assert next_step(claim, FRESH, FIRST, states(**{FIRST: "success"}), 3).action == "none"


def test_a_new_version_of_the_input_starts_over():
    old = Claim("/in/cup.mp4", "100-1", state="failed", attempts=())
    new = Claim("/in/cup.mp4", "200-2")
    step = next_step(old, new, "local__cup-new", states(), 3)
    assert (step.action, step.run_id) == ("trigger", "local__cup-new")


def test_a_retried_task_of_the_same_run_is_not_a_new_attempt():
    claim = FRESH.started(FIRST).started(FIRST)
    assert len(claim.attempts) == 1


def test_errors_of_several_failing_tasks_are_all_kept():
    claim = FRESH.noted_error(FIRST, "clips: ffmpeg").noted_error(FIRST, "reel: ffmpeg")
    assert claim.last_error == "clips: ffmpeg\nreel: ffmpeg"


def test_attempt_run_ids():
    assert attempt_run_id(FIRST, 1) == FIRST
    assert attempt_run_id(FIRST, 3) == f"{FIRST}__try3"


def test_file_records_round_trip(tmp_path):
    claims = FileClaims(tmp_path / "ledger")
    assert claims.read("cup.mp4") is None
    claim = FRESH.started(FIRST).noted_error(FIRST, "boom").failed(FIRST)
    claims.write("cup.mp4", claim)
    assert claims.read("cup.mp4") == claim
    claims.remove("cup.mp4")
    assert claims.read("cup.mp4") is None


def test_a_broken_record_is_named(tmp_path):
    claims = FileClaims(tmp_path)
    claims.path("cup.mp4").write_text("{not json")
    with pytest.raises(InputError, match="cup.mp4.json: not a claim record"):
        claims.read("cup.mp4")
