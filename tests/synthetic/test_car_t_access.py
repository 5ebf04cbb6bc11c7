"""Label-in-force eligibility, code validity by date, and referral behaviour of the CAR T access model."""

from synthetic import car_t_access as cart


def history(disease="LBCL", age=60.0, prior=1, early=False, ineligible=False, classes=(), len_refractory=False):
    return cart.History(disease, age, prior, early, ineligible, frozenset(classes), len_refractory)


def products(rows):
    return {r.product for r in rows}


def test_second_line_lbcl_label_needs_early_failure_and_its_approval_date():
    """After one line, axi-cel is label-eligible only for early failure and only from its 2022-04-01 2L approval."""
    day = cart.day_of("2023-01-10")
    assert "axicabtagene ciloleucel" in products(cart.eligible_labels(history(early=True), day))
    assert "axicabtagene ciloleucel" not in products(cart.eligible_labels(history(early=False), day))
    assert cart.eligible_labels(history(early=True), cart.day_of("2021-06-01")) == []


def test_pilot_label_covers_late_relapse_when_transplant_ineligible():
    """Liso-cel's PILOT indication admits a late relapse after one line if the patient cannot have a transplant."""
    rows = cart.eligible_labels(history(age=75, early=False, ineligible=True), cart.day_of("2023-01-10"))
    assert products(rows) == {"lisocabtagene maraleucel"}


def test_third_line_lbcl_labels_need_two_prior_lines_and_adulthood():
    """After two lines every LBCL product is in force; a 17-year-old is not label-eligible."""
    day = cart.day_of("2023-01-10")
    assert {"axicabtagene ciloleucel", "tisagenlecleucel", "lisocabtagene maraleucel"} <= products(cart.eligible_labels(history(prior=2), day))
    assert cart.eligible_labels(history(prior=2, age=17), day) == []


def test_superseded_myeloma_label_applies_only_before_the_label_change():
    """Ide-cel after 2 triple-class-exposed lines is eligible from the 2024 label on, not under the superseded >=4-line label."""
    tce = ("proteasome_inhibitor", "imid", "anti_cd38")
    h = history("MM", prior=2, classes=tce)
    assert "idecabtagene vicleucel" not in products(cart.eligible_labels(h, cart.day_of("2023-06-01")))
    assert "idecabtagene vicleucel" in products(cart.eligible_labels(h, cart.day_of("2024-06-01")))
    h4 = history("MM", prior=4, classes=tce)
    assert "idecabtagene vicleucel" in products(cart.eligible_labels(h4, cart.day_of("2023-06-01")))


def test_cilta_cel_2024_label_needs_lenalidomide_refractory_disease():
    """Cilta-cel after one line requires PI + IMiD exposure and lenalidomide-refractory disease."""
    day = cart.day_of("2024-09-01")
    exposed = ("proteasome_inhibitor", "imid")
    assert "ciltacabtagene autoleucel" not in products(cart.eligible_labels(history("MM", prior=1, classes=exposed), day))
    assert "ciltacabtagene autoleucel" in products(cart.eligible_labels(history("MM", prior=1, classes=exposed, len_refractory=True), day))


def test_cll_label_needs_btki_and_bcl2i_exposure():
    """Liso-cel in CLL needs prior BTKi and BCL-2i after two lines."""
    day = cart.day_of("2024-09-01")
    assert cart.eligible_labels(history("CLL_SLL", prior=2, classes=("btk_inhibitor",)), day) == []
    assert cart.eligible_labels(history("CLL_SLL", prior=2, classes=("btk_inhibitor", "bcl2_inhibitor")), day)


def test_procedure_and_pcs_codes_follow_the_date_of_service():
    """Category III CAR T codes until 2024-12-31, 38225-38228 from 2025; product PCS codes from FY2022."""
    assert cart.car_t_procedure_codes(cart.day_of("2024-12-31"))["infusion"] == "0540T"
    assert cart.car_t_procedure_codes(cart.day_of("2025-01-01"))["infusion"] == "38228"
    assert cart.infusion_pcs("axicabtagene ciloleucel", cart.day_of("2021-09-30")) == "XW033C3"
    assert cart.infusion_pcs("axicabtagene ciloleucel", cart.day_of("2021-10-01")) == "XW033H7"
    assert cart.infusion_pcs("obecabtagene autoleucel", cart.day_of("2025-03-01")) is None


def test_referral_falls_with_distance_age_frailty_and_medicaid():
    """Referral probability decreases with distance, age and frailty, is lower under Medicaid, and is zero from 85."""
    base = cart.referral_probability(60, 0.0, 10, 0)
    assert cart.referral_probability(60, 0.0, 200, 0) < base
    assert cart.referral_probability(75, 0.0, 10, 0) < base
    assert cart.referral_probability(60, 1.5, 10, 0) < base
    assert cart.referral_probability(60, 0.0, 10, 2) < base
    assert cart.referral_probability(86, 0.0, 10, 0) == 0.0
