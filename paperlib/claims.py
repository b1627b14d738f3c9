"""Claims checked seed by seed: per-seed evidence, the two-SEM verdict rule, the claims table.

A paper's headline claim compares numbers: two methods ("ABD's ASR is below CleanCLIP's") or one
number with a threshold ("TPR >= 98%").  The papers print one run; we have one value per seed.
A :class:`Claim` builds its evidence from per-seed rows and the verdict follows one rule
(issue 24, item 2; docs/verdicts.md):

* **One comparison** (:class:`Compare`).  Per seed ``s`` take ``d_s = a_s - b_s`` for two methods,
  *paired by seed* (only seeds where both have a value count), or ``d_s = a_s`` for a threshold
  claim.  With ``n`` seeds, mean ``m`` and standard error of the mean ``s = std(d, ddof=1) /
  sqrt(n)``, the *gap* ``g`` is how far ``m`` lies on the claim's side of its threshold ``t``
  (``g = m - t`` for ``>``/``>=``, ``g = t - m`` for ``<``/``<=``).  The claim

  - **holds** when ``g > 2 s``: met by more than two standard errors;
  - **fails** when ``g < -2 s``: missed by more than two standard errors;
  - is **inconclusive** otherwise, and always when ``n < 2`` (one seed has no standard error;
    its spread says "1 seed") or when nothing was measured (``n = 0``).

  Strict and non-strict relations (``<`` vs ``<=``) are decided alike: a gap of exactly 0 with
  no spread is inconclusive either way.
* **A claim about a set** (:class:`AllOf`: "on every attack", "at every poison rate") is one
  comparison per member, each judged as above.  It **holds** only if every member holds, **fails**
  if any member fails, and is **inconclusive** otherwise (also when the set is empty).  Its
  ``n_seeds`` is the smallest member's; its spread lists the members (up to three) or counts them
  and names the worst (failures first, then the smallest gap).  A two-sided claim ("within 1
  point", :class:`Within`) is the set of its two one-sided comparisons, which comes to the gap
  ``tolerance - |m|`` against two SEMs.
* A claim whose rows do not exist, or whose comparison means nothing in this run (a guard in its
  paper's module says why), is **not measured**: inconclusive with 0 seeds, the reason in its spread.

``ours`` is written in the form of the paper's value (both numbers of a comparison, not their
difference; a range where the paper prints a range), from the means over seeds; ``spread`` says
the mean difference (or mean), its SEM, the number of seeds and what the claim needs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

VERDICTS: tuple[str, ...] = ("holds", "fails", "inconclusive")
CLAIM_COLUMNS: tuple[str, ...] = ("scale", "claim", "paper_value", "ours", "spread", "n_seeds", "verdict")
# relation -> (+1: the claim wants the value above the threshold, -1: below)
RELATIONS: dict[str, int] = {"<": -1, "<=": -1, ">": 1, ">=": 1}
_TOL = 1e-9   # gaps and SEMs closer to 0 than this are 0 (equal floats subtracted)


def num(x: float) -> str:
    """A number as the claims tables show it: one decimal, two below 1 (0.04), '-' when not finite."""
    if x is None or not np.isfinite(x):
        return "-"
    x = float(x)
    if x != 0 and abs(x) < 1:
        return f"{x:.2f}"
    return f"{x:.1f}"


def signed(x: float) -> str:
    """``num`` with a sign (+0.5, -1.3)."""
    s = num(x)
    return s if s.startswith("-") else "+" + s


def verdict(gap: float, sem: float, n: int) -> str:
    """The two-SEM rule: ``gap`` is how far the mean lies on the claim's side of its threshold."""
    if n < 2 or not np.isfinite(gap) or not np.isfinite(sem):
        return "inconclusive"
    gap = 0.0 if abs(gap) < _TOL else gap
    sem = 0.0 if sem < _TOL else sem
    if gap > 2 * sem:
        return "holds"
    if gap < -2 * sem:
        return "fails"
    return "inconclusive"


