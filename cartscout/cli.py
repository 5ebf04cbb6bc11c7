"""The ``cartscout`` command. Each sub-command is a thin wrapper: it parses options, calls one
function of the package that owns the work, and prints a summary. Imports happen inside the
commands so that ``cartscout --help`` stays fast and nothing heavy loads at import time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

# MLflow draws a progress bar on stderr for every model download and upload; in a service's
# JSON log stream or a batch job's log they are noise. An operator may still set it to true.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

app = typer.Typer(
    name="cartscout",
    help="Find health-plan members who are, or are about to become, CAR T-cell therapy candidates.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = Annotated[Path, typer.Option("--data", help="Directory holding the Tuva input-layer tables (CSV or Parquet).", exists=True, file_okay=False)]
NdcCrosswalk = Annotated[Optional[Path], typer.Option("--ndc-crosswalk", help="ndc_code,generic CSV; default: DATA/ndc_crosswalk.csv when present.", exists=True, dir_okay=False)]
Centers = Annotated[Optional[Path], typer.Option("--centers", help="CAR T centre file (name,zip,latitude,longitude); default: DATA/car_t_centers.csv when present.", exists=True, dir_okay=False)]


@contextmanager
def _contract_errors() -> Iterator[None]:
    """End a command with one line naming the file and problem, never a traceback, when the
    delivered data cannot be used (missing table, unreadable file, missing required column)."""
    from contract.reading import ContractError

    try:
        yield
    except ContractError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None


def _parse_day(value: Optional[str], option: str) -> Optional[date]:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form", param_hint=option) from None


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the synthetic contract tables and truth/ into.")],
    members: Annotated[int, typer.Option("--members", min=1, help="Number of members to generate.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same files.")] = 0,
    cancer_enrichment: Annotated[float, typer.Option("--cancer-enrichment", min=1.0, help="Oversampling factor for haematological malignancies (1 = population incidence).")] = 1.0,
    noise: Annotated[str, typer.Option("--noise", help="Coding-noise level: off, low, medium or high.")] = "off",
    end_date: Annotated[Optional[str], typer.Option("--end-date", help="Last day of data (YYYY-MM-DD); default 2025-12-31.")] = None,
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Generate a synthetic payer population in the input contract, with ground truth kept apart."""
    from synthetic.population import SynthConfig, generate_to_directory

    config = SynthConfig(
        members=members,
        seed=seed,
        cancer_enrichment=cancer_enrichment,
        noise=noise,
        end_date=_parse_day(end_date, "--end-date") or date(2025, 12, 31),
        file_format=file_format,
    )
    summary = generate_to_directory(config, out)
    typer.echo(summary.render())


@app.command()
def validate(
    data: DataDir,
    quarantine: Annotated[Optional[Path], typer.Option("--quarantine", help="Where to write quarantined rows; default DATA/quarantine.")] = None,
    ndc_crosswalk: NdcCrosswalk = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit non-zero on any row-level error.")] = False,
) -> None:
    """Check a contract directory; report row-level problems and write them to a quarantine file."""
    from contract.validation import validate_directory

    report = validate_directory(data, quarantine_dir=quarantine, ndc_crosswalk=ndc_crosswalk)
    typer.echo(report.render())
    if report.fatal or (strict and report.error_count):
        raise typer.Exit(code=1)


@app.command()
def features(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", help="Directory for cohort, lines, eligibility and features Parquet files.")],
    as_of: Annotated[str, typer.Option("--as-of", help="Evaluation date YYYY-MM-DD: only events on or before it are used.")],
    ndc_crosswalk: NdcCrosswalk = None,
    centers: Centers = None,
) -> None:
    """Compute cohort, lines of therapy, label eligibility and risk features as of a date."""
    from cartscout.feature_run import write_feature_outputs

    day = _parse_day(as_of, "--as-of")
    with _contract_errors():
        summary = write_feature_outputs(data, out, day, ndc_crosswalk=ndc_crosswalk, centers=centers)
    typer.echo(summary.render())


