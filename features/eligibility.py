"""CAR T label eligibility per product, with the reasons a clinician or payer reviewer can check.

The rules are data (``features/rules/car_t_labels.yaml``, one entry per product x indication row of
``car_t_products.csv``, superseded label versions included) and every output row carries the
rule-set version. Each member is judged against the label versions in force on *their own*
``as_of`` date, so a 2023 evaluation of a myeloma patient uses the >=4-line Abecma label and a 2025
one the >=2-line label.

Three kinds of reason:

* ``criteria_met`` / ``criteria_missing``: facts claims can show ("2 prior lines of systemic
  therapy", "age 30 exceeds the label limit of 25").
* ``criteria_unknown``: label criteria claims cannot see (transplant ineligibility, B- versus
  T-lineage ALL without a lineage-directed drug, PCNSL hidden in C83.39 before FY2025). They are
  never guessed: ``eligible`` is True when nothing is missing, and the unknowns tell the clinician
  what to confirm. Payers want the flag; a flag that silently assumed would be wrong.

"Relapsed or refractory after at least N lines" needs evidence of progression after line N: a
further line started (``prior_lines > N``) or ``progressed_after_last_line`` (relapse codes, CAR T
work-up), not merely N lines started.

For each product the row reports the label indication in force on ``as_of`` that is satisfied with
the fewest unknowns, or, when none is, the in-force indication with the fewest missing criteria
("closest"); an indication not (yet or still) in force is reported only when no other applies.
All criteria are column operations over the members whose disease matches a rule; reason texts
are assembled only for the rule finally reported.
"""

from __future__ import annotations

import hashlib
from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.cohort import EXCLUSION_PCNSL, PCNSL_UNSEPARABLE
from features.columns import STR, TextColumn, columns_of, frame_from_columns, n_rows, positions, to_numpy
from features.memo import IdentityMemo

RULES_PATH = Path(__file__).parent / "rules" / "car_t_labels.yaml"
ELIGIBILITY_COLUMNS = (
    "person_id",
    "product",
    "indication",
    "eligible",
    "criteria_met",
    "criteria_missing",
    "criteria_unknown",
    "first_eligible_hint",
    "rules_version",
)
Disease = Literal["LBCL", "FL", "MCL", "MZL", "CLL_SLL", "B_ALL", "MM"]
DrugClass = Literal[
    "anti_cd20", "anthracycline", "btk_inhibitor", "bcl2_inhibitor", "imid", "proteasome_inhibitor",
    "anti_cd38", "bispecific", "alkylator",
]
# drug class -> (treatment column, clinician wording)
CLASS_EXPOSURE = {
    "anti_cd20": ("exposed_anti_cd20", "anti-CD20 antibody"),
    "anthracycline": ("exposed_anthracycline", "anthracycline"),
    "btk_inhibitor": ("exposed_btki", "BTK inhibitor"),
    "bcl2_inhibitor": ("exposed_bcl2i", "BCL-2 inhibitor"),
    "imid": ("exposed_imid", "immunomodulatory drug (IMiD)"),
    "proteasome_inhibitor": ("exposed_pi", "proteasome inhibitor"),
    "anti_cd38": ("exposed_anti_cd38", "anti-CD38 antibody"),
    "bispecific": ("exposed_bispecific", "bispecific antibody"),
    "alkylator": ("exposed_alkylator", "alkylating agent"),
}
DISEASE_NAMES = {
    "LBCL": "large B-cell lymphoma", "FL": "follicular lymphoma", "MCL": "mantle cell lymphoma",
    "MZL": "marginal zone lymphoma", "CLL_SLL": "CLL/SLL", "B_ALL": "B-cell precursor ALL",
    "MM": "multiple myeloma",
}
_DAYS_PER_MONTH = 30.4375
_EARLY_RELAPSE_DAYS = 365  # the labels' "within 12 months", same clock as features.relapse


