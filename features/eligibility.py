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
from features.columns import STR, TextColumn, columns_of, frame_from_columns, n_rows, object_values, positions, to_numpy
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
    """What the engine reads from a rule set, compiled once per rule-set object.

    Rules are grouped by disease (each with its product's output column), so a call evaluates only
    the rules of the diseases its members have; the per-rule constants (in-force days, texts) are
    computed here rather than on every call.
    """

    def __init__(self, rules: EligibilityRules):
        self.products = tuple(dict.fromkeys(r.product_generic for r in rules.rules))
        self.by_product = {p: tuple(r for r in rules.rules if r.product_generic == p) for p in self.products}
        self.by_disease: dict[str, list[tuple[int, tuple[_CompiledRule, ...]]]] = {}
        for j, product in enumerate(self.products):
            own = self.by_product[product]
            for disease in dict.fromkeys(r.disease for r in own):
                compiled = tuple(_CompiledRule(r) for r in own if r.disease == disease)
                self.by_disease.setdefault(disease, []).append((j, compiled))
        # drug classes any rule reads: only those exposure columns are taken from the frame
        self.classes = frozenset(c for r in rules.rules for c in r.required_prior_classes + r.expected_prior_classes)
        self.version = rules.full_version
        self.labelled = tuple(", ".join(DISEASE_NAMES[d] for d in sorted({r.disease for r in self.by_product[p]})) for p in self.products)
        self.unmatched: dict[str, tuple[str, ...]] = {}  # disease|exclusion -> reason per product, filled on first use


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


# Columns the rules read, checked up front so a missing one is an error naming the frame even when
# the members of this call would not need it.
_COHORT_COLUMNS = ("in_cohort", "disease", "subtype", "exclusion", "evidence", "lineage_known")
_TREATMENT_COLUMNS = (
    "prior_lines", "progressed_after_last_line", "progression_evidence", "early_relapse", "primary_refractory",
    "lenalidomide_refractory", "days_line1_end_to_line2_start", "line1_regimen", "line1_end", "car_t_received", "car_t_date",
)  # fmt: skip


class _Members:
    """Column arrays of everything the rules read, aligned to ``as_of.index``, each read on first use.

    Frames are aligned by position lookup on ``person_id`` (no reindexing of whole frames), and a
    column is converted only when a rule of a disease present in the call reads it: one lymphoma
    member never pays for the myeloma or ALL columns.
    """

    def __init__(self, persons, cohort, treatment, as_of: pd.Series, classes: frozenset[str]):
        ids = as_of.index.to_numpy(dtype=object)
        self.ids = ids
        self.n = len(ids)
        self.as_of = to_numpy(as_of.array, "datetime64[D]")
        self._cohort = _Aligned(cohort, ids, "cohort")
        self._treatment = _Aligned(treatment, ids, "treatment")
        self._persons = _Aligned(persons, ids, "persons")
        exposure = [CLASS_EXPOSURE[c][0] for c in sorted(classes)]
        self._cohort.require(_COHORT_COLUMNS)
        self._treatment.require(_TREATMENT_COLUMNS + tuple(exposure) + tuple(_failed(e) for e in exposure))
        self._persons.require(("birth_date",))
        self._classes = classes

    def __getattr__(self, name: str):
        loader = _MEMBER_COLUMNS.get(name)
        if loader is None:
            raise AttributeError(name)
        value = loader(self)
        setattr(self, name, value)  # later reads find the attribute without coming here
        return value

    def _death(self) -> np.ndarray:
        people = self._persons
        if "death_date" in people.columns:
            return people.dates("death_date")
        return np.full(self.n, np.datetime64("NaT"), "datetime64[D]")


def _failed(exposure_column: str) -> str:
    """``exposed_x`` -> ``failed_x``: received in a line followed by progression, what labels call "prior"."""
    return exposure_column.replace("exposed_", "failed_", 1)


