"""Per-patient courses render the claims a payer would see for chemotherapy and the CAR T pathway."""

import numpy as np
import pytest

from synthetic import car_t_access as cart
from synthetic.claims import ClaimSink
from synthetic.coding import Vocabulary, load_codebook
from synthetic.courses import CourseSimulator, Patient


def make_patient(disease="LBCL", dx="2021-03-01", age=55.0, risk=0.0, frailty=0.0, miles=5.0, end="2025-12-31") -> Patient:
    dx_day = cart.day_of(dx)
    return Patient(0, "P0", disease, dx_day, int(dx_day - age * 365.25), frailty, risk, 0, miles, cart.day_of(end), 3, "")


def run(patient: Patient, seed: int):
    vocab = Vocabulary()
    sink = ClaimSink(vocab)
    truth = CourseSimulator(load_codebook(), sink, np.random.default_rng(seed)).simulate(patient)
    medical = sink.medical()
    values = np.array(vocab.values + [""], dtype=object)
    return truth, medical, values, sink.pharmacy()


def test_first_line_r_chop_is_one_claim_per_administration_day():
    """Each 1L infusion day is one professional claim coded Z51.11 plus the lymphoma, with one line per IV drug."""
    for seed in range(40):
        truth, med, values, rx = run(make_patient(), seed)
        if truth.lines[0][4] == "R-CHOP":
            break
    start, end = truth.lines[0][1], truth.lines[0][2]
    chemo = [i for i in range(med.n_claims) if values[med.dx[i, 0]] == "Z5111" and start <= med.start[i] <= end]
    assert len(chemo) >= 3
    hcpcs = {values[med.hcpcs[j]] for j in np.flatnonzero(np.isin(med.line_claim, chemo))}
    assert {"J9070", "J9000", "J9370"} <= hcpcs
    assert len({int(med.start[i]) for i in chemo}) == len(chemo)
    assert all(values[med.dx[i, 1]].startswith("C833") for i in chemo)
    assert rx.n >= 3  # prednisone fills


def test_same_seed_same_course():
    """The simulator is deterministic for a seed."""
    a = run(make_patient(risk=1.5), 3)[0]
    b = run(make_patient(risk=1.5), 3)[0]
    assert a.lines == b.lines and a.death == b.death


def test_car_t_pathway_claims(monkeypatch):
    """A referred LBCL patient gets apheresis, Flu/Cy on days -5..-3, the Q-code with DRG 018 and the date-valid CAR T CPT codes."""
    monkeypatch.setattr(cart, "REFERRAL_INTERCEPT", 20.0)
    monkeypatch.setattr(cart, "LOST_TO_PROGRESSION", 0.0)
    monkeypatch.setattr(cart, "INPATIENT_SHARE", 1.0)
    for seed in range(300):
        truth, med, values, _ = run(make_patient(risk=2.5, dx="2022-06-01"), seed)
        if truth.car_t is not None:
            break
    else:
        pytest.fail("no simulated patient reached CAR T")
    infusion = truth.car_t
    codes = cart.car_t_procedure_codes(infusion)
    q = [j for j in range(med.n_lines) if values[med.hcpcs[j]] in ("Q2041", "Q2042", "Q2054")]
    assert q
    claim = med.line_claim[q[0]]
    assert values[med.drg[claim]] == "018" and med.admitted[claim]
    assert values[med.pcs[claim]] == cart.infusion_pcs(truth.car_t_product, infusion)
    ld_days = sorted({int(med.line_start[j]) for j in range(med.n_lines) if values[med.hcpcs[j]] == "J9185" and infusion - 6 <= med.line_start[j] < infusion})
    assert ld_days == [infusion - 5, infusion - 4, infusion - 3]
    all_codes = {values[med.hcpcs[j]] for j in range(med.n_lines)}
    assert {codes["infusion"], codes["prep_in"]} <= all_codes
    assert truth.lines[-1][6] or any(line[6] for line in truth.lines)
    assert 40 <= infusion - truth.referral <= 600
