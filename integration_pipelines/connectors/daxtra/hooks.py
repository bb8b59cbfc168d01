"""Daxtra oddities the declarative mapping does not cover.

Daxtra's employment dates are partial (`2019`, `2019-03`) and an open-ended job ends with
the word "Present"; positions carry their title as a list. We normalise them to the same
shape Textkernel's positions map to: {title, employer, start, end} with ISO dates.
"""

import pandas as pd

from integration_pipelines.mapping.hooks import transform


def _iso(value: object) -> str | None:
    if not isinstance(value, str) or not value or value.lower() == "present":
        return None
    parts = value.split("-")
    parts += ["01"] * (3 - len(parts))
    return "-".join(parts[:3])


@transform
def positions(records: pd.DataFrame) -> pd.Series:
    """StructuredResume.EmploymentHistory -> list of {title, employer, start, end}."""
    column = "StructuredResume.EmploymentHistory"
    if column not in records:
        return pd.Series([[] for _ in range(len(records))], index=records.index, dtype=object)

    def one(history: object) -> list[dict]:
        if not isinstance(history, list):
            return []
        return [
            {
                "title": (p.get("Title") or [None])[0]
                if isinstance(p.get("Title"), list)
                else p.get("Title"),
                "employer": p.get("EmployerOrgName"),
                "start": _iso(p.get("StartDate")),
                "end": _iso(p.get("EndDate")),
            }
            for p in history
            if isinstance(p, dict)
        ]

    return records[column].map(one)