@app.command()
def score(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", help="Directory for scores.parquet, worklist.csv and report.html.")],
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Evaluation date YYYY-MM-DD; default: the last claim date in the data.")] = None,
    model_uri: Annotated[str, typer.Option("--model-uri", help="Registered model to score with (an alias resolves to one version).")] = "models:/cartscout-candidate@champion",
    engine: Annotated[str, typer.Option("--engine", help="local (DuckDB scan, in-process scoring) or spark.")] = "local",
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=1, help="Length of the worklist; default: every member eligible now or likely soon.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in OUT, reusing its finished chunks.")] = False,
    spark_master: Annotated[Optional[str], typer.Option("--spark-master", help="Spark master for a local session, e.g. local[2]; omit under spark-submit.")] = None,
    chunk_members: Annotated[int, typer.Option("--chunk-members", min=1, help="Cohort members scored per chunk (bounds memory).")] = 2_000,
    ndc_crosswalk: NdcCrosswalk = None,
    centers: Centers = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
) -> None:
    """Score every member: cohort scan, features, model, explanations and label eligibility, in chunks."""
    from service.batch.runner import ScoreOptions, score_directory

    if engine not in ("local", "spark"):
        raise typer.BadParameter("must be 'local' or 'spark'", param_hint="--engine")
    options = ScoreOptions(
        data_dir=data, out_dir=out, as_of=_parse_day(as_of, "--as-of"), model_uri=model_uri, engine=engine, top_k=top_k,
        resume=resume, spark_master=spark_master, chunk_members=chunk_members, ndc_crosswalk=ndc_crosswalk, centers=centers,
        show_progress=progress,
    )
    from service.batch.outputs import RunStateError

    with _contract_errors():
        try:
            summary = score_directory(options)
        except RunStateError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=1) from None
    typer.echo(summary.render())


@app.command()
def train(
    data: DataDir,
    horizon: Annotated[Optional[int], typer.Option("--horizon", min=30, max=730, help="Prediction horizon in days (default 180, or the config's outcome.horizon_days).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Training configuration YAML (outcome, population, features, model, split, evaluation settings).", exists=True, dir_okay=False)] = None,
    optuna_trials: Annotated[Optional[int], typer.Option("--optuna-trials", min=0, help="Run an Optuna search with this many trials (overrides the config).")] = None,
) -> None:
    """Train, evaluate and register a new model version as 'challenger' (MLflow: MLFLOW_TRACKING_URI, else ./mlflow.db)."""
    from training.run import train_from_directory
    from training.settings import load_config

    try:
        settings = load_config(config)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--config") from None
    if horizon is not None:
        settings = settings.with_horizon(horizon)
    if optuna_trials is not None:
        settings = settings.model_copy(update={"model": settings.model.model_copy(update={"optuna_trials": optuna_trials})})
    def report(done: int, total: int) -> None:
        typer.echo(f"landmark examples: member chunk {done}/{total}", err=True)

    typer.echo(train_from_directory(data, settings, progress=report).render())


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Model version number, or an alias such as 'challenger'.")],
    reason: Annotated[str, typer.Option("--reason", help="Why this version is promoted (recorded as a version tag).")] = "",
    force: Annotated[bool, typer.Option("--force", help="Promote even if the promotion gate fails (needs --reason).")] = False,
) -> None:
    """Move the 'champion' alias to VERSION through the promotion gate, recording who and why."""
    from training.registry import PromotionRefusedError, RegistryError, promote_version, resolve_store

    store = resolve_store()
    try:
        outcome = promote_version(version, store, reason=reason, force=force)
    except PromotionRefusedError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=2) from None
    except RegistryError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(outcome.render())
    typer.echo(f"MLflow UI: {store.ui_command()}")

@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind; 0.0.0.0 in a container.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes (each loads the model once).")] = 1,
) -> None:
    """Run the scoring service (REST, FHIR R4, CDS Hooks) under uvicorn with production settings.

    Configuration comes from CARTSCOUT_* environment variables (see docs/service.md); uvicorn's
    access log is off because the service writes its own PHI-free JSON line per request. With
    more than one worker, the workers share a private temporary directory: a JWT replay store
    (unless CARTSCOUT_JTI_STORE names one), so a token replayed to another worker is still
    refused, and Prometheus' multiprocess files (unless PROMETHEUS_MULTIPROC_DIR is set), so
    /metrics counts every worker's requests whichever worker answers the scrape. Without
    CARTSCOUT_LOG_HASH_KEY the workers share one random key for this run's member hashes.
    """
    import secrets
    import shutil
    import tempfile

    import uvicorn

    from service.settings import get_settings

    settings = get_settings()
    shared = None
    if workers > 1:
        shared = Path(tempfile.mkdtemp(prefix="cartscout-serve-"))
        if settings.jti_store is None:
            os.environ["CARTSCOUT_JTI_STORE"] = str(shared / "jti.sqlite3")
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            (shared / "metrics").mkdir()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared / "metrics")
        if settings.log_hash_key is None:  # one key for all workers, so one member hashes alike in every log line
            os.environ["CARTSCOUT_LOG_HASH_KEY"] = secrets.token_hex(32)
    try:
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            proxy_headers=settings.proxy_headers,
            forwarded_allow_ips=settings.forwarded_allow_ips if settings.proxy_headers else None,
            server_header=False,
            timeout_keep_alive=5,
            log_level="info",
        )
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)

if __name__ == "__main__":
    app()
