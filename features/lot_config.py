"""Parameters of the line-of-therapy and relapse/refractory rules, kept apart from the code.

Every number here comes from ``features/codelists/../lot_rules.md`` (the project's copy of the
domain rules). Each field says whether the rule is **[published]** (a figure stated in a cited
paper, algorithm or label) or **[convention]** (a common practice or our proposal, to be tuned on
chart-reviewed data). Changing a value changes who is flagged as a CAR T candidate, so the whole
object is part of the feature-set definition: it is frozen, hashable and printed in full by
``repr``.

Documented choices that claims cannot settle:

* **BTKi switches.** ibrutinib, acalabrutinib and zanubrutinib are one substitution group: a switch
  among covalent BTK inhibitors is read as an intolerance switch (same line), because claims cannot
  tell intolerance from progression and CLL studies usually count it that way. A switch to
  pirtobrutinib (non-covalent, used after covalent-BTKi progression) is a new line.
* **Platinum.** cisplatin, carboplatin and oxaliplatin substitute for each other (R-DHAP, R-DHAC,
  R-DHAX; cis<->carbo is published, oxaliplatin is a convention).
* **Asparaginase.** E. coli and Erwinia products substitute for each other (hypersensitivity switch).
* **Rituximab biosimilars, SC rituximab, IV/SC daratumumab, bendamustine products** are merged into
  one generic by the code lists themselves, so they need no entry here.
* **CAR T infusion evidence** is accepted only from HCPCS/CPT and ICD-10-PCS codes. MS-DRG 018 also
  groups other immunotherapies, and the UB-04 revenue codes 087x/0891 cover any cell or gene
  therapy (for example tumour-infiltrating lymphocytes), so neither dates a CAR T infusion alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Mapping

# The integer parameters a disease may override (see ``LotConfig.overrides``).
OVERRIDABLE = (
    "window_days",
    "gap_days",
    "ld_window_days",
    "maintenance_max_gap_days",
    "sct_after_salvage_days",
    "maintenance_after_sct_max_gap_days",
)

DISEASES = ("LBCL", "FL", "MCL", "MZL", "CLL_SLL", "B_ALL", "MM")

_ALL_FRONTLINE = frozenset(
    {
        # Drugs of the adult and paediatric-inspired multiphase B-ALL regimens (regimens.csv:
        # Hyper-CVAD, CALGB 10403/COG, POMP): phases add them months apart by plan.
        "vincristine",
        "daunorubicin",
        "doxorubicin",
        "cyclophosphamide",
        "methotrexate",
        "cytarabine",
        "mercaptopurine",
        "rituximab",
        "pegaspargase",
        "calaspargase pegol",
        "asparaginase (nos)",
        "asparaginase erwinia chrysanthemi",
        "asparaginase erwinia chrysanthemi (recombinant)-rywn",
    }
)


def _frozen(mapping: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class LotConfig:
    """Line-of-therapy parameters (lot_rules.md section 2 and 4); defaults are the recommended set."""

    # [published] regimen-defining window from the first systemic drug of a line (Meng 2019, Hess 2021).
    window_days: int = 28
    # [convention for haematology] a line closes after more than this many days without a
    # qualifying drug; counted from the end of the last dose's coverage (fill date + days supply).
    gap_days: int = 90
    # [convention] Flu/Cy within this many days before a CAR T infusion is lymphodepletion.
    ld_window_days: int = 14
    # [convention, after Rajkumar 2015] maintenance starting later than this after the last
    # induction dose or transplant is an unplanned start, hence a new line.
    maintenance_max_gap_days: int = 90
    # [convention] the same limit when the line's last induction event is a stem-cell transplant
    # (lot_rules.md: 90 days after the last induction/ASCT date); per-disease overrides below.
    maintenance_after_sct_max_gap_days: int = 90
    # [convention] an autologous/allogeneic SCT within this many days of the last salvage/induction
    # dose belongs to that line (salvage + high-dose chemotherapy + ASCT = one line).
    sct_after_salvage_days: int = 120
    # [convention] drugs within this many days before an SCT are conditioning (BEAM day -6 to -1,
    # melphalan day -2/-1) and belong to the transplant's line, never start one.
    conditioning_days: int = 14
    # [convention] steroids this many days before a line's first systemic drug are its pre-phase.
    prephase_days: int = 14
    # [convention] apheresis this many days before a CAR T infusion opens the bridging period.
    car_t_collection_lookback_days: int = 180
    # [convention] CAR T infusion codes within this many days of each other are one infusion
    # (Q-code, CPT and ICD-10-PCS on separate claims for one event).
    car_t_episode_days: int = 30
    # Per-disease overrides of the integer parameters above, e.g. ``{"MM": {"gap_days": 120}}``.
    # [convention] myeloma and CLL are mostly continuous oral therapy (lenalidomide, BTKi) held for
    # toxicity and restarted; a longer gap keeps such holidays inside the line.
    # [convention, after Rajkumar 2015] myeloma lenalidomide maintenance after ASCT waits for
    # engraftment and recovery and usually starts around day +100 (CALGB 100104: day 100-110), so
    # 90 days would split a planned sequence; the paper's unplanned start comes 6 months after ASCT.
    overrides: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: _frozen(
            {
                "MM": _frozen({"gap_days": 120, "maintenance_after_sct_max_gap_days": 120}),
                "CLL_SLL": _frozen({"gap_days": 120}),
            }
        )
    )
    # Days one administration covers for drugs given as continuous infusions; the gap is counted
    # after this. [published] blinatumomab: 28 days on, 14 (induction) to 56 (continuation) off
    # (J Hematol Oncol 2019), so planned breaks never reach the gap.
    infusion_cover_days: Mapping[str, int] = field(default_factory=lambda: _frozen({"blinatumomab": 28}))
    # Groups of generics that substitute for each other without starting a line (see module doc).
    substitution_groups: tuple[frozenset[str], ...] = (
        frozenset({"cisplatin", "carboplatin", "oxaliplatin"}),
        frozenset(
            {
                "pegaspargase",
                "calaspargase pegol",
                "asparaginase (nos)",
                "asparaginase erwinia chrysanthemi",
                "asparaginase erwinia chrysanthemi (recombinant)-rywn",
            }
        ),
        frozenset({"ibrutinib", "acalabrutinib", "zanubrutinib"}),
    )
    # Maintenance drugs per disease: given after induction/ASCT they stay in the induction line.
    # [published] lenalidomide in MM (Rajkumar 2015); [convention] anti-CD20 in FL/MCL, 6-MP/MTX in ALL.
    maintenance_drugs: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: _frozen(
            {
                "FL": frozenset({"rituximab", "obinutuzumab"}),
                "MCL": frozenset({"rituximab", "obinutuzumab"}),
                "MM": frozenset({"lenalidomide"}),
                "B_ALL": frozenset({"mercaptopurine", "methotrexate"}),
            }
        )
    )
    # Drugs whose addition after the window never starts a line, in any line. [convention]
    # intrathecal methotrexate/cytarabine CNS prophylaxis belongs to the current lymphoma line.
    additions_same_line: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: _frozen(
            {d: frozenset({"methotrexate", "cytarabine"}) for d in ("LBCL", "FL", "MCL", "MZL")}
        )
    )
    # Drugs whose addition after the window stays in line 1 only: planned phases of frontline
    # multiphase therapy. [convention] regimens.csv: "drug additions between phases are planned".
    frontline_additions: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: _frozen({"B_ALL": _ALL_FRONTLINE})
    )
    # Given within ld_window_days before a CAR T infusion these are lymphodepletion (lot_rules 2.2).
    lymphodepletion_drugs: frozenset[str] = frozenset({"fludarabine", "cyclophosphamide"})
    # Code systems whose car_t_infusion / car_t_collection codes count (see module doc).
    car_t_code_systems: tuple[str, ...] = ("hcpcs", "icd10pcs")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and value < 0:
                raise ValueError(f"LotConfig.{f.name} must be >= 0, got {value}")
        for disease, params in self.overrides.items():
            unknown = set(params) - set(OVERRIDABLE)
            if unknown:
                raise ValueError(f"LotConfig.overrides[{disease!r}] has unknown parameter(s): {', '.join(sorted(unknown))}")
        # Freeze caller-supplied dicts so the object stays immutable and hashable.
        for name in ("overrides", "infusion_cover_days", "maintenance_drugs", "additions_same_line", "frontline_additions"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, _frozen(value))
        object.__setattr__(self, "_hash", hash(self.key()))

    def __hash__(self) -> int:
        return self._hash

    def key(self) -> str:
        """A stable text form of every parameter (what caches and feature-set versions hash)."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = {k: (dict(v) if isinstance(v, Mapping) else sorted(v) if isinstance(v, frozenset) else v) for k, v in sorted(value.items())}
            elif isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, tuple):
                value = [sorted(v) if isinstance(v, frozenset) else v for v in value]
            parts.append(f"{f.name}={value!r}")
        return ";".join(parts)

    def for_disease(self, disease: str | None, name: str) -> int:
        """The integer parameter ``name`` with the disease's override applied."""
        params = self.overrides.get(disease or "", {})
        return int(params.get(name, getattr(self, name)))


