"""What a prepare run found and did, and its end-of-run table."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from s2f.shards import ShardManifest

from .parts import REJECTS_NAME
from .rejects import REASONS, describe

__all__ = ["STAGES", "PrepareSummary"]

STAGES = ("decode", "detect", "embed", "write")


@dataclass
class PrepareSummary:
    """What a prepare run found and did.

    Attributes:
        root: The shard root.
        manifest: Its manifest after the run.
        inputs: Distinct clips the sources listed.
        duplicates: Rows repeating an earlier clip exactly (ignored).
        written: Clips in the shards, by split.
        rejected: Rejected clips, by reason (all runs).
        processed: Clips this run decoded (written or rejected by it).
        seconds: Wall time of this run's processing.
        timings: Seconds this run spent per stage, summed over workers and ranks.
        cores: CPU cores available to this process.
        not_in_input: Clips in the shards that this input does not list (kept).
        nothing_to_do: The input was already prepared; nothing was written.
    """

    root: str
    manifest: ShardManifest
    inputs: int
    duplicates: int
    written: dict[str, int]
    rejected: dict[str, int]
    processed: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    cores: int = 1
    not_in_input: int = 0
    nothing_to_do: bool = False

    @property
    def rejects_path(self) -> str:
        return os.path.join(self.root, REJECTS_NAME)

    @property
    def clips_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def table(self) -> str:
        """The end-of-run summary as a plain-text table."""
        total_written, total_rejected = sum(self.written.values()), sum(self.rejected.values())
        lines = [
            f"s2f prepare: {self.inputs} clips listed, {total_written} in the shards, {total_rejected} rejected"
            + (f", {self.duplicates} duplicate rows ignored" if self.duplicates else ""),
        ]
        if self.nothing_to_do:
            lines.append("  nothing to do: every listed clip was already prepared")
        else:
            rate = self.clips_per_second
            lines.append(
                f"  this run: {self.processed} clips in {self.seconds:.1f} s = {rate:.2f} clips/s, "
                f"{rate / max(1, self.cores):.2f} clips/s per core ({self.cores} cores)"
            )
            spent = sum(self.timings.get(stage, 0.0) for stage in STAGES)
            if spent > 0:
                split = ", ".join(
                    f"{stage} {self.timings.get(stage, 0.0):.1f} s ({self.timings.get(stage, 0.0) / spent:.0%})"
                    for stage in STAGES
                )
                lines.append(f"  time per stage (summed over workers): {split}")
        lines.append(f"  {'split':<20}{'clips':>8}  speakers")
        for name, info in self.manifest.splits.items():
            lines.append(f"  {name:<20}{info.clips:>8}  {info.speakers}")
        if self.rejected:
            lines.append(f"  {'rejected':<20}{'clips':>8}  meaning")
            for reason in REASONS:
                if self.rejected.get(reason):
                    lines.append(f"  {reason:<20}{self.rejected[reason]:>8}  {describe(reason)}")
            lines.append(f"  rejects: {self.rejects_path}")
        if self.not_in_input:
            lines.append(f"  note: {self.not_in_input} clips in the shards are not listed by this input (kept)")
        return "\n".join(lines)
