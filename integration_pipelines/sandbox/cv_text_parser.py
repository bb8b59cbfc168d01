"""A small CV text parser shared by the Textkernel and Daxtra simulators.

It decodes plain-text or HTML CVs, rejects binary or empty input with
``UnreadableDocument``, and extracts the name, email, phone, location, summary, positions,
education, skills and languages. Each simulator shapes the ``ParsedCV`` into its own, very
different, response format. It is a heuristic parser aimed at the documents
``cv_documents.render_cv`` produces and at similar hand-written CVs; PDF/DOC/DOCX are
rejected as unsupported (the sandbox has no document converter).
"""

import codecs
import html
import re
from dataclasses import dataclass, field

from integration_pipelines.sandbox.data import CITIES, COUNTRIES, LANGUAGE_CODES


class UnreadableDocument(ValueError):
    """The document has no readable text (binary, unsupported format or empty)."""


@dataclass
class ParsedPosition:
    title: str
    employer: str
    start: str | None  # "YYYY-MM" or "YYYY"
    end: str | None  # "YYYY-MM" or "YYYY"; None when current
    is_current: bool
    description: str


@dataclass
class ParsedEducation:
    school: str
    degree: str
    year: int | None


@dataclass
class Section:
    kind: str
    heading: str
    first_line: int
    last_line: int


@dataclass
class ParsedCV:
    text: str
    doc_format: str  # "txt" or "html"
    lines: list[str]
    formatted_name: str = ""
    given_name: str = ""
    family_name: str = ""
    headline: str = ""
    email: str | None = None
    phone: str | None = None
    municipality: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    summary: str = ""
    positions: list[ParsedPosition] = field(default_factory=list)
    education: list[ParsedEducation] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    skill_levels: dict[str, str] = field(default_factory=dict)
    languages: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


HEADINGS: dict[str, tuple[str, ...]] = {
    "summary": (
        "profile",
        "summary",
        "professional summary",
        "personal statement",
        "about me",
        "objective",
        "career summary",
        "personal profile",
    ),
    "experience": (
        "experience",
        "work experience",
        "professional experience",
        "employment history",
        "employment",
        "work history",
        "career history",
    ),
    "education": ("education", "education and training", "qualifications", "academic background"),
    "skills": ("skills", "key skills", "technical skills", "core skills", "competencies"),
    "languages": ("languages", "language skills"),
    "contact": ("contact", "contact details", "personal details"),
}
_HEADING_KIND = {h: kind for kind, names in HEADINGS.items() for h in names}

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DATE = (
    r"(?:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{4}"
    r"|\d{1,2}/\d{4}|\d{4}-\d{2}|\d{4})"
)
_CURRENT = r"(?:present|current|now|today|date)"
_RANGE_RE = re.compile(rf"({_DATE})\s*(?:–|—|-|to|until)\s*({_DATE}|{_CURRENT})", re.IGNORECASE)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE_RE = re.compile(
    r"(?:(?:tel(?:ephone)?|phone|mobile|cell|m)\s*[:.]?\s*)?(\+?\d[\d\s().\-/]{6,}\d)", re.I
)
_YEAR_RE = re.compile(r"\b(19\d{2}|20\d{2})\b")
_COUNTRY_BY_NAME = {c.name.lower(): code for code, c in COUNTRIES.items()}
_COUNTRY_BY_NAME.update({"usa": "US", "uk": "GB", "england": "GB", "deutschland": "DE", "nederland": "NL"})
_CITY_NAMES = sorted({c[0] for c in CITIES}, key=len, reverse=True)
_SCHOOL_WORDS = ("universit", "college", "institute", "school", "academy", "hochschule", "polytechnic")
_HEADER_SEPARATORS = (" — ", " – ", " | ", " at ", " @ ", ", ", " - ")
_BLOCK_TAGS = re.compile(r"<\s*(?:br|/p|/h[1-6]|/li|/div|/tr|/ul|/ol|/table|/section|li|hr)\b[^>]*>", re.I)


