"""Realistic CV documents (plain text or simple HTML) rendered from generated candidates.

The two formats deliberately differ in layout details (dash styles, date styles, list
markup) the way real CVs do, so the parser simulators are exercised on more than one shape.
"""

import html
import random
from typing import Any

from integration_pipelines.sandbox.data import COUNTRIES

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _human_month(value: str | None) -> str:
    if value is None:
        return "Present"
    year, month = value.split("-")
    return f"{_MONTHS[int(month) - 1]} {year}"


def _slash_month(value: str | None) -> str:
    if value is None:
        return "Present"
    year, month = value.split("-")
    return f"{month}/{year}"


def full_name(candidate: dict[str, Any]) -> str:
    return f"{candidate['first_name']} {candidate['last_name']}"


def location_line(candidate: dict[str, Any]) -> str:
    """'Leeds LS1 4AP, United Kingdom'."""
    country = COUNTRIES[candidate["country_code"]].name
    return f"{candidate['city']} {candidate['postal_code']}, {country}"


def summary_text(candidate: dict[str, Any]) -> str:
    skills = candidate["skills"]
    return (
        f"{candidate['headline']}. Experienced in {skills[0]}, {skills[1]} and {skills[2]}, "
        f"with a track record of delivering on time for demanding clients. "
        f"Based in {candidate['city']} and open to contract and permanent roles."
    )


def render_cv(candidate: dict[str, Any], fmt: str = "txt") -> bytes:
    """A CV for ``candidate`` (from ``generate_candidates``) as UTF-8 bytes.

    ``fmt`` is ``"txt"`` (plain text) or ``"html"`` (simple HTML). Layout: the name on the
    first line, the headline, a contact line (location | email | phone), then the sections
    PROFILE, EXPERIENCE, EDUCATION, SKILLS and LANGUAGES.
    """
    if fmt == "txt":
        return _render_txt(candidate).encode("utf-8")
    if fmt == "html":
        return _render_html(candidate).encode("utf-8")
    raise ValueError(f"unknown CV format {fmt!r}; use 'txt' or 'html'")


def _render_txt(c: dict[str, Any]) -> str:
    out = [
        full_name(c),
        c["headline"],
        f"{location_line(c)} | {c['email']} | {c['phone']}",
        "",
        "PROFILE",
        summary_text(c),
        "",
        "EXPERIENCE",
    ]
    for pos in c["positions"]:
        out += [
            f"{pos['title']} — {pos['employer']}",
            f"{_human_month(pos['start'])} – {_human_month(pos['end'])}",
            pos["description"],
            "",
        ]
    out.append("EDUCATION")
    out += [f"{e['degree']} — {e['school']}, {e['year']}" for e in c["education"]]
    out += ["", "SKILLS", ", ".join(c["skills"]), "", "LANGUAGES", ", ".join(c["languages"]), ""]
    return "\n".join(out)


def _render_html(c: dict[str, Any]) -> str:
    e = html.escape
    jobs = "\n".join(
        f'<div class="job"><h3>{e(p["title"])} at {e(p["employer"])}</h3>'
        f'<p class="dates">{_slash_month(p["start"])} - {_slash_month(p["end"])}</p>'
        f"<p>{e(p['description'])}</p></div>"
        for p in c["positions"]
    )
    schools = "".join(f"<li>{e(x['degree'])} – {e(x['school'])}, {x['year']}</li>" for x in c["education"])
    skills = "".join(f"<li>{e(s)}</li>" for s in c["skills"])
    email = f'<a href="mailto:{e(c["email"])}">{e(c["email"])}</a>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Curriculum Vitae - {e(full_name(c))}</title>
<style>body {{ font-family: sans-serif; }} h2 {{ text-transform: uppercase; }}</style></head>
<body>
<h1>{e(full_name(c))}</h1>
<p class="headline">{e(c["headline"])}</p>
<p class="contact">{e(location_line(c))} | {email} | {e(c["phone"])}</p>
<h2>Profile</h2>
<p>{e(summary_text(c))}</p>
<h2>Experience</h2>
{jobs}
<h2>Education</h2>
<ul>{schools}</ul>
<h2>Skills</h2>
<ul>{skills}</ul>
<h2>Languages</h2>
<p>{e(", ".join(c["languages"]))}</p>
</body>
</html>
"""


def corrupt_document(seed: int = 0, size: int = 4096) -> bytes:
    """Bytes no parser can read: mostly binary noise with control bytes and NULs."""
    rng = random.Random(f"corrupt:{seed}")
    noise = bytearray(rng.randbytes(size))
    for i in range(0, size, 7):
        noise[i] = 0
    return b"\x00\x01\x02\x03" + bytes(noise)