class LabelRule(BaseModel):
    """One product x indication (one label version) as the FDA label states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    product_generic: str
    brand: str
    disease: Disease
    indication: str
    min_age: int = Field(ge=0)
    max_age: int | None = None
    min_prior_lines: int = Field(ge=0)
    histologies: tuple[str, ...] | None = None
    required_prior_classes: tuple[DrugClass, ...] = ()
    expected_prior_classes: tuple[DrugClass, ...] = ()
    refractory_to: Literal["lenalidomide"] | None = None
    timing: Literal["early_failure_12m", "relapsed_or_refractory", "refractory_or_second_relapse"] | None = None
    lineage_required: bool = False
    exclusions: tuple[Literal["PCNSL"], ...] = ()
    unobservable: tuple[str, ...] = ()
    in_force_from: date
    in_force_to: date | None = None
    label_status: str
    source: str

    @model_validator(mode="after")
    def _check_window(self) -> "LabelRule":
        if self.in_force_to is not None and self.in_force_to <= self.in_force_from:
            raise ValueError(f"rule {self.id}: in_force_to must be after in_force_from")
        if self.max_age is not None and self.max_age < self.min_age:
            raise ValueError(f"rule {self.id}: max_age below min_age")
        return self


class EligibilityRules(BaseModel):
    """The validated rule file; ``version`` plus a content digest travels with every output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    rules: tuple[LabelRule, ...]
    digest: str = ""

    @model_validator(mode="after")
    def _check_ids(self) -> "EligibilityRules":
        ids = [r.id for r in self.rules]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicated rule id(s): {', '.join(duplicated)}")
        if not self.rules:
            raise ValueError("rule file has no rules")
        return self

    @property
    def full_version(self) -> str:
        return f"{self.version}+{self.digest}" if self.digest else self.version

    @property
    def products(self) -> tuple[str, ...]:
        """Distinct products in file order."""
        return _index(self).products


class _RuleIndex:
    """What the engine reads from a rule set, derived once per rule-set object."""

    def __init__(self, rules: EligibilityRules):
        self.products = tuple(dict.fromkeys(r.product_generic for r in rules.rules))
        self.by_product = {p: tuple(r for r in rules.rules if r.product_generic == p) for p in self.products}
        # drug classes any rule reads: only those exposure columns are taken from the frame
        self.classes = frozenset(c for r in rules.rules for c in r.required_prior_classes + r.expected_prior_classes)
        self.version = rules.full_version


_INDEXES = IdentityMemo()


def _index(rules: EligibilityRules) -> _RuleIndex:
    return _INDEXES.get((rules,), lambda: rules, lambda: _RuleIndex(rules))


def load_rules(path: Path | str | None = None) -> EligibilityRules:
    """Read and validate a rule file (the packaged one by default, cached)."""
    if path is None:
        return _load_packaged()
    return _load(Path(path))


@cache
def _load_packaged() -> EligibilityRules:
    return _load(RULES_PATH)


