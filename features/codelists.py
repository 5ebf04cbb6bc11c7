"""Code lists as data: the project's CSV files parsed once into tidy lookup tables.

The CSVs in ``features/codelists/`` keep the source's own notation (dotted ICD-10-CM prefixes,
ranges such as ``77261-77263``, slash lists, ``C82.xA`` patterns, free-text HCPCS cells such as
``J9312; J9310 (older 100 mg unit)``). This module turns that notation into exact codes, prefixes
or regular expressions, normalised the same way claims are (upper case, no dots), so that every
caller matches codes identically. Loading is the only I/O here; callers load once and pass the
``CodeLists`` object into the pure feature functions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import pandas as pd

CODELIST_DIR = Path(__file__).parent / "codelists"
CODELIST_FILES = (
    "diagnosis_codes.csv",
    "procedure_codes.csv",
    "drug_codes.csv",
    "regimens.csv",
    "car_t_products.csv",
    "rxnorm_ingredients.csv",
)
# Unclassified-drug codes: new drugs are billed under these for months after launch, so they never
# identify a specific drug on their own (the NDC, when carried, does).
NOC_HCPCS = frozenset({"J9999", "J3590", "C9399", "J8999"})

_HCPCS_TOKEN = re.compile(r"\b([A-V]\d{4}|\d{4}[A-Z]|\d{5})\b")
_SYSTEM_BY_SOURCE = {
    "CPT": "hcpcs",
    "HCPCS": "hcpcs",
    "ICD-10-PCS": "icd10pcs",
    "MS-DRG": "ms_drg",
    "UB-04 revenue code": "revenue",
    "UB-04 value code": "value_code",
}


def normalise_code(code: str) -> str:
    """Upper case with dots, dashes and spaces removed: ``c83.38`` and ``C8338`` match."""
    return re.sub(r"[.\-\s]", "", str(code)).upper()


_NDC_DASHED = re.compile(r"^(\d{4,5})-(\d{3,4})-(\d{1,2})$")


def eleven_digit_ndc(code: str) -> str | None:
    """The 11-digit 5-4-2 NDC, or None when malformed or ambiguous.

    Dashed 4-4-2, 5-3-2 and 5-4-1 forms are padded segment by segment (padding the whole string
    would shift digits between labeler and product); an undashed code that is not 11 digits could
    be any of three 11-digit codes, so it is refused.
    """
    text = str(code).strip()
    if text.isdigit():
        return text if len(text) == 11 else None
    m = _NDC_DASHED.match(text)
    if not m:
        return None
    labeler, product, package = m.groups()
    if len(labeler) + len(product) + len(package) not in (10, 11):
        return None
    return labeler.zfill(5) + product.zfill(4) + package.zfill(2)


def _crosswalk_ndc(code: str) -> str:
    ndc = eleven_digit_ndc(code)
    if ndc is None:
        raise ValueError(f"NDC crosswalk: ndc_code {code!r} is not an 11-digit or dashed 10-digit NDC")
    return ndc


@dataclass(frozen=True)
class CodeLists:
    """Parsed code lists plus their version (a hash of the source files).

    ``diagnoses``: prefix (dotless), disease_group, role, valid_from_fy, valid_to_fy, verified.
    ``procedures``: code_system, code (exact) or pattern (regex, for wildcards and ICD-10-PCS
    sections), event, valid_from, valid_to, verified.
    ``drugs``: code_system, code, generic (the name lines of therapy use: biosimilars and SC/IV
    forms map to the originator), product (the source row), drug_class, counts_as_line, route.
    ``drug_catalog``: one row per generic with drug_class, counts_as_line, route.
    ``regimens`` and ``products``: the source tables with components split into lists.
    """

    version: str
    diagnoses: pd.DataFrame
    procedures: pd.DataFrame
    drugs: pd.DataFrame
    drug_catalog: pd.DataFrame
    regimens: pd.DataFrame
    products: pd.DataFrame

    def with_ndc_crosswalk(self, crosswalk: pd.DataFrame) -> "CodeLists":
        """Add an operator's ``ndc_code,generic`` crosswalk as NDC drug codes.

        Generic names are matched case-insensitively to the catalog; a crosswalk row whose generic
        is not a known anticancer or supportive drug is kept with class ``other`` so that the fill
        still counts as a fill but never starts a line of therapy.
        """
        xw = crosswalk.rename(columns=str.lower)
        missing = {"ndc_code", "generic"} - set(xw.columns)
        if missing:
            raise ValueError(f"NDC crosswalk lacks column(s): {', '.join(sorted(missing))}")
        xw = pd.DataFrame(
            {
                "code": xw["ndc_code"].astype("string").map(_crosswalk_ndc),
                "generic": xw["generic"].astype("string").str.strip().str.lower(),
            }
        ).drop_duplicates("code")
        catalog = self.drug_catalog.assign(generic=self.drug_catalog["generic"].str.lower())
        merged = xw.merge(catalog, on="generic", how="left")
        merged["drug_class"] = merged["drug_class"].fillna("other")
        merged["counts_as_line"] = merged["counts_as_line"].fillna("no")
        merged["route"] = merged["route"].fillna("oral")
        ndc = merged.assign(code_system="ndc", product=merged["generic"])[list(self.drugs.columns)]
        drugs = pd.concat([self.drugs[self.drugs["code_system"] != "ndc"], ndc], ignore_index=True)
        digest = hashlib.sha256((self.version + pd.util.hash_pandas_object(ndc, index=False).astype(str).str.cat()).encode())
        return replace(self, drugs=drugs, version=digest.hexdigest()[:16])

    def diagnosis_groups(self, codes: pd.Series) -> pd.DataFrame:
        """Longest-prefix match of normalised ICD-10-CM codes to (disease_group, role).

        Works on the unique codes only, so it costs the same for one member as for a million
        members' worth of repeated codes. Unmatched codes get missing group and role.
        """
        unique = pd.Series(codes.dropna().unique(), dtype="string")
        table = self.diagnoses.sort_values("prefix", key=lambda s: s.str.len(), ascending=False)
        groups, roles = [], []
        prefixes = list(zip(table["prefix"], table["disease_group"], table["role"]))
        for code in unique:
            hit = next(((g, r) for p, g, r in prefixes if code.startswith(p)), (pd.NA, pd.NA))
            groups.append(hit[0])
            roles.append(hit[1])
        lookup = pd.DataFrame({"code": unique, "disease_group": groups, "role": roles}, dtype="string")
        return pd.DataFrame({"code": codes.astype("string")}).merge(lookup, on="code", how="left")


def load_codelists(directory: Path = CODELIST_DIR) -> CodeLists:
    """Read and parse the code-list CSVs; cached for the packaged directory."""
    if directory == CODELIST_DIR:
        return _load_packaged()
    return _load(directory)


@cache
def _load_packaged() -> CodeLists:
    return _load(CODELIST_DIR)


def _load(directory: Path) -> CodeLists:
    digest = hashlib.sha256()
    for name in CODELIST_FILES:
        digest.update((directory / name).read_bytes())
    read = lambda name: pd.read_csv(directory / name, dtype=str, keep_default_na=False)  # noqa: E731
    catalog = _drug_catalog(read("drug_codes.csv"))
    drugs = pd.concat([_parse_drugs(read("drug_codes.csv")), _parse_rxnorm(read("rxnorm_ingredients.csv"), catalog)], ignore_index=True)
    return CodeLists(
        version=digest.hexdigest()[:16],
        diagnoses=_parse_diagnoses(read("diagnosis_codes.csv")),
        procedures=_parse_procedures(read("procedure_codes.csv")),
        drugs=drugs,
        drug_catalog=catalog,
        regimens=_parse_regimens(read("regimens.csv")),
        products=_parse_products(read("car_t_products.csv")),
    )


def _parse_diagnoses(raw: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in raw.itertuples(index=False):
        if r.code_prefix.startswith("("):
            continue  # "(none)": the concept has no ICD-10-CM code
        prefix = normalise_code(r.code_prefix)
        expanded = [prefix.replace("X", d) for d in "0123456789"] if "X" in prefix[3:] else [prefix]
        for p in expanded:
            rows.append((p, r.disease_group, r.role, r.valid_from_fy, r.valid_to_fy, r.verified))
    cols = ["prefix", "disease_group", "role", "valid_from_fy", "valid_to_fy", "verified"]
    return pd.DataFrame(rows, columns=cols).drop_duplicates().astype("string").reset_index(drop=True)


def _expand_code_cell(cell: str) -> tuple[list[str], list[str]]:
    """Split a procedure-code cell into exact codes and regex patterns."""
    exact: list[str] = []
    patterns: list[str] = []
    cell = cell.strip()
    if cell.startswith("(") or "+" in cell:
        return exact, patterns  # "(unknown)", or a combination rule such as Flu+Cy, not a code
    if cell.endswith("(section)"):
        return exact, [f"^{re.escape(cell.split()[0])}"]
    for part in re.split(r"\s*[,]\s*", cell):
        tokens = [t.strip() for t in part.split("/")]
        head = tokens[0]
        for i, token in enumerate(tokens):
            if i > 0 and len(token) < len(head):
                token = head[: len(head) - len(token)] + token  # "30233U2/U3" -> 30233U3
            if "x" in token:
                patterns.append("^" + token.replace("x", "[0-9A-Z]") + "$")
            elif re.fullmatch(r"([A-Z]?)(\d+)([A-Z]?)-([A-Z]?)(\d+)([A-Z]?)", token):
                m = re.fullmatch(r"([A-Z]?)(\d+)([A-Z]?)-([A-Z]?)(\d+)([A-Z]?)", token)
                lo, hi, width = int(m.group(2)), int(m.group(5)), len(m.group(2))
                exact += [f"{m.group(1)}{n:0{width}d}{m.group(3)}" for n in range(lo, hi + 1)]
            else:
                exact.append(token)
    return exact, patterns


def _parse_procedures(raw: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in raw.itertuples(index=False):
        system = _SYSTEM_BY_SOURCE[r.code_system]
        exact, patterns = _expand_code_cell(r.code)
        for code in exact:
            rows.append((system, normalise_code(code), pd.NA, r.event, r.valid_from, r.valid_to, r.verified))
        for pattern in patterns:
            rows.append((system, pd.NA, pattern, r.event, r.valid_from, r.valid_to, r.verified))
    cols = ["code_system", "code", "pattern", "event", "valid_from", "valid_to", "verified"]
    return pd.DataFrame(rows, columns=cols).astype("string").reset_index(drop=True)


def _lot_generic(name: str) -> list[str]:
    """The generic name(s) lines of therapy use for a drug_codes row."""
    name = re.sub(r"\s*\(biosimilar\)", "", name).strip()
    if name.startswith("rituximab"):
        return ["rituximab"]  # biosimilars and the SC form are the same drug for LOT
    if name.startswith("daratumumab"):
        return ["daratumumab"]
    return [n.strip() for n in name.split(" / ")]


def _drug_catalog(raw: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in raw.itertuples(index=False):
        for generic in _lot_generic(r.generic):
            rows.append((generic, r.drug_class, _counts(r.counts_as_line_of_therapy), r.route))
    cols = ["generic", "drug_class", "counts_as_line", "route"]
    return pd.DataFrame(rows, columns=cols).drop_duplicates("generic").astype("string").reset_index(drop=True)


def _counts(cell: str) -> str:
    """Reduce the source's free text to yes / no / qualified."""
    cell = cell.strip().lower()
    if cell.startswith("yes ("):
        return "qualified"
    if cell.startswith("no"):
        return "no"
    return "yes" if cell == "yes" else "qualified"


