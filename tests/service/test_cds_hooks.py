"""CDS Hooks 2.0: discovery, prefetch (412), cards without null or empty members, feedback without PHI."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from service.cds import PREFETCH, SERVICE_ID, build_cards, card_summary, render
from service.schemas import CdsResponse, CdsSource, ScoreResponse

from .conftest import load_example

SERVICE = f"/cds-services/{SERVICE_ID}"
FEEDBACK = f"{SERVICE}/feedback"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"


def auth(sign, path):
    return {"Authorization": f"Bearer {sign(path)}"}


def searchset(*resources):
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources), "entry": [{"resource": r} for r in resources]}


def relapsed_dlbcl_prefetch(pid: str = "pat-77") -> dict:
    """R-CHOP (RxNorm and HCPCS codings) from January 2024, then R-ICE from September 2024."""
    patient = {"resourceType": "Patient", "id": pid, "birthDate": "1962-04-17", "gender": "female", "address": [{"postalCode": "02139"}]}
    conditions = [
        {"resourceType": "Condition", "id": f"dx{i}", "subject": {"reference": f"Patient/{pid}"}, "code": {"coding": [{"system": ICD10CM, "code": "C83.38"}]}, "onsetDateTime": day}
        for i, day in enumerate(["2023-12-01", "2023-12-15", "2024-03-01", "2024-08-20"])
    ]
    admins = []

    def give(system, code, day):
        admins.append(
            {
                "resourceType": "MedicationAdministration",
                "id": f"ma{len(admins)}",
                "status": "completed",
                "subject": {"reference": f"Patient/{pid}"},
                "medicationCodeableConcept": {"coding": [{"system": system, "code": code}]},
                "effectiveDateTime": day.isoformat(),
            }
        )

    for cycle in range(6):
        day = date(2024, 1, 10) + timedelta(days=21 * cycle)
        for system, code in ((RXNORM, "121191"), (RXNORM, "3002"), (HCPCS, "J9000"), (HCPCS, "J9370")):
            give(system, code, day)
    for cycle in range(2):
        day = date(2024, 9, 2) + timedelta(days=21 * cycle)
        for system, code in ((RXNORM, "121191"), (RXNORM, "5657"), (RXNORM, "40048"), (RXNORM, "4179")):
            give(system, code, day)
    return {
        "patient": patient,
        "conditions": searchset(*conditions),
        "procedures": searchset(),
        "medicationAdministrations": searchset(*admins),
        "medicationRequests": None,
    }


def hook_request(prefetch: dict | None, pid: str = "pat-77", **extra) -> dict:
    body = {"hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "hook": "patient-view", "context": {"userId": "Practitioner/example", "patientId": pid}}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def assert_no_null_or_empty(value, path="$"):
    """CDS Hooks: JSON elements SHALL NOT be null or empty (the top-level cards list excepted)."""
    if isinstance(value, dict):
        assert value, f"empty object at {path}"
        for k, v in value.items():
            if (path, k, v) != ("$", "cards", []):
                assert v is not None and v != "" and v != [] and v != {}, f"null/empty member {path}.{k}"
            assert_no_null_or_empty(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_no_null_or_empty(v, f"{path}[{i}]")


def test_discovery_lists_the_patient_view_service(client, sign):
    """Discovery names the patient-view service cartscout-candidate with the five prefetch templates."""
    body = client.get("/cds-services", headers=auth(sign, "/cds-services")).json()
    (service,) = body["services"]
    assert service["hook"] == "patient-view" and service["id"] == SERVICE_ID and service["description"]
    assert service["prefetch"] == PREFETCH
    assert {t.split("?")[0].split("/")[0] for t in service["prefetch"].values()} == {"Patient", "Condition", "Procedure", "MedicationAdministration", "MedicationRequest"}
    assert_no_null_or_empty(body)


def test_official_example_without_our_prefetch_gets_412(client, sign):
    """The spec's patient-view example (prefetch 'patientToGreet' only) lacks our templates: 412, naming them."""
    response = client.post(SERVICE, json=load_example("spec-patient-view-request-with-prefetch.json"), headers=auth(sign, SERVICE))
    assert response.status_code == 412
    missing = {e["field"] for e in response.json()["errors"]}
    assert missing == {f"prefetch.{k}" for k in PREFETCH}


def test_request_with_extension_and_no_prefetch_gets_412(client, sign):
    """The spec's extension example has no prefetch at all: 412 (we do not query the FHIR server)."""
    body = load_example("spec-request-with-extension.json")
    body["context"]["patientId"] = "1288992"
    assert client.post(SERVICE, json=body, headers=auth(sign, SERVICE)).status_code == 412