def per_seed(rows: pd.DataFrame, column: str, seeds: Iterable[int] | None = None, **match) -> pd.Series:
    """``column`` per seed (index: seed; the mean of rows that share a seed) of the ``rows`` whose
    columns equal ``match`` (``scale="embedded", attack="badnet"``) and whose seed is in ``seeds``
    (None: every seed).  KeyError when no row has a value: the claim is then not measured."""
    r = rows
    for k, v in match.items():
        if k not in r.columns:
            raise KeyError(f"no column {k!r}")
        r = r[np.isclose(r[k].astype(float), float(v))] if isinstance(v, float) else r[r[k] == v]
    if seeds is not None:
        r = r[r["seed"].isin(list(seeds))]
    if column not in r.columns:
        raise KeyError(f"no column {column!r}")
    out = r.groupby("seed")[column].mean().dropna()
    if out.empty:
        raise KeyError("no rows" + (" for " + ", ".join(f"{k}={v}" for k, v in match.items()) if match else "")
                       + f" with {column}")
    out.index = out.index.astype(int)
    return out.astype(float)


class Evidence:
    """What a claim is judged on: a verdict, the seeds it rests on, ``ours`` and ``spread``."""
    label: str = ""

    @property
    def verdict(self) -> str:
        raise NotImplementedError

    @property
    def n_seeds(self) -> int:
        raise NotImplementedError

    @property
    def ours(self) -> str:
        raise NotImplementedError

    @property
    def spread(self) -> str:
        raise NotImplementedError

    @property
    def gap(self) -> float:
        """How far on the claim's side (negative: the wrong side); NaN when not measured."""
        return float("nan")

    @property
    def sem(self) -> float:
        return float("nan")


@dataclass
class NotMeasured(Evidence):
    """No per-seed value exists for the claim (a table not run, a guard that says the comparison
    means nothing here): inconclusive, 0 seeds."""
    reason: str = ""
    label: str = ""

    verdict = property(lambda self: "inconclusive")
    n_seeds = property(lambda self: 0)
    ours = property(lambda self: "not measured")
    spread = property(lambda self: "not measured" + (f": {self.reason}" if self.reason else ""))


def show_compare(form: str | None, a: float, b: float | None = None) -> str:
    """A comparison written as ``form`` (fields ``{a}``, ``{b}``, ``{d}`` = a - b with sign, and
    ``{rel}``: <, > or = as the two shown numbers compare).  The same function writes the paper's
    value and ours, so both have one shape."""
    if form is None:
        form = "{a}" if b is None else "{a} vs {b}"
    fa = num(a)
    fb = num(b) if b is not None else ""
    rel = "=" if b is None or fa == fb else ("<" if a < b else ">")
    d = signed(a - b) if b is not None else ""
    return form.format(a=fa, b=fb, d=d, rel=rel)


# The top-1 ASR (%) a victim must reach, mean over its seeds, for a defence's ASR on its attack to
# test anything: below it there is little backdoor to remove, and "ASR below X" holds trivially.
# The papers' victims reach 91-100 % on BadNet; ours fall short on some attacks (WaNet, mmPoison).
VICTIM_FLOOR = 50.0


def live_attacks(rows: pd.DataFrame, attacks, seeds_for, floor: float = VICTIM_FLOOR,
                 **match) -> tuple[list[str], str]:
    """The ``attacks`` whose victims (``rows`` of ``defence == "none"`` matching ``match``, at
    ``seeds_for(attack)``) reach ``floor`` mean top-1 ASR, and a note naming the others with their
    mean (" (left out: ...)", or "" when none is).  An attack without victim rows stays in: its
    claims are not measured anyway."""
    live, out = [], []
    for a in attacks:
        try:
            asr = per_seed(rows, "asr_top1", seeds_for(a), attack=a, defence="none", **match)
        except KeyError:
            live.append(a)
            continue
        (live if asr.mean() >= floor else out).append(a)
        if out and out[-1] == a:
            out[-1] = f"{a} {asr.mean():.1f}"
    note = f" (left out, victims under {floor:g}% top-1 ASR: {', '.join(out)})" if out else ""
    return live, note


def show_paper(form: str | None, a: float, b: float | None = None) -> str:
    """The paper's numbers in ``form`` with two decimals, as the papers print them."""
    if form is None:
        form = "{a}" if b is None else "{a} vs {b}"
    rel = "=" if b is None or round(a, 2) == round(b, 2) else ("<" if a < b else ">")
    d = f"{a - b:+.2f}" if b is not None else ""
    return form.format(a=f"{a:.2f}", b=f"{b:.2f}" if b is not None else "", d=d, rel=rel)


