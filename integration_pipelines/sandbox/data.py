"""Deterministic, realistic-looking data for the partner simulators.

Everything is generated with ``random.Random(seed)`` from built-in lists, so the same tenant
name always yields the same people, requisitions and workers, on every machine. Names come
from several cultures (with accents, particles such as "van der" and apostrophes) so that
parsers and mappings meet real-world text. Seeded timestamps lie in a fixed window in 2026;
"now" only enters through ``touch``/``add_records`` in the VMS simulators.
"""

import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Country:
    name: str
    dial_code: str
    currency: str
    languages: tuple[str, ...]
    cultures: tuple[str, ...]


COUNTRIES: dict[str, Country] = {
    "US": Country("United States", "+1", "USD", ("English",), ("anglo", "hispanic", "east_asian", "indian")),
    "GB": Country("United Kingdom", "+44", "GBP", ("English",), ("anglo", "indian", "polish")),
    "IE": Country("Ireland", "+353", "EUR", ("English",), ("anglo",)),
    "DE": Country("Germany", "+49", "EUR", ("German",), ("german", "polish")),
    "NL": Country("Netherlands", "+31", "EUR", ("Dutch",), ("dutch",)),
    "FR": Country("France", "+33", "EUR", ("French",), ("french",)),
    "ES": Country("Spain", "+34", "EUR", ("Spanish",), ("hispanic",)),
    "PL": Country("Poland", "+48", "PLN", ("Polish",), ("polish",)),
    "IN": Country("India", "+91", "INR", ("Hindi", "English"), ("indian",)),
    "CA": Country("Canada", "+1", "CAD", ("English", "French"), ("anglo", "french", "east_asian")),
    "AU": Country("Australia", "+61", "AUD", ("English",), ("anglo", "east_asian")),
    "BR": Country("Brazil", "+55", "BRL", ("Portuguese",), ("portuguese",)),
    "ZA": Country("South Africa", "+27", "ZAR", ("English", "Afrikaans"), ("african", "anglo")),
}

#: (city, region code, postal code, country code)
CITIES: list[tuple[str, str, str, str]] = [
    ("Austin", "TX", "78701", "US"),
    ("Chicago", "IL", "60601", "US"),
    ("Seattle", "WA", "98101", "US"),
    ("Atlanta", "GA", "30303", "US"),
    ("Denver", "CO", "80202", "US"),
    ("Boston", "MA", "02108", "US"),
    ("Phoenix", "AZ", "85004", "US"),
    ("Charlotte", "NC", "28202", "US"),
    ("Columbus", "OH", "43215", "US"),
    ("Dallas", "TX", "75201", "US"),
    ("San Diego", "CA", "92101", "US"),
    ("Nashville", "TN", "37201", "US"),
    ("Leeds", "ENG", "LS1 4AP", "GB"),
    ("Manchester", "ENG", "M1 1AE", "GB"),
    ("London", "ENG", "EC1A 1BB", "GB"),
    ("Edinburgh", "SCT", "EH1 1YZ", "GB"),
    ("Dublin", "D", "D02 X285", "IE"),
    ("Berlin", "BE", "10115", "DE"),
    ("Frankfurt am Main", "HE", "60311", "DE"),
    ("München", "BY", "80331", "DE"),
    ("Amsterdam", "NH", "1012 AB", "NL"),
    ("Rotterdam", "ZH", "3011 AD", "NL"),
    ("Paris", "IDF", "75001", "FR"),
    ("Lyon", "ARA", "69002", "FR"),
    ("Madrid", "MD", "28013", "ES"),
    ("Barcelona", "CT", "08001", "ES"),
    ("Kraków", "MA", "31-042", "PL"),
    ("Warsaw", "MZ", "00-001", "PL"),
    ("Bengaluru", "KA", "560001", "IN"),
    ("Pune", "MH", "411001", "IN"),
    ("Toronto", "ON", "M5V 2T6", "CA"),
    ("Montréal", "QC", "H2Y 1C6", "CA"),
    ("Sydney", "NSW", "2000", "AU"),
    ("Melbourne", "VIC", "3000", "AU"),
    ("São Paulo", "SP", "01310-100", "BR"),
    ("Cape Town", "WC", "8001", "ZA"),
]

