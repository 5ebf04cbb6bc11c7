"""Load the released model from the MLflow registry, with a local copy for restarts.

``load_model("models:/cartscout-candidate@champion")`` resolves the alias to a version number
once, downloads that exact version, loads it through the pyfunc (which checks the feature-set
version), and remembers it in ``cache_dir``. Every response and output file then echoes that
version, so an alias moving mid-run never mixes two models.

If the tracking server cannot be reached, the last successfully loaded copy is used and the
result says so (``from_local_copy=True``): a service restart during a registry outage keeps
serving the model it served before, rather than failing or silently picking another.

A copy is reused only if it is the registry's own record of that version (name, version, run
id and source): version 3 of a development registry, or of a registry rebuilt at the same
address, is another model than version 3 of production, and the cache directory is shared by
default.

The cache directory defaults to ``$CARTSCOUT_MODEL_CACHE_DIR`` or ``~/.cache/cartscout/models``
(the service's setting of the same name passes its value in; the batch job and training read it here).

:func:`resolve_version` asks the registry which version a URI names now, without loading anything:
the service's alias poll calls it every few minutes and loads only when the answer changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from models.artifact import MODEL_NAME, LoadedModel, ModelArtifactError

DEFAULT_URI = f"models:/{MODEL_NAME}@champion"
_LAST = "last_loaded.json"
_COPY = "cartscout_copy.json"  # the registry record a downloaded copy was made from
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class RegistryUnavailableError(ModelArtifactError):
    """The registry could not be reached and no local copy exists."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("CARTSCOUT_MODEL_CACHE_DIR") or Path.home() / ".cache" / "cartscout" / "models")


def resolve_version(uri: str) -> str | None:
    """The version ``uri`` names in the registry now (a pinned URI names its own), or None when
    the registry cannot say (unreachable, unknown alias): the caller then does a full load,
    which reports the problem or falls back to the local copy."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, version = _parse(uri)
    if version is not None:
        return version
    if not _reachable(mlflow.get_tracking_uri()):
        return None
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _parse(uri: str) -> tuple[str, str | None, str | None]:
    match = _URI.match(uri)
    if not match:
        raise ValueError(f"model URI {uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    return match["name"], match["alias"], match["version"]


def _reachable(tracking_uri: str) -> bool:
    """Quick health probe for HTTP tracking servers (MLflow's own client retries for minutes)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    import requests

    try:
        return requests.get(tracking_uri.rstrip("/") + "/health", timeout=3).ok
    except requests.RequestException:
        return False


def _load_local(directory: Path, name: str, version: str, source: str, from_local_copy: bool) -> LoadedModel:
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(str(directory))
    model: LoadedModel = pyfunc.unwrap_python_model().model
    model.version = version
    model.source = source
    model.from_local_copy = from_local_copy
    model.directory = directory
    if model.name != name:
        raise ModelArtifactError(f"artifact at {source} is model {model.name!r}, expected {name!r}")
    return model


def load_model(uri: str = DEFAULT_URI, cache_dir: Path | None = None) -> LoadedModel:
    """Resolve ``uri`` to one version, load it, and keep a local copy (see module doc)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, version = _parse(uri)
    cache = Path(cache_dir or default_cache_dir())
    tracking_uri = mlflow.get_tracking_uri()
    try:
        if not _reachable(tracking_uri):
            raise ConnectionError(f"tracking server {tracking_uri} unreachable")
        client = MlflowClient()
        record = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
        version = str(record.version)
        identity = {"name": name, "version": version, "run_id": record.run_id, "source": record.source}
        target = cache / name / version
        if not _is_copy_of(target, identity):
            staging = cache / name / f".{version}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(staging))
            (staging / _COPY).write_text(json.dumps(identity))
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    except (ConnectionError, MlflowException, OSError) as error:
        if isinstance(error, MlflowException) and getattr(error, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        return _load_last(cache, name, uri, error)
    model = _load_local(target, name, str(version), f"{uri} -> version {version}", from_local_copy=False)
    (cache / _LAST).write_text(json.dumps({"uri": uri, "name": name, "version": str(version), "path": str(target)}))
    return model


def _is_copy_of(directory: Path, identity: dict) -> bool:
    """Whether ``directory`` holds a complete download of exactly this registry record."""
    try:
        return (directory / "MLmodel").is_file() and json.loads((directory / _COPY).read_text()) == identity
    except (OSError, ValueError):
        return False


def _load_last(cache: Path, name: str, uri: str, error: Exception) -> LoadedModel:
    record = cache / _LAST
    if not record.exists():
        raise RegistryUnavailableError(f"cannot load {uri}: registry unavailable ({error}) and no local copy in {cache}") from error
    last = json.loads(record.read_text())
    if last["name"] != name:
        raise RegistryUnavailableError(f"cannot load {uri}: registry unavailable and the local copy is of {last['name']}") from error
    return _load_local(Path(last["path"]), name, last["version"], f"local copy of {last['uri']} -> version {last['version']}", from_local_copy=True)
