"""The reuse plan of an incremental extraction (``plan_reuse``): pure, no video, no model."""

from __future__ import annotations

import pytest

from pipeline.datasets import VideoRecord
from teacher_extract.plan import Known, plan_reuse

RECORDS = tuple(VideoRecord(path=f"v{i}.avi", label=i % 2, split="train") for i in range(4))
FPS = ["fp0", "fp1", "fp2", "fp3"]


def test_first_run_extracts_everything() -> None:
    plan = plan_reuse(RECORDS, FPS, None, {})
    assert [item.record for item in plan.todo] == list(RECORDS)
    assert (plan.reused, plan.removed, plan.known_failed) == (0, 0, 0)
    assert [item.fingerprint for item in plan.items] == FPS


def test_previous_row_reused_only_with_the_same_fingerprint() -> None:
    previous = {"v0.avi": Known("fp0", True, 0), "v1.avi": Known("old", True, 1), "v2.avi": Known("fp2", True, 5)}
    plan = plan_reuse(RECORDS, FPS, previous, {})
    rows = [item.previous_row for item in plan.items]
    assert rows == [0, None, 5, None]  # v1 changed content: re-extracted; v3 is new
    assert [item.record.path for item in plan.todo] == ["v1.avi", "v3.avi"]
    assert plan.reused == 2


def test_journal_used_when_there_is_no_previous_row() -> None:
    journal = {"v1.avi": Known("fp1", True), "v2.avi": Known("stale", True), "v3.avi": Known("fp3", True)}
    previous = {"v3.avi": Known("fp3", True, 2)}
    plan = plan_reuse(RECORDS, FPS, previous, journal)
    v0, v1, v2, v3 = plan.items
    assert v1.journaled and v1.previous_row is None  # finished by an interrupted run: not redone
    assert not v2.journaled and v2.todo  # its journal entry was made from other content
    assert v3.previous_row == 2 and not v3.journaled  # the previous cache's row wins (its rows are final)
    assert v0.todo
    assert [item.record.path for item in plan.todo] == ["v0.avi", "v2.avi"]


def test_removed_videos_are_counted() -> None:
    previous = {
        "v0.avi": Known("fp0", True, 0),
        "gone.avi": Known("x", True, 1),
        "also-gone.avi": Known("y", False, 2),
    }
    plan = plan_reuse(RECORDS, FPS, previous, {"gone-too.avi": Known("z", True)})
    assert plan.removed == 2  # the previous cache's videos no longer listed (a journal is not a cache)
    assert len(plan.items) == len(RECORDS)


def test_known_failures_are_counted_not_retried() -> None:
    previous = {"v0.avi": Known("fp0", False, 0), "v1.avi": Known("changed", False, 1)}
    journal = {"v2.avi": Known("fp2", False)}
    plan = plan_reuse(RECORDS, FPS, previous, journal)
    assert plan.known_failed == 2  # v0 (previous) and v2 (journal); v1 changed, so it is tried again
    assert [item.record.path for item in plan.todo] == ["v1.avi", "v3.avi"]


def test_mismatched_lengths_are_a_bug() -> None:
    with pytest.raises(ValueError, match="4 records but 3 fingerprints"):
        plan_reuse(RECORDS, FPS[:3], None, {})
