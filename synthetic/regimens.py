"""Administration schedules for the regimens the simulator gives (components as in regimens.csv).

regimens.csv names components and cycle lengths; this table adds what a claims generator needs on
top: which drugs are infused on which days of a cycle, which are oral fills (days supply), and
whether the regimen is fixed-duration or continues until progression. ``available`` is the first
date the regimen is used (US approval of its newest drug, domain knowledge, see docs/synthetic.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Regimen:
    name: str
    iv: dict[str, tuple[int, ...]]  # generic -> administration days within a cycle (1-based)
    oral: dict[str, int] = field(default_factory=dict)  # generic -> days supply per cycle
    cycle_days: int = 21
    cycles: tuple[int, int] = (6, 6)  # min, max planned cycles; continuous regimens: (1, 1) per step
    continuous: bool = False
    available: str = "2000-01-01"
    first_cycle_only: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def drugs(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.iv) | set(self.oral) | set(self.first_cycle_only)))


def _r(name, iv, oral=None, **kw) -> Regimen:
    return Regimen(name, iv, oral or {}, **kw)


CHOP = {"rituximab": (1,), "cyclophosphamide": (1,), "doxorubicin": (1,), "vincristine": (1,)}
REGIMENS: dict[str, Regimen] = {r.name: r for r in (
    _r("R-CHOP", CHOP, {"prednisone": 5}, cycles=(6, 6)),
    _r("R-mini-CHOP", CHOP, {"prednisone": 5}, cycles=(4, 6)),
    _r("Pola-R-CHP", {"polatuzumab vedotin": (1,), "rituximab": (1,), "cyclophosphamide": (1,), "doxorubicin": (1,)}, {"prednisone": 5}, available="2023-04-19"),
    _r("DA-EPOCH-R", {"etoposide": (1, 2, 3, 4), "vincristine": (1,), "cyclophosphamide": (5,), "doxorubicin": (1,), "rituximab": (1,)}, {"prednisone": 5}),
    _r("R-ICE", {"rituximab": (1,), "ifosfamide": (2,), "carboplatin": (2,), "etoposide": (1, 2, 3), "mesna": (2,)}, cycles=(2, 3)),
    _r("R-DHAP", {"rituximab": (1,), "dexamethasone": (1,), "cytarabine": (2,), "cisplatin": (1,)}, cycles=(2, 3)),
    _r("R-GDP", {"rituximab": (1,), "gemcitabine": (1, 8), "dexamethasone": (1,), "cisplatin": (1,)}, cycles=(2, 3)),
    _r("R-GemOx", {"rituximab": (1,), "gemcitabine": (2,), "oxaliplatin": (2,)}, cycle_days=14, cycles=(4, 8)),
    _r("Pola-BR", {"polatuzumab vedotin": (1,), "bendamustine": (1, 2), "rituximab": (1,)}, cycles=(4, 6), available="2019-06-10"),
    _r("Tafasitamab + lenalidomide", {"tafasitamab": (1, 15)}, {"lenalidomide": 21}, cycle_days=28, continuous=True, available="2020-07-31"),
    _r("Loncastuximab tesirine", {"loncastuximab tesirine": (1,)}, continuous=True, available="2021-04-23"),
    _r("Glofitamab", {"glofitamab": (1,)}, cycles=(8, 12), available="2023-06-15", first_cycle_only={"obinutuzumab": (1,)}),
    _r("Epcoritamab", {"epcoritamab": (1, 8, 15, 22)}, cycle_days=28, continuous=True, available="2023-05-19"),
    _r("BR", {"bendamustine": (1, 2), "rituximab": (1,)}, cycle_days=28, cycles=(6, 6)),
    _r("R-CVP", {"rituximab": (1,), "cyclophosphamide": (1,), "vincristine": (1,)}, {"prednisone": 5}, cycles=(6, 8)),
    _r("Rituximab maintenance", {"rituximab": (1,)}, cycle_days=56, cycles=(8, 12)),
    _r("R2 (lenalidomide + rituximab)", {"rituximab": (1,)}, {"lenalidomide": 21}, cycle_days=28, cycles=(12, 12)),
    _r("Mosunetuzumab", {"mosunetuzumab": (1,)}, cycles=(8, 17), available="2022-12-22"),
    _r("Covalent BTKi", {}, {"ibrutinib": 30}, cycle_days=30, continuous=True),
    _r("Pirtobrutinib", {}, {"pirtobrutinib": 30}, cycle_days=30, continuous=True, available="2023-01-27"),
    _r("VR-CAP", {"bortezomib": (1, 8), "rituximab": (1,), "cyclophosphamide": (1,), "doxorubicin": (1,)}, {"prednisone": 5}),
    _r("FCR", {"fludarabine": (1, 2, 3), "cyclophosphamide": (1, 2, 3), "rituximab": (1,)}, cycle_days=28),
    _r("Venetoclax + obinutuzumab (VenO)", {"obinutuzumab": (1,)}, {"venetoclax": 28}, cycle_days=28, cycles=(12, 12)),
    _r("Hyper-CVAD", {"cyclophosphamide": (1, 2, 3), "vincristine": (4, 11), "doxorubicin": (4,), "methotrexate": (1,), "cytarabine": (2,)}, {"dexamethasone": 4}, cycles=(8, 8)),
    _r("Pediatric multiphase", {"vincristine": (1, 8, 15), "daunorubicin": (1,), "pegaspargase": (4,), "methotrexate": (8,), "cytarabine": (15,), "cyclophosphamide": (15,)}, {"dexamethasone": 7, "mercaptopurine": 28}, cycle_days=28, cycles=(8, 9)),
    _r("POMP maintenance", {"vincristine": (1,)}, {"mercaptopurine": 28, "methotrexate": 28, "prednisone": 5}, cycle_days=28, cycles=(18, 24)),
    _r("Blinatumomab", {"blinatumomab": (1, 8, 15, 22)}, cycle_days=42, cycles=(2, 5)),
    _r("Inotuzumab ozogamicin", {"inotuzumab ozogamicin": (1, 8, 15)}, cycle_days=28, cycles=(3, 6)),
    _r("VRd", {"bortezomib": (1, 4, 8, 11)}, {"lenalidomide": 14, "dexamethasone": 14}, cycles=(4, 8)),
    _r("D-VRd", {"daratumumab": (1, 8, 15), "bortezomib": (1, 4, 8, 11)}, {"lenalidomide": 14, "dexamethasone": 14}, cycles=(4, 6), available="2019-09-26"),
    _r("DRd", {"daratumumab": (1, 15)}, {"lenalidomide": 21, "dexamethasone": 28}, cycle_days=28, continuous=True),
    _r("Lenalidomide maintenance", {}, {"lenalidomide": 28}, cycle_days=28, continuous=True),
    _r("KRd", {"carfilzomib": (1, 8, 15)}, {"lenalidomide": 21, "dexamethasone": 28}, cycle_days=28, cycles=(8, 12)),
    _r("DKd", {"daratumumab": (1, 15), "carfilzomib": (1, 8, 15)}, {"dexamethasone": 28}, cycle_days=28, continuous=True),
    _r("DPd", {"daratumumab": (1, 15)}, {"pomalidomide": 21, "dexamethasone": 28}, cycle_days=28, continuous=True),
    _r("Isa-Pd", {"isatuximab": (1, 15)}, {"pomalidomide": 21, "dexamethasone": 28}, cycle_days=28, continuous=True, available="2020-03-02"),
    _r("SVd", {"bortezomib": (1, 8, 15, 22)}, {"selinexor": 35, "dexamethasone": 35}, cycle_days=35, continuous=True, available="2020-12-18"),
    _r("Teclistamab", {"teclistamab": (1, 8, 15)}, cycle_days=21, continuous=True, available="2022-10-25"),
    _r("Talquetamab", {"talquetamab": (1, 8, 15)}, cycle_days=21, continuous=True, available="2023-08-09"),
    _r("Ixazomib-Rd", {}, {"ixazomib": 21, "lenalidomide": 21, "dexamethasone": 28}, cycle_days=28, continuous=True),
)}
HDT_ASCT = {"LBCL": ("carmustine", "etoposide", "cytarabine", "melphalan"), "MCL": ("carmustine", "etoposide", "cytarabine", "melphalan"), "MM": ("melphalan",)}
