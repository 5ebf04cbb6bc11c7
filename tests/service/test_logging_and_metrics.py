"""One JSON log line per request with no PHI; Prometheus metrics by endpoint, status and model version."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.logging import REQUEST_LOGGER, SERVICE_LOGGER, MemberHasher, score_band
from service.metrics import SCORE_BUCKETS

from .factories import R_CHOP, make_member, relapsed_dlbcl_member
from .test_cds_hooks import hook_request, relapsed_dlbcl_prefetch

SERVICE = "/cds-services/cartscout-candidate"


@pytest.fixture
def log_lines(caplog):
    """Every JSON line the service's loggers write during the test, rendered as they would be."""
    from service.logging import JsonLineFormatter

    formatter = JsonLineFormatter()
    loggers = [logging.getLogger(REQUEST_LOGGER), logging.getLogger(SERVICE_LOGGER)]
    for logger in loggers:
        logger.addHandler(caplog.handler)
    yield lambda: [formatter.format(r) for r in caplog.records if r.name in (REQUEST_LOGGER, SERVICE_LOGGER)]
    for logger in loggers:
        logger.removeHandler(caplog.handler)


def test_request_log_lines_carry_no_phi(scoring_client, api_headers, sign, log_lines):
    """Across REST, FHIR and CDS calls the log holds no member id, name, birth date, ZIP or code."""
    member = relapsed_dlbcl_member("MEMBER-ID-31337")
    scoring_client.post("/v1/score", json=member, headers=api_headers)
    prefetch = relapsed_dlbcl_prefetch("PATIENT-ID-4242")
    prefetch["patient"]["name"] = [{"family": "Zzyzxson", "given": ["Quintavia"]}]
    scoring_client.post(SERVICE, json=hook_request(prefetch, pid="PATIENT-ID-4242"), headers={"Authorization": f"Bearer {sign(SERVICE)}"})
    bad = relapsed_dlbcl_member("MEMBER-ID-31337")
    bad["demographics"]["birth_date"] = "1962-02-30"
    scoring_client.post("/v1/score", json=bad, headers=api_headers)

    text = "\n".join(log_lines())
    forbidden = ["MEMBER-ID-31337", "PATIENT-ID-4242", "Zzyzxson", "Quintavia", "1962-04-17", "1962-02-30", "02139", "C83.38", "C8338", "J9312", "121191"]
    for secret in forbidden:
        assert secret not in text, secret
    requests = [json.loads(line) for line in text.splitlines() if '"event":"request"' in line]
    assert len(requests) == 3
    rest, cds, rejected = requests
    assert rest["endpoint"] == "/v1/score" and rest["status"] == 200 and rest["model_version"] == "1" and rest["latency_ms"] > 0
    assert rest["members"] == [MemberHasher(b"test-log-key")("MEMBER-ID-31337")]
    assert cds["request_id"] == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"  # the CDS hookInstance
    assert cds["card_ids"] and rejected["status"] == 422


def test_member_hash_is_keyed():
    """The same id hashes alike under one key and differently under another (not a plain digest)."""
    assert MemberHasher(b"k1")("m") == MemberHasher(b"k1")("m") != MemberHasher(b"k2")("m")


@pytest.mark.parametrize("score, band", [(0.0, "0.0-0.1"), (0.72, "0.7-0.8"), (1.0, "0.9-1.0"), (None, None)])
def test_score_band(score, band):
    """Scores are logged in tenths only."""
    assert score_band(score) == band


def test_metrics_count_requests_and_scores_by_model_version(scoring_client, api_headers):
    """/metrics exposes request counts and latency by endpoint and status, and model info with its version."""
    scoring_client.post("/v1/score", json=relapsed_dlbcl_member(), headers=api_headers)
    scoring_client.post("/v1/score", json={"bad": 1}, headers=api_headers)
    text = scoring_client.get("/metrics", headers=api_headers).text
    assert 'cartscout_requests_total{endpoint="/v1/score",method="POST",model_version="1",status="200"} 1.0' in text
    assert 'endpoint="/v1/score",method="POST",model_version="none",status="422"' in text
    assert 'cartscout_request_duration_seconds_bucket{endpoint="/v1/score"' in text
    assert 'cartscout_member_status_total{model_version="1",status="eligible_now"} 1.0' in text
    assert 'cartscout_model_info{from_local_copy="false",model_name="cartscout-candidate",model_version="1"' in text


