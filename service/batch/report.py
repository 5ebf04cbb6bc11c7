"""``report.html``: one self-contained page a population-health manager opens from a share drive.

Charts are inline SVG and styles inline CSS; a Content-Security-Policy forbids any external fetch,
so the page renders the same offline, in a mail attachment or behind a firewall. Every count on
the page is computed here from the same part table that ``scores.parquet`` is written from, and
each count cell carries a ``data-count`` attribute so tests can read the rendered page back.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from string import Template

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from service.batch.outputs import write_text_atomic
from service.batch.worklist import STATUS_LABELS, describe_disease, describe_product, describe_value, describe_waiting, rank_worklist

TEMPLATE = Path(__file__).parent / "templates" / "report.html"
DISTANCE_BANDS = ((0, 25, "under 25 miles"), (25, 50, "25-50 miles"), (50, 100, "50-100 miles"),
                  (100, 200, "100-200 miles"), (200, math.inf, "200 miles or more"))
UNKNOWN_DISTANCE = "distance unknown"
STATUS_ORDER = tuple(STATUS_LABELS)
SCORE_BINS = 20


def write_report(parts: pa.Table | pd.DataFrame, path: Path, *, summary, top_members: int = 25) -> None:
    """Render the report for a finished run and write it atomically."""
    write_text_atomic(render_report(parts, summary=summary, top_members=top_members), Path(path))


def render_report(parts: pa.Table | pd.DataFrame, *, summary, top_members: int = 25) -> str:
    """The page as a string (``summary`` supplies versions, as-of date and run figures).

    Status counts are taken over the whole table in Arrow; everything else needs only the cohort's
    rows, so only those become a pandas frame (a few percent of a payer's members).
    """
    table = parts if isinstance(parts, pa.Table) else pa.Table.from_pandas(parts, preserve_index=False)
    counts = {item["values"]: int(item["counts"]) for item in pc.value_counts(table.column("status")).to_pylist()}
    frame = table.filter(pc.equal(table.column("in_cohort"), True)).to_pandas()
    eligible_top = rank_worklist(frame[frame["status"] == "eligible_now"], max(top_members // 2, 1))
    likely_top = rank_worklist(frame[frame["status"] == "likely_soon"], max(top_members - len(eligible_top), 1))
    values = {
        "as_of": _e(summary.as_of.isoformat()),
        "members": f"{table.num_rows:,}",
        "model_name": _e(summary.model_name),
        "model_version": _e(summary.model_version),
        "rules_version": _e(summary.rules_version),
        "status_tiles": render_status_tiles(counts),
        "disease_table": render_disease_table(frame),
        "product_table": render_product_table(frame),
        "score_histogram": render_score_histogram(frame),
        "access_table": render_access_gap(frame),
        "eligible_count": str(len(eligible_top)),
        "eligible_table": render_top_members(eligible_top, start=1),
        "likely_count": str(len(likely_top)),
        "likely_table": render_top_members(likely_top, start=1 + int(counts.get("eligible_now", 0))),
        "footer": _e(
            f"cartscout score ({summary.engine} engine): {summary.candidates:,} cohort candidates from the scan; "
            f"{summary.quarantined_rows:,} rows quarantined by validation."
        ),
    }
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(values)


def render_status_tiles(counts: dict[str, int]) -> str:
    tiles = []
    for status in STATUS_ORDER:
        n = int(counts.get(status, 0))
        tiles.append(
            f'<div class="tile {status}"><div class="value" data-count="status:{status}">{n:,}</div>'
            f'<div class="label">{_e(STATUS_LABELS[status])}</div></div>'
        )
    return "".join(tiles)


def render_disease_table(frame: pd.DataFrame) -> str:
    cohort = frame[frame["in_cohort"].astype(bool)]
    if cohort.empty:
        return '<p class="note">No member is in the cohort.</p>'
    table = pd.crosstab(cohort["disease"].fillna("unassigned"), cohort["status"])
    statuses = [s for s in STATUS_ORDER if s in table.columns]
    head = "<tr><th>Disease</th>" + "".join(f'<th class="num">{_e(STATUS_LABELS[s])}</th>' for s in statuses) + '<th class="num">Total</th></tr>'
    body = []
    for disease, row in table.sort_index().iterrows():
        cells = "".join(f'<td class="num" data-count="disease:{_e(disease)}:{s}">{int(row[s]):,}</td>' for s in statuses)
        body.append(f"<tr><td>{_e(describe_disease(disease) or disease)}</td>{cells}"
                    f'<td class="num" data-count="disease:{_e(disease)}">{int(row[statuses].sum()):,}</td></tr>')
    return f"<table>{head}{''.join(body)}</table>"


def render_product_table(frame: pd.DataFrame) -> str:
    products = frame["eligible_products"].explode().dropna()
    if products.empty:
        return '<p class="note">No member meets a CAR T label.</p>'
    counts = products.value_counts().sort_index()
    biggest = int(counts.max())
    rows = []
    for product, n in counts.items():
        width = 160 * int(n) / biggest
        bar = f'<svg width="164" height="12" role="img" aria-label="{int(n)}"><rect x="0" y="1" width="{width:.1f}" height="10" fill="#b3261e"/></svg>'
        rows.append(f'<tr><td>{_e(describe_product(product))}</td><td class="num" data-count="product:{_e(product)}">{int(n):,}</td><td>{bar}</td></tr>')
    return f'<table><tr><th>Product</th><th class="num">Members</th><th></th></tr>{"".join(rows)}</table>'


def render_score_histogram(frame: pd.DataFrame) -> str:
    scores = frame["score"].dropna().to_numpy(dtype=float)
    if scores.size == 0:
        return '<p class="note">No member was scored.</p>'
    counts, edges = np.histogram(np.clip(scores, 0, 1), bins=SCORE_BINS, range=(0, 1))
    width, height, pad = 640, 180, 30
    bar_w = (width - 2 * pad) / SCORE_BINS
    tallest = max(int(counts.max()), 1)
    bars = []
    for i, n in enumerate(counts):
        h = (height - 2 * pad) * int(n) / tallest
        x, y = pad + i * bar_w, height - pad - h
        bars.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="#17324d">'
                    f"<title>{edges[i]:.2f}-{edges[i + 1]:.2f}: {int(n):,} members</title></rect>")
    ticks = "".join(f'<text x="{pad + t * (width - 2 * pad):.1f}" y="{height - pad + 14}" text-anchor="middle">{t:.1f}</text>' for t in (0, 0.25, 0.5, 0.75, 1.0))
    axis = f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#7a8796"/>'
    label = f'<text x="{pad}" y="{pad - 12}">tallest bar: {tallest:,} members; {scores.size:,} scored in all</text>'
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="Histogram of {scores.size} scores" '
            f'data-count="scored:{scores.size}">{label}{axis}{"".join(bars)}{ticks}</svg>')


def distance_band(miles) -> str:
    """The band label for a distance in miles (missing when ZIP or centre list is unknown)."""
    if miles is None or pd.isna(miles):
        return UNKNOWN_DISTANCE
    return next(label for low, high, label in DISTANCE_BANDS if low <= float(miles) < high)


def render_access_gap(frame: pd.DataFrame) -> str:
    gap = frame[frame["status"].eq("eligible_now")]
    if gap.empty:
        return '<p class="note">No member is eligible now and untreated.</p>'
    bands = gap["distance_to_center_miles"].map(distance_band)
    payer = gap["payer_type"].fillna("unknown").astype(str).str.lower() if "payer_type" in gap else pd.Series("unknown", index=gap.index)
    table = pd.crosstab(bands, payer)
    order = [b for _, _, b in DISTANCE_BANDS] + [UNKNOWN_DISTANCE]
    payers = sorted(table.columns)
    peak = max(int(table.to_numpy().max()), 1)
    head = "<tr><th>Distance to nearest centre</th>" + "".join(f'<th class="num">{_e(p.capitalize())}</th>' for p in payers) + '<th class="num">Total</th></tr>'
    rows = []
    for band in order:
        if band not in table.index:
            continue
        cells = []
        for p in payers:
            n = int(table.loc[band, p])
            shade = 0.08 + 0.6 * n / peak if n else 0
            cells.append(f'<td class="num" style="background: rgba(179,38,30,{shade:.2f})" data-count="gap:{_e(band)}:{_e(p)}">{n:,}</td>')
        rows.append(f"<tr><td>{_e(band)}</td>{''.join(cells)}<td class=\"num\" data-count=\"gap:{_e(band)}\">{int(table.loc[band].sum()):,}</td></tr>")
    return f'<table class="heat">{head}{"".join(rows)}</table>'


def render_top_members(top: pd.DataFrame, *, start: int) -> str:
    """Worklist rows with their factors; ``start`` is the worklist rank of the first row."""
    if top.empty:
        return '<p class="note">Nobody in this group.</p>'
    rows = []
    for rank, rec in enumerate(top.to_dict("records"), start=start):
        score = rec.get("score")
        score_text = "" if score is None or pd.isna(score) else f"{100 * float(score):.1f}%"
        waiting = rec.get("_waiting")
        waiting_text = "" if waiting is None or pd.isna(waiting) else f"{describe_waiting(waiting)} days"
        rows.append(
            f'<tr data-member="{_e(rec["person_id"])}"><td class="num">{rank}</td><td>{_e(rec["person_id"])}</td>'
            f"<td>{_e(describe_disease(rec.get('disease')))}</td>"
            f'<td class="num">{waiting_text if rec["status"] == "eligible_now" else score_text}</td><td>{_factors(rec)}</td></tr>'
        )
    head = '<tr><th class="num">Rank</th><th>Member ID</th><th>Disease</th><th class="num">Score / waiting</th><th>Main factors</th></tr>'
    return f"<table>{head}{''.join(rows)}</table>"


def _factors(rec: dict) -> str:
    """Scored members show their factors; members eligible now (not scored) show the label they meet."""
    reasons = list(rec.get("reasons")) if rec.get("reasons") is not None else []
    if reasons:
        return render_reason_bars(reasons)
    products = list(rec.get("eligible_products")) if rec.get("eligible_products") is not None else []
    return _e("Meets the label for " + ", ".join(describe_product(p) for p in products)) if products else ""


def render_reason_bars(reasons: list[dict]) -> str:
    """A small diverging bar chart of one member's top factors (contribution in log-odds)."""
    if not reasons:
        return ""
    row_h, label_w, half = 16, 300, 90
    biggest = max(abs(float(r.get("contribution") or 0.0)) for r in reasons) or 1.0
    parts = []
    for i, r in enumerate(reasons):
        c = float(r.get("contribution") or 0.0)
        w = half * abs(c) / biggest
        x = label_w + half if c >= 0 else label_w + half - w
        y = i * row_h
        text = f"{r.get('label') or r.get('feature')}: {r.get('value_text') or describe_value(r.get('feature'), r.get('value'))}"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(_shorten(text, 48))}</text>'
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 0.5):.1f}" height="10" fill="{"#b3261e" if c >= 0 else "#2f6db5"}">'
            f"<title>{_e(text)}: {c:+.3f}</title></rect>"
        )
    axis = f'<line x1="{label_w + half}" y1="0" x2="{label_w + half}" y2="{len(reasons) * row_h}" stroke="#7a8796"/>'
    return f'<svg width="{label_w + 2 * half + 4}" height="{len(reasons) * row_h}" role="img" aria-label="Main factors">{axis}{"".join(parts)}</svg>'


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _e(value) -> str:
    return html.escape(str(value), quote=True)
