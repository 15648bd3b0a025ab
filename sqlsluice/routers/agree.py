"""The agreement router: cheap candidates that agree stand; a disagreement escalates.

``router = "agree"``: the basic pipeline proposes two candidates (two sampled choices of one
call, as the cascade does).  ``router = "agree:<model>,<model>[,...]"``: each of several cheap
models proposes one (one basic call each, temperature 0).  Every other candidate is checked
against the first:

- the equivalence verifier proves them equal (``EQUIVALENT``), or
- the verifier does not refute them (``UNKNOWN``/``ERROR``) and both return the same rows on the
  live database (bag comparison, same number of columns).

When every candidate agrees with the first, the first (cheap) answer stands.  Otherwise (a
candidate refuted with a counterexample, different rows, a failed or missing candidate, fewer
than two) the question goes to the next pipeline (``decompose``; ``agree@ensemble`` or
``agree:<models>@ensemble`` to name another), whose answer is taken as is.

    >>> parse_agree("agree:gpt-4o-mini,llama-3-8b@ensemble")
    AgreeRouter(models=('gpt-4o-mini', 'llama-3-8b'), escalate='ensemble', budget_s=1.0)
    >>> parse_agree("agree").name
    'agree'

Run by :func:`sqlsluice.text2sql.api.generate` (the agreement needs the candidates, so it cannot
be decided up front): :meth:`AgreeRouter.run`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlsluice.errors import InvalidParameterValue, SluiceError
from sqlsluice.routers.base import Decision, Router
from sqlsluice.routers.features import RouteInput

if TYPE_CHECKING:
    from sqlsluice.text2sql.pipelines import Outcome, Workspace

ESCALATE_TO = ("basic", "decompose", "ensemble")


@dataclass
class AgreeRouter(Router):
    """Cheap candidates that agree (proved, or same rows and not refuted) stand; else escalate."""

    models: tuple[str, ...] = ()  # cheap models, one candidate each; () -> two samples of the configured one
    escalate: str = "decompose"
    budget_s: float = 1.0  # verifier seconds per candidate pair

    @property
    def name(self) -> str:  # type: ignore[override]
        s = "agree" + (":" + ",".join(self.models) if self.models else "")
        return s + (f"@{self.escalate}" if self.escalate != "decompose" else "")

    def decide(self, x: RouteInput) -> Decision:
        return Decision("basic", "agree starts cheap")

    # -- execution (called by the ASK API) ------------------------------------------------------
    def propose(self, ws: Workspace) -> list[Outcome]:
        """The cheap candidates' outcomes (one per model, or one outcome with two samples)."""
        from sqlsluice.text2sql.pipelines import Outcome, run_basic

        def basic(w: Workspace, samples: int, temperature: float) -> Outcome:
            try:
                return run_basic(w, samples=samples, temperature=temperature)
            except SluiceError as e:
                if e.sqlstate == "55000":  # no LLM configured: the caller must know
                    raise
                return Outcome("basic", error=e.message)

        if not self.models:
            return [basic(ws, 2, 0.7)]
        outs = []
        for m in self.models:
            llm = copy.copy(ws.llm)
            if llm is not None:
                llm.model = m
            outs.append(basic(dataclasses.replace(ws, llm=llm), 1, 0.0))
        return outs

    def agreement(self, ws: Workspace, candidates: list[str]) -> tuple[bool, str]:
        """``(agree, why)`` for candidates checked against the first."""
        from sqlsluice.text2sql.pipelines import try_run
        from sqlsluice.verifiers.batch import verify_pair
        from sqlsluice.verifiers.compare import compare_results

        if len(candidates) < 2:
            return False, f"{len(candidates)} candidate(s), need 2"
        first = candidates[0]
        res0, err0 = try_run(ws, first)
        if err0 is not None:
            return False, f"error: {err0}"
        whys = []
        for i, other in enumerate(candidates[1:], 2):
            if " ".join(other.split()) == " ".join(first.split()):
                whys.append(f"{i}: identical")
                continue
            v = verify_pair(first, other, ws.catalog, ws.dialect, time_budget_s=self.budget_s)
            if v.verdict == "EQUIVALENT":
                whys.append(f"{i}: proved ({v.method})")
                continue
            if v.verdict == "NOT_EQUIVALENT":
                return False, f"candidate {i} refuted (counterexample)"
            if res0 is None:  # no live database to compare on
                return False, f"candidate {i} {v.verdict.lower()}, no database to compare rows"
            res, err = try_run(ws, other)
            if res is None:
                return False, f"candidate {i} failed: {err}"
            if len(res.columns) != len(res0.columns) or not compare_results(res0.rows, res.rows, semantics="bag"):
                return False, f"candidate {i} returns different rows"
            whys.append(f"{i}: same rows, {v.verdict.lower()}")
        return True, "; ".join(whys)

    def run(self, ws: Workspace) -> tuple[Outcome, str]:
        """The answer's outcome (tokens of every call summed) and the route taken."""
        from sqlsluice.text2sql.pipelines import run_pipeline

        outs = self.propose(ws)
        cands = [c for o in outs for c in (o.candidates if not self.models else o.candidates[:1])]
        ok, why = self.agreement(ws, cands)
        if ok:
            out = next(o for o in outs if o.sql is not None)
            out.sql = cands[0]
            route = f"agree:accepted ({why})->basic"
        else:
            out = run_pipeline(self.escalate, ws)
            route = f"agree:{why} -> escalate->{out.pipeline}"
        cheap_in, cheap_out = sum(o.tokens_in for o in outs), sum(o.tokens_out for o in outs)
        if ok:  # the answer is one of the cheap outcomes: its tokens are the cheap calls' total
            out.tokens_in, out.tokens_out = cheap_in, cheap_out
        else:
            out.tokens_in += cheap_in
            out.tokens_out += cheap_out
        out.candidates = cands if ok else [*cands, *out.candidates]
        out.notes.insert(0, f"agree: {why}")
        return out, route


def parse_agree(spec: str) -> AgreeRouter:
    """``agree``, ``agree:<model>,<model>``, either with ``@<pipeline>`` (where to escalate)."""
    s = spec.strip()
    if not (s == "agree" or s.startswith(("agree:", "agree@"))):
        raise InvalidParameterValue(f"not an agree router: {s!r}")
    body, _, esc = s[len("agree"):].partition("@")
    models = tuple(m.strip() for m in body.lstrip(":").split(",") if m.strip())
    if body.startswith(":") and len(models) < 2:
        raise InvalidParameterValue(f"router {s!r}: name at least two cheap models (agree:<model>,<model>)")
    esc = esc.strip() or "decompose"
    if esc not in ESCALATE_TO:
        raise InvalidParameterValue(f"router {s!r}: escalate to one of {', '.join(ESCALATE_TO)}, not {esc!r}")
    return AgreeRouter(models=models, escalate=esc)