#: Cities used for VMS requisitions (buyers mostly post in North America and the UK).
VMS_CITIES: list[tuple[str, str, str, str]] = [c for c in CITIES if c[3] in ("US", "CA", "GB")]

NAMES: dict[str, tuple[list[str], list[str]]] = {
    "anglo": (
        [
            "James",
            "Olivia",
            "Liam",
            "Emma",
            "Noah",
            "Ava",
            "Ethan",
            "Sophie",
            "Grace",
            "Jack",
            "Chloe",
            "Daniel",
            "Megan",
            "Ryan",
            "Hannah",
            "Aidan",
            "Siobhan",
        ],
        [
            "Smith",
            "Johnson",
            "Brown",
            "Taylor",
            "Wilson",
            "Clarke",
            "Walker",
            "Hughes",
            "Bennett",
            "O'Neill",
            "McCarthy",
            "Fletcher",
            "Murphy",
            "Doyle",
        ],
    ),
    "hispanic": (
        ["Sofía", "Mateo", "Lucía", "Diego", "Valentina", "Javier", "Camila", "Alejandro", "María", "Carlos"],
        ["García López", "Martínez", "Rodríguez", "Hernández", "Fernández", "Sánchez", "Ramírez", "Torres"],
    ),
    "german": (
        ["Lukas", "Anna", "Jonas", "Lea", "Felix", "Marie", "Maximilian", "Johanna", "Jürgen"],
        ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Hoffmann", "Schäfer"],
    ),
    "dutch": (
        ["Daan", "Sanne", "Bram", "Fleur", "Sem", "Lotte", "Joris", "Anouk"],
        ["de Vries", "van der Berg", "Jansen", "Bakker", "Visser", "Smit", "van Dijk", "de Jong"],
    ),
    "french": (
        ["Camille", "Hugo", "Léa", "Louis", "Chloé", "Théo", "Manon", "Étienne"],
        ["Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Laurent", "Girard"],
    ),
    "indian": (
        ["Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Kavya", "Arjun", "Sneha", "Rahul", "Meera"],
        ["Sharma", "Patel", "Iyer", "Reddy", "Nair", "Gupta", "Mehta", "Kulkarni"],
    ),
    "east_asian": (
        ["Wei", "Mei", "Hiroshi", "Yuki", "Min-jun", "Seo-yeon", "Jun", "Lin"],
        ["Chen", "Wang", "Tanaka", "Sato", "Kim", "Park", "Nguyen", "Li"],
    ),
    "polish": (
        ["Jakub", "Zuzanna", "Kacper", "Julia", "Wojciech", "Małgorzata"],
        ["Kowalski", "Nowak", "Wiśniewski", "Wójcik", "Lewandowski", "Zieliński"],
    ),
    "portuguese": (
        ["João", "Ana", "Pedro", "Beatriz", "Lucas", "Larissa", "Gabriel"],
        ["Silva", "Santos", "Oliveira", "Souza", "Costa", "Pereira", "Almeida"],
    ),
    "african": (
        ["Thabo", "Naledi", "Sipho", "Ayanda", "Kwame", "Amara", "Chinedu", "Zanele"],
        ["Nkosi", "Dlamini", "Mokoena", "Okafor", "Mensah", "Botha", "van Wyk", "Naidoo"],
    ),
}

EXTRA_LANGUAGES = [
    "English",
    "Spanish",
    "French",
    "German",
    "Mandarin",
    "Portuguese",
    "Dutch",
    "Polish",
    "Hindi",
    "Arabic",
    "Italian",
    "Japanese",
]

