"""Synthetic people records with realistic noise, for the identity-resolution example.

This module owns the *data*, never the matching: it knows which records belong to one person
and writes that truth to a separate file (``truth.parquet``) that the matching steps never
read. Everything is deterministic for a given ``(records, seed)``: one ``numpy`` Generator
drives every random choice, so the same seed gives the same Parquet bytes.

Noise applied per record: typos (substitution, deletion, insertion, transposition), nicknames,
missing fields, swapped first and last names, people who moved or changed phone or email, and
varied formats for phones, emails, addresses, zips and dates of birth. Households (people who
share a surname, an address and a phone) make the negatives hard, not just the positives.

CLI: ``python -m examples.identity_resolution.generate --records N --seed S --out PATH``,
where PATH is a local folder or an ``s3://`` URL (written through fsspec).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SHARD_ROWS = 50_000


def words(text: str) -> list[str]:
    """Long name lists stay readable as one string of space-separated words."""
    return text.split()


RECORDS_PER_PERSON = np.array([0.36, 0.26, 0.18, 0.12, 0.08])  # 1..5 records, mean ~2.3

# Canonical first name -> nicknames a person may go by. The matcher has its own (different,
# incomplete) dictionary, as a real one would.
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "william": ("bill", "will", "billy"), "robert": ("bob", "rob", "bobby"),
    "richard": ("rick", "dick", "rich"), "james": ("jim", "jimmy", "jamie"),
    "john": ("johnny", "jack"), "joseph": ("joe", "joey"), "thomas": ("tom", "tommy"),
    "charles": ("charlie", "chuck"), "christopher": ("chris",), "daniel": ("dan", "danny"),
    "matthew": ("matt",), "anthony": ("tony",), "michael": ("mike", "mikey"),
    "david": ("dave",), "steven": ("steve",), "edward": ("ed", "eddie", "ted"),
    "andrew": ("andy", "drew"), "kenneth": ("ken", "kenny"), "joshua": ("josh",),
    "timothy": ("tim",), "jeffrey": ("jeff",), "ronald": ("ron", "ronnie"),
    "benjamin": ("ben", "benny"), "samuel": ("sam",), "alexander": ("alex",),
    "nicholas": ("nick", "nicky"), "jonathan": ("jon",), "gregory": ("greg",),
    "patrick": ("pat",), "peter": ("pete",), "raymond": ("ray",), "lawrence": ("larry",),
    "gerald": ("jerry",), "frederick": ("fred", "freddie"), "elizabeth": ("liz", "beth", "eliza"),
    "margaret": ("maggie", "peggy", "meg"), "jennifer": ("jen", "jenny"),
    "katherine": ("kate", "kathy", "katie"), "patricia": ("patty", "trish"),
    "susan": ("sue", "suzy"), "deborah": ("debbie", "deb"), "rebecca": ("becky",),
    "jessica": ("jess",), "victoria": ("vicky", "tori"), "christina": ("tina",),
    "barbara": ("barb",), "dorothy": ("dot", "dottie"), "abigail": ("abby",),
    "alexandra": ("lexi",), "amanda": ("mandy",), "kimberly": ("kim",),
    "stephanie": ("steph",), "theresa": ("tess",), "jacqueline": ("jackie",),
    "cynthia": ("cindy",), "pamela": ("pam",), "sandra": ("sandy",), "judith": ("judy",),
    **{name: () for name in words(
        "mary linda sarah karen nancy lisa helen donna carol ruth sharon michelle laura emily "
        "anna kevin brian george jason ryan gary eric jacob stephen scott brandon frank justin "
        "jose juan maria carlos luis ana sofia olivia emma ava mia noah liam ethan lucas mason "
        "logan aiden chloe grace zoe hannah wei li yuki hiroshi raj priya amit fatima omar ahmed "
        "ali mohammed ivan olga dmitri anya pierre marie hans greta lars ingrid paul mark donald "
        "carla diana julia rosa elena irene nora vera hugo oscar felix leo max"
    )},
}

COMMON_SURNAMES = words(
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris "
    "sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill "
    "flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips "
    "evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers "
    "gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson "
    "watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo "
    "sanders patel myers long ross foster jimenez powell jenkins perry russell sullivan bell "
    "coleman butler henderson barnes gonzales fisher vasquez simmons romero jordan patterson "
    "alexander hamilton graham reynolds griffin wallace moreno west cole hayes bryant herrera "
    "gibson ellis tran medina aguilar stevens murray ford castro marshall owens harrison "
    "fernandez mcdonald woods washington kennedy wells vargas henry chen freeman webb tucker "
    "guzman burns crawford olson simpson porter hunter gordon mendez silva shaw snyder mason "
    "dixon munoz hunt hicks holmes palmer wagner black robertson boyd rose stone salazar fox "
    "warren mills meyer rice schmidt garza daniels ferguson nichols stephens soto weaver ryan "
    "gardner payne grant dunn kelley spencer hawkins arnold pierce hansen peters santos hart"
)
SURNAME_HEADS = "ash bal bren car dal el fair gal har ing kel lan mar nor ol pen quin ros sal " \
    "tal vel wal yor zan berg strom whit brad cran dun fen glen hol kirk lind mont"
SURNAME_TAILS = "ton field ford ley wood man son berg stein well worth by more dale ridge " \
    "ham wick croft hurst den mont ville land ers ard ett ick ins"

STREETS = words(
    "main oak maple pine cedar elm washington lake hill park church river sunset highland "
    "jefferson lincoln madison franklin jackson adams walnut cherry willow birch spruce chestnut "
    "hickory magnolia dogwood laurel poplar sycamore aspen meadow valley forest spring summit "
    "ridge prospect union liberty center market water mill school bridge north south east west "
    "harbor bay ocean grove orchard garden vine rose lilac jasmine clover heather fern"
)
STREET_TYPES = (("street", "st"), ("avenue", "ave"), ("road", "rd"), ("lane", "ln"),
                ("drive", "dr"), ("court", "ct"), ("boulevard", "blvd"), ("place", "pl"),
                ("terrace", "ter"), ("way", "way"))
CITIES = words(
    "springfield riverside franklin greenville bristol clinton fairview salem madison georgetown "
    "arlington ashland burlington manchester milton newport oxford jackson dover hudson "
    "kingston lebanon marion auburn dayton lexington winchester chester clayton hamilton "
    "portland richmond columbia troy canton jamestown florence monroe shelby"
)
DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com",
           "proton.me", "mail.com", "comcast.net", "verizon.net")
MONTHS = words("january february march april may june july august september october november "
               "december")
AREA_CODES = np.array([201, 212, 213, 305, 312, 404, 415, 503, 512, 602, 617, 646, 702, 713,
                       718, 720, 773, 801, 813, 818, 858, 904, 917, 919, 972])


@dataclass(frozen=True)
class NoiseRates:
    """Probabilities of each kind of noise, per record (or per person where it says so)."""

    nickname: float = 0.15
    typo_first: float = 0.05
    typo_last: float = 0.07
    typo_street: float = 0.05
    swap_names: float = 0.03
    missing_email: float = 0.15
    missing_phone: float = 0.15
    missing_address: float = 0.08
    missing_dob: float = 0.06
    new_email: float = 0.06
    new_phone: float = 0.05
    moved: float = 0.08
    dob_typo: float = 0.02
    household: float = 0.06  # per person: shares surname, address and phone with the previous


def build_surname_pool() -> list[str]:
    """Real common surnames first (so they are the frequent ones), then made-up compounds."""
    made_up = [h + t for h in words(SURNAME_HEADS) for t in words(SURNAME_TAILS)]
    return COMMON_SURNAMES + sorted(set(made_up) - set(COMMON_SURNAMES))


def zipf_choice(rng: np.random.Generator, pool_size: int, n: int, offset: float) -> np.ndarray:
    """Indices skewed like real name frequencies: a few names are very common (hot blocks)."""
    weights = 1.0 / (np.arange(pool_size) + offset)
    return rng.choice(pool_size, size=n, p=weights / weights.sum())


# A population grows by covering more places, and each place brings its own names, towns, zip
# codes and area codes: that is why a real file of ten million people has far more distinct
# surnames than one of a million, and why "same surname, same initial, same birth year" stays
# a small group in both. So people live in regions of REGION_PEOPLE each (a county's worth).
# A region draws a share of its names from the national lists above (the same everywhere) and
# the rest from its own vocabulary, synthesized from syllables and fixed by the region's
# number, whatever the seed. Ten times the records is ten times the regions, and ten times the
# vocabulary.
REGION_PEOPLE = 50_000
NATIONAL_FIRST = 0.6     # share of first names from FIRST_NAMES (shared across the country)
NATIONAL_LAST = 0.35     # share of surnames from build_surname_pool()
REGION_FIRST_NAMES = 400
REGION_SURNAMES = 3_000
REGION_CITIES = 3
REGION_ZIPS = 1_000      # 5-digit zips: 90 regions before the range wraps
ONSETS = words("b br c ch cl d dr f fl g gr h j k kr l m n p pr r s sh st t tr v w z")
VOWELS = words("a e i o u ai ea oo y ou")
CODAS = ["", *words("n r l s m th nd rk lt x")]
FIRST_ENDINGS = words("a o en ia el in ie us ette an")
SURNAME_ENDINGS = words("son sen ez ov ski ton man berg ley er ing ani elli ova ic ford")
CITY_SUFFIXES = ("", "ville", " springs", " heights", "port", " falls", " city", "burg")


def _syllable(rng: np.random.Generator, n: int) -> np.ndarray:
    parts = [np.array(x, object)[rng.integers(0, len(x), n)] for x in (ONSETS, VOWELS, CODAS)]
    return parts[0] + parts[1] + parts[2]


def region_vocabulary(region: int) -> tuple[np.ndarray, np.ndarray]:
    """(first names, surnames) of one region, most common first; the same for every seed."""
    rng = np.random.default_rng([0x1D, region])
    first = _syllable(rng, 3 * REGION_FIRST_NAMES) + np.array(FIRST_ENDINGS, object)[
        rng.integers(0, len(FIRST_ENDINGS), 3 * REGION_FIRST_NAMES)]
    ends = np.array(SURNAME_ENDINGS, object)[rng.choice(len(SURNAME_ENDINGS), 4, replace=False)]
    last = _syllable(rng, 3 * REGION_SURNAMES) + np.where(
        rng.random(3 * REGION_SURNAMES) < 0.5, _syllable(rng, 3 * REGION_SURNAMES), "") + \
        ends[rng.integers(0, 4, 3 * REGION_SURNAMES)]
    return _distinct(first)[:REGION_FIRST_NAMES], _distinct(last)[:REGION_SURNAMES]


def _distinct(names: np.ndarray) -> np.ndarray:
    _, first_seen = np.unique(names, return_index=True)
    return names[np.sort(first_seen)]


def region_city(region: int, j: int) -> str:
    """The j-th town of a region: the real-sounding list first, then its variants."""
    k = region * REGION_CITIES + j
    return CITIES[k % len(CITIES)] + CITY_SUFFIXES[(k // len(CITIES)) % len(CITY_SUFFIXES)]


def draw_names(rng: np.random.Generator, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First name and surname of each person: national or their region's, Zipf-like."""
    n = len(region)
    national = list(FIRST_NAMES)
    first = np.array(national, object)[zipf_choice(rng, len(national), n, 8.0)]
    surnames = build_surname_pool()
    last = np.array(surnames, object)[zipf_choice(rng, len(surnames), n, 20.0)]
    local_first = rng.random(n) >= NATIONAL_FIRST
    local_last = rng.random(n) >= NATIONAL_LAST
    pick_first = zipf_choice(rng, REGION_FIRST_NAMES, n, 8.0)
    pick_last = zipf_choice(rng, REGION_SURNAMES, n, 10.0)
    for r in np.unique(region):
        firsts, lasts = region_vocabulary(int(r))
        here = region == r
        f, lst = here & local_first, here & local_last
        first[f] = firsts[pick_first[f] % len(firsts)]
        last[lst] = lasts[pick_last[lst] % len(lasts)]
    return first, last


