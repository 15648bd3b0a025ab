"""The verdict a verifier returns: proved, refuted with a counterexample, unknown with evidence,
or ERROR when the pair could not be checked at all (unparseable SQL, an unknown name, SQL the
target engine rejects)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

VerdictKind = Literal["EQUIVALENT", "NOT_EQUIVALENT", "UNKNOWN", "ERROR"]
Method = Literal["canonical", "alpha", "constant", "smt", "region", "differential", "live", "none"]


class Counterexample(BaseModel):
    """A small database (as INSERT statements) on which the two queries differ."""

    inserts: list[str] = Field(default_factory=list)
    q1_rows: list[list[Any]] = Field(default_factory=list)
    q2_rows: list[list[Any]] = Field(default_factory=list)


class Evidence(BaseModel):
    """What was tried before reaching the verdict."""

    tiers: dict[str, str] = Field(default_factory=dict)  # tier -> outcome / why it did not decide
    databases_tried: int = 0
    max_rows_per_table: int = 0
    total_rows: int = 0
    live: bool | None = None


class Verdict(BaseModel):
    verdict: VerdictKind
    method: Method = "none"
    counterexample: Counterexample | None = None
    evidence: Evidence = Field(default_factory=Evidence)
    seconds: float = 0.0
    reason: str = ""
    error: str = ""  # why the pair could not be checked (verdict ERROR)

    @property
    def equivalent(self) -> bool:
        return self.verdict == "EQUIVALENT"

    def summary(self) -> dict[str, Any]:
        """The per-pair JSON record of ``sluice verify --json`` (``error`` only on ERROR)."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "method": self.method,
            "counterexample": self.counterexample.model_dump(mode="json") if self.counterexample else None,
            "seconds": round(self.seconds, 4),
        }
        if self.verdict == "ERROR":
            out["error"] = self.error
        return out
