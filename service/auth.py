"""Who may call the service: CDS Hooks JWTs from trusted EHRs, and hashed API keys.

CDS Hooks 2.0 (section "Trusting CDS Clients") makes the EHR sign a short-lived JWT per call:
``Authorization: Bearer <jwt>``, signed with an asymmetric key published in the EHR's JWK Set,
``aud`` equal to the URL of the endpoint invoked, ``iss``/``exp``/``iat``/``jti`` required. We
verify exactly that and nothing looser:

* the issuer must be on our allow-list, and its keys come only from the JWKS location configured
  for it (a header ``jku`` pointing elsewhere is refused: fetching a key from a URL the token
  names would let anyone sign);
* only RS/PS/ES algorithms (never ``none`` or HMAC, which would let a public key act as a secret);
* ``aud`` must be this service: the endpoint URL under ``CARTSCOUT_SERVICE_URL`` (or the base URL);
* ``exp`` in the future, ``iat`` not in the future and not older than the configured maximum age;
* each ``(iss, jti)`` is accepted once while the token is valid (``service.replay``: in memory, or
  in a SQLite file every worker shares when ``CARTSCOUT_JTI_STORE`` is set).

REST callers (a payer's systems) may instead present an API key; only its SHA-256 is configured,
so a leaked settings file does not leak keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt
from jwt import PyJWKClient, PyJWKSet

from service.errors import Unauthenticated
from service.replay import ReplayCache, SqliteReplayCache
from service.settings import Settings

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: how it proved itself and, for JWTs, which issuer (and tenant)."""

    kind: Literal["jwt", "apikey", "anonymous"]
    issuer: str | None = None
    tenant: str | None = None
    key_hash: str | None = None


class IssuerKeys:
    """The JWK Set of one trusted issuer, from a local file (read once) or an HTTPS URL (cached)."""

    def __init__(self, location: str):
        self.location = location
        self.is_url = location.startswith(("https://", "http://"))
        self._client = PyJWKClient(location, cache_keys=True, lifespan=300, timeout=5) if self.is_url else None
        self._local: PyJWKSet | None = None

    def signing_key(self, kid: str) -> jwt.PyJWK:
        if self._client is not None:
            return self._client.get_signing_key(kid)
        if self._local is None:
            self._local = PyJWKSet.from_dict(json.loads(Path(self.location).read_text()))
        for key in self._local.keys:
            if key.key_id == kid:
                return key
        raise jwt.PyJWKError("no key with this kid in the issuer's JWK Set")


class Authenticator:
    """Verifies bearer credentials against the settings; one instance per app."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.issuers = {iss: IssuerKeys(loc) for iss, loc in settings.jwt_issuers.items()}
        self.replays = SqliteReplayCache(settings.jti_store, settings.jti_cache_size) if settings.jti_store else ReplayCache(settings.jti_cache_size)

    def authenticate(self, authorization: str | None, endpoint_path: str, *, accept_api_key: bool) -> Principal:
        """Return the caller or raise :class:`Unauthenticated` with a reason that reveals no secret."""
        if self.settings.auth == "off":
            return Principal(kind="anonymous")
        token = _bearer_token(authorization)
        if self.settings.auth == "apikey":
            return self._api_key(token)
        if _looks_like_jwt(token):
            return self._jwt(token, endpoint_path)
        if accept_api_key:
            return self._api_key(token)
        raise Unauthenticated("this endpoint requires a JWT signed by a trusted issuer")

    def may_block(self, authorization: str | None) -> bool:
        """Whether checking this credential may wait on the network: only a JWT whose issuer's
        keys live at a URL (fetched on a cache miss). Everything else is a hash or a signature
        check over keys in memory, cheap enough to run on the event loop."""
        if self.settings.auth != "jwt":
            return False
        scheme, _, token = (authorization or "").partition(" ")
        if not _looks_like_jwt(token.strip()):
            return False
        return any(keys.is_url for keys in self.issuers.values())

    def _api_key(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).hexdigest()
        if any(hmac.compare_digest(digest, known) for known in self.settings.api_key_hashes):
            return Principal(kind="apikey", key_hash=digest[:12])
        raise Unauthenticated("invalid API key")

    def _jwt(self, token: str, endpoint_path: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("malformed JWT") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise Unauthenticated("JWT algorithm not allowed: only asymmetric RS/PS/ES algorithms are accepted")
        kid = header.get("kid")
        if not kid:
            raise Unauthenticated("JWT header lacks kid")
        issuer = unverified.get("iss")
        keys = self.issuers.get(issuer) if isinstance(issuer, str) else None
        if keys is None:
            raise Unauthenticated("JWT issuer is not trusted")
        jku = header.get("jku")
        if jku and keys.is_url and jku != keys.location:
            raise Unauthenticated("JWT jku does not match the issuer's configured JWK Set")
        try:
            key = keys.signing_key(kid)
        except (jwt.PyJWKError, jwt.PyJWKClientError, OSError, ValueError):
            raise Unauthenticated("JWT key id not found in the issuer's JWK Set") from None
        declared = getattr(key, "_jwk_data", {}).get("alg")  # PyJWK keeps the JWK it was built from
        if declared and declared != alg:
            raise Unauthenticated("JWT algorithm does not match the key's declared alg")
        base = self.settings.service_url
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=[base + endpoint_path, base],
                issuer=issuer,
                leeway=self.settings.jwt_leeway_seconds,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("JWT aud is not this service's URL") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("JWT iat or nbf is in the future") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"JWT lacks the {exc.claim} claim") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise Unauthenticated("JWT signature or claims do not verify") from None
        now = time.time()
        if now - float(claims["iat"]) > self.settings.jwt_max_age_seconds + self.settings.jwt_leeway_seconds:
            raise Unauthenticated("JWT was issued too long ago")
        if not self.replays.check_and_add(issuer, str(claims["jti"]), float(claims["exp"]) + self.settings.jwt_leeway_seconds, now):
            raise Unauthenticated("JWT jti has already been used")
        tenant = claims.get("tenant")
        return Principal(kind="jwt", issuer=issuer, tenant=tenant if isinstance(tenant, str) else None)


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest to put in ``CARTSCOUT_API_KEY_HASHES`` for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <token>'")
    return token.strip()


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2