def score_histogram(client, headers) -> dict[str | float, float]:
    """``cartscout_score``'s samples for model version 1 from /metrics: "count", "sum" and each
    bucket's cumulative count keyed by its upper bound (all zero before the first score)."""
    samples: dict[str | float, float] = {"count": 0.0, "sum": 0.0, **{bound: 0.0 for bound in SCORE_BUCKETS}}
    for family in text_string_to_metric_families(client.get("/metrics", headers=headers).text):
        for sample in family.samples if family.name == "cartscout_score" else ():
            if sample.labels.get("model_version") == "1":
                kind = sample.name.removeprefix("cartscout_score_")
                samples[float(sample.labels["le"]) if kind == "bucket" else kind] = sample.value
    return samples


def test_score_distribution_counts_each_scored_member_by_model_version(scoring_client, api_headers):
    """A member the model scores (first-line R-CHOP, not yet eligible) moves cartscout_score{model_version="1"}
    by one observation of exactly the returned score; a member with no score (eligible now) does not."""
    before = score_histogram(scoring_client, api_headers)
    member = make_member("first-line", lines=((date(2024, 6, 3), R_CHOP),), as_of=date(2024, 10, 1))
    body = scoring_client.post("/v1/score", json=member, headers=api_headers).json()
    assert body["status"] != "eligible_now" and body["score"] is not None
    scoring_client.post("/v1/score", json=relapsed_dlbcl_member(), headers=api_headers)
    after = score_histogram(scoring_client, api_headers)
    assert after["count"] - before["count"] == 1
    assert after["sum"] - before["sum"] == pytest.approx(body["score"])
    assert {bound: after[bound] - before[bound] for bound in SCORE_BUCKETS} == {bound: float(body["score"] <= bound) for bound in SCORE_BUCKETS}


class BrokenModel:
    """A model object whose code lists blow up with a message quoting patient data."""

    name, version, rules_version, feature_set_version, from_local_copy = "cartscout-candidate", "9", "r", "f", False

    @property
    def codes(self):
        raise RuntimeError("boom while reading MEMBER-ID-31337 code C83.38")


def test_unexpected_failure_is_a_bare_500_and_logs_no_message(settings, api_headers, log_lines):
    """An internal error answers 500 problem+json without detail; the log names the exception type and place, not its message."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(settings, loader=lambda uri, cache: BrokenModel())) as client:
        response = client.post("/v1/score", json=relapsed_dlbcl_member("MEMBER-ID-31337"), headers=api_headers)
    assert response.status_code == 500
    assert "MEMBER-ID-31337" not in response.text and "C83.38" not in response.text
    text = "\n".join(log_lines())
    assert "MEMBER-ID-31337" not in text and "C83.38" not in text
    line = next(json.loads(x) for x in text.splitlines() if '"event":"request"' in x)
    assert line["status"] == 500 and line["level"] == "error" and line["note"].startswith("unhandled RuntimeError at ")


def test_scoring_log_line_names_how_the_caller_authenticated(scoring_client, api_headers, log_lines):
    """The scoring routes' single dependency records the caller's kind on the request's log line."""
    assert scoring_client.post("/v1/score", json=relapsed_dlbcl_member(), headers=api_headers).status_code == 200
    assert scoring_client.post("/v1/score/batch", json={"members": [relapsed_dlbcl_member()]}, headers=api_headers).status_code == 200
    lines = [json.loads(line) for line in log_lines() if '"event":"request"' in line]
    assert [(line["endpoint"], line["auth"]) for line in lines] == [("/v1/score", "apikey"), ("/v1/score/batch", "apikey")]


def test_a_model_is_warmed_up_before_it_serves(settings, model_dir, log_lines):
    """Loading scores a fictional member once, before the model_loaded line, so the first real request does not compile kernels."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    from .conftest import make_loader

    with TestClient(create_app(settings, loader=make_loader(model_dir))):
        events = [json.loads(line)["event"] for line in log_lines() if '"event":"model_' in line]
    assert events.index("model_warmed_up") < events.index("model_loaded")


def test_a_model_that_fails_its_warm_up_is_logged_without_detail(settings, log_lines):
    """A warm-up failure names only the exception type (its message may hold data) and does not stop the swap."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(settings, loader=lambda uri, cache: BrokenModel())) as client:
        assert client.get("/readyz").status_code == 200
    lines = [json.loads(line) for line in log_lines() if '"event":"model_warm_up_failed"' in line]
    assert [line["error"] for line in lines] == ["RuntimeError"]
    assert "MEMBER-ID-31337" not in "\n".join(log_lines())