def test_operation_outcome_in_prefetch_gets_412(client, sign):
    """An OperationOutcome in place of prefetched data means the EHR could not fetch it: 412."""
    prefetch = relapsed_dlbcl_prefetch()
    prefetch["conditions"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
    response = client.post(SERVICE, json=hook_request(prefetch), headers=auth(sign, SERVICE))
    assert response.status_code == 412
    assert response.json()["errors"][0]["field"] == "prefetch.conditions"


def test_context_and_prefetch_patient_must_agree(client, sign):
    """A prefetched Patient that is not context.patientId is a 422 naming prefetch.patient.id."""
    response = client.post(SERVICE, json=hook_request(relapsed_dlbcl_prefetch("someone-else")), headers=auth(sign, SERVICE))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "prefetch.patient.id"


def test_other_hooks_are_refused(client, sign):
    """The service answers patient-view only."""
    response = client.post(SERVICE, json=hook_request(relapsed_dlbcl_prefetch(), hook="order-sign"), headers=auth(sign, SERVICE))
    assert response.status_code == 422


def test_eligible_patient_gets_one_warning_card(scoring_client, sign):
    """A relapsed-within-12-months DLBCL patient gets a warning card naming the products, model and link."""
    response = scoring_client.post(SERVICE, json=hook_request(relapsed_dlbcl_prefetch()), headers=auth(sign, SERVICE))
    assert response.status_code == 200
    body = response.json()
    assert_no_null_or_empty(body)
    (card,) = body["cards"]
    assert card["indicator"] == "warning"
    assert len(card["summary"]) < 140
    assert card["summary"].startswith("Likely CAR T candidate")
    assert "axicabtagene ciloleucel" in card["summary"] or "axicabtagene ciloleucel" in card["detail"]
    assert "version 1" in card["source"]["label"] or "v1" in card["source"]["label"]
    assert card["links"][0]["type"] == "absolute" and card["links"][0]["url"].startswith("http")
    assert "**Lines of therapy**" in card["detail"] and "**Label eligibility**" in card["detail"]
    assert card["uuid"]


def test_patient_outside_the_cohort_gets_no_cards(scoring_client, sign):
    """No target blood cancer: exactly {"cards": []}."""
    prefetch = relapsed_dlbcl_prefetch()
    prefetch.update(conditions=None, medicationAdministrations=searchset())
    response = scoring_client.post(SERVICE, json=hook_request(prefetch), headers=auth(sign, SERVICE))
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_render_strips_null_and_empty_members_but_keeps_empty_cards():
    """render() gives {"cards": []} for no guidance and drops null/empty members of cards."""
    assert render(CdsResponse(cards=[])) == {"cards": []}
    assert load_example("spec-response-no-cards.json") == {"cards": []}


def make_result(status: str, n_products: int = 2, **extra) -> ScoreResponse:
    products = ["axicabtagene ciloleucel", "lisocabtagene maraleucel", "tisagenlecleucel", "brexucabtagene autoleucel"][:n_products]
    return ScoreResponse.model_validate(
        {
            "person_id": "p",
            "as_of": "2024-11-01",
            "in_cohort": True,
            "disease": "LBCL",
            "status": status,
            "score": 0.71 if status != "eligible_now" else None,
            "eligibility": [{"product": p, "eligible": True, "indication": "2nd-line LBCL, relapse within 12 months of first-line chemoimmunotherapy"} for p in products],
            "lines_of_therapy": [
                {"number": 1, "start": "2024-01-10", "end": "2024-02-01", "drugs": ["rituximab"], "regimen": "R-CHOP"},
                {"number": 2, "start": "2024-09-02", "drugs": ["rituximab"], "regimen": "R-ICE"},
            ],
            "model_name": "cartscout-candidate",
            "model_version": "3",
            "rules_version": "2026.11.1",
            **extra,
        }
    )


@pytest.mark.parametrize("n_products", [1, 2, 4])
def test_summary_is_under_140_characters_and_says_why(n_products):
    """The summary fits the spec's 140-character limit while keeping the relapse history and products."""
    summary = card_summary(make_result("eligible_now", n_products))
    assert len(summary) < 140
    assert "relapsed 7 months after first-line R-CHOP" in summary
    assert "axicabtagene ciloleucel" in summary


def test_likely_soon_summary_mentions_the_score():
    """An info card's summary carries the disease, the history and the calibrated score."""
    summary = card_summary(make_result("likely_soon"))
    assert summary.startswith("Possible CAR T candidate soon (LBCL)") and "0.71" in summary and len(summary) < 140


@pytest.mark.parametrize("name", ["spec-feedback-accepted.json", "spec-feedback-overridden-no-reason.json", "spec-feedback-overridden-with-reason.json"])
def test_official_feedback_examples_are_recorded(client, sign, settings, name):
    """Each official feedback example is accepted and appended as one JSONL line."""
    response = client.post(FEEDBACK, json=load_example(name), headers=auth(sign, FEEDBACK))
    assert response.status_code == 200 and response.json() == {"recorded": 1}
    lines = settings.feedback_path.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["card"] == load_example(name)["feedback"][0]["card"]
    assert record["outcome"] in ("accepted", "overridden")


def test_feedback_keeps_no_free_text(client, sign, settings):
    """The clinician's override comment (free text, may name the patient) is not stored; that one was given is."""
    body = load_example("spec-feedback-overridden-with-reason.json")
    body["feedback"][0]["overrideReason"]["userComment"] = "Jane Roe declined, see note of 2024-05-01"
    assert client.post(FEEDBACK, json=body, headers=auth(sign, FEEDBACK)).status_code == 200
    text = settings.feedback_path.read_text()
    assert "Jane Roe" not in text and "2024-05-01" not in text
    record = json.loads(text)
    assert record["override_comment_given"] is True and record["override_reason"]["code"] == "d7ecf885"


def test_feedback_is_append_only(client, sign, settings):
    """Repeated feedback for the same card adds lines; earlier lines stay."""
    for _ in range(2):
        client.post(FEEDBACK, json=load_example("spec-feedback-accepted.json"), headers=auth(sign, FEEDBACK))
    assert len(settings.feedback_path.read_text().splitlines()) == 2


def test_malformed_feedback_is_422(client, sign):
    """An unknown outcome value is rejected naming feedback[0].outcome."""
    body = load_example("spec-feedback-accepted.json")
    body["feedback"][0]["outcome"] = "ignored"
    response = client.post(FEEDBACK, json=body, headers=auth(sign, FEEDBACK))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "feedback[0].outcome"


def test_likely_soon_gets_one_info_card():
    """likely_soon -> exactly one card, indicator info."""
    (card,) = build_cards(make_result("likely_soon"), info_url="https://cartscout.test/model-card")
    assert card.indicator == "info" and card.summary.startswith("Possible CAR T candidate soon")


@pytest.mark.parametrize("status", ["watch", "unlikely", "already_treated", "not_in_cohort"])
def test_other_statuses_get_no_cards(status):
    """watch, unlikely (and the rule statuses without guidance) -> exactly {"cards": []}."""
    assert render(CdsResponse(cards=build_cards(make_result(status), info_url="https://cartscout.test/model-card"))) == {"cards": []}


def test_rendered_cards_drop_empty_members():
    """A card with an empty detail, empty links and an empty source icon renders without those members."""
    (card,) = build_cards(make_result("likely_soon"), info_url="https://cartscout.test/model-card")
    emptied = card.model_copy(update={"detail": "", "links": [], "source": CdsSource(label=card.source.label, icon="", topic=card.source.topic)})
    rendered = render(CdsResponse(cards=[emptied]))["cards"][0]
    assert_no_null_or_empty(rendered)
    assert {"detail", "links"}.isdisjoint(rendered) and "icon" not in rendered["source"] and rendered["source"]["topic"]["code"] == "car-t-candidate"


def test_service_scores_as_of_today(scoring_client, sign):
    """CDS Hooks has no as_of: the card is as of today (UTC)."""
    before = datetime.now(timezone.utc).date()
    (card,) = scoring_client.post(SERVICE, json=hook_request(relapsed_dlbcl_prefetch()), headers=auth(sign, SERVICE)).json()["cards"]
    days = {before, datetime.now(timezone.utc).date()}
    assert any(f"(as of {day.isoformat()})" in card["detail"] for day in days)


ODD_PREFETCH = {
    "search null": (lambda p: p["conditions"]["entry"][0].update(search=None), 200, None),
    "search a string": (lambda p: p["conditions"]["entry"][0].update(search="match"), 200, None),
    "entry null": (lambda p: p["procedures"].update(entry=None), 200, None),
    "entry item null": (lambda p: p["conditions"]["entry"].append(None), 200, None),
    "contained null": (lambda p: p.update(medicationRequests=searchset({"resourceType": "MedicationRequest", "id": "mr", "status": "active", "intent": "order", "subject": {"reference": "Patient/pat-77"}, "medicationReference": {"reference": "#m"}, "contained": None, "authoredOn": "2024-01-01"})), 200, None),
    "entry a number": (lambda p: p["conditions"].update(entry=5), 422, "prefetch.conditions.entry"),
    "onset in year 1": (lambda p: p["conditions"]["entry"][0]["resource"].update(onsetDateTime="0001-01-01"), 422, "entry[1].resource.onsetDateTime"),
    "patient null": (lambda p: p.update(patient=None), 412, "prefetch.patient"),
}


@pytest.mark.parametrize("name", list(ODD_PREFETCH))
def test_odd_prefetch_is_a_result_or_a_clear_error(scoring_client, sign, name):
    """Schema-valid but odd prefetch gives the usual card, or a 412/422 naming the field; never a 500.
    A search that is not an object reads like no search; a null entry list is no data."""
    change, status, field = ODD_PREFETCH[name]
    prefetch = relapsed_dlbcl_prefetch()
    change(prefetch)
    response = scoring_client.post(SERVICE, json=hook_request(prefetch), headers=auth(sign, SERVICE))
    assert response.status_code == status
    body = response.json()
    if field is None:
        assert_no_null_or_empty(body)
        assert [c["indicator"] for c in body["cards"]] == ["warning"]
    else:
        assert [e["field"] for e in body["errors"]] == [field]


@pytest.mark.parametrize("context", [{}, {"patientId": None}, {"patientId": ""}])
def test_missing_patient_id_is_named(scoring_client, sign, context):
    """No usable context.patientId is a 422 naming it."""
    response = scoring_client.post(SERVICE, json=hook_request(relapsed_dlbcl_prefetch(), context=context), headers=auth(sign, SERVICE))
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "context.patientId"