LANGUAGE_CODES: dict[str, str] = {
    "English": "en",
    "Spanish": "es",
    "French": "fr",
    "German": "de",
    "Mandarin": "zh",
    "Portuguese": "pt",
    "Dutch": "nl",
    "Polish": "pl",
    "Hindi": "hi",
    "Arabic": "ar",
    "Italian": "it",
    "Japanese": "ja",
    "Afrikaans": "af",
}


@dataclass(frozen=True)
class JobFamily:
    name: str
    titles: tuple[str, ...]
    skills: tuple[str, ...]
    degrees: tuple[str, ...]
    employers: tuple[str, ...]
    duties: tuple[str, ...]
    hourly_rate: tuple[int, int]


JOB_FAMILIES: dict[str, JobFamily] = {
    "software": JobFamily(
        "software",
        (
            "Software Engineer",
            "Senior Java Developer",
            "Python Developer",
            "Front-End Developer",
            "DevOps Engineer",
            "Data Engineer",
            "QA Automation Engineer",
            "Cloud Architect",
            "Full Stack Developer",
            "Lead Backend Engineer",
        ),
        (
            "Java",
            "Python",
            "JavaScript",
            "TypeScript",
            "React",
            "Spring Boot",
            "SQL",
            "PostgreSQL",
            "AWS",
            "Azure",
            "Docker",
            "Kubernetes",
            "Terraform",
            "Git",
            "CI/CD",
            "REST APIs",
            "Kafka",
            "Linux",
            "Selenium",
            "Agile",
        ),
        ("BSc Computer Science", "MSc Software Engineering", "BEng Electronic Engineering"),
        (
            "Northwind Traders Ltd",
            "Contoso Ltd",
            "Fabrikam Inc",
            "Litware Inc",
            "Proseware GmbH",
            "Relecloud Inc",
            "Trey Research LLC",
            "Woodgrove Bank plc",
            "Tailspin Toys B.V.",
        ),
        (
            "Built and maintained {s1} services used by {n} internal teams.",
            "Migrated legacy workloads to {s2}, cutting hosting costs by {p} percent.",
            "Introduced automated testing with {s1} and raised coverage to {p} percent.",
            "Mentored {n} junior engineers and ran weekly code reviews.",
            "Designed event-driven integrations on {s2} for order and billing data.",
        ),
        (55, 140),
    ),
    "healthcare": JobFamily(
        "healthcare",
        (
            "Registered Nurse",
            "ICU Nurse",
            "Medical Assistant",
            "Clinical Research Associate",
            "Pharmacy Technician",
            "Travel Nurse",
            "Senior Staff Nurse",
        ),
        (
            "Patient Care",
            "Electronic Health Records",
            "Epic",
            "Medication Administration",
            "BLS Certification",
            "ACLS",
            "Phlebotomy",
            "Infection Control",
            "Triage",
            "Good Clinical Practice",
        ),
        ("Bachelor of Science in Nursing", "Diploma in Pharmacy", "BSc Biomedical Science"),
        (
            "Riverside Medical Center",
            "Mercy General Hospital",
            "Umbrella Health Inc",
            "St. Mary's Hospital",
            "Lakeside Clinic LLC",
            "Trey Research LLC",
        ),
        (
            "Cared for up to {n} patients per shift on a busy {s1} ward.",
            "Documented treatment plans in {s2} and trained colleagues on the new workflow.",
            "Reduced medication errors by {p} percent through double-check routines.",
            "Coordinated discharge planning with {n} multidisciplinary teams.",
        ),
        (45, 110),
    ),
    "finance": JobFamily(
        "finance",
        (
            "Accountant",
            "Financial Analyst",
            "Payroll Specialist",
            "Accounts Payable Clerk",
            "Finance Manager",
            "Senior Auditor",
        ),
        (
            "Excel",
            "SAP FI",
            "Financial Reporting",
            "IFRS",
            "US GAAP",
            "Reconciliation",
            "Budgeting",
            "Forecasting",
            "Power BI",
            "QuickBooks",
            "Payroll",
            "Audit",
        ),
        ("BA Accounting", "BSc Finance", "MBA"),
        (
            "Woodgrove Bank plc",
            "Humongous Insurance Inc",
            "Fourth Coffee Ltd",
            "Lucerne Publishing",
            "Contoso Ltd",
            "Wide World Importers",
        ),
        (
            "Prepared monthly {s1} packs for {n} business units.",
            "Automated bank reconciliation in {s2}, saving {n} hours a month.",
            "Closed the books {p} percent faster after redesigning the close calendar.",
            "Supported external auditors and owned {s1} documentation.",
        ),
        (40, 95),
    ),
    "logistics": JobFamily(
        "logistics",
        (
            "Warehouse Supervisor",
            "Forklift Operator",
            "Logistics Coordinator",
            "Supply Chain Analyst",
            "CNC Machinist",
            "Maintenance Technician",
        ),
        (
            "Inventory Management",
            "Forklift License",
            "WMS",
            "SAP MM",
            "Lean Manufacturing",
            "Six Sigma",
            "Health and Safety",
            "Shipping and Receiving",
            "CNC Programming",
            "PLC",
        ),
        ("Associate Degree in Logistics", "BSc Supply Chain Management", "Diploma in Mechanical Engineering"),
        (
            "Wide World Importers",
            "Adventure Works Inc",
            "Alpine Ski House",
            "Coho Winery",
            "Blue Yonder Airlines",
            "Wingtip Toys Ltd",
        ),
        (
            "Led a team of {n} operatives across two shifts.",
            "Improved pick accuracy by {p} percent with {s1} slotting rules.",
            "Rolled out {s2} checks that cut lost-time incidents by {p} percent.",
            "Managed inbound and outbound flows for {n} daily trailers.",
        ),
        (18, 40),
    ),
    "office": JobFamily(
        "office",
        (
            "Office Administrator",
            "Executive Assistant",
            "Customer Service Representative",
            "HR Coordinator",
            "Recruiter",
            "Project Coordinator",
        ),
        (
            "Microsoft Office",
            "Scheduling",
            "Customer Service",
            "Data Entry",
            "Salesforce",
            "Workday",
            "Recruitment",
            "Onboarding",
            "Communication",
            "Zendesk",
        ),
        ("BA Business Administration", "BA Communications", "Diploma in Office Management"),
        (
            "Margie's Travel",
            "Graphic Design Institute",
            "Southridge Video",
            "Fourth Coffee Ltd",
            "Lucerne Publishing",
            "Humongous Insurance Inc",
        ),
        (
            "Handled around {n} customer contacts a day in {s1}.",
            "Organised travel and diaries for {n} directors.",
            "Cut onboarding time by {p} percent with a new {s2} checklist.",
            "Kept {s1} records accurate and audit-ready.",
        ),
        (20, 45),
    ),
}