def _load(path: Path) -> EligibilityRules:
    raw = path.read_bytes()
    data = yaml.safe_load(raw)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with 'version' and 'rules'")
    try:
        rules = EligibilityRules.model_validate(data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    return rules.model_copy(update={"digest": hashlib.sha256(raw).hexdigest()[:8]})


class _Members:
    """Column arrays of everything the rules read, aligned to ``as_of.index``.

    Frames are aligned by position lookup on ``person_id`` (no reindexing of whole frames), so a
    one-member call costs a few array operations per column.
    """

    def __init__(self, persons, cohort, treatment, as_of: pd.Series, classes: frozenset[str]):
        ids = as_of.index
        self.ids = ids
        self.n = len(ids)
        self.as_of = as_of.to_numpy(dtype="datetime64[D]")
        c = _Aligned(cohort, ids, "cohort")
        self.in_cohort = c.flag("in_cohort")
        self.disease = c.text("disease")
        self.subtype = c.text("subtype")
        self.exclusion = c.text("exclusion")
        self.evidence = c.text("evidence")
        self.lineage_known = c.flag("lineage_known")
        self.age = _age_years(_Aligned(persons, ids, "persons").dates("birth_date"), self.as_of)
        t = _Aligned(treatment, ids, "treatment")
        self.prior_lines = t.number("prior_lines", 0).astype(np.int64)
        self.progressed = t.flag("progressed_after_last_line")
        self.progression_evidence = t.text("progression_evidence")
        self.early_relapse = t.tristate("early_relapse")
        self.primary_refractory = t.tristate("primary_refractory")
        self.len_refractory = t.tristate("lenalidomide_refractory")
        self.gap_days = t.number("days_line1_end_to_line2_start", np.nan)
        self.line1_regimen = t.text("line1_regimen")
        self.line1_end = t.dates("line1_end")
        self.exposed = {cls: t.flag(CLASS_EXPOSURE[cls][0]) for cls in classes}
        # received in a line followed by progression: what the labels call a "prior" class
        self.failed = {cls: t.flag(CLASS_EXPOSURE[cls][0].replace("exposed_", "failed_", 1)) for cls in classes}
        self.car_t = t.flag("car_t_received")
        self.car_t_date = t.dates("car_t_date")
        people = _Aligned(persons, ids, "persons")
        death = people.dates("death_date") if "death_date" in people.columns else np.full(self.n, np.datetime64("NaT"), "datetime64[D]")
        self.dead = ~np.isnat(death) & (death <= self.as_of)
        self.death = death


class _Aligned:
    """Columns of one input (DataFrame or column mapping) in ``ids`` order; absent members get the stated default."""

    def __init__(self, frame, ids: pd.Index, name: str):
        self.columns, self.name = columns_of(frame), name
        if "person_id" not in self.columns:
            raise ValueError(f"{name} frame lacks column person_id")
        keys = to_numpy(self.columns["person_id"], object)
        if len(keys) == len(ids) and (keys == ids.to_numpy(dtype=object)).all():
            self.at = None  # already aligned: the common case inside the pipeline
            return
        if len(set(keys.tolist())) != len(keys):
            raise ValueError(f"{name} frame has duplicated person_id values")
        self.at = positions(pd.Index(keys, dtype=object), ids.to_numpy(dtype=object), name)

    def _take(self, values: np.ndarray, default) -> np.ndarray:
        if self.at is None:
            return values
        if len(values) == 0:
            return np.full(len(self.at), default, dtype=values.dtype)
        out = values[np.maximum(self.at, 0)]
        out[self.at < 0] = default
        return out

    def _column(self, column: str):
        try:
            return self.columns[column]
        except KeyError:
            raise ValueError(f"{self.name} frame lacks column {column}") from None

    def flag(self, column: str) -> np.ndarray:
        return self._take(to_numpy(self._column(column), bool, False), False)

    def tristate(self, column: str) -> np.ndarray:
        """1 true, 0 false, -1 unknown."""
        values = self._column(column)
        if values.dtype == bool:
            return self._take(to_numpy(values).astype(np.int8), -1)
        as_float = to_numpy(values, float, np.nan)  # one conversion keeps the missing marks
        return self._take(np.where(np.isnan(as_float), -1, as_float).astype(np.int8), -1)

    def text(self, column: str) -> np.ndarray:
        return self._take(to_numpy(self._column(column), object, ""), "")

    def number(self, column: str, default: float) -> np.ndarray:
        values = self._column(column)
        if values.dtype.kind not in "if":
            values = pd.to_numeric(pd.Series(values), errors="coerce").astype(float).array
        array = to_numpy(values, float, np.nan)
        return self._take(np.where(np.isnan(array), default, array), default)

    def dates(self, column: str) -> np.ndarray:
        return self._take(to_numpy(self._column(column), "datetime64[D]"), np.datetime64("NaT"))


def _age_years(birth: np.ndarray, as_of: np.ndarray) -> np.ndarray:
    """Completed years on ``as_of``; -1 when the birth date is unknown."""
    def parts(d: np.ndarray):
        y = d.astype("datetime64[Y]")
        m = d.astype("datetime64[M]")
        return y.astype(np.int64), (m - y).astype(np.int64), (d - m).astype(np.int64)

    by, bm, bd = parts(birth)
    ay, am, ad = parts(as_of)
    age = ay - by - ((am < bm) | ((am == bm) & (ad < bd)))
    return np.where(np.isnat(birth) | np.isnat(as_of), -1, age)


# A criterion evaluated over members ``ix``: status per member (0 met, 1 missing, 2 unknown,
# -1 not reported) and a function building the text for a subset of those positions.
_MET, _MISSING, _UNKNOWN, _SILENT = 0, 1, 2, -1


class _Criterion:
    __slots__ = ("name", "status", "text")

    def __init__(self, name: str, status: np.ndarray, text):
        self.name = name
        self.status = status
        self.text = text  # callable(positions into ix) -> list[str]


def _evaluate(rule: LabelRule, m: _Members, ix: np.ndarray) -> list[_Criterion]:
    """All criteria of one rule for members ``ix`` (whose cohort disease is the rule's)."""
    out: list[_Criterion] = []
    k = len(ix)
    day = m.as_of[ix]

    start = np.datetime64(rule.in_force_from, "D")
    end = np.datetime64(rule.in_force_to, "D") if rule.in_force_to else None
    early = day < start
    late = day >= end if end is not None else np.zeros(k, dtype=bool)
    status = np.where(early | late, _MISSING, _SILENT)
    out.append(_Criterion("in_force", status, lambda p: [
        f"label approved {rule.in_force_from}, after the evaluation date {day[i]}" if early[i]
        else f"this label version was superseded on {rule.in_force_to}" for i in p]))

    sub = m.subtype[ix]
    excl = m.exclusion[ix]
    disease_name = DISEASE_NAMES[rule.disease]
    ok_hist = np.ones(k, dtype=bool) if rule.histologies is None else np.isin(sub, list(rule.histologies))
    status = np.where(excl != "", _MISSING, np.where(ok_hist, _MET, _MISSING))
    evidence = m.evidence[ix]
    out.append(_Criterion("disease", status, lambda p: [
        (f"{excl[i]}: excluded from the label" if excl[i] == EXCLUSION_PCNSL and "PCNSL" in rule.exclusions
         else f"excluded from the cohort: {excl[i]}") if excl[i] != ""
        else f"{disease_name}" + (f" ({sub[i]})" if sub[i] else "") + f" by claims: {evidence[i].split('; ')[0]}" if ok_hist[i]
        else f"{sub[i]} is not among the histologies this label names" for i in p]))

    if "PCNSL" in rule.exclusions:
        hidden = np.array([PCNSL_UNSEPARABLE in e for e in evidence], dtype=bool)
        out.append(_Criterion("pcnsl", np.where(hidden & (excl == ""), _UNKNOWN, _SILENT), lambda p: [
            "primary CNS lymphoma cannot be ruled out: C83.39 was coded, and C83.390 exists only from FY2025"
            for _ in p]))
    if rule.disease == "MZL":
        ambiguous = sub == "MZL_or_SLL"
        out.append(_Criterion("histology_ambiguity", np.where(ambiguous, _UNKNOWN, _SILENT), lambda p: [
            "C83.0 does not separate marginal zone lymphoma from SLL: confirm histology" for _ in p]))

    age = m.age[ix]
    too_young = age < rule.min_age
    too_old = age > rule.max_age if rule.max_age is not None else np.zeros(k, dtype=bool)
    status = np.where(age < 0, _UNKNOWN, np.where(too_young | too_old, _MISSING, _MET))
    limit = f"up to {rule.max_age}" if rule.max_age is not None else f"{rule.min_age} or older"
    out.append(_Criterion("age", status, lambda p: [
        "age unknown (no birth date)" if age[i] < 0
        else f"age {age[i]} is below the label minimum of {rule.min_age}" if too_young[i]
        else f"age {age[i]} exceeds the label limit of {rule.max_age}" if too_old[i]
        else f"age {age[i]} (label: {limit})" for i in p]))

    n_lines = rule.min_prior_lines
    lines = m.prior_lines[ix]
    progressed = m.progressed[ix]
    prog_text = m.progression_evidence[ix]
    lines_ok = (lines > n_lines) | ((lines == n_lines) & progressed)
    out.append(_Criterion("lines", np.where(lines_ok, _MET, _MISSING), lambda p: [
        _lines_text(int(lines[i]), n_lines, bool(progressed[i]), prog_text[i]) for i in p]))

    regimen = m.line1_regimen[ix]
    if rule.timing == "early_failure_12m":
        refractory = m.primary_refractory[ix]
        early_relapse = m.early_relapse[ix].copy()
        months = np.round(m.gap_days[ix] / _DAYS_PER_MONTH)
        # One line with progression but no line 2 yet: the relapse happened on or before as_of, so
        # as_of within 12 months of the end of line 1 proves an early relapse; later is unknown.
        since_end = (day - m.line1_end[ix]).astype("timedelta64[D]").astype(float)
        since_end[np.isnat(m.line1_end[ix])] = np.nan
        bounded = (early_relapse == -1) & (lines == 1) & progressed & (since_end <= _EARLY_RELAPSE_DAYS)
        early_relapse[bounded] = 1
        months = np.where(bounded, np.nan, months)
        met = refractory == 1
        met |= early_relapse == 1
        missing = ~met & (early_relapse == 0)
        status = np.where(~lines_ok & (lines < 1), _SILENT, np.where(met, _MET, np.where(missing, _MISSING, _UNKNOWN)))
        out.append(_Criterion("timing", status, lambda p: [
            _timing_text(int(refractory[i]), int(early_relapse[i]), months[i], regimen[i]) for i in p]))
    elif rule.timing == "refractory_or_second_relapse":
        refractory = m.primary_refractory[ix]
        second = (lines > 2) | ((lines == 2) & progressed)
        met = (refractory == 1) | second
        status = np.where(~lines_ok, _SILENT, np.where(met, _MET, np.where(refractory == -1, _UNKNOWN, _MISSING)))
        out.append(_Criterion("timing", status, lambda p: [
            ("refractory to first-line therapy" if refractory[i] == 1 else "in second or later relapse (progression after line 2)")
            if (refractory[i] == 1 or second[i])
            else "whether first-line therapy was refractory cannot be judged from claims; first relapse alone is not enough"
            if refractory[i] == -1
            else "first relapse only: the label requires refractory disease or a second or later relapse" for i in p]))

    # A prior class is one received in a line followed by progression (``failed_*``), not one of
    # the current line: starting a BTK inhibitor after relapse is not "prior BTKi" until it fails.
    for cls in rule.required_prior_classes:
        failed, exposed = m.failed[cls][ix], m.exposed[cls][ix]
        label = CLASS_EXPOSURE[cls][1]
        out.append(_Criterion("class", np.where(failed, _MET, _MISSING), lambda p, f=failed, e=exposed, lb=label: [
            f"prior {lb}" if f[i]
            else f"{lb} only in the current line, no progression after it yet (the label requires a prior one)" if e[i]
            else f"no prior {lb} (the label requires one)" for i in p]))
    for cls in rule.expected_prior_classes:
        failed, exposed = m.failed[cls][ix], m.exposed[cls][ix]
        label = CLASS_EXPOSURE[cls][1]
        out.append(_Criterion("class", np.where(failed, _MET, _UNKNOWN), lambda p, f=failed, e=exposed, lb=label: [
            f"prior {lb}" if f[i]
            else f"{lb} only in the current line, no progression after it yet: the pivotal trial and payer policies "
                 "expect a prior one, the label does not state it" if e[i]
            else f"no prior {lb} seen: the pivotal trial and payer policies expect one, the label does not state it"
            for i in p]))

    if rule.refractory_to == "lenalidomide":
        refr = m.len_refractory[ix]
        out.append(_Criterion("refractory", np.where(refr == 1, _MET, np.where(refr == 0, _MISSING, _UNKNOWN)), lambda p: [
            "lenalidomide-refractory (claims proxy: next line started on or within 60 days of lenalidomide)" if refr[i] == 1
            else "not lenalidomide-refractory by the claims proxy (no line started on or within 60 days of lenalidomide)"
            if refr[i] == 0 else "lenalidomide refractoriness cannot be judged from the claims" for i in p]))

    if rule.lineage_required:
        known = m.lineage_known[ix]
        out.append(_Criterion("lineage", np.where(known, _MET, _UNKNOWN), lambda p: [
            "B-lineage shown by a B-cell-directed drug (blinatumomab, inotuzumab or rituximab)" if known[i]
            else "B- versus T-lineage ALL cannot be told from C91.0 codes: confirm B-cell precursor immunophenotype"
            for i in p]))

    for text in rule.unobservable:
        out.append(_Criterion("unobservable", np.full(k, _UNKNOWN), lambda p, t=text: [t for _ in p]))

    car_t = m.car_t[ix]
    car_t_day = m.car_t_date[ix]
    out.append(_Criterion("car_t", np.where(car_t, _UNKNOWN, _SILENT), lambda p: [
        f"CAR T already given on {car_t_day[i]}; the label does not address re-treatment" for i in p]))
    return out


def _lines_text(lines: int, needed: int, progressed: bool, evidence: str) -> str:
    plural = "line" if lines == 1 else "lines"
    if lines > needed:
        return f"{lines} prior {plural} of systemic therapy"
    if lines == needed and progressed:
        return f"{lines} prior {plural} of systemic therapy, progression after line {lines}" + (f" ({evidence})" if evidence else "")
    if lines == needed:
        return (f"{lines} prior {plural} of systemic therapy but no evidence of progression after line {lines}: "
                "the label requires relapsed or refractory disease")
    return f"{lines} prior {plural} of systemic therapy; the label requires at least {needed} with progression"


def _timing_text(refractory: int, early_relapse: int, months: float, regimen: str) -> str:
    first_line = f"first-line {regimen}" if regimen else "first-line therapy"
    when = f"{int(months)} months" if np.isfinite(months) else "an unknown time"
    if refractory == 1:
        return f"refractory to {first_line}"
    if early_relapse == 1:
        return f"relapsed {when} after {first_line}" if np.isfinite(months) else f"relapsed within 12 months of {first_line}"
    if early_relapse == 0:
        return f"relapsed {when} after {first_line}; the label requires relapse within 12 months"
    return f"timing of relapse after {first_line} cannot be judged from the claims"


def assess_eligibility(
    persons: pd.DataFrame,
    cohort: pd.DataFrame,
    treatment: pd.DataFrame,
    as_of: pd.Series,
    rules: EligibilityRules,
) -> pd.DataFrame:
    """One row per member x product (``rules.products`` order) with the reasons; see module doc.

    ``cohort`` is :func:`features.cohort.assign_cohort` output, ``treatment`` one row per member
    from ``features.relapse.summarise_treatment`` (members without a row have had no therapy).
    """
    columns = eligibility_columns(persons, cohort, treatment, as_of, rules)
    return frame_from_columns(columns, n_rows(columns))


def eligibility_columns(persons, cohort, treatment, as_of: pd.Series, rules: EligibilityRules) -> dict:
    """:func:`assess_eligibility` as column arrays; inputs may be DataFrames or column mappings."""
    index = _index(rules)
    m = _Members(persons, cohort, treatment, as_of, index.classes)
    products = index.products
    n, p = m.n, len(products)
    indication = np.full((n, p), None, dtype=object)
    eligible = np.zeros((n, p), dtype=bool)
    met = np.empty((n, p), dtype=object)
    missing = np.empty((n, p), dtype=object)
    unknown = np.empty((n, p), dtype=object)
    hint = np.full((n, p), None, dtype=object)
    empty: list[str] = []
    version = index.version

    met[:] = _as_objects([empty] * (n * p)).reshape(n, p)
    unknown[:] = met
    groups, group_keys = pd.factorize(m.disease + "|" + m.exclusion) if n else (np.zeros(0, dtype=np.int64), [])
    # members the rules judge: cohort members, and excluded members (the exclusion is the reason)
    judged = m.in_cohort | (m.exclusion != "")
    present = set(m.disease[judged])
    for j, product in enumerate(products):
        product_rules = index.by_product[product]
        missing[:, j] = _unmatched_reasons(product_rules, groups, group_keys)
        best_score = np.full(n, np.iinfo(np.int64).max)
        best_rule = np.full(n, -1)
        evaluated: dict[int, tuple[np.ndarray, list[_Criterion]]] = {}
        for r_i, rule in enumerate(product_rules):
            if rule.disease not in present:
                continue
            ix = np.flatnonzero((m.disease == rule.disease) & judged)
            criteria = _evaluate(rule, m, ix)
            statuses = np.vstack([c.status for c in criteria])
            n_missing = (statuses == _MISSING).sum(axis=0)
            n_unknown = (statuses == _UNKNOWN).sum(axis=0)
            # labels in force on the member's date come first; then fewest missing, fewest unknown
            out_of_force = criteria[0].status == _MISSING
            score = out_of_force * 1_000_000 + n_missing * 1000 + n_unknown
            better = score < best_score[ix]
            best_score[ix[better]] = score[better]
            best_rule[ix[better]] = r_i
            evaluated[r_i] = (ix, criteria)
        for r_i, (ix, criteria) in evaluated.items():
            chosen = best_rule[ix] == r_i
            if not chosen.any():
                continue
            pos = np.flatnonzero(chosen)
            rows = ix[pos]
            rule = product_rules[r_i]
            lists = {_MET: [[] for _ in pos], _MISSING: [[] for _ in pos], _UNKNOWN: [[] for _ in pos]}
            blocking = {name: np.zeros(len(pos), dtype=bool) for name in ("lines", "in_force", "other")}
            for c in criteria:
                st = c.status[pos]
                reported = np.flatnonzero(st >= 0)
                if len(reported) == 0:
                    continue
                texts = c.text(pos[reported])
                for q, t in zip(reported, texts):
                    lists[int(st[q])][q].append(t)
                blocking[c.name if c.name in blocking else "other"] |= st == _MISSING
            indication[rows, j] = rule.indication
            eligible[rows, j] = [not x for x in lists[_MISSING]]
            met[rows, j] = _as_objects(lists[_MET])
            missing[rows, j] = _as_objects(lists[_MISSING])
            unknown[rows, j] = _as_objects(lists[_UNKNOWN])
            hint[rows, j] = _hint(rule, blocking)
    _exclude_deceased(m, eligible, missing)
    columns = {
        "person_id": TextColumn(np.repeat(m.ids.to_numpy(dtype=object), p), STR),
        "product": TextColumn(np.tile(np.array(products, dtype=object), n), STR),
        "indication": TextColumn(indication.ravel(), STR),
        "eligible": eligible.ravel(),
        "criteria_met": met.ravel(),
        "criteria_missing": missing.ravel(),
        "criteria_unknown": unknown.ravel(),
        "first_eligible_hint": TextColumn(hint.ravel(), STR),
        "rules_version": TextColumn(np.full(n * p, version, dtype=object), STR),
    }
    return columns


def _exclude_deceased(m: "_Members", eligible: np.ndarray, missing: np.ndarray) -> None:
    """A member who died on or before the evaluation date is no candidate, whatever the label says."""
    for i in np.flatnonzero(m.dead):
        reason = f"died on {np.datetime_as_string(m.death[i], unit='D')}"
        eligible[i, :] = False
        for j in range(missing.shape[1]):
            missing[i, j] = [*missing[i, j], reason]  # a new list: rows may share their reason lists


def _as_objects(lists: list[list[str]]) -> np.ndarray:
    out = np.empty(len(lists), dtype=object)
    out[:] = lists
    return out


def _unmatched_reasons(product_rules: tuple[LabelRule, ...], groups: np.ndarray, group_keys) -> np.ndarray:
    """Why a member no rule of this product covers is not eligible: one shared list per disease."""
    labelled = ", ".join(DISEASE_NAMES[d] for d in sorted({r.disease for r in product_rules}))
    shared = []
    for key in group_keys:
        disease, exclusion = key.split("|", 1)
        if disease == "" and exclusion == "":
            shared.append(["not in the cancer cohort: no qualifying target blood-cancer diagnosis"])
        elif disease == "":
            shared.append([f"excluded from the cohort: {exclusion}"])
        else:
            shared.append([f"labelled for {labelled}; the member's cohort disease is {DISEASE_NAMES[disease]}"])
    return _as_objects(shared)[groups] if len(groups) else np.empty(0, dtype=object)


def _hint(rule: LabelRule, blocking: dict[str, np.ndarray]) -> np.ndarray:
    """When only progression or the label date stands in the way, say what would change it."""
    other = blocking["other"]
    lines_only = blocking["lines"] & ~blocking["in_force"] & ~other
    date_only = blocking["in_force"] & ~blocking["lines"] & ~other
    out = np.full(len(other), None, dtype=object)
    out[lines_only] = f"on progression after line {rule.min_prior_lines}"
    if rule.in_force_to is None:
        out[date_only] = f"from {rule.in_force_from} when this label took effect"
    return out
