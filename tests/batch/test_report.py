"""report.html: self-contained, correct counts, and it renders cleanly in a real headless Chromium."""

from __future__ import annotations

import re
from datetime import date
from types import SimpleNamespace

import pytest

from service.batch.report import distance_band, render_report, write_report
from tests.batch.browser import render
from tests.batch.factories import make_criterion, make_parts, make_reason, make_row

SUMMARY = SimpleNamespace(as_of=date(2025, 6, 30), model_name="cartscout-candidate", model_version="3",
                          rules_version="rules-test", engine="local", candidates=9, quarantined_rows=2)


def _population():
    return make_parts([
        make_row("e1", "eligible_now", products=("axicabtagene ciloleucel", "lisocabtagene maraleucel"), miles=12.0,
                 payer="medicare", eligible_since=date(2025, 1, 3),
                 reasons=[make_reason(), make_reason("geo_car_t_center_distance_miles", "Distance to nearest CAR T centre", 12.0, -0.3)]),
        make_row("e2", "eligible_now", products=("axicabtagene ciloleucel",), miles=140.0, payer="medicaid"),
        make_row("e3", "eligible_now", disease="MM", products=("idecabtagene vicleucel",), miles=None, payer="commercial"),
        make_row("s1", "likely_soon", score=0.71, eligibility=[make_criterion(eligible=False, missing=("second line",))]),
        make_row("w1", "watch", score=0.22, disease="FL"),
        make_row("u1", "unlikely", score=0.03, disease="CLL_SLL"),
        make_row("t1", "already_treated", disease="LBCL"),
        make_row("o1", "not_in_cohort"),
        make_row("o2", "not_in_cohort"),
    ])


def test_page_has_no_external_resources():
    """Nothing is fetched from elsewhere: no http(s) URLs in src/href, and a CSP forbidding fetches."""
    page = render_report(_population(), summary=SUMMARY)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "default-src 'none'" in page


def test_member_ids_and_labels_are_escaped():
    """Text from the data is HTML-escaped, so a hostile value cannot inject markup."""
    page = render_report(make_parts([make_row("<script>x</script>", "eligible_now", products=("a&b",))]), summary=SUMMARY)
    assert "<script>x" not in page and "&lt;script&gt;x" in page


def test_distance_bands_cover_every_distance():
    """Each distance falls in exactly one band; missing distance has its own band."""
    assert [distance_band(m) for m in (0, 24.9, 25, 99, 100, 250, None)] == [
        "under 25 miles", "under 25 miles", "25-50 miles", "50-100 miles", "100-200 miles", "200 miles or more", "distance unknown"]


@pytest.mark.integration
def test_chromium_renders_the_report_with_the_expected_counts(tmp_path):
    """In headless Chromium the page loads with a clean console and shows the counts of the data."""
    write_report(_population(), tmp_path / "report.html", summary=SUMMARY)
    page = render(tmp_path / "report.html", screenshot=tmp_path / "report.png")
    assert page.console == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
    counts = page.counts
    assert {k: counts[f"status:{k}"] for k in ("eligible_now", "likely_soon", "watch", "unlikely", "already_treated", "not_in_cohort")} == {
        "eligible_now": "3", "likely_soon": "1", "watch": "1", "unlikely": "1", "already_treated": "1", "not_in_cohort": "2"}
    assert counts["disease:LBCL"] == "4" and counts["disease:MM"] == "1"
    assert counts["product:axicabtagene ciloleucel"] == "2" and counts["product:idecabtagene vicleucel"] == "1"
    assert counts["scored"] == "6"
    assert counts["gap:under 25 miles:medicare"] == "1" and counts["gap:100-200 miles"] == "1" and counts["gap:distance unknown"] == "1"
    assert page.dom.count("data-member=") == 4


def test_likely_soon_members_show_their_factors_as_bars_and_eligible_members_their_label():
    """Scored members get a bar per factor (red raises, blue lowers); eligible-now members name the label met."""
    page = render_report(_population(), summary=SUMMARY)
    likely = page[page.index('id="top-likely"'):]
    assert likely.count('fill="#b3261e"') >= 1 and "Lines of therapy: 2" in likely
    eligible = page[page.index('id="top-eligible"'):page.index('id="top-likely"')]
    assert "Meets the label for Axicabtagene ciloleucel" in eligible