SCHOOLS: list[str] = [
    "University of Leeds",
    "University of Texas at Austin",
    "Technische Universität München",
    "Universiteit van Amsterdam",
    "Indian Institute of Technology Bombay",
    "Universidade de São Paulo",
    "University of Toronto",
    "University of Cape Town",
    "Sorbonne Université",
    "Universidad Complutense de Madrid",
    "Jagiellonian University",
    "University of Melbourne",
    "Trinity College Dublin",
    "Georgia Institute of Technology",
    "Ohio State University",
    "Austin Community College",
]

ENTERPRISES: list[str] = [
    "Globex Corporation",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Soylent Foods",
    "Cyberdyne Systems",
    "Tyrell Logistics",
    "Hooli",
    "Massive Dynamic",
]

EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]

#: Fixed window of seeded timestamps (data must not depend on when the sandbox runs).
SEED_WINDOW_START = datetime(2026, 1, 5, tzinfo=UTC)
SEED_WINDOW_DAYS = 260


def seeded_rng(*parts: str) -> random.Random:
    """``random.Random`` seeded from strings (str seeds are hashed with SHA-512: stable)."""
    return random.Random(":".join(parts))


def ascii_slug(text: str) -> str:
    """'Sofía García López' -> 'sofiagarcialopez' (for emails and ids)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def phone_number(country_code: str, rng: random.Random) -> str:
    """A plausible phone number in the country's usual display format."""

    def d(k: int) -> str:
        return "".join(str(rng.randint(0, 9)) for _ in range(k))

    dial = COUNTRIES[country_code].dial_code
    if country_code in ("US", "CA"):
        return f"{dial} {rng.randint(201, 989)} 555 {d(4)}"
    if country_code == "GB":
        return f"{dial} 7700 900{d(3)}"
    if country_code == "FR":
        return f"{dial} 6 {d(2)} {d(2)} {d(2)} {d(2)}"
    if country_code == "NL":
        return f"{dial} 6 {d(8)}"
    if country_code == "IN":
        return f"{dial} 9{d(4)} {d(5)}"
    if country_code == "BR":
        return f"{dial} 11 9{d(4)} {d(4)}"
    if country_code == "DE":
        return f"{dial} 151 {d(8)}"
    return f"{dial} {d(2)} {d(3)} {d(4)}"