def _parse_drugs(raw: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in raw.itertuples(index=False):
        generics = _lot_generic(r.generic)
        codes = [c for c in _HCPCS_TOKEN.findall(r.hcpcs_codes) if c not in NOC_HCPCS or r.drug_class == "noc"]
        # "filgrastim / pegfilgrastim | J1442; J2505": codes pair with names in order; otherwise the first name.
        paired = zip(codes, generics) if len(codes) == len(generics) else ((c, generics[0]) for c in codes)
        for code, generic in paired:
            rows.append(("hcpcs", code, generic, r.generic, r.drug_class, _counts(r.counts_as_line_of_therapy), r.route))
    cols = ["code_system", "code", "generic", "product", "drug_class", "counts_as_line", "route"]
    return pd.DataFrame(rows, columns=cols).drop_duplicates(["code_system", "code"]).astype("string").reset_index(drop=True)


def _parse_rxnorm(raw: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """RxNorm ingredient CUIs (what FHIR medication codings carry) as drug codes of their generic.

    Each row names the LOT generic it belongs to; class, line-counting and route come from the
    catalog so an RxNorm-coded administration behaves exactly like the HCPCS-billed one.
    """
    merged = raw.rename(columns={"rxcui": "code"}).merge(catalog, on="generic", how="left", validate="many_to_one")
    unknown = merged.loc[merged["drug_class"].isna(), "generic"].tolist()
    if unknown:
        raise ValueError(f"rxnorm_ingredients.csv names generic(s) absent from drug_codes.csv: {', '.join(unknown)}")
    out = merged.assign(code_system="rxnorm", product=merged["rxnorm_name"])
    cols = ["code_system", "code", "generic", "product", "drug_class", "counts_as_line", "route"]
    return out[cols].drop_duplicates(["code_system", "code"]).astype("string").reset_index(drop=True)


def _parse_regimens(raw: pd.DataFrame) -> pd.DataFrame:
    regimens = raw.copy()
    regimens["components"] = regimens["components"].str.split(";").map(lambda xs: [x.strip() for x in xs])
    return regimens


def _parse_products(raw: pd.DataFrame) -> pd.DataFrame:
    products = raw.copy()
    products["approval_date"] = pd.to_datetime(products["approval_date"])
    return products
