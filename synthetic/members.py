"""The background population: demographics, payer, address, enrollment spans, latent frailty, death.

Vectorised over a chunk of members (numpy arrays, no per-member Python), because a payer file has
millions of members and only ~1 % of them matter for CAR T. Dates are int32 day numbers (days since
1970-01-01) until the writer turns them into Parquet/CSV dates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic.geography import draw_zip_indices

PAYER_TYPES = ("commercial", "medicare", "medicaid")
COMMERCIAL, MEDICARE, MEDICAID = 0, 1, 2
RACES = (
    "white", "black or african american", "asian", "american indian or alaska native",
    "native hawaiian or other pacific islander", "other race", "unknown",
)
RACE_SHARES = (0.60, 0.13, 0.06, 0.01, 0.002, 0.08, 0.118)
BLACK = 1
# Age (years at the end date) bands and shares of an insured US population.
AGE_BANDS = ((0, 18), (18, 35), (35, 50), (50, 65), (65, 75), (75, 85), (85, 100))
AGE_SHARES = (0.22, 0.22, 0.19, 0.19, 0.10, 0.06, 0.02)
# Monthly probability of leaving the plan, by payer type (commercial job churn, Medicaid redeterminations).
MONTHLY_CHURN = (0.015, 0.008, 0.02)
GAP_SHARE = 0.10
MEDICARE_SWITCH_SHARE = 0.85
NO_DATE = np.iinfo(np.int32).max
DAYS_PER_YEAR = 365.25


@dataclass
class Members:
    """One chunk of members. Span 2 is absent when ``s2 < 0``."""

    first_index: int
    female: np.ndarray
    race: np.ndarray
    birth: np.ndarray
    zip_idx: np.ndarray
    frailty: np.ndarray
    payer1: np.ndarray
    payer2: np.ndarray
    s1: np.ndarray
    e1: np.ndarray
    s2: np.ndarray
    e2: np.ndarray
    switched: np.ndarray
    death: np.ndarray

    @property
    def n(self) -> int:
        return len(self.female)

    def enrolled_days(self) -> np.ndarray:
        """Enrolled days per member (both spans)."""
        return (self.e1 - self.s1 + 1) + np.where(self.s2 >= 0, self.e2 - self.s2 + 1, 0)

    def calendar_day(self, member: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Map an offset in enrolled days to a calendar day: skips the gap between spans."""
        len1 = self.e1[member] - self.s1[member] + 1
        return np.where(offset < len1, self.s1[member] + offset, self.s2[member] + (offset - len1)).astype(np.int32)

    def age_at(self, member: np.ndarray, day: np.ndarray) -> np.ndarray:
        return (day - self.birth[member]) / DAYS_PER_YEAR

    def truncate_at_death(self) -> None:
        """End enrollment on the death day; a span starting after death disappears."""
        dead = self.death != NO_DATE
        self.e1 = np.where(dead, np.minimum(self.e1, self.death), self.e1)
        drop2 = dead & (self.s2 > self.death)
        self.s2 = np.where(drop2, -1, self.s2)
        self.e2 = np.where(self.s2 >= 0, np.where(dead, np.minimum(self.e2, self.death), self.e2), -1)


def month_start(months: np.ndarray) -> np.ndarray:
    """Day number of the first day of month index ``months`` (months since 1970-01)."""
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64).astype(np.int32)


