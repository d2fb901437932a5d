"""`PipelineResult`: what a pipeline run leaves behind, and where to look at it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import PipelineConfig
from ..data import Splits
from ..search import DenseReference, FinalizedMember, TrialRecord, TrialState

__all__ = ["PipelineResult"]


@dataclass
class PipelineResult:
    """What a pipeline run leaves behind, and where to look at it.

    ``front`` is every trial on the validation front (tagged ``pareto`` in MLflow); ``members`` are
    the finalized ones among them, with their test accuracy, registered version and aliases;
    ``copies`` maps a front trial left out as a repeat to the member it repeats.
    """

    config: PipelineConfig
    study: str
    storage: str
    experiment_id: str
    experiment_url: str
    front_url: str
    model_url: str | None
    parent_run_id: str
    dense: DenseReference
    splits: Splits
    records: list[TrialRecord]
    members: list[FinalizedMember]
    front: list[int] = field(default_factory=list)
    copies: dict[int, int] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    candidate: int | None = None  # the member the champion rule picks (it has the alias unless held)
    hypervolume: float = 0.0
    stop_reason: str | None = None
    failed_out: bool = False
    concluded: bool = True  # False: other workers still run trials; the last one to finish concludes
    seconds: dict[str, float] = field(default_factory=dict)
    already_complete: bool = False  # a resume found the search complete and concluded: nothing ran

    @property
    def completed(self) -> int:
        return sum(r.state == TrialState.COMPLETE for r in self.records)

    @property
    def failed(self) -> int:
        return sum(r.state == TrialState.FAILED for r in self.records)

    def member(self, trial: int | None) -> FinalizedMember | None:
        """The finalized member of ``trial``, if it is one."""
        return next((m for m in self.members if m.trial == trial), None)