@dataclass
class People:
    """The true attributes of each person (one row per person), before any record noise."""

    first: np.ndarray  # canonical first name, object array of str
    last: np.ndarray
    year: np.ndarray
    month: np.ndarray
    day: np.ndarray
    phone: np.ndarray  # int64, 10 digits
    email: np.ndarray  # object array of unique addresses
    address: Addresses
    region: np.ndarray  # int64: where the person lives (see REGION_PEOPLE)


@dataclass
class Addresses:
    """Parts of a street address, kept apart so each record can format them its own way."""

    house: np.ndarray
    street: np.ndarray  # index into STREETS
    kind: np.ndarray  # index into STREET_TYPES
    apt: np.ndarray  # 0 = no apartment
    city: np.ndarray  # region * REGION_CITIES + the town's number in its region
    zip: np.ndarray

    def take(self, idx: np.ndarray) -> Addresses:
        return Addresses(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def random_addresses(rng: np.random.Generator, region: np.ndarray) -> Addresses:
    """An address in each person's region: one of its towns, one of that town's zips."""
    n = len(region)
    town = rng.integers(0, REGION_CITIES, n)
    per_town = REGION_ZIPS // REGION_CITIES
    zips = (region * REGION_ZIPS + town * per_town + rng.integers(0, per_town, n)) % 90_000
    return Addresses(
        house=rng.integers(1, 9999, n), street=zipf_choice(rng, len(STREETS), n, 5.0),
        kind=rng.integers(0, len(STREET_TYPES), n),
        apt=np.where(rng.random(n) < 0.25, rng.integers(1, 400, n), 0),
        city=region * REGION_CITIES + town, zip=10_000 + zips,
    )


def random_phones(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """Ten digits: one of the region's two area codes (the first regions' are real big-city
    codes), then seven digits."""
    k = region * 2 + rng.integers(0, 2, len(region))
    area = np.where(k < len(AREA_CODES), AREA_CODES[np.minimum(k, len(AREA_CODES) - 1)],
                    201 + (k * 37) % 790)
    return area * 10_000_000 + rng.integers(2_000_000, 9_999_999, len(region))


def make_emails(rng: np.random.Generator, first, last, year, domain_pick,
                taken: pa.Array | np.ndarray | None = None) -> np.ndarray:
    """Emails built from the name the way people pick them; unique, and none in `taken`."""
    pattern = rng.integers(0, 7, len(first))
    number = rng.integers(1, 999, len(first))
    locals_ = [
        (f"{f}.{s}", f"{f}{s}", f"{f[0]}{s}", f"{f}_{s}", f"{f}{s[0]}",
         f"{f}.{s}{y % 100:02d}", f"{f[0]}{s}{n}")[p]
        for f, s, y, p, n in zip(first, last, year, pattern, number)
    ]
    emails = np.array([f"{loc}@{DOMAINS[d]}" for loc, d in zip(locals_, domain_pick)], object)
    # Two people never share a mailbox; suffix the later ones until every address is unique.
    taken = pa.array([], pa.string()) if taken is None else pa.array(taken, pa.string())
    for _ in range(10):
        _, first_seen = np.unique(emails, return_index=True)
        dup = np.ones(len(emails), bool)
        dup[first_seen] = False
        dup |= pc.is_in(pa.array(emails, pa.string()), value_set=taken).to_numpy(
            zero_copy_only=False)
        if not dup.any():
            break
        for i in np.flatnonzero(dup):
            loc, dom = emails[i].split("@")
            emails[i] = f"{loc}{rng.integers(1, 9999)}@{dom}"
    return emails


def make_people(rng: np.random.Generator, n: int, rates: NoiseRates, region_base: int = 0,
                taken: pa.Array | None = None) -> People:
    """Draw n people, REGION_PEOPLE to a region (numbered from region_base); a share of them
    live in the household of the person drawn before them. No email is one in `taken`."""
    region = region_base + np.arange(n) * regions_for(n) // max(n, 1)
    first, last = draw_names(rng, region)
    address, phone = random_addresses(rng, region), random_phones(rng, region)
    # Household members copy surname, address and phone from the nearest earlier non-member.
    member = rng.random(n) < rates.household
    member[0] = False
    head = np.maximum.accumulate(np.where(member, -1, np.arange(n)))
    last, phone, address = last[head], phone[head], address.take(head)
    year = rng.integers(1940, 2006, n)
    emails = make_emails(rng, first, last, year, rng.integers(0, len(DOMAINS), n), taken)
    return People(first=first, last=last, year=year, month=rng.integers(1, 13, n),
                  day=rng.integers(1, 29, n), phone=phone, email=emails, address=address,
                  region=region)


def regions_for(people: int) -> int:
    return max(1, round(people / REGION_PEOPLE))


def typo(text: str, r: random.Random) -> str:
    """One keyboard slip: substitute, delete, insert, or transpose two neighbours."""
    if len(text) < 3:
        return text
    i = r.randrange(1, len(text) - 1)  # keep the first letter: people rarely mistype it
    op = r.randrange(4)
    letter = chr(97 + r.randrange(26))
    if op == 0:
        return text[:i] + letter + text[i + 1:]
    if op == 1:
        return text[:i] + text[i + 1:]
    if op == 2:
        return text[:i] + letter + text[i:]
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def with_typos(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    out = values.copy()
    r = random.Random(int(rng.integers(2**31)))
    for i in np.flatnonzero(rng.random(len(values)) < rate):
        out[i] = typo(out[i], r)
    return out


def vary_case(values: np.ndarray, rng: np.random.Generator, p=(0.6, 0.3, 0.1)) -> np.ndarray:
    """Title case mostly, some lower case, some SHOUTING, as different source systems do."""
    style = rng.choice(3, size=len(values), p=p)
    return np.array([v.title() if s == 0 else v if s == 1 else v.upper()
                     for v, s in zip(values, style)], object)


def blank(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    return _drop(values, rng.random(len(values)) < rate)


def record_names(people: People, who: np.ndarray, rng, rates: NoiseRates):
    """First and last name per record: nicknames, typos, swaps and case noise."""
    first = people.first[who].copy()
    nick = np.flatnonzero(rng.random(len(who)) < rates.nickname)
    picks = rng.integers(0, 3, len(nick))
    for i, k in zip(nick, picks):
        options = FIRST_NAMES.get(first[i], ())
        if options:
            first[i] = options[k % len(options)]
    first = with_typos(first, rates.typo_first, rng)
    last = with_typos(people.last[who], rates.typo_last, rng)
    swap = rng.random(len(who)) < rates.swap_names
    first, last = np.where(swap, last, first), np.where(swap, first, last)
    return vary_case(first, rng), vary_case(last, rng)


def record_emails(people: People, who: np.ndarray, rng, rates: NoiseRates) -> np.ndarray:
    """The person's email in varied case and with +tags, or another address they also use."""
    email = people.email[who].copy()
    other = np.flatnonzero(rng.random(len(who)) < rates.new_email)
    email[other] = make_emails(rng, people.first[who[other]], people.last[who[other]],
                               people.year[who[other]], rng.integers(0, len(DOMAINS), len(other)),
                               taken=people.email)
    style = rng.choice(4, size=len(who), p=(0.75, 0.1, 0.1, 0.05))
    tag = rng.integers(1, 99, len(who))
    email = np.array([
        e if s == 0 else e.upper() if s == 1 else e.replace("@", f"+shop{t}@") if s == 2
        else f" {e.capitalize()} " for e, s, t in zip(email, style, tag)], object)
    return blank(email, rates.missing_email, rng)


PHONE_FORMATS = ("({a}) {b}-{c}", "{a}-{b}-{c}", "+1 {a} {b} {c}", "{a}{b}{c}", "{a}.{b}.{c}",
                 "1-{a}-{b}-{c}")


def record_phones(people: People, who: np.ndarray, rng, rates: NoiseRates) -> np.ndarray:
    phone = people.phone[who].copy()
    changed = rng.random(len(who)) < rates.new_phone
    phone[changed] = random_phones(rng, people.region[who[changed]])
    style = rng.integers(0, len(PHONE_FORMATS), len(who))
    text = np.array([
        PHONE_FORMATS[s].format(a=p // 10_000_000, b=(p // 10_000) % 1000, c=f"{p % 10_000:04d}")
        for p, s in zip(phone.tolist(), style.tolist())], object)
    return blank(text, rates.missing_phone, rng)


def format_street(street: str, kind: int, style: int) -> str:
    full, short = STREET_TYPES[kind]
    return f"{street} {(full, short, short + '.')[style] if short != full else full}"


def record_addresses(people: People, who: np.ndarray, rng, rates: NoiseRates):
    """Street address, city and zip per record; a mover's record carries the new address."""
    addr = people.address.take(who)
    moved = np.flatnonzero(rng.random(len(who)) < rates.moved)
    fresh = random_addresses(rng, people.region[who[moved]])  # a move within the region
    for name in addr.__dataclass_fields__:
        getattr(addr, name)[moved] = getattr(fresh, name)
    streets = with_typos(np.array(STREETS, object)[addr.street], rates.typo_street, rng)
    style = rng.integers(0, 3, len(who))
    apt_style = rng.integers(0, 3, len(who))
    line = [
        f"{h} {format_street(s, k, st)}" + ("" if a == 0 else (f" Apt {a}", f" #{a}",
                                                              f" Unit {a}")[ap])
        for h, s, k, st, a, ap in zip(addr.house.tolist(), streets, addr.kind.tolist(),
                                      style.tolist(), addr.apt.tolist(), apt_style.tolist())]
    line = vary_case(np.array(line, object), rng)
    town, code = np.unique(addr.city, return_inverse=True)
    names = np.array([region_city(int(t) // REGION_CITIES, int(t) % REGION_CITIES)
                      for t in town], object)
    city = vary_case(names[code.reshape(-1)], rng, p=(0.7, 0.2, 0.1))
    plus4 = rng.random(len(who)) < 0.1
    zips = np.array([f"{z:05d}-{e:04d}" if p else f"{z:05d}" for z, p, e in
                     zip(addr.zip.tolist(), plus4.tolist(), rng.integers(0, 9999, len(who)))],
                    object)
    gone = rng.random(len(who)) < rates.missing_address
    return _drop(line, gone), _drop(city, gone), _drop(zips, gone)


def _drop(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = values.astype(object)
    out[mask] = None
    return out


DATE_FORMATS = 6


def format_date(y: int, m: int, d: int, style: int) -> str:
    """The ways date-of-birth shows up across systems (none of them ambiguous day/month)."""
    if style == 0:
        return f"{y:04d}-{m:02d}-{d:02d}"
    if style == 1:
        return f"{m:02d}/{d:02d}/{y:04d}"
    if style == 2:
        return f"{d:02d} {MONTHS[m - 1][:3].title()} {y}"
    if style == 3:
        return f"{y:04d}{m:02d}{d:02d}"
    if style == 4:
        return f"{MONTHS[m - 1].title()} {d}, {y}"
    return f"{d}.{m}.{y}"


def record_dobs(people: People, who: np.ndarray, rng, rates: NoiseRates) -> np.ndarray:
    year, month, day = people.year[who], people.month[who], people.day[who].copy()
    slip = rng.random(len(who)) < rates.dob_typo
    day[slip] = np.clip(day[slip] + rng.choice([-1, 1], int(slip.sum())), 1, 28)
    style = rng.integers(0, DATE_FORMATS, len(who))
    text = np.array([format_date(y, m, d, s) for y, m, d, s in
                     zip(year.tolist(), month.tolist(), day.tolist(), style.tolist())], object)
    return blank(text, rates.missing_dob, rng)


def assign_records(rng: np.random.Generator, n_records: int) -> np.ndarray:
    """Person index of every record: 1 to 5 records a person, in shuffled order."""
    mean = float((np.arange(1, 6) * RECORDS_PER_PERSON).sum())
    counts = rng.choice(np.arange(1, 6), size=int(n_records / mean * 1.1) + 10,
                        p=RECORDS_PER_PERSON)
    who = np.repeat(np.arange(len(counts)), counts)[:n_records]
    return who[rng.permutation(n_records)]


def generate(records: int, seed: int = 0, rates: NoiseRates = NoiseRates()):
    """Return (records_table, truth_table); truth maps record_id -> entity_id."""
    table, truth, _ = generate_people(records, seed, rates)
    return table, truth


def generate_people(records: int, seed: int = 0, rates: NoiseRates = NoiseRates(),
                    region_base: int = 0, taken: pa.Array | None = None):
    """(records, truth, people): people in regions from region_base on, none of them with an
    email in `taken` (the addresses of people generated before, elsewhere)."""
    rng = np.random.default_rng(seed)
    who = assign_records(rng, records)
    people = make_people(rng, int(who.max()) + 1, rates, region_base, taken)
    first, last = record_names(people, who, rng, rates)
    email = record_emails(people, who, rng, rates)
    phone = record_phones(people, who, rng, rates)
    address, city, zips = record_addresses(people, who, rng, rates)
    dob = record_dobs(people, who, rng, rates)
    record_id = pa.array(np.arange(records, dtype=np.int64))
    columns = {"record_id": record_id, "first_name": first, "last_name": last, "email": email,
               "phone": phone, "address": address, "city": city, "zip": zips, "dob": dob}
    table = pa.table({k: v if isinstance(v, pa.Array) else pa.array(v, pa.string())
                      for k, v in columns.items()})
    truth = pa.table({"record_id": record_id, "entity_id": pa.array(who.astype(np.int64))})
    return table, truth, people


def write_dataset(table: pa.Table, truth: pa.Table, out: str,
                  shard_rows: int = SHARD_ROWS) -> list[str]:
    """Write part-NNNNN.parquet shards and truth.parquet under a local path or s3:// URL."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    for stale in fs.glob(f"{root}/part-*.parquet"):
        fs.rm(stale)  # a smaller rerun into the same folder must not keep old shards
    paths = []
    for i, start in enumerate(range(0, max(len(table), 1), shard_rows)):
        path = f"{root}/part-{i:05d}.parquet"
        pq.write_table(table.slice(start, shard_rows), path, filesystem=fs)
        paths.append(path)
    # Row groups of a shard's size: a reader that wants one shard's ids skips the others.
    pq.write_table(truth, f"{root}/truth.parquet", filesystem=fs, row_group_size=shard_rows)
    return paths


def write_dataset_chunked(records: int, seed: int, out: str, chunk: int = 1_000_000,
                          shard_rows: int = SHARD_ROWS) -> list[str]:
    """`records` records written `chunk` at a time, so a large dataset never sits in memory
    whole: each chunk is generate(chunk, seed') with its own people in regions of its own
    (record and entity ids offset to stay unique, emails unique across chunks); the first
    chunk is exactly generate(chunk, seed)'s."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    for stale in fs.glob(f"{root}/part-*.parquet"):
        fs.rm(stale)
    paths, writer, n_shard, entity_base, region_base = [], None, 0, 0, 0
    taken = []  # every chunk's people's emails: two people never share a mailbox
    with fs.open(f"{root}/truth.parquet", "wb") as fh:
        for c, start in enumerate(range(0, max(records, 1), chunk)):
            table, truth, people = generate_people(
                min(chunk, records - start), seed if c == 0 else seed * 1_000_003 + c,
                region_base=region_base, taken=pa.chunked_array(taken, pa.string()).combine_chunks()
                if taken else None)
            region_base = int(people.region.max()) + 1  # each chunk its own places
            taken.append(pa.array(people.email, pa.string()))
            ids = pa.array(np.arange(start, start + table.num_rows, dtype=np.int64))
            table = table.set_column(0, "record_id", ids)
            entity = truth["entity_id"].to_numpy() + entity_base
            entity_base = int(entity.max()) + 1
            truth = pa.table({"record_id": ids, "entity_id": pa.array(entity)})
            for i in range(0, table.num_rows, shard_rows):
                path = f"{root}/part-{n_shard:05d}.parquet"
                pq.write_table(table.slice(i, shard_rows), path, filesystem=fs)
                paths.append(path)
                n_shard += 1
            writer = writer or pq.ParquetWriter(fh, truth.schema)
            writer.write_table(truth, row_group_size=shard_rows)
        if writer is not None:
            writer.close()
    return paths


# Reading back: the flow and the tests go through these, so local folders and s3:// URLs are
# handled in one place.


def list_shards(url: str) -> list[str]:
    """Full URLs of the part-*.parquet shards under a folder or s3:// prefix, sorted."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    paths = sorted(fs.glob(f"{root.rstrip('/')}/part-*.parquet"))
    if not paths:
        raise FileNotFoundError(
            f"No part-*.parquet shards under {url!r}. Generate some with: python -m "
            f"examples.identity_resolution.generate --records 200000 --out {url}")
    return [fs.unstrip_protocol(p) for p in paths]


def read_parquet(url: str) -> pa.Table:
    """One Parquet file (or a folder of them) through pyarrow datasets over fsspec."""
    import fsspec
    import pyarrow.dataset as ds

    fs, path = fsspec.core.url_to_fs(url)
    return ds.dataset(path, filesystem=fs, format="parquet").to_table()


def read_truth(url: str) -> pa.Table | None:
    """truth.parquet next to the shards, or None when the data came without it."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    path = f"{root.rstrip('/')}/truth.parquet"
    return read_parquet(fs.unstrip_protocol(path)) if fs.exists(path) else None


def write_parquet(table: pa.Table, url: str) -> str:
    """Write one Parquet file to a local path or s3:// URL, creating the folder."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0] if "/" in path else ".", exist_ok=True)
    pq.write_table(table, path, filesystem=fs)
    return fs.unstrip_protocol(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="examples/identity_resolution/data")
    parser.add_argument("--shard-rows", type=int, default=SHARD_ROWS)
    args = parser.parse_args(argv)
    table, truth = generate(args.records, args.seed)
    paths = write_dataset(table, truth, args.out, args.shard_rows)
    print(f"wrote {len(table):,} records ({truth['entity_id'].to_numpy().max() + 1:,} people) "
          f"in {len(paths)} shards to {args.out} (truth: {args.out.rstrip('/')}/truth.parquet)")


if __name__ == "__main__":
    main()
