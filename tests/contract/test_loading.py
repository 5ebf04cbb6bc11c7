"""Loading a directory: operator files, the person filter, and refusing fatal problems."""

import pandas as pd
import pytest

from contract.loading import load_directory
from contract.reading import ContractInvalidError, MissingColumnError
from tests.contract.factories import fill, good_tables, medical_line, write_contract


def test_ndc_crosswalk_in_data_dir_is_picked_up(tmp_path):
    """DATA/ndc_crosswalk.csv is applied automatically: its NDCs become known drugs and stop counting as unmapped."""
    directory = write_contract(tmp_path / "data")
    assert load_directory(directory).unmapped_ndc == 2
    (directory / "ndc_crosswalk.csv").write_text("ndc_code,generic\n00002321530,Ibrutinib\n")
    loaded = load_directory(directory)
    assert loaded.unmapped_ndc == 1
    ndc = loaded.codes.drugs[loaded.codes.drugs["code_system"] == "ndc"]
    assert ndc.set_index("code").loc["00002321530", "generic"] == "ibrutinib"


def test_explicit_crosswalk_overrides_the_directory_file(tmp_path):
    """--ndc-crosswalk FILE wins over DATA/ndc_crosswalk.csv; dashed NDCs in it are normalised."""
    directory = write_contract(tmp_path / "data")
    (directory / "ndc_crosswalk.csv").write_text("ndc_code,generic\n00002321530,ibrutinib\n")
    override = tmp_path / "xw.csv"
    override.write_text("ndc_code,generic\n12345-678-90,venetoclax\n")
    loaded = load_directory(directory, ndc_crosswalk=override)
    assert set(loaded.codes.drugs.loc[loaded.codes.drugs["code_system"] == "ndc", "code"]) == {"12345067890"}
    assert loaded.unmapped_ndc == 1


def test_centers_file_is_optional(tmp_path):
    """Without a centre file centers is None; with one it is read with ZIPs as five-digit text."""
    directory = write_contract(tmp_path / "data")
    assert load_directory(directory).centers is None
    (directory / "car_t_centers.csv").write_text("name,zip,latitude,longitude\nSynthetic Centre A,2115,42.34,-71.10\n")
    centers = load_directory(directory).centers
    assert centers["zip"].tolist() == ["02115"] and centers["latitude"].tolist() == [42.34]


def test_centers_file_without_coordinates_is_an_error(tmp_path):
    """A centre file lacking latitude/longitude columns is refused with the missing columns named."""
    directory = write_contract(tmp_path / "data")
    (directory / "car_t_centers.csv").write_text("name,zip\nA,02115\n")
    with pytest.raises(MissingColumnError, match="latitude"):
        load_directory(directory)


def test_person_filter_loads_only_those_claims_but_all_persons(tmp_path):
    """With person_ids, events hold only those persons' claims, while persons still lists everyone eligible."""
    directory = write_contract(tmp_path / "data", fmt="parquet")
    loaded = load_directory(directory, person_ids=["P2"])
    claims = loaded.events[loaded.events["claim_id"].notna()]
    assert set(claims["person_id"]) == {"P2"}
    assert set(loaded.persons["person_id"]) == {"P1", "P2"}


def test_fatal_problem_refuses_to_load(tmp_path):
    """A missing table stops the load with a ContractInvalidError carrying the report."""
    tables = good_tables()
    del tables["medical_claim"]
    with pytest.raises(ContractInvalidError) as caught:
        load_directory(write_contract(tmp_path / "data", tables))
    assert caught.value.report.fatal


def test_quarantined_rows_do_not_become_events(tmp_path):
    """Rows with errors are left out of the events and written to the quarantine directory when asked."""
    tables = good_tables()
    tables["medical_claim"].append(medical_line("BAD", 1, hcpcs_code="J93"))
    tables["pharmacy_claim"].append(fill("RBAD", ndc_code="123"))
    loaded = load_directory(write_contract(tmp_path / "data", tables), quarantine_dir=tmp_path / "q")
    assert not loaded.events["claim_id"].isin(["BAD", "RBAD"]).any()
    assert loaded.report.error_count == 2
    assert len(pd.read_parquet(tmp_path / "q" / "issues.parquet")) == 2


def test_good_directory_maps_to_the_expected_events(tmp_path):
    """The factory's member P1 yields exactly the events its claims describe, each on the right claim."""
    events = load_directory(write_contract(tmp_path / "data", fmt="parquet")).events
    p1 = events[events["person_id"] == "P1"]
    got = set(zip(p1["kind"], p1["code_system"], p1["code"], p1["claim_id"].fillna(""), p1["setting"]))
    assert got == {
        ("enrollment", "payer_type", "commercial", "", "unknown"),
        ("enrollment", "payer_type", "medicare", "", "unknown"),
        ("diagnosis", "icd10cm", "C8338", "C1", "office"),
        ("drug_admin", "hcpcs", "J9312", "C1", "office"),
        ("procedure", "hcpcs", "99213", "C1", "office"),
        ("diagnosis", "icd10cm", "C8338", "C2", "inpatient"),
        ("diagnosis", "icd10cm", "D701", "C2", "inpatient"),
        ("inpatient_stay", "", "", "C2", "inpatient"),
        ("procedure", "ms_drg", "018", "C2", "inpatient"),
        ("procedure", "icd10pcs", "XW033H7", "C2", "inpatient"),
        ("procedure", "revenue", "0120", "C2", "inpatient"),
        ("procedure", "revenue", "0891", "C2", "inpatient"),
        ("drug_admin", "hcpcs", "Q2041", "C2", "inpatient"),
        ("diagnosis", "icd10cm", "R509", "C3", "ed"),
        ("procedure", "hcpcs", "99284", "C3", "ed"),
        ("drug_fill", "ndc", "00002321530", "R1", "pharmacy"),
    }
    assert len(p1) == len(got)  # every event is its own tuple (each span names its payer type)