@dataclass
class Compare(Evidence):
    """One comparison, seed by seed: ``a`` (per seed) against ``b`` (per seed, paired by seed) or,
    without ``b``, against ``threshold``; the claim is ``a - b <relation> threshold`` (or ``a
    <relation> threshold``).  ``names`` label the two sides in the spread; ``form`` writes ours
    (see :func:`show_compare`)."""
    a: pd.Series
    relation: str
    b: pd.Series | None = None
    threshold: float = 0.0
    names: tuple[str, ...] = ()
    form: str | None = None
    label: str = ""
    d: pd.Series = field(init=False)

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise ValueError(f"relation {self.relation!r}: one of {', '.join(RELATIONS)}")
        a = pd.Series(self.a, dtype=float).dropna()
        if self.b is None:
            self.a, self.d = a, a
        else:
            b = pd.Series(self.b, dtype=float).dropna()
            seeds = a.index.intersection(b.index)    # paired: the seeds both sides have
            self.a, self.b = a.loc[seeds], b.loc[seeds]
            self.d = self.a - self.b

    @property
    def n_seeds(self) -> int:
        return int(len(self.d))

    @property
    def mean(self) -> float:
        return float(self.d.mean()) if len(self.d) else float("nan")

    @property
    def sem(self) -> float:
        n = len(self.d)
        return float(self.d.std(ddof=1) / math.sqrt(n)) if n >= 2 else float("nan")

    @property
    def gap(self) -> float:
        return RELATIONS[self.relation] * (self.mean - self.threshold)

    @property
    def verdict(self) -> str:
        return verdict(self.gap, self.sem, self.n_seeds)

    @property
    def ours(self) -> str:
        if not self.n_seeds:
            return "not measured"
        return show_compare(self.form, float(self.a.mean()), None if self.b is None else float(self.b.mean()))

    @property
    def spread(self) -> str:
        n = self.n_seeds
        if self.b is None:
            what = self.names[0] if self.names else "mean"
        else:
            what = f"{self.names[0]} - {self.names[1]}" if len(self.names) >= 2 else "diff"
        need = f"needs {self.relation} {self.threshold:g}"
        if n == 0:
            return f"{what}: no seed; {need}"
        if n == 1:
            return f"{what} {num(self.mean)}, 1 seed (no SEM); {need}"
        paired = " paired" if self.b is not None else ""
        return f"{what} {num(self.mean)} ± {num(self.sem)} (SEM), {n} seeds{paired}; {need}"


_RANK = {"fails": 0, "inconclusive": 1, "holds": 2}


@dataclass
class AllOf(Evidence):
    """A claim about a set ("on every attack"): holds if every member holds, fails if any member
    fails, inconclusive otherwise (and when the set is empty).  ``form`` writes ours: "each" (the
    members' own forms joined by ", "), "range" (min-max of the members' ``a`` means), or a
    callable of the members.  ``unit`` names the members in the spread ("attacks")."""
    parts: Sequence[Evidence]
    form: str | Callable[[Sequence[Evidence]], str] = "each"
    unit: str = "members"
    label: str = ""

    def _measured(self) -> list[Evidence]:
        return [p for p in self.parts if p.n_seeds > 0]

    @property
    def verdict(self) -> str:
        if not self.parts:
            return "inconclusive"
        vs = [p.verdict for p in self.parts]
        if "fails" in vs:
            return "fails"
        return "holds" if all(v == "holds" for v in vs) else "inconclusive"

    @property
    def n_seeds(self) -> int:
        return min((p.n_seeds for p in self.parts), default=0)

    @property
    def gap(self) -> float:
        return min((p.gap for p in self.parts), default=float("nan"))

    @property
    def ours(self) -> str:
        if not self._measured():
            return "not measured"
        if callable(self.form):
            return self.form(self.parts)
        if self.form == "range":
            means = [float(p.a.mean()) for p in self._measured()]
            return f"{num(min(means))}-{num(max(means))}"
        return ", ".join(p.ours for p in self.parts)

    def worst(self) -> Evidence:
        def key(p):
            g = p.gap
            return (_RANK[p.verdict], g if np.isfinite(g) else np.inf)
        return min(self.parts, key=key)

    @property
    def spread(self) -> str:
        if not self.parts:
            return f"not measured: no {self.unit}"
        if len(self.parts) <= 3:
            return "; ".join(f"{p.label}: {p.spread}" if p.label else p.spread for p in self.parts)
        counts = {v: sum(p.verdict == v for p in self.parts) for v in VERDICTS}
        w = self.worst()
        return (f"{len(self.parts)} {self.unit}: {counts['holds']} hold, {counts['fails']} fail, "
                f"{counts['inconclusive']} inconclusive; worst {w.label}: {w.spread}")


