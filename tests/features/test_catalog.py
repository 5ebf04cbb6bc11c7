"""The feature catalog: names, labels and versions."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from features import catalog
from features.comorbidity import CHARLSON_FILE, load_charlson_codes

NAME = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")


def test_every_name_is_snake_case_source_measure_window():
    """Every feature name is lower snake case with at least a source and a measure."""
    bad = [n for n in catalog.FEATURE_NAMES if not NAME.match(n)]
    assert bad == []


def test_every_feature_has_label_description_group_and_unit():
    """A clinician-facing label, a description sentence, a group and a unit exist for every feature."""
    for spec in catalog.CATALOG.values():
        assert spec.label and spec.label[0].isupper(), spec.name
        assert spec.description.endswith("."), spec.name
        assert spec.group and spec.unit, spec.name
        assert spec.kind in {"numeric", "count", "flag", "categorical"}, spec.name


def test_categoricals_and_only_categoricals_have_levels():
    """Categorical features list their levels (the codes LightGBM sees); others list none."""
    for spec in catalog.CATALOG.values():
        assert bool(spec.levels) == (spec.kind == "categorical"), spec.name
    assert set(catalog.categorical_feature_names()) == {"demo_sex", "demo_payer_type", "dx_disease"}


def test_names_are_unique_and_in_catalog_order():
    """FEATURE_NAMES is the catalog's order without duplicates."""
    assert len(set(catalog.FEATURE_NAMES)) == len(catalog.FEATURE_NAMES)
    assert list(catalog.FEATURE_NAMES) == [d["name"] for d in catalog.describe_features()]


def test_charlson_digest_matches_the_code_list_file():
    """Editing the Charlson code list must change FEATURE_SET_VERSION (via the recorded digest)."""
    digest = hashlib.sha256(CHARLSON_FILE.read_bytes()).hexdigest()[:16]
    assert digest == catalog.CHARLSON_CODELIST_DIGEST
    assert load_charlson_codes().digest == digest


def test_feature_set_version_is_a_short_hash():
    """The version is 16 hex characters, derived from the catalog content."""
    assert re.fullmatch(r"[0-9a-f]{16}", catalog.FEATURE_SET_VERSION)


def test_docs_list_every_feature():
    """docs/features.md names every catalog feature, so the documentation cannot fall behind."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text()
    assert [n for n in catalog.FEATURE_NAMES if f"`{n}`" not in text] == []