_MEMBER_COLUMNS = {
    "in_cohort": lambda m: m._cohort.flag("in_cohort"),
    "disease": lambda m: m._cohort.text("disease"),
    "subtype": lambda m: m._cohort.text("subtype"),
    "exclusion": lambda m: m._cohort.text("exclusion"),
    "evidence": lambda m: m._cohort.text("evidence"),
    "lineage_known": lambda m: m._cohort.flag("lineage_known"),
    "age": lambda m: _age_years(m._persons.dates("birth_date"), m.as_of),
    "prior_lines": lambda m: m._treatment.number("prior_lines", 0).astype(np.int64),
    "progressed": lambda m: m._treatment.flag("progressed_after_last_line"),
    "progression_evidence": lambda m: m._treatment.text("progression_evidence"),
    "early_relapse": lambda m: m._treatment.tristate("early_relapse"),
    "primary_refractory": lambda m: m._treatment.tristate("primary_refractory"),
    "len_refractory": lambda m: m._treatment.tristate("lenalidomide_refractory"),
    "gap_days": lambda m: m._treatment.number("days_line1_end_to_line2_start", np.nan),
    "line1_regimen": lambda m: m._treatment.text("line1_regimen"),
    "line1_end": lambda m: m._treatment.dates("line1_end"),
    "exposed": lambda m: {c: m._treatment.flag(CLASS_EXPOSURE[c][0]) for c in m._classes},
    "failed": lambda m: {c: m._treatment.flag(_failed(CLASS_EXPOSURE[c][0])) for c in m._classes},
    "car_t": lambda m: m._treatment.flag("car_t_received"),
    "car_t_date": lambda m: m._treatment.dates("car_t_date"),
    "death": lambda m: m._death(),
    "dead": lambda m: ~np.isnat(m.death) & (m.death <= m.as_of),
}


class _Aligned:
    """Columns of one input (DataFrame or column mapping) in ``ids`` order; absent members get the stated default."""

    def __init__(self, frame, ids: np.ndarray, name: str):
        """``ids``: the member keys as an object array."""
        self.columns, self.name = columns_of(frame), name
        if "person_id" not in self.columns:
            raise ValueError(f"{name} frame lacks column person_id")
        keys = object_values(self.columns, "person_id", None)  # converted once per frame for every step
        if len(keys) == len(ids) and (keys == ids).all():
            self.at = None  # already aligned: the common case inside the pipeline
            return
        if len(set(keys.tolist())) != len(keys):
            raise ValueError(f"{name} frame has duplicated person_id values")
        self.at = positions(pd.Index(keys, dtype=object), ids, name)

    def require(self, names) -> None:
        for column in names:
            if column not in self.columns:
                raise ValueError(f"{self.name} frame lacks column {column}")

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
        if isinstance(values, pd.arrays.BooleanArray):
            return self._take(values.to_numpy(dtype=np.int8, na_value=-1), -1)  # one pandas call
        as_float = to_numpy(values, float, np.nan)  # one conversion keeps the missing marks
        return self._take(np.where(np.isnan(as_float), -1, as_float).astype(np.int8), -1)

    def text(self, column: str) -> np.ndarray:
        return self._take(to_numpy(self._column(column), object, ""), "")

    def number(self, column: str, default: float) -> np.ndarray:
        values = self._column(column)
        if values.dtype.kind not in "if":
            values = pd.to_numeric(pd.Series(values), errors="coerce").astype(float).array
        array = to_numpy(values, float, np.nan)
        if not np.isnan(default):
            array = np.where(np.isnan(array), default, array)
        return self._take(array, default)

    def dates(self, column: str) -> np.ndarray:
        return self._take(to_numpy(self._column(column), "datetime64[D]"), np.datetime64("NaT"))


