"""Background claims for every member: chronic conditions, office visits, ED visits, admissions,
routine pharmacy fills and the odd lymphoma "rule-out" diagnosis.

This is what makes finding the cancer cohort real work, and it carries honest proxies of the latent
frailty factor: frail members have more chronic (Charlson-type) diagnoses, more ED visits and more
admissions. Everything is vectorised: events are drawn as offsets in *enrolled* time and mapped to
calendar days, so they fall inside enrollment spans and before death by construction.
"""

from __future__ import annotations

import numpy as np

from synthetic.claims import DX_SLOTS, INSTITUTIONAL, PROFESSIONAL, MedicalBatch, PharmacyBatch, concat_medical
from synthetic.coding import CONDITION_DRUGS, CodeBook, Vocabulary
from synthetic.members import DAYS_PER_YEAR, Members

# logit prevalence = a + b * (age - 60) / 10 + c * frailty (adults); children get a - 3.
CONDITION_MODEL = {
    "hypertension": (-0.2, 0.55, 0.5), "diabetes": (-1.7, 0.35, 0.5), "hyperlipidaemia": (-0.6, 0.4, 0.3),
    "copd": (-2.8, 0.4, 0.6), "chf": (-3.6, 0.6, 0.8), "ckd": (-2.9, 0.6, 0.7), "afib": (-3.6, 0.7, 0.5),
    "hypothyroidism": (-2.5, 0.2, 0.2), "depression": (-2.2, 0.0, 0.4), "cad": (-2.5, 0.5, 0.6),
    "gerd": (-2.0, 0.1, 0.2), "obesity": (-1.7, 0.0, 0.3), "sleep_apnoea": (-2.9, 0.2, 0.3), "anxiety": (-2.2, -0.1, 0.3),
    "old_mi": (-3.6, 0.5, 0.7), "stroke": (-4.0, 0.7, 0.8), "fatty_liver": (-3.0, 0.0, 0.3), "pvd": (-3.8, 0.6, 0.7),
    "rheumatoid": (-4.2, 0.2, 0.4), "dementia": (-5.5, 1.2, 0.9),
}
RULE_OUT_SHARE = 0.003
RULE_OUT_CODES = ("C8590", "C8330", "C8290")  # NHL unspecified / DLBCL / FL, unspecified site


