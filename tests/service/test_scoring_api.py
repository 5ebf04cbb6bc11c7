"""Scoring endpoints with a real model artifact: results, versions, edge cases, atomic model swap."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timezone

from fastapi.testclient import TestClient

from service.app import create_app

from .conftest import ADMIN_KEY, make_loader
from .factories import R_CHOP, make_member, relapsed_dlbcl_member
from .test_cds_hooks import relapsed_dlbcl_prefetch


def test_relapsed_dlbcl_member_is_eligible_now_with_reasons(scoring_client, api_headers):
    """Early relapse after R-CHOP: eligible now for axi-cel and liso-cel, two lines, versions echoed."""
    response = scoring_client.post("/v1/score", json=relapsed_dlbcl_member(), headers=api_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "eligible_now" and body["in_cohort"] is True
    assert {"axicabtagene ciloleucel", "lisocabtagene maraleucel"} <= set(body["eligible_products"])
    assert [line["number"] for line in body["lines_of_therapy"]] == [1, 2]
    assert body["as_of"] == "2024-11-01"
    assert (body["model_name"], body["model_version"]) == ("cartscout-candidate", "1")
    assert body["rules_version"]
    eligible = [e for e in body["eligibility"] if e["eligible"]]
    assert all(e["criteria_met"] for e in eligible)


def test_scored_member_gets_score_and_shap_reasons(scoring_client, api_headers):
    """A member on first-line therapy is scored: calibrated score in [0, 1] and up to five signed reasons."""
    member = make_member("first-line", lines=((date(2024, 6, 3), R_CHOP),), as_of=date(2024, 10, 1))
    body = scoring_client.post("/v1/score", json=member, headers=api_headers).json()
    assert body["status"] in ("likely_soon", "watch", "unlikely")
    assert 0.0 <= body["score"] <= 1.0
    assert 1 <= len(body["reasons"]) <= 5
    for reason in body["reasons"]:
        assert reason["label"] and reason["direction"] in ("raises", "lowers")
        assert (reason["contribution"] > 0) == (reason["direction"] == "raises")


def test_empty_history_is_a_result_not_an_error(scoring_client, api_headers):
    """A member with demographics only is 'not_in_cohort', as of today."""
    body = scoring_client.post("/v1/score", json={"person_id": "empty", "demographics": {"birth_date": "1970-01-01"}}, headers=api_headers).json()
    assert body["status"] == "not_in_cohort" and body["score"] is None
    assert body["as_of"] in {datetime.now(timezone.utc).date().isoformat(), date.today().isoformat()}  # today (UTC)


def test_events_after_as_of_are_ignored_and_counted(scoring_client, api_headers):
    """Claims dated after as_of do not change the result; they are counted in events_after_as_of."""
    member = relapsed_dlbcl_member()
    baseline = scoring_client.post("/v1/score", json=member, headers=api_headers).json()
    member["medical_claims"].append({**member["medical_claims"][-1], "claim_id": "future", "claim_start_date": "2031-01-01", "claim_end_date": "2031-01-01"})
    later = scoring_client.post("/v1/score", json=member, headers=api_headers).json()
    assert later["events_after_as_of"] > baseline["events_after_as_of"]
    for key in ("status", "score", "eligible_products", "lines_of_therapy"):
        assert later[key] == baseline[key]


def test_batch_returns_one_result_per_member_in_order(scoring_client, api_headers):
    """The batch endpoint gives the same per-member result as the single endpoint, in request order."""
    members = [relapsed_dlbcl_member("a"), {"person_id": "b", "demographics": {"birth_date": "1980-05-05"}, "as_of": "2024-11-01"}]
    body = scoring_client.post("/v1/score/batch", json={"members": members}, headers=api_headers).json()
    assert [r["person_id"] for r in body["results"]] == ["a", "b"]
    single = scoring_client.post("/v1/score", json=members[0], headers=api_headers).json()
    assert body["results"][0]["eligible_products"] == single["eligible_products"]
    assert body["model_version"] == "1"


def test_duplicate_person_ids_in_a_batch_are_refused(scoring_client, api_headers):
    """Two members with one person_id are a 422 naming the second."""
    members = [relapsed_dlbcl_member("same"), relapsed_dlbcl_member("same")]
    response = scoring_client.post("/v1/score/batch", json={"members": members}, headers=api_headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "members[1].person_id"


def test_fhir_bundle_scores_like_the_claims(scoring_client, api_headers):
    """The same history as a FHIR Bundle (application/fhir+json) is eligible now and reports mapping counts."""
    prefetch = relapsed_dlbcl_prefetch("pat-9")
    entries = [{"resource": prefetch["patient"]}] + prefetch["conditions"]["entry"] + prefetch["medicationAdministrations"]["entry"]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    import json

    response = scoring_client.post("/v1/fhir/score?as_of=2024-11-01", content=json.dumps(bundle), headers={**api_headers, "content-type": "application/fhir+json"})
    assert response.status_code == 200
    body = response.json()
    assert body["person_id"] == "pat-9" and body["status"] == "eligible_now"
    assert body["mapped_resources"]["MedicationAdministration"] == len(prefetch["medicationAdministrations"]["entry"])
    assert body["unmapped_codes"] == {}


def test_readyz_reports_the_loaded_version(scoring_client):
    """/readyz names the model, version and rules version, and whether a local copy is serving."""
    body = scoring_client.get("/readyz").json()
    assert body["status"] == "ready" and body["model_version"] == "1" and body["from_local_copy"] is False


def test_admin_reload_swaps_versions_without_failing_requests(settings, model_dir, api_headers):
    """Reloading while requests run: every request succeeds, each answered wholly by version 1 or 2."""
    app = create_app(settings, loader=make_loader(model_dir, versions=["1", "2"]))
    results: list[tuple[int, str]] = []
    with TestClient(app) as client:
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                r = client.post("/v1/score", json=relapsed_dlbcl_member(), headers=api_headers)
                results.append((r.status_code, r.json().get("model_version")))

        workers = [threading.Thread(target=hammer) for _ in range(2)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while not results and time.monotonic() < deadline:
            time.sleep(0.05)
        reload = client.post("/admin/model/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        after = client.post("/v1/score", json=relapsed_dlbcl_member(), headers=api_headers).json()["model_version"]
        stop.set()
        for w in workers:
            w.join()
        assert reload.json() == {"swapped": True, "model_name": "cartscout-candidate", "model_version": "2"}
        assert after == "2" and client.get("/readyz").json()["model_version"] == "2"
    assert results and all(status == 200 for status, _ in results)
    assert {version for _, version in results} <= {"1", "2"} and results[0][1] == "1"


def test_alias_poller_swaps_to_a_new_version(settings, model_dir):
    """With polling on, a version change behind the alias is picked up without a restart."""
    polling = settings.model_copy(update={"model_poll_seconds": 0.2})
    with TestClient(create_app(polling, loader=make_loader(model_dir, versions=["1", "2"]))) as client:
        deadline = time.monotonic() + 20
        version = client.get("/readyz").json()["model_version"]
        while version != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
            version = client.get("/readyz").json()["model_version"]
    assert version == "2"


def test_a_poll_loads_only_when_the_registry_names_another_version(model_dir):
    """Asking the registry is cheap and loading is not: while the alias names the serving version
    nothing is loaded; a new version is loaded and swapped in; when the registry cannot say, or the
    serving model came from the local copy, the full load decides."""
    from service.model_slot import ModelSlot

    loads: list[str] = []
    load = make_loader(model_dir, versions=["1", "2", "2"])
    named = {"version": "1"}

    def counting_loader(uri, cache_dir):
        model = load(uri, cache_dir)
        loads.append(str(model.version))
        return model

    def resolver(uri):
        if named["version"] == "unreachable":
            raise ConnectionError("registry down")
        return named["version"]

    slot = ModelSlot(counting_loader, "models:/cartscout-candidate@champion", None, resolver=resolver)
    assert slot.reload() and loads == ["1"]
    assert not slot.reload() and not slot.reload() and loads == ["1"]
    named["version"] = "2"
    assert slot.reload() and loads == ["1", "2"] and slot.current.version == "2"
    named["version"] = "unreachable"
    assert not slot.reload() and loads == ["1", "2", "2"]  # loaded to find out; same version, no swap
    named["version"] = "2"
    slot.current.from_local_copy = True
    slot.reload()
    assert loads == ["1", "2", "2", "2"]  # a local copy is replaced by the registry's as soon as it answers


def test_failed_reload_keeps_the_current_model(settings, model_dir, api_headers):
    """A registry failure during reload leaves the loaded version serving."""
    calls = {"n": 0}
    load = make_loader(model_dir)

    def flaky(uri, cache_dir):
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("registry down")
        return load(uri, cache_dir)

    with TestClient(create_app(settings, loader=flaky)) as client:
        reload = client.post("/admin/model/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert reload.status_code == 200 and reload.json()["swapped"] is False and reload.json()["model_version"] == "1"
        assert client.post("/v1/score", json=relapsed_dlbcl_member(), headers=api_headers).status_code == 200


def test_score_members_reads_oral_drugs_with_the_code_lists_it_is_given(model_dir):
    """A delivery's own NDC crosswalk, passed as ``codes``, decides which fills are anticancer drugs."""
    import pandas as pd

    from features.events import conform_events, conform_persons
    from models.artifact import artifact_paths, load_model_files
    from models.scoring import score_members

    model = load_model_files(artifact_paths(model_dir), version="1", source="test artifact")
    ndc = "99999000111"  # a test-only labeler; only the delivery's crosswalk names it
    fills = [("drug_fill", f"2024-{m:02d}-01", "ndc", ndc) for m in range(1, 13)]
    dx = [("diagnosis", "2023-12-01", "icd10cm", "C9110"), ("diagnosis", "2024-01-05", "icd10cm", "C9110")]
    rows = [dict(person_id="p1", kind=k, date=d, code_system=s, code=c, setting="office" if k == "diagnosis" else "pharmacy",
                 days_supply=30 if k == "drug_fill" else None) for k, d, s, c in dx + fills]
    events = conform_events(pd.DataFrame(rows))
    persons = conform_persons(pd.DataFrame({"person_id": ["p1"], "birth_date": pd.to_datetime(["1950-01-01"]), "sex": ["male"]}))
    as_of = pd.Series(pd.to_datetime(["2025-01-01"]), index=["p1"])
    without = score_members(model, events, persons, as_of)[0]
    crosswalk = pd.DataFrame({"ndc_code": [ndc], "generic": ["ibrutinib"]})
    with_xw = score_members(model, events, persons, as_of, codes=model.codes.with_ndc_crosswalk(crosswalk))[0]
    assert without["lines_of_therapy"] == []
    assert [line["drugs"] for line in with_xw["lines_of_therapy"]] == [["ibrutinib"]]


def test_request_objects_are_freed_after_the_answer_not_before():
    """What a scoring route built stays alive while its response is being sent and is freed with it."""
    import gc
    import weakref

    from service.routes.score import json_response
    from service.schemas import ScoreResponse

    class Frames:
        """Stands in for a request's member frames."""

    result = ScoreResponse.model_construct(person_id="m1")
    frames = Frames()
    alive = weakref.ref(frames)
    response = json_response(result, keep=(frames,))
    del frames
    gc.collect()
    assert alive() is not None
    del response
    gc.collect()
    assert alive() is None



def test_collector_is_settled_while_serving_and_restored_at_shutdown(settings, model_dir):
    """Once the model is loaded, start-up objects are frozen out of the collector's view and the
    young-generation threshold raised; shutting down puts both back."""
    import gc

    from service.garbage_collector import YOUNG_GENERATION_THRESHOLD

    before = gc.get_threshold()
    with TestClient(create_app(settings, loader=make_loader(model_dir))) as client:
        assert client.get("/readyz").status_code == 200
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
