"""Identity resolution as plain, vectorized functions: the flow's steps only call into here.

The pipeline, one function per stage, each on Arrow tables and numpy arrays:

1. ``normalize``: canonical names (nicknames mapped), email, phone digits, address, zip and
   date of birth parsed from several formats, all with ``pyarrow.compute`` and numpy.
2. ``blocking_keys``: three independent keys a record is blocked on, as uint64 hashes
   (phonetic surname + birth year, email local part, last 7 phone digits). Hashes, not
   dictionary codes, so a key never depends on which other records sit in the same table.
3. ``partition``: one row per (record, key); giant blocks are cut into overlapping windows
   of a sorted neighbourhood, then every block is hashed to one of P partitions. A hot key
   thus becomes many small blocks spread over many tasks instead of one task doing O(n^2).
4. ``candidate_pairs`` + ``score_pairs`` (per partition): all pairs inside each block,
   deduplicated across keys and windows, scored with Fellegi-Sunter style field weights
   (Jaro-Winkler from rapidfuzz on the distinct string pairs only).
5. ``resolve_entities``: connected components over the matched pairs of every partition
   (vectorized union-find), entity id = smallest record id in the component.
6. ``pairwise_metrics``: precision, recall and F1 over record pairs against a truth table.

Nothing here reads the truth except ``pairwise_metrics``, and nothing here imports Ray.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import JaroWinkler
from rapidfuzz.process import cpdist

KEY_KINDS = ("name_year", "email_local", "phone7")
MISSING = np.uint64(0)  # a key of 0 means "this record has no such key"

# Matcher-side nickname dictionary (nickname -> canonical). Deliberately not imported from the
# generator: a real matcher ships its own dictionary, and it is never complete.
NICKNAMES = {
    "bill": "william", "will": "william", "billy": "william", "willy": "william",
    "bob": "robert", "rob": "robert", "bobby": "robert", "rick": "richard", "dick": "richard",
    "rich": "richard", "jim": "james", "jimmy": "james", "jamie": "james", "johnny": "john",
    "jack": "john", "joe": "joseph", "joey": "joseph", "tom": "thomas", "tommy": "thomas",
    "charlie": "charles", "chuck": "charles", "chris": "christopher", "dan": "daniel",
    "danny": "daniel", "matt": "matthew", "tony": "anthony", "mike": "michael",
    "mikey": "michael", "dave": "david", "steve": "steven", "ed": "edward", "eddie": "edward",
    "ted": "edward", "andy": "andrew", "drew": "andrew", "ken": "kenneth", "kenny": "kenneth",
    "josh": "joshua", "tim": "timothy", "jeff": "jeffrey", "ron": "ronald", "ronnie": "ronald",
    "ben": "benjamin", "benny": "benjamin", "sam": "samuel", "alex": "alexander",
    "nick": "nicholas", "nicky": "nicholas", "jon": "jonathan", "greg": "gregory",
    "pat": "patrick", "pete": "peter", "ray": "raymond", "larry": "lawrence", "jerry": "gerald",
    "fred": "frederick", "freddie": "frederick", "liz": "elizabeth", "beth": "elizabeth",
    "eliza": "elizabeth", "betty": "elizabeth", "maggie": "margaret", "peggy": "margaret",
    "meg": "margaret", "jen": "jennifer", "jenny": "jennifer", "kate": "katherine",
    "kathy": "katherine", "katie": "katherine", "patty": "patricia", "trish": "patricia",
    "sue": "susan", "suzy": "susan", "debbie": "deborah", "deb": "deborah", "becky": "rebecca",
    "jess": "jessica", "vicky": "victoria", "tori": "victoria", "tina": "christina",
    "barb": "barbara", "dot": "dorothy", "dottie": "dorothy", "abby": "abigail",
    "lexi": "alexandra", "mandy": "amanda", "kim": "kimberly", "steph": "stephanie",
    "tess": "theresa", "jackie": "jacqueline", "cindy": "cynthia", "pam": "pamela",
    "sandy": "sandra", "judy": "judith",
}
STREET_WORDS = {
    "street": "st", "avenue": "ave", "road": "rd", "lane": "ln", "drive": "dr", "court": "ct",
    "boulevard": "blvd", "place": "pl", "terrace": "ter", "apartment": "apt", "unit": "apt",
    "north": "n", "south": "s", "east": "e", "west": "w",
}
MONTH_ABBREV = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                "dec"]
# Named groups y, m, d; m may be a month name. Day-first formats are only the dotted ones.
DATE_PATTERNS = (
    r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$",
    r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})$",
    r"^(?P<d>\d{1,2}) (?P<m>[a-z]+) (?P<y>\d{4})$",
    r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$",
    r"^(?P<m>[a-z]+) (?P<d>\d{1,2}),? (?P<y>\d{4})$",
    r"^(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})$",
)


# --------------------------------------------------------------------------------------------
# Byte-level helpers: strings as a fixed-width uint8 matrix, so hashing and Soundex are numpy
# operations over W columns instead of a Python loop over N strings.


def fixed_width_bytes(strings: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """(n, width) uint8 matrix of the first `width` bytes of each string; 0 pads, nulls = ""."""
    arr = pc.fill_null(strings, "")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())  # one offsets dtype whatever the input was
    n = len(arr)
    out = np.zeros((n, width), np.uint8)
    _, offsets_buf, data_buf = arr.buffers()
    if n == 0 or data_buf is None:
        return out
    offsets = np.frombuffer(offsets_buf, np.int64)[arr.offset: arr.offset + n + 1]
    data = np.frombuffer(data_buf, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    for j in range(width):
        has = lengths > j
        out[has, j] = data[starts[has] + j]
    return out


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads nearby integers over the whole uint64 range."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_strings(strings: pa.Array | pa.ChunkedArray, width: int = 32) -> np.ndarray:
    """FNV-1a over the first `width` bytes, then mixed; "" and null hash to MISSING (0)."""
    mat = fixed_width_bytes(strings, width)
    h = np.full(len(mat), 0xCBF29CE484222325, np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for j in range(width):
            col = mat[:, j]
            live = col != 0  # stop at the end of each string: padding must not change the hash
            h = np.where(live, (h ^ col.astype(np.uint64)) * prime, h)
    h = mix64(h)
    h[h == MISSING] = np.uint64(1)  # a real string must never read as "no key"
    h[mat[:, 0] == 0] = MISSING
    return h


_SOUNDEX = np.zeros(256, np.int8)
for _letters, _digit in (("bfpv", 1), ("cgjkqsxz", 2), ("dt", 3), ("l", 4), ("mn", 5), ("r", 6),
                         ("hw", 7)):
    _SOUNDEX[[ord(c) for c in _letters]] = _digit


def soundex(names: pa.Array | pa.ChunkedArray, width: int = 16) -> np.ndarray:
    """American Soundex of lowercase a-z names as int32 (letter*1000 + 3 digits); 0 if empty.

    h and w are transparent (they do not separate equal codes), vowels are separators, and the
    first letter's own code suppresses an equal code right after it -- the standard rules.
    """
    mat = fixed_width_bytes(names, width)
    code = _SOUNDEX[mat].astype(np.int8)
    for j in range(1, width):  # h/w take the previous code, so duplicates across them collapse
        code[:, j] = np.where(code[:, j] == 7, code[:, j - 1], code[:, j])
    code[:, 0] = np.where(code[:, 0] == 7, 0, code[:, 0])
    keep = (code[:, 1:] != 0) & (code[:, 1:] != code[:, :-1]) & (mat[:, 1:] != 0)
    rank = np.cumsum(keep, axis=1)
    digits = np.zeros(len(mat), np.int32)
    for r in (1, 2, 3):
        digits = digits * 10 + (code[:, 1:] * (keep & (rank == r))).sum(axis=1)
    letter = mat[:, 0].astype(np.int32) - 96
    return np.where((letter >= 1) & (letter <= 26), letter * 1000 + digits, 0).astype(np.int32)


# --------------------------------------------------------------------------------------------
# Normalization


def _clean_letters(col) -> pa.ChunkedArray | pa.Array:
    """Lower case, letters only: "O'Brien-Smith " -> "obriensmith"."""
    return pc.replace_substring_regex(pc.utf8_lower(col), r"[^a-z]", "")


def _canonical_first(col):
    names = _clean_letters(col)
    keys = pa.array(list(NICKNAMES))
    mapped = pc.take(pa.array(list(NICKNAMES.values())), pc.index_in(names, value_set=keys))
    return pc.coalesce(mapped, names)


def _normalize_email(col):
    email = pc.utf8_trim_whitespace(pc.utf8_lower(col))
    return pc.replace_substring_regex(email, r"\+[^@]*@", "@")  # "a+shop@x" is a's mailbox


def _normalize_phone(col) -> pa.Array:
    """Last 10 digits as int64 (drops a +1 / 1- prefix); null when fewer than 7 digits."""
    digits = pc.replace_substring_regex(col, r"[^0-9]", "")
    n = pc.utf8_length(digits)
    last10 = pc.utf8_slice_codeunits(digits, start=-10)
    return pc.if_else(pc.greater_equal(n, 7), pc.cast(last10, pa.int64(), safe=False), None)


def _normalize_address(col):
    """"12 Oak Street #4" -> "12 oak st apt 4": one word dictionary instead of 15 regexes."""
    text = pc.replace_substring(pc.utf8_lower(col), "#", " apt ")
    text = pc.replace_substring_regex(text, r"[^a-z0-9 ]", " ")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    words = pc.ascii_split_whitespace(text)
    flat = words.flatten()
    mapped = pc.take(pa.array(list(STREET_WORDS.values())),
                     pc.index_in(flat, value_set=pa.array(list(STREET_WORDS))))
    words = pa.ListArray.from_arrays(words.offsets, pc.coalesce(mapped, flat),
                                     mask=words.is_null())
    return pc.utf8_trim_whitespace(pc.binary_join(words, " "))


def _month_number(m):
    """Month as 1-12 from either digits or a (possibly abbreviated) English name."""
    as_name = pc.add(pc.index_in(pc.utf8_slice_codeunits(m, 0, 3),
                                 value_set=pa.array(MONTH_ABBREV)), 1)
    is_digits = pc.match_substring_regex(m, r"^\d+$")
    as_digits = pc.cast(pc.if_else(is_digits, m, None), pa.int32())
    return pc.coalesce(as_digits, pc.cast(as_name, pa.int32()))


def parse_dates(col) -> pa.Array:
    """Dates in the formats of DATE_PATTERNS -> int32 yyyymmdd; null when none matches."""
    text = pc.utf8_trim_whitespace(pc.utf8_lower(col))
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    parsed = []
    for pattern in DATE_PATTERNS:
        parts = pc.extract_regex(text, pattern)  # null where the pattern does not match
        y = pc.cast(pc.struct_field(parts, "y"), pa.int32())
        m = _month_number(pc.struct_field(parts, "m"))
        d = pc.cast(pc.struct_field(parts, "d"), pa.int32())
        value = pc.add(pc.add(pc.multiply(y, 10_000), pc.multiply(m, 100)), d)
        valid = pc.and_(pc.and_(pc.greater_equal(m, 1), pc.less_equal(m, 12)),
                        pc.and_(pc.greater_equal(d, 1), pc.less_equal(d, 31)))
        parsed.append(pc.if_else(valid, value, None))
    return pc.coalesce(*parsed)


def normalize(table: pa.Table) -> pa.Table:
    """Raw records -> comparable fields. Columns kept narrow: only what blocking and scoring use."""
    first = _canonical_first(table["first_name"])
    last = _clean_letters(table["last_name"])
    email = _normalize_email(table["email"])
    local = pc.replace_substring_regex(
        pc.utf8_slice_codeunits(email, 0, 64), r"@.*$|\.", "")  # dots: j.smith == jsmith
    zip5 = pc.utf8_slice_codeunits(pc.replace_substring_regex(table["zip"], r"[^0-9]", ""), 0, 5)
    zip5 = pc.cast(pc.if_else(pc.equal(pc.utf8_length(zip5), 5), zip5, None), pa.int32())
    return pa.table({
        "record_id": pc.cast(table["record_id"], pa.int64()),
        "first": first, "last": last, "email": email, "email_local": local,
        "phone": _normalize_phone(table["phone"]),
        "address": _normalize_address(table["address"]),
        "zip": zip5, "dob": parse_dates(table["dob"]),
    })


# --------------------------------------------------------------------------------------------
# Blocking and partitioning


def blocking_keys(norm: pa.Table) -> np.ndarray:
    """(n, len(KEY_KINDS)) uint64 block keys, MISSING where a record lacks the field.

    Each kind is salted so equal raw values of different kinds never share a block.
    """
    n = norm.num_rows
    year = pc.fill_null(pc.divide(norm["dob"], 10_000), 0).to_numpy().astype(np.uint64)
    sx_last = soundex(norm["last"]).astype(np.uint64)
    # The first initial keeps common surnames from making O(n^2) blocks as N grows; a
    # mistyped or swapped first name is still caught by the email and phone keys.
    initial = fixed_width_bytes(norm["first"], 1)[:, 0].astype(np.uint64)
    name_year = np.where((sx_last > 0) & (year > 0) & (initial > 0),
                         mix64((sx_last * np.uint64(256) + initial) * np.uint64(10_000) + year),
                         MISSING)
    local = hash_strings(norm["email_local"], width=32)
    phone = pc.fill_null(norm["phone"], -1).to_numpy()
    phone7 = np.where(phone >= 0, mix64((phone % 10_000_000).astype(np.uint64)), MISSING)
    keys = np.zeros((n, len(KEY_KINDS)), np.uint64)
    for k, key in enumerate((name_year, local, phone7)):
        salted = mix64(key ^ mix64(np.full(n, k + 1, np.uint64)))
        keys[:, k] = np.where(key == MISSING, MISSING, np.maximum(salted, np.uint64(1)))
    return keys


@dataclass(frozen=True)
class BlockRows:
    """One row per (record, key) of a partition, after giant blocks were cut into windows."""

    block: np.ndarray  # uint64 block id (window-salted for split blocks)
    row: np.ndarray  # int64 row in the partition table
    in_overlap: np.ndarray  # bool: also in the previous window of the same giant block


# What a partition row carries: the fields scoring reads, plus (below) its block and the keys
# of the kinds before the last (for dedupe; the email key doubles as the local-part compare).
SCORE_COLUMNS = ("record_id", "first", "last", "email", "phone", "address", "zip", "dob")
DEDUPE_KINDS = KEY_KINDS[:-1]


def prepare_shard(table: pa.Table, partitions: int) -> list[pa.Table]:
    """Raw records of one shard -> one Arrow table per partition (the shuffle's map side).

    A record gets one row per key it has, in the partition its block hashes to; a row carries
    the record's fields and all its keys, so every partition can be matched on its own.
    """
    norm = normalize(table)
    keys = blocking_keys(norm)
    row, kind = np.nonzero(keys != MISSING)
    block = keys[row, kind]
    part_of = block % np.uint64(partitions)
    order = np.argsort(part_of, kind="stable")
    bounds = np.searchsorted(part_of[order], np.arange(partitions + 1, dtype=np.uint64))
    row, kind, block = row[order], kind[order].astype(np.int8), block[order]
    narrow = norm.select(list(SCORE_COLUMNS))
    pieces = []
    for p in range(partitions):
        # A take per piece, not slices of one take: a pickled slice drags its whole parent
        # buffer along, which would ship every shard P times over.
        cut = slice(bounds[p], bounds[p + 1])
        piece = narrow.take(pa.array(row[cut]))
        extra = {"block": block[cut], "kind": kind[cut]}
        extra.update({f"key_{k}": keys[row[cut], i] for i, k in enumerate(DEDUPE_KINDS)})
        for name, values in extra.items():
            piece = piece.append_column(name, pa.array(values))
        pieces.append(piece)
    return pieces


def gather_partitions(shard_parts: list[list[pa.Table]]) -> list[pa.Table]:
    """The shuffle's reduce side: partition p's pieces from every shard, as one table."""
    return [pa.concat_tables([shard[p] for shard in shard_parts])
            for p in range(len(shard_parts[0]))]


def find_giant_blocks(parts: list[pa.Table], max_block: int) -> pa.Table:
    """Blocks with more than max_block rows, over all partitions.

    Every block lives wholly in one partition, so each partition can split its own giant
    blocks; the list is global because a pair's *other* keys may be giant in another
    partition (see candidate_pairs).
    """
    giant = [np.zeros(0, np.uint64)]
    for part in parts:
        counts = pc.value_counts(part["block"])
        big = pc.greater(counts.field("counts"), max_block)
        giant.append(pc.filter(counts.field("values"), big).to_numpy(zero_copy_only=False))
    return pa.table({"block": pa.array(np.sort(np.concatenate(giant)).astype(np.uint64))})


def neighbourhood_rank(part: pa.Table, rows: np.ndarray) -> np.ndarray:
    """Sort key for sorted-neighbourhood windows: likely duplicates end up adjacent."""
    sx_last = soundex(pc.take(part["last"], rows)).astype(np.int64)
    sx_first = soundex(pc.take(part["first"], rows)).astype(np.int64)
    dob = pc.fill_null(pc.take(part["dob"], rows), 0).to_numpy().astype(np.int64)
    return (sx_last * 30_000 + sx_first) * 100_000_000 + dob


def block_rows(part: pa.Table, max_block: int) -> BlockRows:
    """The partition's rows in blocks, with blocks above max_block split into windows.

    A split block of n rows, sorted by `neighbourhood_rank`, becomes windows of ~max_block
    rows that start every max_block // 2 rows. Any two rows closer than half a window share
    a window, and the block costs O(n * max_block) pairs instead of O(n^2).
    """
    block = part["block"].to_numpy()
    order = np.argsort(block, kind="stable")
    b = block[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]]) if len(b) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(b)])
    size = np.repeat(sizes, sizes)
    split = size > max_block
    if split.any():  # re-sort the giant blocks' rows by neighbourhood within each block
        idx = order[split]
        sub = np.lexsort((neighbourhood_rank(part, idx), b[split]))
        order[split] = idx[sub]
    pos = np.arange(len(b)) - np.repeat(starts, sizes)
    return split_windows(b, order, pos, size, max_block)


def split_windows(block, row, pos, size, max_block: int) -> BlockRows:
    """Give rows of giant blocks their window block ids; rows in two windows appear twice."""
    step = max(1, max_block // 2)
    s = size > max_block
    q = pos[s] // step
    n_windows = -(-(size[s] - 2 * step) // step) + 1  # ceil; the last window reaches the end
    hi = np.minimum(q, n_windows - 1)
    twice = (q >= 1) & (q <= n_windows - 1)
    base = block[s]

    def window_id(blocks, w):
        return np.maximum(mix64(blocks ^ mix64(w.astype(np.uint64) + np.uint64(1))),
                          np.uint64(1))

    keep = ~s
    return BlockRows(
        block=np.concatenate([block[keep], window_id(base, hi), window_id(base[twice],
                                                                          q[twice] - 1)]),
        row=np.concatenate([row[keep], row[s], row[s][twice]]),
        # Pairs inside window w's first half were already made by window w - 1.
        in_overlap=np.concatenate([np.zeros(int(keep.sum()), bool), (q == hi) & (hi >= 1),
                                   np.zeros(int(twice.sum()), bool)]),
    )


# --------------------------------------------------------------------------------------------
# Candidate pairs


def pairs_within_blocks(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i before j, of indices into `block` that share a block value. Vectorized."""
    order = np.argsort(block, kind="stable")
    b = block[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]]) if len(b) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(b)])
    pos = np.arange(len(b)) - np.repeat(starts, sizes)
    later = np.repeat(sizes, sizes) - 1 - pos  # how many rows after this one in its block
    left = np.repeat(np.arange(len(b)), later)
    first_of_run = np.repeat(np.cumsum(later) - later, later)
    right = left + 1 + (np.arange(len(left)) - first_of_run)
    return order[left], order[right]


