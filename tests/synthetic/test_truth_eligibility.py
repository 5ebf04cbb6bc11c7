"""Truth eligibility is a state evaluated at progressions, label in-force starts and the 18th birthday, in two views."""

import numpy as np

from synthetic import car_t_access as cart
from synthetic.claims import ClaimSink
from synthetic.coding import Vocabulary, load_codebook
from synthetic.courses import CourseSimulator, Patient, PatientTruth

R_CHOP = ["cyclophosphamide", "doxorubicin", "prednisone", "rituximab", "vincristine"]


def simulator() -> CourseSimulator:
    return CourseSimulator(load_codebook(), ClaimSink(Vocabulary()), np.random.default_rng(0))


def patient(disease="LBCL", age_on="2020-01-01", age=55.0, frailty=0.0, end="2025-12-31") -> Patient:
    day = cart.day_of(age_on)
    return Patient(0, "P0", disease, day, int(day - age * 365.25), frailty, 0.0, 0, 5.0, cart.day_of(end))


def truth_with(lines, progressions, early=False, refractory=False, death=None, lenalidomide_last=None) -> PatientTruth:
    """Lines given as (start, end, drugs); lenalidomide is taken to the line's end unless ``lenalidomide_last`` (line -> date) says otherwise."""
    truth = PatientTruth(lines=[(i + 1, cart.day_of(s), cart.day_of(e), sorted(d), "", False, False) for i, (s, e, d) in enumerate(lines)])
    truth.lenalidomide_last = {i + 1: cart.day_of(e) for i, (_, e, d) in enumerate(lines) if "lenalidomide" in d}
    truth.lenalidomide_last.update({k: cart.day_of(v) for k, v in (lenalidomide_last or {}).items()})
    truth.progressions = [cart.day_of(d) for d in progressions]
    truth.early_failure, truth.primary_refractory = early, refractory
    truth.death = cart.day_of(death) if death else None
    return truth


def first_days(view: dict) -> dict:
    return {product: day for product, (_, day) in view.items()}


def test_patient_relapsed_before_a_label_is_eligible_on_its_in_force_day():
    """An early LBCL relapse in 2021, alive and untreated in April 2022, is axi-cel eligible on 2022-04-01 (2L approval)."""
    sim, p = simulator(), patient()
    truth = truth_with([("2021-01-10", "2021-05-01", R_CHOP)], ["2021-09-01"], early=True)
    sim.settle_eligibility(p, truth)
    assert first_days(truth.eligibility)["axicabtagene ciloleucel"] == cart.day_of("2022-04-01")


def test_no_label_day_counts_after_death():
    """A patient who dies before a label comes into force never becomes eligible under it."""
    sim, p = simulator(), patient()
    truth = truth_with([("2021-01-10", "2021-05-01", R_CHOP)], ["2021-09-01"], early=True, death="2022-02-01")
    sim.settle_eligibility(p, truth)
    assert truth.eligibility == {} and truth.claims_eligibility == {}


def test_claims_view_takes_transplant_ineligibility_as_met():
    """A late relapse in a fit 55-year-old meets PILOT only in the claims view, from the 2022-06-24 approval."""
    sim, p = simulator(), patient()
    truth = truth_with([("2021-01-10", "2021-05-01", R_CHOP)], ["2022-12-01"], early=False)
    sim.settle_eligibility(p, truth)
    assert "lisocabtagene maraleucel" not in truth.eligibility
    assert first_days(truth.claims_eligibility)["lisocabtagene maraleucel"] == cart.day_of("2022-12-01")


def test_eighteenth_birthday_makes_a_relapsed_teenager_eligible():
    """A 17-year-old with LBCL after two failed lines becomes eligible on the 18th birthday, not before."""
    sim = simulator()
    p = patient(age_on="2022-01-01", age=17.5)
    truth = truth_with([("2021-01-10", "2021-05-01", R_CHOP), ("2021-08-01", "2021-10-01", ["gemcitabine", "oxaliplatin", "rituximab"])],
                       ["2021-07-01", "2021-12-01"])
    sim.settle_eligibility(p, truth)
    adult = int(np.ceil(p.birth + 18 * 365.25))
    assert first_days(truth.eligibility)["axicabtagene ciloleucel"] == adult


