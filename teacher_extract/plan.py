"""The reuse plan of an incremental extraction: which videos to copy, resume or extract.

A pure function over what is known before any decoding (the dataset's videos and their content
fingerprints, the previous cache's rows, the journal of an interrupted run), so the riskiest
logic of stage one is tested without a single video or model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.datasets import VideoRecord


@dataclass(frozen=True)
class Known:
    """What an earlier run left for one video path: its content fingerprint and outcome."""

    fingerprint: str
    ok: bool
    row: int = -1  # row in the previous cache (journal entries have none)


@dataclass(frozen=True)
class PlanItem:
    """One video of this run and where its entry comes from.

    Attributes:
        record: the dataset's record (labels and split always come from here, never from the source).
        fingerprint: its content hash now.
        previous_row: its row in the previous cache, when that row was made from the same content.
        journaled: a finished entry of the same content waits in the journal.
    """

    record: VideoRecord
    fingerprint: str
    previous_row: int | None = None
    journaled: bool = False

    @property
    def todo(self) -> bool:
        return self.previous_row is None and not self.journaled


@dataclass(frozen=True)
class ReusePlan:
    """Every video of the run in dataset order, plus what the previous cache had that is gone."""

    items: tuple[PlanItem, ...]
    removed: int = 0
    known_failed: int = 0

    @property
    def todo(self) -> list[PlanItem]:
        return [item for item in self.items if item.todo]

    @property
    def reused(self) -> int:
        return len(self.items) - len(self.todo)


def plan_reuse(
    records: Sequence[VideoRecord],
    fingerprints: Sequence[str],
    previous: Mapping[str, Known] | None,
    journal: Mapping[str, Known],
) -> ReusePlan:
    """Decide, per video, between the previous cache's row, the journal, and extracting it.

    The previous cache wins over the journal (its rows are final); either is used only when the
    fingerprint matches, so a changed file is always re-extracted. ``previous`` must only hold a
    cache made with the same feature-defining config (the caller checks the config key), and
    ``journal`` one made with the same key as well.

    Args:
        records: the dataset's videos, in order.
        fingerprints: their content hashes, same order.
        previous: ``{path: Known(fingerprint, ok, row)}`` of the previous cache, or ``None``.
        journal: ``{path: Known(fingerprint, ok)}`` of finished entries of an interrupted run.
    """
    if len(records) != len(fingerprints):
        raise ValueError(f"{len(records)} records but {len(fingerprints)} fingerprints")
    previous = previous or {}
    items, failed = [], 0
    for record, fp in zip(records, fingerprints, strict=True):
        old, done = previous.get(record.path), journal.get(record.path)
        if old is not None and old.fingerprint == fp:
            items.append(PlanItem(record, fp, previous_row=old.row))
            failed += not old.ok
        elif done is not None and done.fingerprint == fp:
            items.append(PlanItem(record, fp, journaled=True))
            failed += not done.ok
        else:
            items.append(PlanItem(record, fp))
    listed = {record.path for record in records}
    removed = sum(1 for path in previous if path not in listed)
    return ReusePlan(tuple(items), removed=removed, known_failed=failed)