def draw_conditions(members: Members, codebook: CodeBook, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Chronic conditions per member: (condition names, boolean matrix n x K)."""
    names_codes = codebook.chronic_conditions()
    names = [n for n, _ in names_codes]
    age = members.age_at(np.arange(members.n), members.e1)
    adult = age >= 18
    out = np.zeros((members.n, len(names)), dtype=bool)
    for j, name in enumerate(names):
        a, b, c = CONDITION_MODEL[name]
        logit = a + b * (np.clip(age, 18, 95) - 60) / 10 + c * members.frailty - np.where(adult, 0, 3)
        if name == "hypothyroidism":
            logit = logit + np.where(members.female, 0.7, -0.7)
        out[:, j] = rng.random(members.n) < 1 / (1 + np.exp(-logit))
    return names, out


def generate_background(
    members: Members, conditions: np.ndarray, names: list[str], codebook: CodeBook, vocab: Vocabulary, rng: np.random.Generator
) -> tuple[MedicalBatch, PharmacyBatch]:
    n = members.n
    enrolled = members.enrolled_days()
    years = enrolled / DAYS_PER_YEAR
    age = members.age_at(np.arange(n), members.e1)
    n_cond = conditions.sum(axis=1)
    frail_pos = np.maximum(members.frailty, 0)
    codes = [c for _, c in codebook.chronic_conditions()]
    cond_ids = vocab.ids(codes)
    acute_ids = vocab.ids(codebook.background_codes("acute"))
    wellness = vocab.id(codebook.background_codes("wellness")[0])

    # Up to DX_SLOTS condition codes per member, in a random order, padded with -1.
    order = np.argsort(rng.random(conditions.shape) - conditions, axis=1)[:, :DX_SLOTS]
    member_dx = np.where(np.take_along_axis(conditions, order, axis=1), cond_ids[order], -1).astype(np.int32)

    batches = []
    # Office visits.
    rate = 0.8 + 0.6 * n_cond + 0.5 * frail_pos + np.where(age < 18, 1.0, 0.0)
    who, day = _events(members, rate * years, enrolled, rng)
    k = len(who)
    acute = (member_dx[who, 0] < 0) | (rng.random(k) < 0.25)
    reason = np.where(rng.random(k) < 0.3, wellness, acute_ids[rng.integers(0, len(acute_ids), k)])
    dx = np.where(acute[:, None], np.column_stack([reason, member_dx[who, : DX_SLOTS - 1]]), member_dx[who])
    em = vocab.ids(["99212", "99213", "99214", "99215"])
    level = np.clip((rng.random(k) * 2.2 + 0.35 * n_cond[who]).astype(int), 0, 3)
    batches.append(_single_line(who, day, PROFESSIONAL, dx, vocab.id("11"), em[level], -1, -1, rng.uniform(60, 160, k)))
    antibiotic = acute & (rng.random(k) < 0.3)
    amoxicillin = who[antibiotic], day[antibiotic]

    # Emergency department visits (facility claim, revenue 0450 + ED E/M code).
    rate = 0.06 + 0.12 * frail_pos + 0.03 * n_cond
    who, day = _events(members, rate * years, enrolled, rng)
    k = len(who)
    dx = np.column_stack([acute_ids[rng.integers(0, len(acute_ids), k)], member_dx[who, : DX_SLOTS - 1]])
    ed = vocab.ids(codebook.background_codes("ed_visit"))
    batches.append(_single_line(who, day, INSTITUTIONAL, dx, -1, ed[rng.integers(0, len(ed), k)], vocab.id("0450"), vocab.id("0131"), rng.uniform(400, 1800, k)))

    # Admissions: principal diagnosis and DRG follow the member's heaviest condition.
    idx = {name: j for j, name in enumerate(names)}
    drg_for = [("chf", "chf"), ("afib", "afib"), ("diabetes", "diabetes"), ("hypertension", "hypertension")]
    principal = np.full(n, -1)
    drg = np.full(n, -1)
    for cond, family in reversed(drg_for):
        has = conditions[:, idx[cond]]
        options = vocab.ids(codebook.drg(family))
        principal = np.where(has, cond_ids[idx[cond]], principal)
        drg = np.where(has, options[rng.integers(0, len(options), n)], drg)
    rate = np.where(principal >= 0, 0.01 + 0.035 * frail_pos + 0.01 * n_cond, 0.0)
    who, day = _events(members, rate * years, enrolled, rng)
    los = rng.integers(2, 9, len(who))
    discharge = day + los
    last = members.calendar_day(who, enrolled[who] - 1)
    keep = discharge <= last  # the whole stay falls inside the same enrolled stretch
    span_end = np.where(day <= members.e1[who], members.e1[who], members.e2[who])
    keep &= discharge <= span_end
    who, day, los, discharge = who[keep], day[keep], los[keep], discharge[keep]
    batches.append(_inpatient(who, day, discharge, principal[who], member_dx[who], drg[who], los, vocab, rng))

    # Lymphoma "rule-out": one office claim, lymphoma code then lymphadenopathy; never cancer.
    adults = np.flatnonzero((age > 30) & (rng.random(n) < RULE_OUT_SHARE))
    off = (rng.random(len(adults)) * enrolled[adults]).astype(np.int64)
    rday = members.calendar_day(adults, off)
    rdx = np.full((len(adults), DX_SLOTS), -1, dtype=np.int32)
    rdx[:, 0] = vocab.ids(RULE_OUT_CODES)[rng.integers(0, len(RULE_OUT_CODES), len(adults))]
    rdx[:, 1] = vocab.id(codebook.background_codes("lymph_node")[0])
    batches.append(_single_line(adults, rday, PROFESSIONAL, rdx, vocab.id("11"), np.full(len(adults), vocab.id("99214")), -1, -1, rng.uniform(90, 160, len(adults))))

    return concat_medical(batches), _fills(members, conditions, names, codebook, vocab, amoxicillin, rng)


def _events(members: Members, expected: np.ndarray, enrolled: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts per member, each event on a uniform day of enrolled time."""
    counts = rng.poisson(expected)
    who = np.repeat(np.arange(members.n, dtype=np.int32), counts)
    offset = (rng.random(len(who)) * enrolled[who]).astype(np.int64)
    return who, members.calendar_day(who, offset)


def _single_line(who, day, claim_type, dx, pos, hcpcs, revenue, bill_type, paid) -> MedicalBatch:
    k = len(who)
    fill = lambda v: np.full(k, v, dtype=np.int32) if np.isscalar(v) else np.asarray(v, dtype=np.int32)  # noqa: E731
    return MedicalBatch(
        person=who.astype(np.int32), claim_type=np.full(k, claim_type, dtype=np.int8), start=day, end=day,
        admitted=np.zeros(k, dtype=bool), bill_type=fill(bill_type), drg=fill(-1), dx=np.asarray(dx, dtype=np.int32), pcs=fill(-1),
        line_claim=np.arange(k, dtype=np.int32), line_number=np.ones(k, dtype=np.int32), line_start=day, line_end=day,
        pos=fill(pos), hcpcs=fill(hcpcs), revenue=fill(revenue), units=np.ones(k), paid=np.round(paid, 2),
    )


def _inpatient(who, admit, discharge, principal, member_dx, drg, los, vocab: Vocabulary, rng) -> MedicalBatch:
    k = len(who)
    dx = np.column_stack([principal, np.where(member_dx[:, :DX_SLOTS - 1] == principal[:, None], -1, member_dx[:, :DX_SLOTS - 1])]).astype(np.int32)
    claims = np.repeat(np.arange(k, dtype=np.int32), 2)
    return MedicalBatch(
        person=who.astype(np.int32), claim_type=np.full(k, INSTITUTIONAL, dtype=np.int8), start=admit, end=discharge.astype(np.int32),
        admitted=np.ones(k, dtype=bool), bill_type=np.full(k, vocab.id("0111"), dtype=np.int32), drg=drg.astype(np.int32), dx=dx,
        pcs=np.full(k, -1, dtype=np.int32), line_claim=claims, line_number=np.tile(np.array([1, 2], dtype=np.int32), k),
        line_start=np.repeat(admit, 2), line_end=np.repeat(discharge, 2).astype(np.int32), pos=np.full(2 * k, -1, dtype=np.int32),
        hcpcs=np.full(2 * k, -1, dtype=np.int32), revenue=np.tile(vocab.ids(["0120", "0250"]), k),
        units=np.column_stack([los, np.ones(k)]).ravel().astype(float),
        paid=np.round(np.column_stack([los * rng.uniform(1800, 3200, k), rng.uniform(300, 2500, k)]).ravel(), 2),
    )


def _fills(members: Members, conditions, names, codebook: CodeBook, vocab: Vocabulary, acute, rng) -> PharmacyBatch:
    """Maintenance fills (30- or 90-day supplies with adherence gaps) plus acute antibiotic fills."""
    enrolled = members.enrolled_days()
    who_parts, day_parts, ndc_parts, supply_parts = [], [], [], []
    ninety = rng.random(members.n) < 0.6
    for j, name in enumerate(names):
        drugs = CONDITION_DRUGS.get(name)
        if not drugs:
            continue
        holders = np.flatnonzero(conditions[:, j] & (rng.random(members.n) < 0.8))
        drug = vocab.ids([codebook.ndc(drugs[i % len(drugs)], i // len(drugs)) for i in range(2 * len(drugs))])
        choice = drug[rng.integers(0, len(drug), len(holders))]
        supply = np.where(ninety[holders], 90, 30)
        first = (rng.random(len(holders)) * np.minimum(supply, enrolled[holders])).astype(np.int64)
        count = np.maximum((enrolled[holders] - first) // (supply * 1.08), 0).astype(np.int64)
        who = np.repeat(holders, count)
        k = np.arange(len(who)) - np.repeat(np.cumsum(count) - count, count)
        step = np.repeat(supply * 1.08, count)
        offset = np.repeat(first, count) + (k * step).astype(np.int64) + rng.integers(0, 6, len(who))
        offset = np.minimum(offset, enrolled[who] - 1)
        keep = rng.random(len(who)) > 0.08  # missed refills
        who_parts.append(who[keep])
        day_parts.append(members.calendar_day(who[keep], offset[keep]))
        ndc_parts.append(np.repeat(choice, count)[keep])
        supply_parts.append(np.repeat(supply, count)[keep])
    a_who, a_day = acute
    who_parts.append(a_who)
    day_parts.append(a_day)
    ndc_parts.append(np.full(len(a_who), vocab.id(codebook.ndc("amoxicillin")), dtype=np.int32))
    supply_parts.append(np.full(len(a_who), 10))
    who = np.concatenate(who_parts).astype(np.int32)
    supply = np.concatenate(supply_parts).astype(np.int32)
    return PharmacyBatch(
        person=who, date=np.concatenate(day_parts).astype(np.int32), ndc=np.concatenate(ndc_parts).astype(np.int32),
        days_supply=supply, quantity=supply.copy(), paid=np.round(rng.uniform(0.1, 0.6, len(who)) * supply, 2),
    )