def candidate_pairs(part: pa.Table, giant: np.ndarray,
                    max_block: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-index pairs of one partition to score, each record pair exactly once.

    Drops: pairs a previous window already made; pairs that share a key of an earlier kind
    (that kind's block, here or in another partition, makes them) unless that key's block
    was split, since windows do not make every pair; and remaining duplicates.
    """
    rows = block_rows(part, max_block)
    i, j = pairs_within_blocks(rows.block)
    keep = ~(rows.in_overlap[i] & rows.in_overlap[j])
    left, right = rows.row[i[keep]], rows.row[j[keep]]
    kind = part["kind"].to_numpy()
    keep = np.ones(len(left), bool)
    for k, name in enumerate(DEDUPE_KINDS):
        key = part[f"key_{name}"].to_numpy()
        usable = (key != MISSING) & ~np.isin(key, giant)
        keep &= ~((kind[left] > k) & (key[left] == key[right]) & usable[left])
    left, right = left[keep], right[keep]
    _, dense = np.unique(part["record_id"].to_numpy(), return_inverse=True)
    a, b = dense[left].astype(np.uint64), dense[right].astype(np.uint64)
    pair_key = np.minimum(a, b) << np.uint64(32) | np.maximum(a, b)
    # A record sits in a partition once per key, so the same record can meet itself: drop it.
    pair_key[a == b] = np.uint64(2**64 - 1)
    _, first = np.unique(pair_key, return_index=True)
    first = np.sort(first[pair_key[first] != np.uint64(2**64 - 1)])
    return left[first], right[first]


# --------------------------------------------------------------------------------------------
# Scoring and the match decision


@dataclass(frozen=True)
class MatchWeights:
    """Fellegi-Sunter style log-odds per field and agreement level; missing fields add 0.

    Set by hand from what each agreement says about identity: an exact email or phone is
    strong evidence, a shared surname weak (families), and disagreement on a field people
    change (email, phone, address) costs little, on one they do not (birth date) a lot.
    """

    close: float = 0.9  # Jaro-Winkler at or above this: "close" (a typo or two)
    fuzzy: float = 0.75  # at or above this: "fuzzy", no evidence either way
    first: tuple = (2.5, 1.5, 0.0, -4.5)  # (exact, close, fuzzy, different)
    last: tuple = (3.5, 2.5, 0.0, -4.0)
    address: tuple = (3.0, 1.5, -0.5, -0.5)
    dob: tuple = (4.5, 1.5, -6.0)  # (exact, one slip: day off by <= 2 or day/month swapped, other)
    email: tuple = (5.0, 1.0, -1.0)  # (exact, same local part, different)
    phone: tuple = (5.0, 3.0, -1.0)  # (exact, same last 7 digits, different)
    zip: float = 0.5
    # Phone, address and zip are shared by a whole household, so together they say "same
    # home", not "same person": their sum is capped.
    contact_cap: float = 6.0


DEFAULT_WEIGHTS = MatchWeights()
DEFAULT_THRESHOLD = 8.0


def dictionary_codes(column) -> tuple[np.ndarray, pa.Array]:
    """Per-row dictionary code (-1 = null) and the dictionary: equality becomes int compare."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()  # one dictionary for the whole partition
    enc = pc.dictionary_encode(column)
    return pc.fill_null(enc.indices, -1).to_numpy(), enc.dictionary


def string_similarity(ca: np.ndarray, cb: np.ndarray, words: pa.Array) -> np.ndarray:
    """Jaro-Winkler per pair of codes, NaN if either is null. Each distinct pair scored once."""
    sim = np.full(len(ca), np.nan, np.float32)
    both = (ca >= 0) & (cb >= 0)
    same = both & (ca == cb)
    sim[same] = 1.0
    differ = both & ~same
    if differ.any():
        n = len(words)
        distinct, inverse = np.unique(ca[differ].astype(np.int64) * n + cb[differ],
                                      return_inverse=True)
        # Only the strings of distinct differing pairs ever become Python objects.
        a = words.take(pa.array(distinct // n)).to_pylist()
        b = words.take(pa.array(distinct % n)).to_pylist()
        scores = cpdist(a, b, scorer=JaroWinkler.normalized_similarity, dtype=np.float32)
        sim[differ] = scores[inverse]
    return sim


def _level(sim: np.ndarray, levels: tuple, w: MatchWeights) -> np.ndarray:
    exact, close, fuzzy, far = levels
    out = np.select([sim >= 1.0, sim >= w.close, sim >= w.fuzzy], [exact, close, fuzzy], far)
    return np.where(np.isnan(sim), 0.0, out).astype(np.float32)


def _equal_level(a, b, partial_a, partial_b, levels: tuple) -> np.ndarray:
    """Exact / partial / different for values given as ints (negative = missing)."""
    exact, partial, far = levels
    out = np.where(a == b, exact, np.where(partial_a == partial_b, partial, far))
    return np.where((a < 0) | (b < 0), 0.0, out).astype(np.float32)


def name_score(part: pa.Table, left, right, w: MatchWeights) -> np.ndarray:
    """First + last name evidence, also trying the two names swapped (a common entry error)."""
    n = part.num_rows
    # One dictionary for both columns, so a first name can be compared with a last name.
    codes, words = dictionary_codes(pa.concat_arrays([part["first"].combine_chunks(),
                                                      part["last"].combine_chunks()]))
    first, last = codes[:n], codes[n:]
    straight = (_level(string_similarity(first[left], first[right], words), w.first, w)
                + _level(string_similarity(last[left], last[right], words), w.last, w))
    # Only pairs whose names disagree both ways round can gain from the swap; score just those.
    maybe = np.flatnonzero(straight < 0)
    lft, rgt = left[maybe], right[maybe]
    swapped = (_level(string_similarity(first[lft], last[rgt], words), w.first, w)
               + _level(string_similarity(last[lft], first[rgt], words), w.last, w))
    straight[maybe] = np.maximum(straight[maybe], swapped)
    return straight


def dob_score(part: pa.Table, left, right, w: MatchWeights) -> np.ndarray:
    dob = pc.fill_null(part["dob"], -1).to_numpy().astype(np.int64)
    a, b = dob[left], dob[right]
    ya, ma, da = a // 10_000, a // 100 % 100, a % 100
    yb, mb, db = b // 10_000, b // 100 % 100, b % 100
    slip = (ya == yb) & (((ma == mb) & (np.abs(da - db) <= 2)) | ((ma == db) & (da == mb)))
    exact, partial, far = w.dob
    out = np.where(a == b, exact, np.where(slip, partial, far))
    return np.where((a < 0) | (b < 0), 0.0, out).astype(np.float32)


def score_pairs(part: pa.Table, left: np.ndarray, right: np.ndarray,
                w: MatchWeights = DEFAULT_WEIGHTS) -> np.ndarray:
    """Total match weight of each (left, right) row pair of a partition table."""
    score = name_score(part, left, right, w) + dob_score(part, left, right, w)
    email, _ = dictionary_codes(part["email"])
    local = part["key_email_local"].to_numpy()  # the hash of the local part: equal iff equal
    score += _equal_level(email[left], email[right], local[left], local[right], w.email)
    return (score + contact_score(part, left, right, w)).astype(np.float32)


def contact_score(part: pa.Table, left, right, w: MatchWeights) -> np.ndarray:
    phone = pc.fill_null(part["phone"], -1).to_numpy()
    pa_, pb_ = phone[left], phone[right]
    score = _equal_level(pa_, pb_, pa_ % 10_000_000, pb_ % 10_000_000, w.phone)
    address, words = dictionary_codes(part["address"])
    score += _level(string_similarity(address[left], address[right], words), w.address, w)
    zips = pc.fill_null(part["zip"], -1).to_numpy()
    score += np.where((zips[left] >= 0) & (zips[left] == zips[right]), np.float32(w.zip),
                      np.float32(0))
    return np.minimum(score, np.float32(w.contact_cap))


PAIR_SCHEMA = pa.schema([("record_id_a", pa.int64()), ("record_id_b", pa.int64()),
                         ("score", pa.float32())])


@dataclass
class MatchResult:
    """What one partition's match task hands to the join: matched pairs and counters."""

    pairs: pa.Table
    candidates: int
    seconds: float
    # For the run's card: candidate pairs per score bin (SCORE_BINS), blocks per size bin
    # (BLOCK_BINS).
    score_hist: np.ndarray | None = None
    block_hist: np.ndarray | None = None


SCORE_BINS = np.arange(-30.0, 31.0, 1.0)          # bin edges of match weights
BLOCK_BINS = np.array([1, 2, 3, 5, 9, 17, 33, 65, 129, 257, 513, 1025, 1 << 62])


def block_size_hist(part: pa.Table) -> np.ndarray:
    """How many blocks of each size (BLOCK_BINS) the partition has, before giant ones split."""
    _, sizes = np.unique(part["block"].to_numpy(), return_counts=True)
    return np.histogram(sizes, bins=BLOCK_BINS)[0]


DEFAULT_MAX_BLOCK = 200


def match_partition(part: pa.Table, giant: pa.Table | np.ndarray | None = None,
                    threshold: float = DEFAULT_THRESHOLD, max_block: int = DEFAULT_MAX_BLOCK,
                    weights: MatchWeights = DEFAULT_WEIGHTS) -> MatchResult:
    """Candidate pairs, scores and the threshold decision for one partition."""
    started = time.perf_counter()
    if isinstance(giant, pa.Table):
        giant = giant["block"].to_numpy()
    giant = np.zeros(0, np.uint64) if giant is None else giant
    left, right = candidate_pairs(part, giant, max_block)
    score = score_pairs(part, left, right, weights)
    hit = score >= threshold
    rid = part["record_id"].to_numpy()
    a, b = rid[left[hit]], rid[right[hit]]
    pairs = pa.table([pa.array(np.minimum(a, b)), pa.array(np.maximum(a, b)),
                      pa.array(score[hit])], schema=PAIR_SCHEMA)
    score_hist = np.histogram(np.clip(score, SCORE_BINS[0], SCORE_BINS[-1] - 1e-9),
                              bins=SCORE_BINS)[0]
    return MatchResult(pairs, len(left), time.perf_counter() - started, score_hist,
                       block_size_hist(part))


# --------------------------------------------------------------------------------------------
# Entities: connected components over every partition's matches


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (its smallest member) of nodes 0..n-1 joined by edges (a[i], b[i]).

    Vectorized union-find: hook the larger root onto the smaller for every edge whose ends
    still have different roots, then compress paths by pointer jumping; repeat. Roots only
    ever point to smaller ids, so there are no cycles, and it takes O(log n) rounds in practice.
    """
    parent = np.arange(n, dtype=np.int64)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        live = ra != rb
        a, b, ra, rb = a[live], b[live], ra[live], rb[live]
        if not len(a):
            break
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # pointer jumping until every node points at a root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return parent


ENTITY_SCHEMA = pa.schema([("record_id", pa.int64()), ("entity_id", pa.int64()),
                           ("entity_size", pa.int32())])


def resolve_entities(record_ids, pair_tables: list[pa.Table]) -> pa.Table:
    """Entity table (record_id, entity_id, entity_size), sorted by record_id.

    entity_id is the smallest record_id of the entity, so it is stable however the pairs were
    partitioned or ordered.
    """
    ids = np.sort(np.asarray(record_ids, np.int64))
    pairs = pa.concat_tables([t.select(["record_id_a", "record_id_b"]) for t in pair_tables]) \
        if pair_tables else pa.table({"record_id_a": pa.array([], pa.int64()),
                                      "record_id_b": pa.array([], pa.int64())})
    a = np.searchsorted(ids, pairs["record_id_a"].to_numpy())
    b = np.searchsorted(ids, pairs["record_id_b"].to_numpy())
    label = connected_components(len(ids), a, b)  # smallest index == smallest id (ids sorted)
    size = np.bincount(label, minlength=len(ids))[label].astype(np.int32)
    return pa.table([pa.array(ids), pa.array(ids[label]), pa.array(size)], schema=ENTITY_SCHEMA)


def pairwise_metrics(entities: pa.Table, truth: pa.Table) -> dict:
    """Precision, recall and F1 over record pairs put in one entity, against the truth.

    Counted from the contingency of (predicted, true) entity per record: no pair list needed.
    """
    # Align the two by record id with a sort + binary search: an Arrow hash join of 1M rows
    # costs seconds, this a fraction of one.
    rid, pred = entities["record_id"].to_numpy(), entities["entity_id"].to_numpy()
    truth_rid, truth_eid = truth["record_id"].to_numpy(), truth["entity_id"].to_numpy()
    order = np.argsort(truth_rid, kind="stable")
    pos = np.minimum(np.searchsorted(truth_rid[order], rid), max(len(order) - 1, 0))
    known = truth_rid[order][pos] == rid if len(order) else np.zeros(len(rid), bool)
    pred, true = pred[known], truth_eid[order][pos][known]

    def pairs(counts: np.ndarray) -> int:
        return int((counts * (counts - 1) // 2).sum())

    _, dp = np.unique(pred, return_inverse=True)  # dense labels, so bincount works
    _, dt = np.unique(true, return_inverse=True)
    joint = dp.astype(np.int64) * (int(dt.max()) + 1 if len(dt) else 1) + dt
    both = pairs(np.unique(joint, return_counts=True)[1])
    predicted, actual = pairs(np.bincount(dp)), pairs(np.bincount(dt))
    precision = both / predicted if predicted else 1.0
    recall = both / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_pairs": actual,
            "predicted_pairs": predicted, "records": len(pred),
            "entities": int(dp.max()) + 1 if len(dp) else 0,
            "true_entities": int(dt.max()) + 1 if len(dt) else 0}


# --------------------------------------------------------------------------------------------
# The whole job on one core: the flow's steps in a loop (and the benchmark's baseline)


@dataclass
class BaselineResult:
    entities: pa.Table
    records: int
    candidates: int
    matches: int
    giant_blocks: int
    seconds: float
    stage_seconds: dict = field(default_factory=dict)


def single_process_baseline(table: pa.Table, partitions: int = 16,
                            max_block: int = DEFAULT_MAX_BLOCK,
                            threshold: float = DEFAULT_THRESHOLD,
                            shard_rows: int = 50_000) -> BaselineResult:
    """The flow's steps in one process, one shard and one partition after another."""
    t0 = time.perf_counter()
    shards = [prepare_shard(table.slice(i, shard_rows), partitions)
              for i in range(0, max(table.num_rows, 1), shard_rows)]
    t1 = time.perf_counter()
    parts = gather_partitions(shards)
    giant = find_giant_blocks(parts, max_block)
    t2 = time.perf_counter()
    results = [match_partition(p, giant, threshold, max_block) for p in parts]
    t3 = time.perf_counter()
    entities = resolve_entities(table["record_id"].to_numpy(), [r.pairs for r in results])
    t4 = time.perf_counter()
    return BaselineResult(
        entities=entities, records=table.num_rows,
        candidates=sum(r.candidates for r in results),
        matches=sum(r.pairs.num_rows for r in results), giant_blocks=giant.num_rows,
        seconds=t4 - t0,
        stage_seconds={"prepare": t1 - t0, "gather": t2 - t1, "match": t3 - t2,
                       "resolve": t4 - t3})