def _month(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _positions(family: JobFamily, rng: random.Random, skills: list[str]) -> list[dict[str, Any]]:
    count = rng.randint(1, 4)
    end_year, end_month = 2026, rng.randint(1, 9)
    current = rng.random() < 0.6
    positions: list[dict[str, Any]] = []
    employers = rng.sample(list(family.employers), k=min(count, len(family.employers)))
    for i in range(count):
        months = rng.randint(10, 60)
        start_index = end_year * 12 + (end_month - 1) - months
        start_year, start_month = divmod(start_index, 12)
        duties = rng.sample(list(family.duties), k=2)
        description = " ".join(
            t.format(
                s1=rng.choice(skills), s2=rng.choice(skills), n=rng.randint(3, 40), p=rng.randint(10, 45)
            )
            for t in duties
        )
        positions.append(
            {
                "employer": employers[i % len(employers)],
                "title": rng.choice(family.titles),
                "start": _month(start_year, start_month + 1),
                "end": None if (i == 0 and current) else _month(end_year, end_month),
                "description": description,
            }
        )
        gap = rng.randint(0, 3)
        prev_index = start_index - gap - 1
        end_year, end_month = prev_index // 12, prev_index % 12 + 1
    return positions


def generate_candidates(tenant: str, n: int) -> list[dict[str, Any]]:
    """``n`` deterministic candidate profiles for ``tenant`` (same input, same output).

    Keys: ``first_name, last_name, email, phone, city, postal_code, country_code, headline,
    positions`` (most recent first; ``end`` is ``None`` for a current job), ``education,
    skills, languages``.
    """
    rng = seeded_rng("candidates", tenant)
    seen_emails: set[str] = set()
    people: list[dict[str, Any]] = []
    for _ in range(n):
        city, _region, postal, cc = rng.choice(CITIES)
        country = COUNTRIES[cc]
        culture = rng.choice(country.cultures)
        first = rng.choice(NAMES[culture][0])
        last = rng.choice(NAMES[culture][1])
        local = f"{ascii_slug(first)}.{ascii_slug(last)}"
        email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
        suffix = 2
        while email in seen_emails:
            email = f"{local}{suffix}@{email.split('@')[1]}"
            suffix += 1
        seen_emails.add(email)
        family = JOB_FAMILIES[rng.choice(list(JOB_FAMILIES))]
        skills = rng.sample(list(family.skills), k=rng.randint(5, min(10, len(family.skills))))
        positions = _positions(family, rng, skills)
        grad_year = int(positions[-1]["start"][:4]) - rng.randint(0, 2)
        education = [{"school": rng.choice(SCHOOLS), "degree": rng.choice(family.degrees), "year": grad_year}]
        if rng.random() < 0.25:
            education.insert(
                0,
                {
                    "school": rng.choice(SCHOOLS),
                    "degree": "MBA" if family.name != "software" else "MSc Data Science",
                    "year": grad_year + rng.randint(3, 6),
                },
            )
        languages = list(
            dict.fromkeys(
                list(country.languages[:1])
                + (["English"] if rng.random() < 0.8 else [])
                + rng.sample(EXTRA_LANGUAGES, k=rng.randint(0, 1))
            )
        )
        years = max(1, 2026 - int(positions[-1]["start"][:4]))
        headline = f"{positions[0]['title']} with {years} year{'s' if years != 1 else ''} of experience"
        people.append(
            {
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": phone_number(cc, rng),
                "city": city,
                "postal_code": postal,
                "country_code": cc,
                "headline": headline,
                "positions": positions,
                "education": education,
                "skills": skills,
                "languages": languages,
            }
        )
    return people


def iso_utc(moment: datetime) -> str:
    """``2025-06-11T09:12:00Z`` (UTC, whole seconds)."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(text: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` or offset; a bare date means midnight UTC)."""
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def generate_requisitions(seed: str, n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` partner-neutral requisitions (job orders) for a VMS simulator to shape.

    Record ``i`` depends only on ``seed`` and ``start + i``, so ``add_records`` can extend a
    tenant's list deterministically. Timestamps fall in the fixed 2026 seed window.
    """
    out: list[dict[str, Any]] = []
    for index in range(start, start + n):
        rng = seeded_rng("requisition", seed, str(index))
        family = JOB_FAMILIES[rng.choice(list(JOB_FAMILIES))]
        title = rng.choice(family.titles)
        city, region, postal, cc = rng.choice(VMS_CITIES)
        created = SEED_WINDOW_START + timedelta(
            days=rng.randint(0, SEED_WINDOW_DAYS - 30),
            hours=rng.randint(7, 18),
            minutes=rng.randint(0, 59),
            seconds=rng.randint(0, 59),
        )
        updated = created + timedelta(days=rng.randint(0, 25), minutes=rng.randint(0, 600))
        start_date = (created + timedelta(days=rng.randint(14, 60))).date()
        end_date = start_date + timedelta(days=rng.randint(90, 365))
        low, high = family.hourly_rate
        hourly = rng.uniform(low, high)
        period = rng.choices(["HOURLY", "DAILY", "WEEKLY"], weights=[8, 2, 1])[0]
        factor = {"HOURLY": 1, "DAILY": 8, "WEEKLY": 40}[period]
        skills = rng.sample(list(family.skills), k=4)
        enterprise = rng.choice(ENTERPRISES)
        article = "an" if title[0] in "AEIOU" else "a"
        description = (
            f"We are looking for {article} {title} to join the {city} team. "
            f"Required skills: {', '.join(skills)}. "
            f"{rng.choice(['Hybrid, three days on site.', 'Fully on site.', 'Remote within the country.'])}"
        )
        out.append(
            {
                "index": index,
                "family": family.name,
                "title": title,
                "skills": skills,
                "description": description,
                "city": city,
                "region": region,
                "postal_code": postal,
                "country_code": cc,
                "positions": rng.choices([1, 2, 3, 5], weights=[6, 3, 2, 1])[0],
                "start_date": start_date,
                "end_date": end_date,
                "bill_rate_max": round(hourly * factor, 2),
                "currency": COUNTRIES[cc].currency,
                "rate_period": period,
                "status_roll": rng.random(),
                "enterprise": enterprise,
                "cost_center": f"CC-{rng.randint(10, 99)}",
                "department": rng.choice(["Engineering", "Operations", "Finance", "Clinical", "Support"]),
                "shift": rng.choice(["Day", "Night", "Rotating"]),
                "created": created,
                "updated": updated,
            }
        )
    return out


def next_after(latest: datetime | None) -> datetime:
    """Now (whole seconds, UTC), but strictly later than ``latest``."""
    now = datetime.now(UTC).replace(microsecond=0)
    if latest is not None and now <= latest:
        return latest + timedelta(seconds=1)
    return now