@dataclass
class Within(Compare):
    """A two-sided claim ``|a - b| <= tolerance`` (``|a|`` without ``b``), per seed as
    :class:`Compare`.  It is the set of the two one-sided comparisons ``d >= -tolerance`` and
    ``d <= tolerance`` judged as :class:`AllOf` judges a set (holds only if both hold, fails if
    either fails), which comes to one gap: ``tolerance - |m|`` against two SEMs."""
    tolerance: float = 0.0

    @property
    def gap(self) -> float:
        return self.tolerance - abs(self.mean)

    @property
    def spread(self) -> str:
        base = super().spread
        return base[:base.rindex("; needs")] + f"; needs |{'diff' if self.b is not None else 'value'}| <= {self.tolerance:g}"


def within(a: pd.Series, b: pd.Series | None, tolerance: float, names: tuple[str, ...] = (),
           form: str | None = None, label: str = "") -> Within:
    """``|a - b| <= tolerance`` seed by seed (:class:`Within`)."""
    return Within(a, "<=", b, tolerance, names, form, label, tolerance=tolerance)


@dataclass(frozen=True)
class Claim:
    """A headline claim: its text, the paper's value (as printed, or in the shape ours is written
    in) and ``evidence``, a function that builds the per-seed :class:`Evidence` from result rows.
    A KeyError, IndexError or ValueError raised while building it (a table not run, a guard such as
    "both curated sets are the same random subset") makes the claim not measured: inconclusive."""

    text: str
    paper_value: str
    evidence: Callable[[], Evidence]

    def evaluate(self) -> Evidence:
        try:
            return self.evidence()
        except (KeyError, IndexError, ValueError) as e:
            reason = e.args[0] if e.args else type(e).__name__
            return NotMeasured(str(reason).strip("'\""))


def claims_table(claims: Sequence[Claim], scale: str) -> pd.DataFrame:
    """One row per claim: scale, claim, paper_value, ours, spread, n_seeds (int), verdict."""
    rows = []
    for c in claims:
        ev = c.evaluate()
        rows.append({"scale": scale, "claim": c.text, "paper_value": c.paper_value, "ours": ev.ours,
                     "spread": ev.spread, "n_seeds": int(ev.n_seeds), "verdict": ev.verdict})
    out = pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))
    out["n_seeds"] = out["n_seeds"].astype(int)
    return out


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many claims hold, fail, are inconclusive (a ``verdict`` column)."""
    return {v: int((table["verdict"] == v).sum()) for v in VERDICTS}


def show_claims(table: pd.DataFrame, title: str | None = None):
    """The notebooks' verdict section: the verdict counts, then the claims table whole (no text
    truncated).  Returns the Markdown line of counts."""
    from IPython.display import Markdown, display
    counts = verdict_counts(table) if "verdict" in table else {}
    line = ", ".join(f"**{n} {v}**" for v, n in counts.items())
    display(Markdown((f"{title}: " if title else "") + f"{len(table)} claims: {line}" if counts
                     else f"{len(table)} claims"))
    with pd.option_context("display.max_colwidth", None, "display.max_rows", None, "display.width", None):
        display(table)
    return line


__all__ = ["VICTIM_FLOOR", "live_attacks", "VERDICTS", "CLAIM_COLUMNS", "RELATIONS", "num", "signed", "verdict", "per_seed", "Evidence",
           "NotMeasured", "Compare", "AllOf", "Within", "within", "show_compare", "show_paper", "Claim", "claims_table",
           "verdict_counts", "show_claims"]
