"""Fixtures for the service tests: settings, a real (small) model artifact, signing keys, clients.

The model artifact is a genuine cartscout artifact (LightGBM booster over the real feature
catalog, a fitted Platt calibrator, the packaged code lists and label rules) loaded through
``models.artifact.load_model_files`` and scored by ``models.scoring.score_members``. Its booster
is fitted on random numbers, so its scores mean nothing clinically; statuses that come from the
rules (``eligible_now``, ``not_in_cohort``, ``already_treated``) and everything around scoring
(mapping, HTTP, auth, cards) are real.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.app import create_app
from service.auth import hash_api_key
from service.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CDS_EXAMPLES = FIXTURES / "cds-hooks"
FHIR_BUNDLES = FIXTURES / "fhir"
SERVICE_URL = "https://cartscout.test"
ISSUER = "https://ehr.test/fhir"
API_KEY = "test-api-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"


class RegistryDown(Exception):
    """Stands in for an unreachable MLflow registry (no model can be loaded)."""


def no_registry(uri: str, cache_dir: Path | None):
    raise RegistryDown("no registry in this test")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """Write a real cartscout model artifact with a small booster."""
    import features
    from features.catalog import FEATURE_NAMES, FEATURE_SET_VERSION, categorical_feature_names
    from features.codelists import CODELIST_DIR, load_codelists
    from features.eligibility import load_rules
    from models.artifact import ModelSpec, StatusThresholds, describe_rules_version, write_model_directory
    from models.calibration import PlattCalibrator

    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(400, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    cats = categorical_feature_names()
    for c in cats:
        x[c] = rng.integers(0, 3, len(x)).astype(float)
    y = (rng.uniform(size=len(x)) < 1 / (1 + np.exp(-x.iloc[:, 0]))).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbosity": -1, "seed": 0, "deterministic": True}, lgb.Dataset(x, label=y, categorical_feature=list(cats)), num_boost_round=30)
    calibrator = PlattCalibrator().fit(booster.predict(x, raw_score=True), y)
    rules_path = Path(features.__file__).parent / "rules" / "car_t_labels.yaml"
    spec = ModelSpec(
        feature_names=tuple(FEATURE_NAMES),
        categorical_features=tuple(cats),
        feature_set_version=FEATURE_SET_VERSION,
        codelists_version=load_codelists().version,
        rules_version=describe_rules_version(load_rules(rules_path)),
        rules_file=rules_path.name,
        horizon_days=180,
        thresholds=StatusThresholds(likely_soon=0.6, watch=0.3),
        calibration="platt",
    )
    directory = tmp_path_factory.mktemp("model") / "artifact"
    write_model_directory(directory, booster, calibrator, spec, rules_path, CODELIST_DIR)
    return directory


def make_loader(model_dir: Path, versions: list[str] | None = None):
    """A loader reading the artifact directory; each call takes the next version from ``versions``."""
    from models.artifact import artifact_paths, load_model_files

    queue = list(versions or ["1"])

    def load(uri: str, cache_dir: Path | None):
        version = queue.pop(0) if len(queue) > 1 else queue[0]
        return load_model_files(artifact_paths(model_dir), version=version, source=f"test artifact -> version {version}")

    return load


@pytest.fixture(scope="session")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="session")
def jwks_file(tmp_path_factory, rsa_key, ec_key) -> Path:
    """The EHR's public JWK Set as a local file (what CARTSCOUT_JWT_ISSUERS may point to)."""
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    rsa_jwk.update(kid="rsa-1", alg="RS384", use="sig")
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_key.public_key()))
    ec_jwk.update(kid="ec-1", alg="ES384", use="sig")
    path = tmp_path_factory.mktemp("jwks") / "ehr-jwks.json"
    path.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
    return path


@pytest.fixture
def sign(rsa_key, ec_key):
    """Mint a CDS Hooks JWT; keyword overrides change or (with None) drop claims."""

    def mint(path: str, *, alg: str = "ES384", kid: str | None = None, key=None, headers: dict | None = None, **claims) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": SERVICE_URL + path, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        signing_key = key if key is not None else (ec_key if alg.startswith("ES") else rsa_key)
        return jwt.encode(payload, signing_key, algorithm=alg, headers={"kid": kid or ("ec-1" if alg.startswith("ES") else "rsa-1"), "typ": "JWT", **(headers or {})})

    return mint


@pytest.fixture
def settings(tmp_path, jwks_file) -> Settings:
    return Settings(
        auth="jwt",
        service_url=SERVICE_URL,
        jwt_issuers={ISSUER: str(jwks_file)},
        api_key_hashes=frozenset({hash_api_key(API_KEY)}),
        admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}),
        model_poll_seconds=0,
        feedback_path=tmp_path / "feedback.jsonl",
        log_hash_key="test-log-key",
        max_body_bytes=64 * 1024,
        max_batch_members=3,
    )


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    """An app with no model (registry down): everything but scoring works."""
    with TestClient(create_app(settings, loader=no_registry)) as test_client:
        yield test_client


@pytest.fixture
def scoring_client(settings, model_dir) -> Iterator[TestClient]:
    """An app serving the test artifact as version 1."""
    with TestClient(create_app(settings, loader=make_loader(model_dir))) as test_client:
        yield test_client


@pytest.fixture
def api_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def load_example(name: str) -> dict:
    return json.loads((CDS_EXAMPLES / name).read_text())
