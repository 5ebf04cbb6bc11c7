"""Service settings: one pydantic-settings class, one prefix (``CARTSCOUT_``), read in one place.

Everything the service can be told comes from the environment (or a ``.env`` file the operator
points to), is validated once at start-up, and reaches the code only through :func:`get_settings`,
which tests replace with ``app.dependency_overrides`` or by building the app with their own
``Settings``. MLflow keeps its own variable (``MLFLOW_TRACKING_URI``), read here too so that one
object describes the whole running configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AuthMode = Literal["jwt", "apikey", "off"]


class Settings(BaseSettings):
    """Run-time configuration of the scoring service (environment prefix ``CARTSCOUT_``)."""

    model_config = SettingsConfigDict(env_prefix="CARTSCOUT_", extra="ignore", frozen=True)

    model_uri: str = Field("models:/cartscout-candidate@champion", description="Registered model URI; an alias is resolved to a version once per load.")
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CARTSCOUT_MLFLOW_TRACKING_URI"),
        description="MLflow's own tracking URI variable.",
    )
    model_cache_dir: Path | None = Field(None, description="Local copy of the last loaded model, used when MLflow is unreachable at start-up.")
    model_poll_seconds: float = Field(300.0, ge=0, description="How often to check whether the alias moved; 0 disables polling.")

    auth: AuthMode = Field("jwt", description="jwt (EHR JWTs, or API keys on REST), apikey (API keys only) or off (local demo only).")
    jwt_issuers: dict[str, str] = Field(
        default_factory=dict,
        description='Trusted issuers as JSON: {"https://ehr.example.org/": "https://ehr.example.org/jwks.json" or "/etc/cartscout/ehr-jwks.json"}.',
    )
    jwt_leeway_seconds: int = Field(60, ge=0, le=600, description="Clock skew tolerated on exp/iat/nbf.")
    jwt_max_age_seconds: int = Field(3600, ge=1, description="Reject tokens issued longer ago than this (iat).")
    jti_cache_size: int = Field(100_000, ge=1, description="How many recent jti values the replay check remembers.")
    jti_store: Path | None = Field(
        None,
        description="SQLite file of recently seen JWT jti values shared by every worker on this host; unset = each process "
        "remembers its own. cartscout serve sets a private one when it starts more than one worker.",
    )
    api_key_hashes: frozenset[str] = Field(default_factory=frozenset, description="SHA-256 hex digests of accepted API keys (JSON list).")
    admin_key_hashes: frozenset[str] = Field(default_factory=frozenset, description="SHA-256 hex digests of API keys allowed to call /admin endpoints (JSON list).")
    cors_origins: tuple[str, ...] = Field((), description="Browser origins allowed by CORS (JSON list), e.g. a browser-based CDS client; empty = no CORS.")
    service_url: str = Field("http://127.0.0.1:8000", description="The public base URL the EHR calls; a JWT's aud must equal the URL of the endpoint invoked under it.")

    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Largest accepted request body; larger bodies get 413.")
    max_batch_members: int = Field(1000, ge=1, description="Most members in one /v1/score/batch call.")
    scoring_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="Requests mapped and scored at the same time per worker; the others wait their turn. The pipeline is mostly "
        "Python holding the GIL, so threads scoring side by side only contend for it (8 at once served ~25% fewer requests "
        "per second than one at a time): use --workers for more cores.",
    )

    coalesce_max_members: int = Field(
        32,
        ge=1,
        le=1000,
        description="Most single-member /v1/score requests scored together in one pipeline call when they queue behind one "
        "another (a call costs ~8 ms fixed plus ~1 ms per member); 1 scores each request alone.",
    )

    log_hash_key: SecretStr | None = Field(None, description="Secret for the keyed hash (HMAC-SHA256) of member identifiers in logs; random per process when unset.")
    feedback_path: Path = Field(Path("cds_feedback.jsonl"), description="Append-only JSONL file of CDS Hooks card feedback (no PHI).")
    info_url: str = Field(
        "https://www.fda.gov/vaccines-blood-biologics/cellular-gene-therapy-products/approved-cellular-and-gene-therapy-products",
        description="Link shown on CDS cards; set it to your deployment's model card. The default is the FDA's list of approved cellular and gene therapy products (the labels eligibility is judged against).",
    )
    proxy_headers: bool = Field(False, description="Trust X-Forwarded-* headers (only behind a proxy you control).")
    forwarded_allow_ips: str = Field("127.0.0.1", description="Proxies whose X-Forwarded-* headers are trusted when proxy_headers is on.")

    @field_validator("service_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("api_key_hashes", "admin_key_hashes")
    @classmethod
    def _check_hashes(cls, value: frozenset[str]) -> frozenset[str]:
        lowered = frozenset(h.strip().lower() for h in value)
        bad = [h for h in lowered if len(h) != 64 or any(c not in "0123456789abcdef" for c in h)]
        if bad:
            raise ValueError(f"{len(bad)} API key hash(es) are not 64-character SHA-256 hex digests")
        return lowered

    @model_validator(mode="after")
    def _check_auth_has_credentials(self) -> "Settings":
        if self.auth == "apikey" and not self.api_key_hashes:
            raise ValueError("CARTSCOUT_AUTH=apikey needs CARTSCOUT_API_KEY_HASHES")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
