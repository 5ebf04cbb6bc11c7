"""Authentication: CDS Hooks JWTs verified as the spec requires, API keys for REST, open health checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from service.app import create_app
from service.replay import ReplayCache

from .conftest import ADMIN_KEY, API_KEY, ISSUER, SERVICE_URL, no_registry

DISCOVERY = "/cds-services"


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_checks_are_open(client):
    """/healthz and /readyz answer without credentials (readyz says 503 while no model is loaded)."""
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503


@pytest.mark.parametrize("path", ["/cds-services", "/metrics", "/openapi.json"])
def test_other_get_endpoints_need_credentials(client, path):
    """Every endpoint except the health checks answers 401 problem+json without a bearer token."""
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/v1/score", "/v1/score/batch", "/v1/fhir/score", "/cds-services/cartscout-candidate", "/cds-services/cartscout-candidate/feedback"])
def test_post_endpoints_need_credentials(client, path):
    """Scoring and feedback endpoints refuse anonymous calls before looking at the body."""
    assert client.post(path, json={}).status_code == 401


def test_valid_ehr_jwt_is_accepted(client, sign):
    """An ES384 JWT from the trusted issuer with aud = the endpoint URL passes."""
    assert client.get(DISCOVERY, headers=bearer(sign(DISCOVERY))).status_code == 200


def test_rs384_jwt_and_base_url_audience_are_accepted(client, sign):
    """RS384 (Epic's default) works, and aud may be the service's base URL."""
    assert client.get(DISCOVERY, headers=bearer(sign(DISCOVERY, alg="RS384", aud=SERVICE_URL))).status_code == 200


def test_replayed_jti_is_rejected(client, sign):
    """The same token (same jti) is accepted once only."""
    token = sign(DISCOVERY)
    assert client.get(DISCOVERY, headers=bearer(token)).status_code == 200
    second = client.get(DISCOVERY, headers=bearer(token))
    assert second.status_code == 401
    assert "jti" in second.json()["detail"]


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"aud": "https://elsewhere.test/cds-services"}, "aud"),
        ({"iss": "https://untrusted.test"}, "issuer"),
        ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 900}, "expired"),
        ({"iat": int(time.time()) + 3600}, "future"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) + 300}, "too long ago"),
        ({"jti": None}, "jti"),
        ({"exp": None}, "exp"),
    ],
)
def test_bad_claims_are_rejected(client, sign, claims, reason):
    """Wrong audience, untrusted issuer, expired, future or stale iat, and missing jti/exp all give 401."""
    response = client.get(DISCOVERY, headers=bearer(sign(DISCOVERY, **claims)))
    assert response.status_code == 401
    assert reason in response.json()["detail"]


def test_symmetric_and_none_algorithms_are_rejected(client, sign, jwks_file):
    """An HS256 token signed with the public JWK Set as the secret, and an alg=none token, are refused."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": SERVICE_URL + DISCOVERY, "exp": now + 300, "iat": now, "jti": "x1"}
    hs_signing_input = f"{b64(dict(alg='HS256', kid='ec-1', typ='JWT'))}.{b64(claims)}"
    hs_signature = base64.urlsafe_b64encode(hmac.new(jwks_file.read_bytes(), hs_signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    unsigned = f"{b64(dict(alg='none', kid='ec-1', typ='JWT'))}.{b64({**claims, 'jti': 'x2'})}."
    for token in (f"{hs_signing_input}.{hs_signature}", unsigned):
        response = client.get(DISCOVERY, headers=bearer(token))
        assert response.status_code == 401
        assert "algorithm" in response.json()["detail"]


def test_unknown_kid_and_wrong_key_are_rejected(client, sign):
    """A kid absent from the JWK Set, or a signature by a key that is not the EHR's, gives 401."""
    assert client.get(DISCOVERY, headers=bearer(sign(DISCOVERY, kid="nope"))).status_code == 401
    stranger = ec.generate_private_key(ec.SECP384R1())
    assert client.get(DISCOVERY, headers=bearer(sign(DISCOVERY, key=stranger))).status_code == 401


def test_alg_must_match_the_keys_declared_alg(client, sign):
    """A token claiming ES256 for a key the JWK Set declares as ES384 is refused."""
    p256 = ec.generate_private_key(ec.SECP256R1())
    assert client.get(DISCOVERY, headers=bearer(sign(DISCOVERY, alg="ES256", key=p256))).status_code == 401


def test_foreign_jku_is_rejected_for_url_configured_issuer(settings, sign):
    """With the issuer's JWKS configured as a URL, a token pointing its jku elsewhere is refused without fetching it."""
    configured = settings.model_copy(update={"jwt_issuers": {ISSUER: "https://ehr.test/jwks.json"}})
    with TestClient(create_app(configured, loader=no_registry)) as c:
        response = c.get(DISCOVERY, headers=bearer(sign(DISCOVERY, headers={"jku": "https://evil.test/jwks.json"})))
    assert response.status_code == 401
    assert "jku" in response.json()["detail"]


def test_api_key_opens_rest_but_not_cds(client):
    """A configured API key works on REST endpoints; CDS Hooks endpoints insist on the EHR's JWT."""
    assert client.get("/metrics", headers=bearer(API_KEY)).status_code == 200
    assert client.get(DISCOVERY, headers=bearer(API_KEY)).status_code == 401
    assert client.get("/metrics", headers=bearer("wrong-key")).status_code == 401


def test_admin_reload_needs_the_admin_key(client, sign):
    """Reload is 403 for an ordinary API key or EHR JWT, 401 without credentials, allowed with the admin key."""
    assert client.post("/admin/model/reload").status_code == 401
    assert client.post("/admin/model/reload", headers=bearer(API_KEY)).status_code == 403
    assert client.post("/admin/model/reload", headers=bearer(sign("/admin/model/reload"))).status_code == 403
    # With the admin key the call is authorised; no model can be loaded in this test, so 503.
    assert client.post("/admin/model/reload", headers=bearer(ADMIN_KEY)).status_code == 503


def test_auth_off_is_explicit_and_logged(settings, caplog):
    """CARTSCOUT_AUTH=off opens the endpoints and logs a loud warning at start-up."""
    import logging

    from service.logging import SERVICE_LOGGER

    logger = logging.getLogger(SERVICE_LOGGER)
    logger.addHandler(caplog.handler)
    try:
        with TestClient(create_app(settings.model_copy(update={"auth": "off"}), loader=no_registry)) as c:
            assert c.get(DISCOVERY).status_code == 200
    finally:
        logger.removeHandler(caplog.handler)
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "AUTHENTICATION IS OFF" in r.getMessage() + json.dumps(getattr(r, "fields", {}))]
    assert warnings


def test_default_settings_require_authentication():
    """Without configuration the service is not open: the default auth mode is jwt."""
    from service.settings import Settings

    assert Settings().auth == "jwt"


def test_replay_cache_is_bounded_and_forgets_expired_tokens():
    """The jti cache never grows past its size and accepts a jti again once its token expired."""
    cache = ReplayCache(max_entries=3)
    now = 1000.0
    for i in range(10):
        assert cache.check_and_add("iss", f"j{i}", now + 60, now)
    assert len(cache._seen) <= 3
    assert not cache.check_and_add("iss", "j9", now + 60, now)
    assert cache.check_and_add("iss", "j9", now + 200, now + 120)