def _age_years(birth: np.ndarray, as_of: np.ndarray) -> np.ndarray:
    """Completed years on ``as_of``; -1 when the birth date is unknown."""
    birth_month, as_of_month = birth.astype("datetime64[M]"), as_of.astype("datetime64[M]")
    # completed months: calendar months between them, less one while the day of the month is not reached
    months = (as_of_month - birth_month).astype(np.int64) - ((as_of - as_of_month) < (birth - birth_month))
    return np.where(np.isnat(birth) | np.isnat(as_of), -1, months // 12)


# A criterion evaluated over members ``ix``: status per member (0 met, 1 missing, 2 unknown,
# -1 not reported) and a function building the text for a subset of those positions.
_MET, _MISSING, _UNKNOWN, _SILENT = 0, 1, 2, -1


class _Criterion:
    __slots__ = ("name", "status", "text")

    def __init__(self, name: str, status: np.ndarray, text):
        self.name = name
        self.status = status
        self.text = text  # callable(positions into ix) -> list[str]


class _Group:
    """The members of one disease in a call: their column slices and the rule-independent criteria
    parts, computed once for all the rules of that disease (each on first use)."""

    def __init__(self, m: _Members, ix: np.ndarray):
        self.m, self.ix, self.k = m, ix, len(ix)
        self._parts: dict = {}

    def part(self, key: tuple, build):
        """``build()`` once per key: a criterion's arrays for one value of the rule parameters it reads."""
        hit = self._parts.get(key)
        if hit is None:
            hit = self._parts[key] = build()
        return hit

    def __getattr__(self, name: str):
        loader = _GROUP_PARTS.get(name)
        value = loader(self) if loader is not None else self._slice(getattr(self.m, name))
        setattr(self, name, value)
        return value

    def _slice(self, column):
        if self.k == self.m.n:  # every member (one member alone, or a one-disease chunk): no copy
            return column
        if isinstance(column, dict):
            return {key: values[self.ix] for key, values in column.items()}
        return column[self.ix]

    def _early_failure(self) -> tuple:
        """(refractory, early relapse, months line 1 -> 2, status) of the 12-month-failure criterion."""
        refractory = self.primary_refractory
        early_relapse = self.early_relapse.copy()
        months = np.round(self.gap_days / _DAYS_PER_MONTH)
        # One line with progression but no line 2 yet: the relapse happened on or before as_of, so
        # as_of within 12 months of the end of line 1 proves an early relapse; later is unknown.
        since_end = (self.as_of - self.line1_end).astype("timedelta64[D]").astype(float)
        since_end[np.isnat(self.line1_end)] = np.nan
        bounded = (early_relapse == -1) & (self.prior_lines == 1) & self.progressed & (since_end <= _EARLY_RELAPSE_DAYS)
        early_relapse[bounded] = 1
        months = np.where(bounded, np.nan, months)
        met = (refractory == 1) | (early_relapse == 1)
        status = np.where(met, _MET, np.where(early_relapse == 0, _MISSING, _UNKNOWN))
        return refractory, early_relapse, months, status


_GROUP_PARTS = {
    "early_failure": _Group._early_failure,
    "pcnsl_status": lambda g: np.where(
        np.fromiter((PCNSL_UNSEPARABLE in e for e in g.evidence.tolist()), dtype=bool, count=g.k) & (g.exclusion == ""), _UNKNOWN, _SILENT
    ),
    "car_t_status": lambda g: np.where(g.car_t, _UNKNOWN, _SILENT),
}


class _CompiledRule:
    """One label rule with the constants its criteria need, built once per rule set."""

    def __init__(self, rule: LabelRule):
        self.rule = rule
        self.start = np.datetime64(rule.in_force_from, "D")
        self.end = np.datetime64(rule.in_force_to, "D") if rule.in_force_to else None
        self.histologies = None if rule.histologies is None else frozenset(rule.histologies)
        self.age_limit = f"up to {rule.max_age}" if rule.max_age is not None else f"{rule.min_age} or older"
        self.lines_hint = f"on progression after line {rule.min_prior_lines}"
        self.date_hint = f"from {rule.in_force_from} when this label took effect" if rule.in_force_to is None else None

    def evaluate(self, group: _Group) -> list[_Criterion]:
        """All criteria of the rule for the members of ``group`` (whose cohort disease is the rule's)."""
        return _evaluate(self, group)


def _evaluate(compiled: _CompiledRule, g: _Group) -> list[_Criterion]:
    """Every criterion of one rule. Status arrays depend on a few rule parameters (age limits, line
    count, histologies, classes) that label versions share, so each is built once per group and
    parameter value (``g.part``); only the reason texts know the rule."""
    rule = compiled.rule
    out: list[_Criterion] = []
    k = g.k
    day = g.as_of

    start, end = compiled.start, compiled.end

    def in_force():
        early = day < start
        late = day >= end if end is not None else np.zeros(k, dtype=bool)
        return np.where(early | late, _MISSING, _SILENT), early

    status, early = g.part(("in_force", start, end), in_force)
    out.append(_Criterion("in_force", status, lambda p: [
        f"label approved {rule.in_force_from}, after the evaluation date {day[i]}" if early[i]
        else f"this label version was superseded on {rule.in_force_to}" for i in p]))

    sub, excl, evidence = g.subtype, g.exclusion, g.evidence
    disease_name = DISEASE_NAMES[rule.disease]
    hist = compiled.histologies

    def disease():
        ok = np.ones(k, dtype=bool) if hist is None else np.fromiter((x in hist for x in sub.tolist()), dtype=bool, count=k)
        return np.where(excl != "", _MISSING, np.where(ok, _MET, _MISSING)), ok

    status, ok_hist = g.part(("disease", hist), disease)
    out.append(_Criterion("disease", status, lambda p: [
        (f"{excl[i]}: excluded from the label" if excl[i] == EXCLUSION_PCNSL and "PCNSL" in rule.exclusions
         else f"excluded from the cohort: {excl[i]}") if excl[i] != ""
        else f"{disease_name}" + (f" ({sub[i]})" if sub[i] else "") + f" by claims: {evidence[i].split('; ')[0]}" if ok_hist[i]
        else f"{sub[i]} is not among the histologies this label names" for i in p]))

    if "PCNSL" in rule.exclusions:
        out.append(_Criterion("pcnsl", g.pcnsl_status, lambda p: [
            "primary CNS lymphoma cannot be ruled out: C83.39 was coded, and C83.390 exists only from FY2025"
            for _ in p]))
    if rule.disease == "MZL":
        out.append(_Criterion("histology_ambiguity", g.part(("mzl",), lambda: np.where(sub == "MZL_or_SLL", _UNKNOWN, _SILENT)), lambda p: [
            "C83.0 does not separate marginal zone lymphoma from SLL: confirm histology" for _ in p]))

    age = g.age
    min_age, max_age = rule.min_age, rule.max_age

    def ages():
        too_young = age < min_age
        too_old = age > max_age if max_age is not None else np.zeros(k, dtype=bool)
        return np.where(age < 0, _UNKNOWN, np.where(too_young | too_old, _MISSING, _MET)), too_young, too_old

    status, too_young, too_old = g.part(("age", min_age, max_age), ages)
    limit = compiled.age_limit
    out.append(_Criterion("age", status, lambda p: [
        "age unknown (no birth date)" if age[i] < 0
        else f"age {age[i]} is below the label minimum of {min_age}" if too_young[i]
        else f"age {age[i]} exceeds the label limit of {max_age}" if too_old[i]
        else f"age {age[i]} (label: {limit})" for i in p]))

    n_lines = rule.min_prior_lines
    lines, progressed, prog_text = g.prior_lines, g.progressed, g.progression_evidence

    def lines_met():
        ok = (lines > n_lines) | ((lines == n_lines) & progressed)
        return np.where(ok, _MET, _MISSING), ok

    status, lines_ok = g.part(("lines", n_lines), lines_met)
    out.append(_Criterion("lines", status, lambda p: [
        _lines_text(int(lines[i]), n_lines, bool(progressed[i]), prog_text[i]) for i in p]))

    if rule.timing == "early_failure_12m":
        regimen = g.line1_regimen
        refractory, early_relapse, months, early_status = g.early_failure
        status = g.part(("early_failure", n_lines), lambda: np.where(~lines_ok & (lines < 1), _SILENT, early_status))
        out.append(_Criterion("timing", status, lambda p: [
            _timing_text(int(refractory[i]), int(early_relapse[i]), months[i], regimen[i]) for i in p]))
    elif rule.timing == "refractory_or_second_relapse":
        refractory = g.primary_refractory

        def second_relapse():
            second = (lines > 2) | ((lines == 2) & progressed)
            met = (refractory == 1) | second
            return np.where(~lines_ok, _SILENT, np.where(met, _MET, np.where(refractory == -1, _UNKNOWN, _MISSING))), second

        status, second = g.part(("second_relapse", n_lines), second_relapse)
        out.append(_Criterion("timing", status, lambda p: [
            ("refractory to first-line therapy" if refractory[i] == 1 else "in second or later relapse (progression after line 2)")
            if (refractory[i] == 1 or second[i])
            else "whether first-line therapy was refractory cannot be judged from claims; first relapse alone is not enough"
            if refractory[i] == -1
            else "first relapse only: the label requires refractory disease or a second or later relapse" for i in p]))

    # A prior class is one received in a line followed by progression (``failed_*``), not one of
    # the current line: starting a BTK inhibitor after relapse is not "prior BTKi" until it fails.
    for cls in rule.required_prior_classes:
        failed, exposed = g.failed[cls], g.exposed[cls]
        label = CLASS_EXPOSURE[cls][1]
        status = g.part(("required", cls), lambda f=failed: np.where(f, _MET, _MISSING))
        out.append(_Criterion("class", status, lambda p, f=failed, e=exposed, lb=label: [
            f"prior {lb}" if f[i]
            else f"{lb} only in the current line, no progression after it yet (the label requires a prior one)" if e[i]
            else f"no prior {lb} (the label requires one)" for i in p]))
    for cls in rule.expected_prior_classes:
        failed, exposed = g.failed[cls], g.exposed[cls]
        label = CLASS_EXPOSURE[cls][1]
        status = g.part(("expected", cls), lambda f=failed: np.where(f, _MET, _UNKNOWN))
        out.append(_Criterion("class", status, lambda p, f=failed, e=exposed, lb=label: [
            f"prior {lb}" if f[i]
            else f"{lb} only in the current line, no progression after it yet: the pivotal trial and payer policies "
                 "expect a prior one, the label does not state it" if e[i]
            else f"no prior {lb} seen: the pivotal trial and payer policies expect one, the label does not state it"
            for i in p]))

    if rule.refractory_to == "lenalidomide":
        refr = g.len_refractory
        status = g.part(("lenalidomide",), lambda: np.where(refr == 1, _MET, np.where(refr == 0, _MISSING, _UNKNOWN)))
        out.append(_Criterion("refractory", status, lambda p: [
            "lenalidomide-refractory (claims proxy: progression or a next line on or within 60 days of lenalidomide)"
            if refr[i] == 1
            else "not lenalidomide-refractory by the claims proxy (no progression or next line on or within 60 days of lenalidomide)"
            if refr[i] == 0
            else "lenalidomide refractoriness cannot be judged from the claims (progression first seen more than 60 days "
                 "after the last lenalidomide supply)" for i in p]))

    if rule.lineage_required:
        known = g.lineage_known
        out.append(_Criterion("lineage", g.part(("lineage",), lambda: np.where(known, _MET, _UNKNOWN)), lambda p: [
            "B-lineage shown by a B-cell-directed drug (blinatumomab, inotuzumab or rituximab)" if known[i]
            else "B- versus T-lineage ALL cannot be told from C91.0 codes: confirm B-cell precursor immunophenotype"
            for i in p]))

    for text in rule.unobservable:
        out.append(_Criterion("unobservable", g.part(("unobservable",), lambda: np.full(k, _UNKNOWN)), lambda p, t=text: [t for _ in p]))

    car_t_day = g.car_t_date
    out.append(_Criterion("car_t", g.car_t_status, lambda p: [
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
    """:func:`assess_eligibility` as column arrays; inputs may be DataFrames or column mappings.

    Cost grows with the rules of the diseases present, not with the products: members no rule of a
    product covers get that product's shared reason, and reason texts are built only for the rule
    reported per member.
    """
    index = _index(rules)
    m = _Members(persons, cohort, treatment, as_of, index.classes)
    products = index.products
    n, p = m.n, len(products)
    disease, exclusion = m.disease, m.exclusion
    codes, keys = _factorize(disease + "|" + exclusion if n else np.zeros(0, dtype=object))
    missing = _unmatched_reasons(index, keys)[codes] if n else np.empty((0, p), dtype=object)
    indication = np.full((n, p), None, dtype=object)
    eligible = np.zeros((n, p), dtype=bool)
    met = np.empty((n, p), dtype=object)
    met.fill([])  # one shared empty list per call, replaced for every reported rule
    unknown = met.copy()
    hint = np.full((n, p), None, dtype=object)

    # members the rules judge: cohort members, and excluded members (the exclusion is the reason)
    judged = m.in_cohort | (exclusion != "")
    for name in sorted(set(disease[judged].tolist()) & set(index.by_disease)):
        group = _Group(m, np.flatnonzero(judged & (disease == name)))
        for j, compiled in index.by_disease[name]:
            _report_best_rule(compiled, group, j, indication, eligible, met, missing, unknown, hint)
    _exclude_deceased(m, eligible, missing)
    return {
        "person_id": TextColumn(np.repeat(m.ids, p), STR),
        "product": TextColumn(np.tile(np.array(products, dtype=object), n), STR),
        "indication": TextColumn(indication.ravel(), STR),
        "eligible": eligible.ravel(),
        "criteria_met": met.ravel(),
        "criteria_missing": missing.ravel(),
        "criteria_unknown": unknown.ravel(),
        "first_eligible_hint": TextColumn(hint.ravel(), STR),
        "rules_version": TextColumn(np.full(n * p, index.version, dtype=object), STR),
    }


def _report_best_rule(compiled: tuple[_CompiledRule, ...], group: _Group, j: int, indication, eligible, met, missing, unknown, hint) -> None:
    """Fill product column ``j`` for the members of ``group`` from the best of the product's rules for their disease.

    Labels in force on the member's date come first, then fewest missing, then fewest unknown
    criteria; ties go to the rule listed first. Reasons are assembled member by member (each
    member gets its own text anyway), so the assembly is plain Python over the chosen members.
    """
    evaluated = [rule.evaluate(group) for rule in compiled]
    if len(evaluated) == 1:
        chosen_rule = [np.arange(group.k)]
    else:
        best_score = best_rule = None
        for r_i, criteria in enumerate(evaluated):
            statuses = np.array([c.status for c in criteria])
            score = _SCORE[statuses + 1].sum(axis=0) + (statuses[0] == _MISSING) * 1_000_000
            if best_score is None:
                best_score, best_rule = score, np.zeros(group.k, dtype=np.int64)
            else:
                better = score < best_score
                best_score = np.where(better, score, best_score)
                best_rule[better] = r_i
        chosen_rule = [np.flatnonzero(best_rule == r_i) for r_i in range(len(evaluated))]
    rows_of = group.ix.tolist()
    for rule, criteria, pos in zip(compiled, evaluated, chosen_rule):
        k = len(pos)
        if k == 0:
            continue
        whole = k == group.k
        positions_ = pos.tolist()
        reasons = ([[] for _ in range(k)], [[] for _ in range(k)], [[] for _ in range(k)])  # met, missing, unknown
        blocked = ([False] * k, [False] * k, [False] * k)  # missing: progression (lines), label date, anything else
        for c in criteria:
            row = (c.status if whole else c.status[pos]).tolist()
            if k == 1:  # one member: no list of reported positions to build
                st = row[0]
                if st >= 0:
                    reasons[st][0].append(c.text(positions_)[0])
                    if st == _MISSING:
                        blocked[_BLOCKS.get(c.name, 2)][0] = True
                continue
            reported = [q for q, st in enumerate(row) if st >= 0]
            if not reported:
                continue
            block = blocked[_BLOCKS.get(c.name, 2)]
            for q, text in zip(reported, c.text([positions_[q] for q in reported])):
                st = row[q]
                reasons[st][q].append(text)
                if st == _MISSING:
                    block[q] = True
        lines_hint, date_hint = rule.lines_hint, rule.date_hint
        for q, p_i in enumerate(positions_):
            r = rows_of[p_i]
            indication[r, j] = rule.rule.indication
            eligible[r, j] = not reasons[_MISSING][q]
            met[r, j] = reasons[_MET][q]
            missing[r, j] = reasons[_MISSING][q]
            unknown[r, j] = reasons[_UNKNOWN][q]
            by_lines, by_date, by_other = blocked[0][q], blocked[1][q], blocked[2][q]
            if by_lines and not by_date and not by_other:
                hint[r, j] = lines_hint
            elif by_date and not by_lines and not by_other and date_hint is not None:
                hint[r, j] = date_hint


# Score of one criterion by status (not reported, met, missing, unknown): fewest missing, then fewest unknown.
_SCORE = np.array([0, 0, 1000, 1], dtype=np.int64)
# Which missing criteria a first-eligibility hint can speak about (index into ``blocked``).
_BLOCKS = {"lines": 0, "in_force": 1}


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list]:
    """Codes and uniques of an object array (a dict walk for small inputs, pandas for large)."""
    if len(values) > 4096:
        codes, uniques = pd.factorize(values)
        return codes.astype(np.int64), list(uniques)
    seen: dict = {}
    codes = np.fromiter((seen.setdefault(v, len(seen)) for v in values.tolist()), dtype=np.int64, count=len(values))
    return codes, list(seen)


def _exclude_deceased(m: "_Members", eligible: np.ndarray, missing: np.ndarray) -> None:
    """A member who died on or before the evaluation date is no candidate, whatever the label says."""
    for i in np.flatnonzero(m.dead):
        reason = f"died on {np.datetime_as_string(m.death[i], unit='D')}"
        eligible[i, :] = False
        for j in range(missing.shape[1]):
            missing[i, j] = [*missing[i, j], reason]  # a new list: rows may share their reason lists


def _unmatched_reasons(index: _RuleIndex, keys: list[str]) -> np.ndarray:
    """Why a member no rule of a product covers is not eligible: per ``disease|exclusion`` key and
    product, one list shared by the members of this call with that key (texts cached per rule set)."""
    table = np.empty((len(keys), len(index.products)), dtype=object)
    for k, key in enumerate(keys):
        texts = index.unmatched.get(key)
        if texts is None:
            texts = index.unmatched[key] = _unmatched_texts(index, key)
        for j, text in enumerate(texts):
            table[k, j] = [text]
    return table


def _unmatched_texts(index: _RuleIndex, key: str) -> tuple[str, ...]:
    disease, exclusion = key.split("|", 1)
    if disease == "" and exclusion == "":
        return ("not in the cancer cohort: no qualifying target blood-cancer diagnosis",) * len(index.products)
    if disease == "":
        return (f"excluded from the cohort: {exclusion}",) * len(index.products)
    return tuple(f"labelled for {labelled}; the member's cohort disease is {DISEASE_NAMES[disease]}" for labelled in index.labelled)