def test_myeloma_classes_come_from_failed_lines_only():
    """Cilta-cel (2024 label) needs a PI in the prior lines: DRd then an ongoing KRd is not enough until KRd fails."""
    sim, p = simulator(), patient("MM", age=65.0)
    drd = ["daratumumab", "dexamethasone", "lenalidomide"]
    krd = ["carfilzomib", "dexamethasone", "lenalidomide"]
    truth = truth_with([("2022-01-10", "2023-08-01", drd), ("2023-08-20", "2025-03-01", krd)], ["2023-08-01", "2025-03-01"])
    sim.settle_eligibility(p, truth)
    assert first_days(truth.eligibility)["ciltacabtagene autoleucel"] == cart.day_of("2025-03-01")


def test_lenalidomide_refractory_needs_lenalidomide_in_the_failed_line():
    """Lenalidomide given in an earlier line does not make a later, lenalidomide-free line's failure lenalidomide-refractory."""
    sim, p = simulator(), patient("MM", age=65.0)
    vrd = ["bortezomib", "dexamethasone", "lenalidomide"]
    history = sim.history_at(p, truth_with([("2022-01-10", "2022-06-01", vrd), ("2024-06-01", "2025-01-01", ["carfilzomib", "dexamethasone"])],
                                           ["2024-05-20", "2025-01-01"]), cart.day_of("2025-02-01"))
    assert not history.len_refractory
    history = sim.history_at(p, truth_with([("2022-01-10", "2024-05-10", vrd)], ["2024-05-20"]), cart.day_of("2024-06-01"))
    assert history.len_refractory


def test_lenalidomide_refractory_counts_from_the_last_lenalidomide_dose_not_the_line_end():
    """VRd induction, ASCT ending 2022-10-01 and relapse 2022-11-15: lenalidomide stopped in June, so not refractory (IMWG)."""
    sim, p = simulator(), patient("MM", age=60.0)
    vrd_asct = ["bortezomib", "dexamethasone", "lenalidomide", "melphalan"]
    truth = truth_with([("2022-01-10", "2022-10-01", vrd_asct)], ["2022-11-15"], lenalidomide_last={1: "2022-06-01"})
    assert not sim.history_at(p, truth, cart.day_of("2022-12-01")).len_refractory
    truth = truth_with([("2022-01-10", "2022-10-01", vrd_asct)], ["2022-11-15"], lenalidomide_last={1: "2022-09-20"})
    assert sim.history_at(p, truth, cart.day_of("2022-12-01")).len_refractory


def test_administer_reports_each_drugs_last_covered_day():
    """An oral fill covers its days supply (cut at the stop day), an IV drug its administration day."""
    from synthetic.regimens import REGIMENS

    sim, p = simulator(), patient("MM", age=60.0)
    start = cart.day_of("2022-01-10")
    last, given, by_drug = sim.administer(p, REGIMENS["Lenalidomide maintenance"], start, start + 100)
    assert given == {"lenalidomide"} and by_drug["lenalidomide"] == start + 100 and last == start + 100
    _, _, by_drug = sim.administer(p, REGIMENS["VRd"], start, None)
    assert by_drug["bortezomib"] < by_drug["lenalidomide"] + 14


def test_label_text_only_tecartus_mcl_and_kymriah_b_all():
    """Tecartus in MCL needs no BTKi (the label states none); Kymriah needs refractory disease or a second relapse; age 25 still qualifies."""
    day = cart.day_of("2023-01-10")
    mcl = cart.History("MCL", 60.0, 1, False, False, frozenset({"anti_cd20"}), False)
    assert "brexucabtagene autoleucel" in {r.product for r in cart.eligible_labels(mcl, day)}
    first_relapse = cart.History("B_ALL", 25.9, 1, True, False, frozenset(), False, primary_refractory=False)
    assert "tisagenlecleucel" not in {r.product for r in cart.eligible_labels(first_relapse, day)}
    refractory = cart.History("B_ALL", 25.9, 1, True, False, frozenset(), False, primary_refractory=True)
    assert "tisagenlecleucel" in {r.product for r in cart.eligible_labels(refractory, day)}


def test_failed_regimen_is_not_repeated_while_another_option_exists():
    """After five third-line LBCL regimens failed, the only unused one is chosen; with all used, one is still chosen."""
    sim, p = simulator(), patient(age=60.0)
    day = cart.day_of("2024-01-10")
    tried = {"Glofitamab", "Epcoritamab", "Loncastuximab tesirine", "Pola-BR", "R-GemOx"}
    for _ in range(20):
        assert sim.choose(p, 3, day, set(), frozenset(tried))[0] == "Tafasitamab + lenalidomide"
    assert sim.choose(p, 3, day, set(), frozenset(tried | {"Tafasitamab + lenalidomide"}))[0] in tried | {"Tafasitamab + lenalidomide"}