def decode_document(data: bytes) -> tuple[str, str]:
    """Bytes -> (plain text, "txt" | "html"). Raises ``UnreadableDocument``."""
    if not data or not data.strip():
        raise UnreadableDocument("the document is empty")
    if data.startswith((b"%PDF", b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"{\\rtf")):
        raise UnreadableDocument("unsupported document format (PDF/DOC/DOCX/RTF need a converter)")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    bad = sum(
        1
        for ch in text
        if (ord(ch) < 32 and ch not in "\t\n\r\f") or ch == "\ufffd" or 0x7F <= ord(ch) < 0xA0
    )
    if bad / max(1, len(text)) > 0.02:
        raise UnreadableDocument("the document is not readable text (binary content)")
    fmt = "txt"
    if re.search(r"<\s*(html|body|div|p|h[1-6]|br|table|ul)\b", text[:4000], re.I):
        fmt = "html"
        text = html_to_text(text)
    if not re.search(r"[^\W\d_]", text):
        raise UnreadableDocument("the document contains no text")
    return text, fmt


def html_to_text(markup: str) -> str:
    """Strip tags from simple HTML, keeping one line per block element."""
    text = re.sub(r"<!--.*?-->", " ", markup, flags=re.S)
    text = re.sub(r"<\s*(head|script|style)\b.*?<\s*/\s*\1\s*>", " ", text, flags=re.S | re.I)
    text = re.sub(r"\s*\n\s*", " ", text)
    text = _BLOCK_TAGS.sub("\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text)


def _clean(line: str) -> str:
    return re.sub(r"\s+", " ", line.replace("\u00a0", " ")).strip()


def _heading_kind(line: str) -> str | None:
    key = line.strip().rstrip(":").strip().lower()
    return _HEADING_KIND.get(key)


def _date_value(token: str) -> str | None:
    t = token.strip().lower().rstrip(".")
    if re.fullmatch(_CURRENT, t):
        return None
    m = re.fullmatch(r"([a-z]+)\.?\s+(\d{4})", t)
    if m:
        month = _MONTHS.get(m.group(1)[:3])
        return f"{m.group(2)}-{month:02d}" if month else m.group(2)
    m = re.fullmatch(r"(\d{1,2})/(\d{4})", t)
    if m:
        return f"{m.group(2)}-{int(m.group(1)):02d}"
    return t


def _split_header(text: str) -> tuple[str, str]:
    for sep in _HEADER_SEPARATORS:
        if sep in text:
            left, right = text.split(sep, 1)
            return left.strip(" ,|"), right.strip(" ,|")
    return text.strip(), ""


def _parse_location(segment: str) -> tuple[str | None, str | None, str | None]:
    """'Leeds LS1 4AP, United Kingdom' -> ('Leeds', 'LS1 4AP', 'GB')."""
    left, country = segment, None
    if "," in segment:
        head, tail = segment.rsplit(",", 1)
        tail = tail.strip()
        code = _COUNTRY_BY_NAME.get(tail.lower()) or (tail if re.fullmatch(r"[A-Z]{2}", tail) else None)
        if code:
            left, country = head.strip(), code
    for city in _CITY_NAMES:
        if left.lower().startswith(city.lower()):
            postal = left[len(city) :].strip(" ,") or None
            return city, postal, country
    tokens = left.split()
    cut = len(tokens)
    while cut > 1 and re.search(r"\d", tokens[cut - 1]):
        cut -= 1
    city = " ".join(tokens[:cut]).strip(" ,") or None
    postal = " ".join(tokens[cut:]) or None
    return city, postal, country


def _looks_like_name(line: str) -> bool:
    words = line.split()
    return (
        0 < len(words) <= 6
        and len(line) <= 60
        and "@" not in line
        and not re.search(r"\d", line)
        and any(w[:1].isupper() for w in words)
    )


def _split_list(lines: list[str]) -> list[str]:
    items: list[str] = []
    for line in lines:
        for part in re.split(r"[,;•·|]", line):
            item = re.sub(r"^[-*–]\s+", "", part.strip()).strip()
            if item and len(item) <= 60:
                items.append(item)
    return items


def parse_cv(data: bytes) -> ParsedCV:
    """Decode and parse a CV. Raises ``UnreadableDocument`` for unreadable input."""
    text, fmt = decode_document(data)
    lines = [c for c in (_clean(raw) for raw in text.splitlines()) if c]
    cv = ParsedCV(text="\n".join(lines), doc_format=fmt, lines=lines)

    heads = [(i, kind) for i, line in enumerate(lines) if (kind := _heading_kind(line))]
    for n, (i, kind) in enumerate(heads):
        end = heads[n + 1][0] - 1 if n + 1 < len(heads) else len(lines) - 1
        cv.sections.append(Section(kind=kind, heading=lines[i], first_line=i, last_line=end))
    header = lines[: heads[0][0]] if heads else lines[:4]

    _parse_header(cv, header)
    if cv.email is None:
        m = _EMAIL_RE.search(cv.text)
        cv.email = m.group(0) if m else None

    for sec in cv.sections:
        body = lines[sec.first_line + 1 : sec.last_line + 1]
        if sec.kind == "summary":
            cv.summary = " ".join(body)
        elif sec.kind == "experience":
            cv.positions = _parse_positions(body)
        elif sec.kind == "education":
            cv.education = _parse_education(body)
        elif sec.kind == "skills":
            for item in _split_list(body):
                m = re.fullmatch(r"(.+?)\s*\(([^)]+)\)", item)
                name = m.group(1) if m else item
                if m:
                    cv.skill_levels[name] = m.group(2)
                if name not in cv.skills:
                    cv.skills.append(name)
        elif sec.kind == "languages":
            for item in _split_list(body):
                name = re.sub(r"\s*[(\-–:].*$", "", item).strip()
                if name and name not in cv.languages:
                    cv.languages.append(name)
        elif sec.kind == "contact":
            _parse_header(cv, body)
    return cv


def _parse_header(cv: ParsedCV, header: list[str]) -> None:
    for line in header:
        if not cv.formatted_name and _looks_like_name(line):
            cv.formatted_name = line
            words = line.split()
            cv.given_name, cv.family_name = words[0], " ".join(words[1:])
            continue
        segments = [s.strip() for s in re.split(r"\s[|•·]\s|\s\|\s|;", line) if s.strip()]
        contact_line = False
        for seg in segments:
            email = _EMAIL_RE.fullmatch(re.sub(r"^e-?mail\s*[:.]?\s*", "", seg, flags=re.I))
            if email:
                cv.email = cv.email or email.group(0)
                contact_line = True
                continue
            phone = _PHONE_RE.fullmatch(seg)
            if phone:
                cv.phone = cv.phone or phone.group(1).strip()
                contact_line = True
                continue
            if len(segments) > 1 or "," in seg:
                city, postal, country = _parse_location(
                    re.sub(r"^(address|location)\s*:\s*", "", seg, flags=re.I)
                )
                if city and cv.municipality is None:
                    cv.municipality, cv.postal_code, cv.country_code = city, postal, country
                    contact_line = True
        if not contact_line and cv.formatted_name and not cv.headline and line != cv.formatted_name:
            cv.headline = line


def _parse_positions(body: list[str]) -> list[ParsedPosition]:
    entries: list[tuple[int, int, str, str | None, str | None]] = []  # header idx, date idx, header
    for i, line in enumerate(body):
        m = _RANGE_RE.search(line)
        if not m:
            continue
        rest = (line[: m.start()] + line[m.end() :]).strip(" ()|,–—-")
        if re.search(r"[^\W\d_]{2,}", rest):
            header_idx, header = i, rest
        elif i > 0 and (not entries or entries[-1][1] < i - 1):
            header_idx, header = i - 1, body[i - 1]
        else:
            header_idx, header = i, ""
        entries.append((header_idx, i, header, _date_value(m.group(1)), _date_value(m.group(2))))
    positions = []
    for n, (_h, date_idx, header, start, end) in enumerate(entries):
        stop = entries[n + 1][0] if n + 1 < len(entries) else len(body)
        title, employer = _split_header(header)
        positions.append(
            ParsedPosition(
                title=title,
                employer=employer,
                start=start,
                end=end,
                is_current=end is None,
                description=" ".join(body[date_idx + 1 : stop]),
            )
        )
    return positions


def _parse_education(body: list[str]) -> list[ParsedEducation]:
    out = []
    for line in body:
        years = _YEAR_RE.findall(line)
        rest = _RANGE_RE.sub("", line)
        rest = _YEAR_RE.sub("", rest).strip(" ,()–—-|")
        parts = [p.strip() for p in re.split(r" — | – | \| |, | - ", rest) if p.strip()]
        if not parts or (len(parts) == 1 and not years):
            continue
        school_idx = next(
            (k for k, p in enumerate(parts) if any(w in p.lower() for w in _SCHOOL_WORDS)), None
        )
        if school_idx is None:
            school_idx = 1 if len(parts) > 1 else None
        school = parts[school_idx] if school_idx is not None else ""
        degree = " ".join(p for k, p in enumerate(parts) if k != school_idx)
        out.append(ParsedEducation(school=school, degree=degree, year=int(years[-1]) if years else None))
    return out


def language_code(name: str) -> str | None:
    """ISO 639-1 code of a language name we know, else ``None``."""
    return LANGUAGE_CODES.get(name.strip().title())