def day_month(days: np.ndarray) -> np.ndarray:
    return np.asarray(days).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def draw_members(n: int, first_index: int, window: tuple[int, int], plan_switch_share: float, rng: np.random.Generator) -> Members:
    """Draw ``n`` members enrolled at some time inside ``window`` (first day, last day)."""
    w0, w1 = window
    m0, m1 = int(day_month(np.array([w0]))[0]), int(day_month(np.array([w1]))[0])
    band = rng.choice(len(AGE_BANDS), size=n, p=AGE_SHARES)
    lo = np.array([b[0] for b in AGE_BANDS])[band]
    hi = np.array([b[1] for b in AGE_BANDS])[band]
    age_end = lo + rng.random(n) * (hi - lo)
    birth = (w1 - age_end * DAYS_PER_YEAR).astype(np.int32)
    female = rng.random(n) < 0.51
    race = rng.choice(len(RACES), size=n, p=RACE_SHARES).astype(np.int8)
    zip_idx = draw_zip_indices(n, rng)

    birth_month = day_month(birth)
    start_m = np.where(rng.random(n) < 0.5, m0, rng.integers(m0, m1 + 1, n))
    start_m = np.maximum(start_m, np.minimum(birth_month + 1, m1))
    age_start = (month_start(start_m) - birth) / DAYS_PER_YEAR
    payer1 = _draw_payer(age_start, rng)
    churn = np.asarray(MONTHLY_CHURN)[payer1]
    stay_months = rng.geometric(churn)
    end_m = np.minimum(start_m + stay_months - 1, m1)

    s1 = month_start(start_m)
    e1 = month_start(end_m + 1) - 1
    birth = np.minimum(birth, s1 - 1).astype(np.int32)  # nobody is enrolled before birth
    s2 = np.full(n, -1, dtype=np.int32)
    e2 = np.full(n, -1, dtype=np.int32)
    payer2 = payer1.copy()
    span_months = end_m - start_m + 1

    gap = (span_months >= 18) & (rng.random(n) < GAP_SHARE)
    gap_at = start_m + 6 + (rng.random(n) * np.maximum(span_months - 12, 1)).astype(np.int64)
    gap_len = rng.integers(1, 7, n)
    gap = gap & (gap_at + gap_len <= end_m)
    e1 = np.where(gap, month_start(gap_at) - 1, e1)
    s2 = np.where(gap, month_start(gap_at + gap_len), s2)
    e2 = np.where(gap, month_start(end_m + 1) - 1, e2)

    m65 = day_month(birth) + 65 * 12
    to_medicare = (~gap) & (payer1 == COMMERCIAL) & (m65 > start_m) & (m65 <= end_m) & (rng.random(n) < MEDICARE_SWITCH_SHARE)
    e1 = np.where(to_medicare, month_start(m65) - 1, e1)
    s2 = np.where(to_medicare, month_start(m65), s2)
    e2 = np.where(to_medicare, month_start(end_m + 1) - 1, e2)
    payer2 = np.where(to_medicare, MEDICARE, payer2).astype(np.int8)

    switched = np.zeros(n, dtype=bool)
    if plan_switch_share > 0:
        single = (s2 < 0) & (span_months >= 12) & (rng.random(n) < plan_switch_share)
        split_at = start_m + 3 + (rng.random(n) * np.maximum(span_months - 6, 1)).astype(np.int64)
        single &= split_at <= end_m
        e1 = np.where(single, month_start(split_at) - 1, e1)
        s2 = np.where(single, month_start(split_at), s2)
        e2 = np.where(single, month_start(end_m + 1) - 1, e2)
        switched = single | ((s2 >= 0) & (rng.random(n) < plan_switch_share))

    frailty = rng.normal(0.025 * (age_end - 50), 1.0)
    age_mid = (((s1 + np.where(s2 >= 0, e2, e1)) / 2) - birth) / DAYS_PER_YEAR
    hazard = np.exp(-9.8 + 0.085 * np.clip(age_mid, 0, 105) + 0.35 * frailty)
    death_offset = rng.exponential(1.0 / hazard) * DAYS_PER_YEAR
    members = Members(first_index, female, race, birth, zip_idx, frailty, payer1.astype(np.int8), payer2,
                      s1.astype(np.int32), e1.astype(np.int32), s2.astype(np.int32), e2.astype(np.int32), switched,
                      np.full(n, NO_DATE, dtype=np.int32))
    enrolled = members.enrolled_days()
    dies = death_offset < enrolled
    day = members.calendar_day(np.arange(n), np.minimum(death_offset, enrolled - 1).astype(np.int64))
    members.death = np.where(dies, day, NO_DATE).astype(np.int32)
    members.truncate_at_death()
    return members


def _draw_payer(age: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Commercial/Medicare/Medicaid by age: Medicare mostly 65+, Medicaid heavier in children."""
    u = rng.random(len(age))
    child = age < 18
    senior = age >= 65
    return np.select(
        [child & (u < 0.6), child, senior & (u < 0.93), senior & (u < 0.97), senior, u < 0.75, u < 0.95],
        [COMMERCIAL, MEDICAID, MEDICARE, COMMERCIAL, MEDICAID, COMMERCIAL, MEDICAID],
        default=MEDICARE,
    ).astype(np.int8)