@dataclass(frozen=True)
class RelapseConfig:
    """Parameters of the relapse/refractory proxies (lot_rules.md section 3)."""

    # [published proxy] early relapse: 2L starts within 12 months of the END of 1L
    # chemoimmunotherapy (Flatiron LBCL 2L/3L study); end = last administration of line 1.
    early_relapse_days: int = 365
    # [convention, not verified] primary refractory: 2L starts within this many days of the end of 1L.
    refractory_days: int = 90
    # [convention] 1L stopped before this many cycles and another line started = refractory.
    refractory_min_cycles: int = 4
    # Cycle length assumed when line 1 has no regimen with a numeric cycle length.
    default_cycle_days: int = 21
    # [published definition, claims proxy convention] refractory to a drug: a new line starts on
    # the drug or within this many days after its last supply ends (IMWG wording in payer policy).
    drug_refractory_days: int = 60
    # drug_class -> exposure flag suffix (``exposed_<suffix>``).
    exposure_classes: Mapping[str, str] = field(
        default_factory=lambda: _frozen(
            {
                "anti_cd20": "anti_cd20",
                "anthracycline": "anthracycline",
                "btk_inhibitor": "btki",
                "bcl2_inhibitor": "bcl2i",
                "imid": "imid",
                "proteasome_inhibitor": "pi",
                "anti_cd38": "anti_cd38",
                "bispecific": "bispecific",
                "alkylator": "alkylator",
                "platinum": "platinum",
                "anti_cd19": "anti_cd19",
                "adc": "adc",
                "pi3k_inhibitor": "pi3ki",
                "anti_slamf7": "anti_slamf7",
                "xpo1_inhibitor": "xpo1i",
                "asparaginase": "asparaginase",
                "tki": "tki",
                "antimetabolite": "antimetabolite",
                "vinca_alkaloid": "vinca_alkaloid",
                "topoisomerase_inhibitor": "topoisomerase_inhibitor",
            }
        )
    )
    # [published] triple-class exposed = PI + IMiD + anti-CD38 (MarketScan TCE study, 2022).
    triple_classes: tuple[str, ...] = ("proteasome_inhibitor", "imid", "anti_cd38")

    def __hash__(self) -> int:
        return hash(repr(sorted((f.name, repr(getattr(self, f.name))) for f in fields(self))))
