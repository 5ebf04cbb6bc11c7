"""Natural history of each haematological malignancy, one patient at a time, written as claims.

The cancer cohort is ~1 % of members, so plain Python per patient is affordable and keeps the
clinical logic readable. Latent factors drive the course: ``risk`` (disease biology, IPI-like)
raises the chance and speed of progression; ``frailty`` and age raise the chance of dying at a
progression, push towards gentler regimens and lower CAR T referral. Observable proxies follow:
frail patients get more febrile-neutropenia admissions and ED visits, high-risk patients more
PET-CTs. LBCL follows epidemiology.md §2: ~12 % primary refractory and ~24 % relapse after 1L
(30-40 % relapsed/refractory), most relapses within two years.

Truth eligibility is a state, not an event: once the disease has progressed after line N the
patient stays relapsed/refractory after N lines (as the eligibility engine reads the labels), so
a label that comes into force later, or an 18th birthday, makes an already relapsed patient
eligible on that day. ``settle_eligibility`` evaluates the labels at every progression, every
label in-force start and the 18th birthday while the patient is alive, in two views: every label
criterion (``eligibility``) and criteria claims cannot observe taken as met (``claims_eligibility``:
transplant ineligibility, which the engine reports as unknown and does not block on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthetic import car_t_access as cart
from synthetic.claims import ClaimSink
from synthetic.coding import CodeBook
from synthetic.regimens import HDT_ASCT, REGIMENS, Regimen

FY2025 = cart.day_of("2024-10-01")
CRS_CODES_FROM = cart.day_of("2020-10-01")
ICANS_CODES_FROM = cart.day_of("2021-10-01")
DRG_018_FROM = cart.day_of("2020-10-01")
CHEMO_ENCOUNTER = "Z5111"
IMMUNO_ENCOUNTER = "Z5112"
PEGFILGRASTIM_REGIMENS = {"R-CHOP", "R-mini-CHOP", "Pola-R-CHP", "DA-EPOCH-R", "R-ICE", "R-DHAP", "R-GDP", "Hyper-CVAD"}

# Per disease and line (1, 2, 3+): (probability of progression, median days to progression, sigma).
RESPONSE = {
    "LBCL": ((0.24, 270, 0.9), (0.60, 150, 0.8), (0.75, 120, 0.8)),
    "FL": ((0.55, 1400, 1.0), (0.65, 800, 0.9), (0.75, 500, 0.9)),
    "MCL": ((0.75, 1000, 0.8), (0.85, 550, 0.7), (0.9, 300, 0.7)),
    "MZL": ((0.40, 1500, 1.0), (0.6, 900, 0.9), (0.7, 600, 0.9)),
    "CLL_SLL": ((0.45, 1500, 0.8), (0.6, 1000, 0.8), (0.75, 600, 0.8)),
    "B_ALL": ((0.40, 420, 0.7), (0.65, 200, 0.7), (0.8, 150, 0.7)),
    "MM": ((0.92, 1100, 0.7), (0.95, 500, 0.6), (0.97, 330, 0.6)),
}
PRIMARY_REFRACTORY = {"LBCL": 0.12, "MCL": 0.05, "B_ALL": 0.08, "MM": 0.03}
# Probability of dying (rather than starting another line) at the k-th progression.
DEATH_AT_PROGRESSION = {
    "LBCL": (0.18, 0.35, 0.5), "FL": (0.04, 0.1, 0.2), "MCL": (0.1, 0.25, 0.4), "MZL": (0.03, 0.08, 0.15),
    "CLL_SLL": (0.04, 0.12, 0.25), "B_ALL": (0.15, 0.35, 0.5), "MM": (0.05, 0.12, 0.25),
}
WATCH_AND_WAIT = {"FL": (0.25, 700), "MZL": (0.3, 700), "CLL_SLL": (0.5, 1000)}
CAR_T_RESPONSE = (0.55, 130, 0.8)
MAX_LINES = 7
BTKI = ("ibrutinib", "acalabrutinib", "zanubrutinib")


@dataclass
class Patient:
    person: int
    person_id: str
    disease: str
    dx_day: int
    birth: int
    frailty: float
    risk: float
    payer: int
    miles: float
    horizon: int  # last day events can happen: end of data or background death
    site: int = 1
    subtype: str = ""

    def age(self, day: int) -> float:
        return (day - self.birth) / 365.25


@dataclass
class PatientTruth:
    lines: list[tuple] = field(default_factory=list)  # (line, start, end, drugs, regimen, sct, car_t)
    eligibility: dict[str, tuple[str, int]] = field(default_factory=dict)  # product -> (disease, first day)
    claims_eligibility: dict[str, tuple[str, int]] = field(default_factory=dict)  # unobservable criteria met
    referral: int | None = None
    car_t: int | None = None
    car_t_product: str | None = None
    death: int | None = None
    lost_to_progression: bool = False
    progressions: list[int] = field(default_factory=list)
    lenalidomide_last: dict[int, int] = field(default_factory=dict)  # line number -> last day lenalidomide covered
    primary_refractory: bool = False
    early_failure: bool = False


class CourseSimulator:
    """Simulates and renders one patient's course into a ClaimSink."""

    def __init__(self, codebook: CodeBook, sink: ClaimSink, rng: np.random.Generator, noise: float = 0.0) -> None:
        self.codes = codebook
        self.sink = sink
        self.rng = rng
        self.noise = noise
        self.catalog = dict(zip(codebook.codelists.drug_catalog["generic"], codebook.codelists.drug_catalog["drug_class"]))

    # ---- coding -------------------------------------------------------------------------
    def dx(self, p: Patient, day: int, status: str = "active") -> str:
        """The disease's ICD-10-CM code on ``day`` (status: active/remission/relapse), dotless."""
        site = 0 if self.rng.random() < 0.6 * self.noise else p.site
        remission_ok = day >= FY2025 and status == "remission"
        d = p.disease
        if d == "LBCL":
            return "C833A" if remission_ok else f"C833{site}"
        if d == "FL":
            return f"C82{p.subtype}A" if remission_ok else f"C82{p.subtype}{site}"
        if d == "MCL":
            return "C831A" if remission_ok else f"C831{site}"
        if d == "MZL":
            if p.subtype == "malt":
                return ("C8841" if remission_ok else "C8840") if day >= FY2025 else "C884"
            return f"C830{site}"
        fifth = {"active": "0", "remission": "1", "relapse": "2"}[status]
        return {"CLL_SLL": "C911", "B_ALL": "C910", "MM": "C900"}[d] + fifth

    def hcpcs(self, generic: str) -> str:
        code = self.codes.hcpcs_by_generic[generic]
        if generic == "rituximab" and self.rng.random() < 0.5 * self.noise:
            return self.codes.biosimilar_rituximab[int(self.rng.integers(0, len(self.codes.biosimilar_rituximab)))]
        return code

    # ---- rendering helpers -------------------------------------------------------------------
    def visit(self, p: Patient, day: int, status: str = "active", level: str = "99214", pos: str = "11") -> None:
        if day <= p.horizon:
            self.sink.professional(p.person, day, [self.dx(p, day, status)], [(level, 1, float(self.rng.uniform(90, 220)))], pos)

    def pet(self, p: Patient, day: int, status: str = "active") -> None:
        if day <= p.horizon:
            self.sink.professional(p.person, day, [self.dx(p, day, status)], [("78815", 1, float(self.rng.uniform(900, 2200)))], "22")

    def workup(self, p: Patient) -> None:
        d0, rng = p.dx_day, self.rng
        self.sink.professional(p.person, max(d0 - int(rng.integers(10, 40)), 0), ["R590"], [("99213", 1, 110.0)], "11")
        if p.disease in ("LBCL", "FL", "MCL", "MZL"):
            code = ("38500", "38505", "38525")[int(rng.integers(0, 3))]
            self.sink.professional(p.person, d0 - int(rng.integers(1, 8)), ["R590"], [(code, 1, float(rng.uniform(600, 1500)))], "22")
            self.pet(p, d0 + int(rng.integers(3, 15)))
        if p.disease in ("B_ALL", "CLL_SLL", "MM") or rng.random() < 0.5:
            self.sink.professional(p.person, d0 + int(rng.integers(0, 10)), [self.dx(p, d0)], [("38222", 1, float(rng.uniform(400, 900)))], "22")
        self.visit(p, d0 + int(rng.integers(2, 12)), level="99205")

    def follow_up(self, p: Patient, start: int, stop: int, status: str) -> None:
        """Surveillance visits (and occasional PET-CT, more often in high-risk disease)."""
        day, gap = start, 90
        while day + gap <= min(stop, p.horizon):
            day += gap + int(self.rng.integers(-10, 11))
            if day > min(stop, p.horizon):
                break
            self.visit(p, day, status, level="99213")
            if self.rng.random() < 0.12 + 0.08 * max(p.risk, 0):
                self.pet(p, day + 3, status)
            gap = 90 if day - start < 730 else 180

    def complications(self, p: Patient, day: int) -> None:
        rng = self.rng
        if rng.random() < 0.04 + 0.03 * max(p.frailty, 0) + (0.02 if p.age(day) > 70 else 0):
            admit = day + int(rng.integers(7, 12))
            los = int(rng.integers(3, 8))
            if admit + los <= p.horizon:
                self.sink.inpatient(p.person, admit, admit + los, ["D701", "R5081", self.dx(p, admit)], "809",
                                    [("0120", None, los, los * 2600.0), ("0250", None, 1, 1800.0)])
        elif rng.random() < 0.05 + 0.03 * max(p.frailty, 0):
            ed = day + int(rng.integers(5, 15))
            if ed <= p.horizon:
                self.sink.outpatient_facility(p.person, ed, ["R5081", self.dx(p, ed)], [("0450", "99284", 1, float(rng.uniform(700, 1800)))])

    def administer(self, p: Patient, regimen: Regimen, start: int, stop: int | None, substitute: dict | None = None) -> tuple[int, set[str], dict[str, int]]:
        """Give ``regimen`` from ``start``; continuous regimens run until ``stop`` (progression).

        Returns (last administration/fill day, drugs given, last day each drug was given or covered
        by a fill: refractoriness to a drug is judged from its own last dose).
        """
        rng, sink = self.rng, self.sink
        substitute = substitute or {}
        n_cycles = int(rng.integers(regimen.cycles[0], regimen.cycles[1] + 1))
        day, last, given, cycle = start, start, set(), 0
        last_by_drug: dict[str, int] = {}
        limit = min(p.horizon, stop if stop is not None else 10**9)
        while day <= limit and (regimen.continuous or cycle < n_cycles):
            iv_days: dict[int, list[str]] = {}
            for drug, days in list(regimen.iv.items()) + (list(regimen.first_cycle_only.items()) if cycle == 0 else []):
                for d in days:
                    iv_days.setdefault(d, []).append(drug)
            for offset in sorted(iv_days):
                when = day + offset - 1
                if when > limit:
                    break
                lines = [(self.hcpcs(g), 1, float(rng.uniform(300, 6000))) for g in sorted(iv_days[offset])]
                sink.professional(p.person, when, [CHEMO_ENCOUNTER, self.dx(p, when)], lines, "11" if p.person % 3 else "22")
                given.update(iv_days[offset])
                last = max(last, when)
                last_by_drug.update(dict.fromkeys(iv_days[offset], when))
            for drug, supply in regimen.oral.items():
                drug = substitute.get(drug, drug)
                if day <= limit:
                    sink.fill(p.person, day, self.codes.ndc(drug, p.person), supply, supply, float(rng.uniform(20, 600) if drug in ("prednisone", "dexamethasone", "methotrexate", "mercaptopurine") else rng.uniform(8000, 16000)))
                    given.add(drug)
                    last = max(last, day + supply - 1)
                    last_by_drug[drug] = min(day + supply - 1, limit)
            if regimen.name in PEGFILGRASTIM_REGIMENS and day + 1 <= limit and rng.random() < 0.7:
                sink.professional(p.person, day + 1, [self.dx(p, day + 1)], [("J2505", 1, 4200.0)], "11")
            if regimen.iv and not regimen.continuous:
                self.complications(p, day)
            cycle += 1
            delay = int(rng.integers(-1, 3)) + (7 if rng.random() < 0.12 else 0)
            day += regimen.cycle_days + (delay if not regimen.oral or regimen.iv else 0)
        return min(last, limit), given, last_by_drug

    def transplant(self, p: Patient, day: int, drugs: tuple[str, ...]) -> tuple[int, bool]:
        """Stem-cell collection, high-dose chemotherapy and autologous SCT admission: (last day, transplanted)."""
        rng = self.rng
        collect = day
        self.sink.professional(p.person, collect - 2, [self.dx(p, collect)], [("J2562", 1, 9000.0)], "22")
        self.sink.professional(p.person, collect, [self.dx(p, collect)], [("38206", 1, 2500.0), ("38207", 1, 1200.0)], "22")
        admit = collect + int(rng.integers(21, 50))
        los = int(rng.integers(14, 24))
        if admit + los > p.horizon:
            return collect, False
        lines = [("0120", None, los, los * 3500.0)] + [("0250", self.codes.hcpcs_by_generic[g], 1, 3000.0) for g in drugs]
        self.sink.inpatient(p.person, admit, admit + los, [self.dx(p, admit), CHEMO_ENCOUNTER], ("016", "017")[int(rng.integers(0, 2))], lines, pcs="30233Y0")
        self.sink.professional(p.person, admit + 6, [self.dx(p, admit)], [("38241", 1, 4500.0)], "21")
        return admit + los, True

    def die(self, p: Patient, truth: PatientTruth, day: int) -> None:
        if day > p.horizon:
            return  # dies after the end of data (or of something else first): not a death in this history
        truth.death = day
        los = int(self.rng.integers(3, 11))
        if self.rng.random() < 0.6 and day - los > p.dx_day:
            drg = "835" if p.disease == "B_ALL" else "809"
            self.sink.inpatient(p.person, day - los, day, [self.dx(p, day - los, "relapse"), "R5081"], drg, [("0120", None, los, los * 2600.0)])

    # ---- regimen choice ------------------------------------------------------------------
    def choose(self, p: Patient, line: int, day: int, prior: set[str], failed: frozenset[str] = frozenset()) -> tuple[str, dict, bool, str | None]:
        """(regimen, drug substitutions, autologous SCT planned, maintenance regimen).

        A regimen that already failed (``failed``, regimen names) is not given again while another
        option exists: oncologists switch after progression, and a repeat of the same drugs is, by
        the line-of-therapy rules, a continuation that claims cannot tell from the failed line.
        """
        rng, age, frail = self.rng, p.age(day), p.frailty
        fit = age < 70 and frail < 1.0
        avail = lambda name: day >= cart.day_of(REGIMENS[name].available)  # noqa: E731

        def pick(options: list[str]) -> str:
            fresh = [o for o in options if o not in failed] or options
            return fresh[int(rng.integers(0, len(fresh)))]
        btki = {"ibrutinib": pick([b for b in BTKI if b not in prior] or list(BTKI))}
        d = p.disease
        if d == "LBCL":
            if line == 1:
                if age > 80 or frail > 1.5:
                    return "R-mini-CHOP", {}, False, None
                if avail("Pola-R-CHP") and rng.random() < 0.25:
                    return "Pola-R-CHP", {}, False, None
                return ("DA-EPOCH-R" if rng.random() < 0.07 else "R-CHOP"), {}, False, None
            if line == 2 and fit:
                return pick(["R-ICE", "R-DHAP", "R-GDP"]), {}, rng.random() < 0.6, None
            options = [r for r in ("Glofitamab", "Epcoritamab", "Loncastuximab tesirine", "Pola-BR", "Tafasitamab + lenalidomide", "R-GemOx") if avail(r)]
            return pick(options), {}, False, None
        if d == "FL":
            if line == 1:
                return pick(["BR", "BR", "R-CHOP", "R-CVP"]), {}, False, ("Rituximab maintenance" if rng.random() < 0.5 else None)
            if line == 2:
                return pick(["R2 (lenalidomide + rituximab)", "BR" if "bendamustine" not in prior else "R-CHOP"]), {}, False, None
            return pick([r for r in ("Mosunetuzumab", "Epcoritamab", "R2 (lenalidomide + rituximab)") if avail(r)]), {}, False, None
        if d == "MCL":
            if line == 1:
                if age < 65 and frail < 0.8:
                    return "R-CHOP", {}, True, "Rituximab maintenance"
                return pick(["BR", "BR", "VR-CAP"]), {}, False, ("Rituximab maintenance" if rng.random() < 0.5 else None)
            if line == 2:
                return "Covalent BTKi", btki, False, None
            return pick([r for r in ("Pirtobrutinib", "R2 (lenalidomide + rituximab)", "BR") if avail(r)]), {}, False, None
        if d == "MZL":
            if line == 1:
                return pick(["BR", "R-CVP"]), {}, False, None
            if line == 2:
                return "Covalent BTKi", {"ibrutinib": "zanubrutinib"}, False, None
            return "R2 (lenalidomide + rituximab)", {}, False, None
        if d == "CLL_SLL":
            used_btki = bool(prior & set(BTKI))
            used_ven = "venetoclax" in prior
            if line == 1:
                return pick(["Covalent BTKi", "Covalent BTKi", "Venetoclax + obinutuzumab (VenO)", "BR" if age < 65 else "Covalent BTKi"]), btki, False, None
            if not used_ven:
                return "Venetoclax + obinutuzumab (VenO)", {}, False, None
            if not used_btki:
                return "Covalent BTKi", btki, False, None
            return pick([r for r in ("Pirtobrutinib", "BR") if avail(r)]), {}, False, None
        if d == "B_ALL":
            if line == 1:
                return ("Pediatric multiphase" if age < 40 else "Hyper-CVAD"), {}, False, "POMP maintenance"
            return pick(["Blinatumomab", "Inotuzumab ozogamicin"]), {}, False, None
        # MM
        if line == 1:
            if fit:
                induction = "D-VRd" if avail("D-VRd") and (day >= cart.day_of("2024-01-01") or rng.random() < 0.4) else "VRd"
                return induction, {}, rng.random() < 0.65, "Lenalidomide maintenance"
            return "DRd", {}, False, None
        if line == 2:
            return pick(["DKd", "DPd", "KRd"] if "daratumumab" not in prior else ["KRd", "Isa-Pd", "Ixazomib-Rd"]), {}, False, None
        return pick([r for r in ("Isa-Pd", "SVd", "Teclistamab", "Talquetamab", "DPd") if avail(r)]), {}, False, None

    # ---- truth eligibility -----------------------------------------------------------------
    def history_at(self, p: Patient, truth: PatientTruth, day: int, transplant_ineligible: bool | None = None) -> cart.History:
        """What the labels ask on ``day``: lines that progressed by then, their drug classes, age, frailty.

        Prior lines are the lines whose progression happened on or before ``day`` (a line only
        starts after the previous one progressed), so "relapsed/refractory after N lines" is
        "N progressions". Drug classes come from those lines; lenalidomide-refractory (IMWG) means
        progression on lenalidomide or within 60 days of its last dose in a progressed line: the
        last lenalidomide day, not the line's end (an ASCT after lenalidomide-containing induction
        does not make a relapse soon after the transplant lenalidomide-refractory).
        """
        progressions = [d for d in truth.progressions if d <= day]
        failed = truth.lines[: len(progressions)]
        drugs = {g for line in failed for g in line[3]}
        len_refractory = any(truth.lenalidomide_last.get(line[0], -(10**9)) >= prog - 60 for line, prog in zip(failed, progressions))
        age = p.age(day)
        if transplant_ineligible is None:
            transplant_ineligible = age >= 70 or p.frailty > 1.0
        return cart.History(p.disease, age, len(progressions), truth.early_failure, transplant_ineligible,
                            frozenset(self.catalog.get(g, "") for g in drugs), len_refractory, truth.primary_refractory)

    def settle_eligibility(self, p: Patient, truth: PatientTruth) -> None:
        """First eligible day per product at progressions, label in-force starts and the 18th birthday."""
        if not truth.progressions:
            return
        last = min(p.horizon, truth.death if truth.death is not None else p.horizon)
        first = truth.progressions[0]
        adult = int(np.ceil(p.birth + 18 * 365.25))
        days = set(truth.progressions) | {r.valid_from for r in cart.load_labels() if r.disease == p.disease} | {adult}
        for day in sorted(d for d in days if first <= d <= last):
            for view, ineligible in ((truth.eligibility, None), (truth.claims_eligibility, True)):
                for row in cart.eligible_labels(self.history_at(p, truth, day, ineligible), day):
                    view.setdefault(row.product, (row.disease, day))

    # ---- the course ----------------------------------------------------------------------
    def simulate(self, p: Patient) -> PatientTruth:
        """The whole course (claims into the sink) and its truth, eligibility settled."""
        truth = self.course(p)
        self.settle_eligibility(p, truth)
        return truth

    def course(self, p: Patient) -> PatientTruth:
        rng, truth = self.rng, PatientTruth()
        self.workup(p)
        day = p.dx_day
        ww = WATCH_AND_WAIT.get(p.disease)
        if ww and rng.random() < ww[0]:
            treat = day + int(rng.lognormal(np.log(ww[1]), 0.8))
            self.follow_up(p, day, treat, "active")
            day = treat
        else:
            day += int(rng.integers(10, 35))
        prior: set[str] = set()
        line, end_of_1l = 0, None
        while day <= p.horizon and line < MAX_LINES:
            line += 1
            name, substitute, sct, maintenance = self.choose(p, line, day, prior, frozenset(ln[4] for ln in truth.lines))
            regimen = REGIMENS[name]
            k = min(line, 3) - 1
            p_prog, median, sigma = RESPONSE[p.disease][k]
            shift = 0.5 * p.risk + 0.15 * p.frailty
            p_prog = float(1 / (1 + np.exp(-(np.log(p_prog / (1 - p_prog + 1e-9)) + shift))))
            refractory = line == 1 and rng.random() < PRIMARY_REFRACTORY.get(p.disease, 0.0) * np.exp(0.5 * p.risk)
            planned_days = regimen.cycle_days * regimen.cycles[1]
            if refractory:
                progression = day + int(rng.uniform(0.4, 0.75) * planned_days)
            elif rng.random() < p_prog:
                base = day if regimen.continuous or maintenance else day + planned_days
                progression = base + int(rng.lognormal(np.log(median), sigma) * np.exp(-0.3 * p.risk))
            else:
                progression = None
            stop = progression if progression is not None else None
            last, given, last_by_drug = self.administer(p, regimen, day, stop, substitute)
            line_end, transplanted = last, False
            if sct and (progression is None or progression > last + 60):
                hdt = HDT_ASCT.get(p.disease, ("melphalan",))
                line_end, transplanted = self.transplant(p, last + int(rng.integers(14, 30)), hdt)
                if transplanted:  # high-dose drugs belong to the line
                    given |= set(hdt)
            if maintenance and line_end < min(p.horizon, progression or 10**9):
                m_last, m_given, m_by_drug = self.administer(p, REGIMENS[maintenance], line_end + int(rng.integers(30, 75)), progression)
                given |= m_given
                last_by_drug.update(m_by_drug)
                line_end = max(line_end, m_last)
            prior |= given
            truth.lines.append((line, day, line_end, sorted(given), name, transplanted, False))
            if "lenalidomide" in last_by_drug:
                truth.lenalidomide_last[line] = last_by_drug["lenalidomide"]
            if line == 1:
                end_of_1l = last
                truth.primary_refractory = bool(refractory)
            if progression is None or progression > p.horizon:
                self.follow_up(p, line_end, p.horizon, "remission")
                return truth
            self.follow_up(p, line_end, progression - 20, "remission")
            truth.progressions.append(progression)
            if line == 1:
                truth.early_failure = bool(refractory or progression - end_of_1l <= 365)
            self.pet(p, progression, "relapse")
            self.visit(p, progression + 3, "relapse", level="99215")
            if self.car_t(p, truth, progression, prior):
                return truth
            k = min(len(truth.progressions), 3) - 1
            p_die = DEATH_AT_PROGRESSION[p.disease][k] + 0.12 * (p.age(progression) > 75) + 0.06 * max(p.frailty, 0)
            if rng.random() < p_die:
                self.die(p, truth, progression + int(rng.lognormal(np.log(90), 0.6)))
                return truth
            day = progression + int(rng.integers(10, 30))
        return truth

    def car_t(self, p: Patient, truth: PatientTruth, progression: int, prior: set[str]) -> bool:
        """Eligibility, referral and the CAR T pathway; True when the course ends inside it."""
        rng = self.rng
        rows = cart.eligible_labels(self.history_at(p, truth, progression), progression)
        if not rows or truth.referral is not None:
            return False
        if rng.random() >= cart.referral_probability(p.age(progression), p.frailty, p.miles, p.payer):
            return False
        referral = progression + int(rng.integers(3, 21))
        if referral > p.horizon:
            return False
        truth.referral = referral
        consult_gap, apheresis_gap, infusion_gap = cart.pathway_days(rng)
        consult = referral + consult_gap
        apheresis = consult + apheresis_gap
        infusion = apheresis + infusion_gap
        self.visit(p, consult, "relapse", level="99245", pos="22")
        if rng.random() < cart.LOST_TO_PROGRESSION:
            truth.lost_to_progression = True
            self.die(p, truth, referral + int(rng.uniform(0.3, 1.0) * (infusion - referral)))
            return True
        codes = cart.car_t_procedure_codes(apheresis)
        if apheresis > p.horizon:
            return True
        self.sink.professional(p.person, apheresis, [self.dx(p, apheresis, "relapse")], [(codes["collection"], 1, 3000.0), (codes["prep_out"], 1, 800.0)], "22")
        if rng.random() < 0.5 and p.disease in ("LBCL", "FL", "MCL"):
            self.administer(p, REGIMENS["Pola-BR" if p.disease == "LBCL" else "BR"], apheresis + 7, apheresis + 20)
        product = cart.choose_product(cart.eligible_labels(self.history_at(p, truth, infusion), infusion) or rows, rng)
        if infusion > p.horizon:
            return True
        for offset in (5, 4, 3):
            self.sink.professional(p.person, infusion - offset, [self.dx(p, infusion - offset, "relapse")], [("J9185", 1, 900.0), ("J9070", 1, 300.0)], "22")
        codes = cart.car_t_procedure_codes(infusion)
        dx = [self.dx(p, infusion, "relapse"), IMMUNO_ENCOUNTER]
        crs = rng.random() < cart.CRS_SHARE
        if crs and infusion >= CRS_CODES_FROM:
            dx.append(f"D8983{int(rng.choice([1, 2, 3, 4], p=[0.5, 0.35, 0.1, 0.05]))}")
        if rng.random() < cart.ICANS_SHARE and infusion >= ICANS_CODES_FROM:
            dx.append(f"G920{int(rng.choice([1, 2, 3, 4], p=[0.4, 0.35, 0.2, 0.05]))}")
        product_line = ("0891", product.hcpcs, 1, float(rng.uniform(420_000, 560_000)))
        if rng.random() < cart.INPATIENT_SHARE:
            los = int(np.clip(rng.lognormal(np.log(14), 0.35), 6, 40))
            admit = infusion - int(rng.integers(0, 2))
            drg = "018" if admit + los >= DRG_018_FROM else "016"
            lines = [product_line, ("0874", None, 1, 2500.0), ("0120", None, los, los * 3800.0)]
            if crs:
                lines.append(("0250", "J3262", 1, 6000.0))
            self.sink.inpatient(p.person, admit, admit + los, dx, drg, lines, pcs=cart.infusion_pcs(product.product, infusion))
            pos = "21"
        else:
            self.sink.outpatient_facility(p.person, infusion, dx, [product_line, ("0874", None, 1, 2500.0)])
            pos = "22"
        self.sink.professional(p.person, infusion, dx[:2], [(codes["prep_in"], 1, 600.0), (codes["infusion"], 1, 1200.0)], pos)
        truth.car_t, truth.car_t_product = infusion, product.product
        line = len(truth.lines) + 1
        truth.lines.append((line, infusion, infusion, sorted({product.product}), f"CAR-T ({product.product})", False, True))
        prior.add(product.product)
        p_prog, median, sigma = CAR_T_RESPONSE
        if rng.random() >= p_prog:
            self.follow_up(p, infusion, p.horizon, "remission")
            return True
        progression = infusion + int(rng.lognormal(np.log(median), sigma))
        if progression > p.horizon:
            self.follow_up(p, infusion, p.horizon, "remission")
            return True
        self.follow_up(p, infusion, progression - 20, "remission")
        truth.progressions.append(progression)
        self.pet(p, progression, "relapse")
        day = progression + int(rng.integers(10, 30))
        if rng.random() < 0.5 or day > p.horizon:
            self.die(p, truth, progression + int(rng.lognormal(np.log(120), 0.6)))
            return True
        name, substitute, _, _ = self.choose(p, max(line, 3), day, prior, frozenset(ln[4] for ln in truth.lines))
        last, given, last_by_drug = self.administer(p, REGIMENS[name], day, None if not REGIMENS[name].continuous else day + 200, substitute)
        truth.lines.append((line + 1, day, last, sorted(given), name, False, False))
        if "lenalidomide" in last_by_drug:
            truth.lenalidomide_last[line + 1] = last_by_drug["lenalidomide"]
        self.die(p, truth, last + int(rng.lognormal(np.log(90), 0.6)))
        return True
