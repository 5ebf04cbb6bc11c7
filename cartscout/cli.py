"""The ``cartscout`` command. Each sub-command is a thin wrapper: it parses options, calls one
function of the package that owns the work, and prints a summary. Imports happen inside the
commands so that ``cartscout --help`` stays fast and nothing heavy loads at import time."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="cartscout",
    help="Find health-plan members who are, or are about to become, CAR T-cell therapy candidates.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = Annotated[Path, typer.Option("--data", help="Directory holding the Tuva input-layer tables (CSV or Parquet).", exists=True, file_okay=False)]
NdcCrosswalk = Annotated[Optional[Path], typer.Option("--ndc-crosswalk", help="ndc_code,generic CSV; default: DATA/ndc_crosswalk.csv when present.", exists=True, dir_okay=False)]
Centers = Annotated[Optional[Path], typer.Option("--centers", help="CAR T centre file (name,zip,latitude,longitude); default: DATA/car_t_centers.csv when present.", exists=True, dir_okay=False)]


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

    summary = write_feature_outputs(data, out, _parse_day(as_of, "--as-of"), ndc_crosswalk=ndc_crosswalk, centers=centers)
    typer.echo(summary.render())


if __name__ == "__main__":
    app()
