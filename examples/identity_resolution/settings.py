"""The settings file of the identity-resolution job, and the checks of the input against it.

A settings file (YAML or JSON) says what the records look like and how to compare them:

    link_type: dedupe            # dedupe | link (two datasets) | link_and_dedupe
    unique_id: rec_id            # any type; ids need only be unique within one input
    inputs: [data/people]        # optional: Parquet or CSV, a file or a folder, local or s3://
    comparisons:
      - {column: given_name, comparison: name}
      - {column: surname, comparison: name, term_frequency: true}
      - {column: date_of_birth, comparison: date}
      - {column: postcode, comparison: postcode}
      - {column: soc_sec_id, comparison: levenshtein, levels: [1, 2]}
    blocking:                    # a pair is a candidate when it agrees on every key of a rule
      - [surname, year(date_of_birth)]
      - [soundex(given_name), postcode]
    threshold: 0.9               # match probability at or above which a pair is a match

`parse_settings` turns the text into a `Settings` or raises `SettingsError` with one message
that names the key, the column and the fix. `check_inputs` reads only the schemas of the
inputs (a Parquet footer, a CSV header) and raises `SettingsError` when a column the settings
name is missing or has a type its comparison cannot read. Both run on the driver while the run
is being set up, before any step starts.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

LINK_TYPES = ("dedupe", "link", "link_and_dedupe")

# comparison -> (what its levels mean, default levels). Levels run from the strongest
# agreement down; "exact" is always first and "else" always last.
COMPARISONS: dict[str, tuple[str, tuple]] = {
    "exact": ("no levels", ()),
    "jaro_winkler": ("Jaro-Winkler similarities, highest first", (0.92, 0.8)),
    "levenshtein": ("edit distances, smallest first", (1, 2)),
    "name": ("Jaro-Winkler similarities, then the same Soundex", (0.92, 0.8)),
    "phonetic": ("no levels: exact, then the same Soundex", ()),
    "date": ("day differences, smallest first (after exact and one typo)", (31, 366)),
    "numeric": ("absolute differences, smallest first", (1,)),
    "postcode": ("prefix lengths, longest first (after exact and one typo)", (3,)),
    "email": ("no levels: exact, same local part, then local parts Jaro-Winkler >= 0.88", ()),
    "phone": ("no levels: exact (last 10 digits), last 7 digits, one typo", ()),
}
STRING_COMPARISONS = {"exact", "jaro_winkler", "levenshtein", "name", "phonetic", "postcode",
                      "email", "phone"}
BLOCKING_FUNCTIONS = ("soundex", "prefix", "suffix", "year", "month")
TOP_KEYS = ("link_type", "unique_id", "inputs", "source_names", "comparisons", "blocking",
            "threshold", "max_block", "partitions", "u_sample_records", "u_sample_pairs",
            "em_iterations", "em_tolerance", "keep_pairs_above", "groups", "training",
            "duplicate_ids")
DUPLICATE_IDS = ("error", "keep_first")
COMPARISON_KEYS = ("column", "comparison", "levels", "term_frequency", "nicknames",
                   "swapped_with")
DEFAULT_THRESHOLD = 0.9


class SettingsError(ValueError):
    """A settings file, or input that does not match it: one message a user can act on."""


@dataclass(frozen=True)
class Comparison:
    column: str           # the input column
    kind: str             # one of COMPARISONS
    levels: tuple = ()    # the kind's thresholds
    term_frequency: bool = False
    nicknames: bool = False
    # Another column that is sometimes entered in this one's place (first and last name):
    # the pair gets a "swapped" level when each side's value is the other's in that column.
    swapped_with: str = ""

    @property
    def level_names(self) -> tuple[str, ...]:
        """What each gamma value means, 0 first (the strongest); the last is "else"."""
        k = self.kind
        if k == "exact":
            middle = ()
        elif k == "jaro_winkler":
            middle = tuple(f"jaro_winkler>={t:g}" for t in self.levels)
        elif k == "levenshtein":
            middle = tuple(f"levenshtein<={t:g}" for t in self.levels)
        elif k == "name":
            middle = tuple(f"jaro_winkler>={t:g}" for t in self.levels) + ("same soundex",)
        elif k == "phonetic":
            middle = ("same soundex",)
        elif k == "date":
            middle = ("one typo or day/month swapped",) + tuple(
                f"within {t:g} days" for t in self.levels)
        elif k == "numeric":
            middle = tuple(f"within {t:g}" for t in self.levels)
        elif k == "postcode":
            middle = ("one typo",) + tuple(f"same first {t:g}" for t in self.levels)
        elif k == "email":
            middle = ("same local part", "local parts jaro_winkler>=0.88")
        else:  # phone
            middle = ("same last 7 digits", "one typo")
        if self.swapped_with:
            middle += (f"swapped with {self.swapped_with}",)
        return ("exact",) + middle + ("else",)

    @property
    def n_levels(self) -> int:
        return len(self.level_names)


@dataclass(frozen=True)
class BlockingKey:
    function: str  # "" for the value itself, else one of BLOCKING_FUNCTIONS
    column: str
    arg: int = 0

    def describe(self) -> str:
        if not self.function:
            return self.column
        return f"{self.function}({self.column}{f', {self.arg}' if self.arg else ''})"


NO_CUT = 2**40  # max_block: none -- no block is cut into windows


@dataclass(frozen=True)
class Settings:
    link_type: str
    unique_id: str | None
    comparisons: tuple[Comparison, ...]
    blocking: tuple[tuple[BlockingKey, ...], ...]
    inputs: tuple[str, ...] = ()
    source_names: tuple[str, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    max_block: int = 200  # NO_CUT: none ("max_block: none")
    partitions: int = 0  # 0: one per 60,000 records
    u_sample_records: int = 20_000
    u_sample_pairs: int = 1_000_000
    em_iterations: int = 25
    em_tolerance: float = 1e-4
    keep_pairs_above: float = 0.01
    # Comparisons that are not independent evidence (a household shares a phone, an address
    # and a zip): (columns, max_weight in bits) -- their summed weight is capped.
    groups: tuple = ()
    # The blocking rules whose pairs EM learns m from, as indexes into `blocking` (all of
    # them unless the settings say `training`).
    training: tuple = ()
    # Records of one input that share a unique_id: "error" stops the run naming them;
    # "keep_first" keeps each id's first record (in file order) and drops the others.
    duplicate_ids: str = "error"
    where: str = "settings"
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def columns(self) -> list[str]:
        """Every input column the job reads, in settings order, without repeats."""
        names = [c.column for c in self.comparisons]
        names += [k.column for rule in self.blocking for k in rule]
        return list(dict.fromkeys(names))

    def comparison_of(self, column: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.column == column), None)

    def rule_names(self) -> list[str]:
        return [" & ".join(k.describe() for k in rule) for rule in self.blocking]

    def to_dict(self) -> dict:
        return dict(self.raw)


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def load_text(text: str, where: str = "settings") -> dict:
    """YAML or JSON text -> a dict (JSON is YAML, but JSON's own errors read better)."""
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - both parsers raise their own types
        raise SettingsError(f"{where}: not valid YAML or JSON ({str(exc).splitlines()[0]}). "
                            f"Fix the file's syntax.") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: the settings must be a mapping of keys (link_type, "
                            f"comparisons, blocking, ...), not {type(data).__name__}.")
    return data


def parse_settings(text: str | dict, where: str = "settings") -> Settings:
    """Settings from YAML/JSON text (or an already loaded dict); SettingsError when bad."""
    data = load_text(text, where) if isinstance(text, str) else dict(text)
    for key in data:
        if key not in TOP_KEYS:
            raise SettingsError(f"{where}: unknown key {key!r}.{_suggest(key, TOP_KEYS)} "
                                f"Known keys: {', '.join(TOP_KEYS)}.")
    link_type = data.get("link_type", "dedupe")
    if link_type not in LINK_TYPES:
        raise SettingsError(f"{where}: link_type {link_type!r} is not one of "
                            f"{', '.join(LINK_TYPES)}.{_suggest(link_type, LINK_TYPES)}")
    unique_id = data.get("unique_id")
    if unique_id is not None and not isinstance(unique_id, str):
        raise SettingsError(f"{where}: unique_id must be a column name, not {unique_id!r}.")
    comparisons = _parse_comparisons(data.get("comparisons"), where)
    blocking = _parse_blocking(data.get("blocking"), comparisons, where)
    inputs = data.get("inputs") or []
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise SettingsError(f"{where}: inputs must be a path or a list of paths.")
    source_names = tuple(str(s) for s in data.get("source_names") or ())
    duplicate_ids = data.get("duplicate_ids", "error")
    if duplicate_ids not in DUPLICATE_IDS:
        raise SettingsError(f"{where}: duplicate_ids {duplicate_ids!r} is not one of "
                            f"{', '.join(DUPLICATE_IDS)}.{_suggest(duplicate_ids, DUPLICATE_IDS)}")
    groups = _parse_groups(data.get("groups") or [], comparisons, where)
    training = tuple(range(len(blocking)))
    if "training" in data:
        rules = data["training"]
        if not isinstance(rules, list) or not rules:
            raise SettingsError(f"{where}: training lists blocking rules to learn m from, "
                                f"e.g. training: [[email], [surname, year(dob)]].")
        chosen = []
        for i, rule in enumerate(rules):
            at = f"{where}: training[{i}]"
            rule = [k for k in rule.split("&")] if isinstance(rule, str) else rule
            keys = tuple(parse_blocking_key(k, comparisons, at)
                         for k in _rejoin(rule if isinstance(rule, list) else [rule]))
            if keys not in blocking:
                raise SettingsError(f"{at}: {' & '.join(k.describe() for k in keys)} is not "
                                    f"one of the blocking rules; EM learns from the pairs a "
                                    f"blocking rule made, so list it under blocking too.")
            chosen.append(blocking.index(keys))
        training = tuple(dict.fromkeys(chosen))
    numbers = {}
    if "max_block" in data and data["max_block"] in (None, "none"):
        numbers["max_block"] = NO_CUT  # compare every block whole
    for key, kind, low, high in (("threshold", float, 0.0, 1.0), ("max_block", int, 2, 10**7),
                                 ("partitions", int, 1, 100_000),
                                 ("u_sample_records", int, 10, 10**8),
                                 ("u_sample_pairs", int, 100, 10**9),
                                 ("em_iterations", int, 0, 10_000),
                                 ("em_tolerance", float, 0.0, 1.0),
                                 ("keep_pairs_above", float, 0.0, 1.0)):
        if key in data and key not in numbers:
            value = data[key]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
                kind is float or float(value).is_integer())
            if not ok or not low <= value <= high:
                what = "an integer" if kind is int else "a number"
                extra = " (or none: no block cut)" if key == "max_block" else ""
                raise SettingsError(f"{where}: {key} must be {what} from {low:g} to {high:g}"
                                    f"{extra}, not {value!r}.")
            numbers[key] = kind(value)
    settings = Settings(link_type=link_type, unique_id=unique_id, comparisons=comparisons,
                        blocking=blocking, inputs=tuple(inputs), source_names=source_names,
                        groups=groups, training=training, duplicate_ids=duplicate_ids,
                        where=where, raw=data, **numbers)
    if settings.inputs:
        check_input_count(settings, settings.inputs)
    return settings


def _parse_comparisons(items, where: str) -> tuple[Comparison, ...]:
    if not isinstance(items, list) or not items:
        raise SettingsError(f"{where}: 'comparisons' must list at least one column, e.g. "
                            f"comparisons: [{{column: surname, comparison: name}}].")
    out, seen = [], set()
    for i, item in enumerate(items):
        at = f"{where}: comparisons[{i}]"
        if isinstance(item, str):
            item = {"column": item, "comparison": "exact"}
        if not isinstance(item, dict) or not isinstance(item.get("column"), str):
            raise SettingsError(f"{at}: give a mapping with at least 'column' (the input "
                                f"column's name) and 'comparison', not {item!r}.")
        column = item["column"]
        at = f"{at} (column {column!r})"
        for key in item:
            if key not in COMPARISON_KEYS:
                raise SettingsError(f"{at}: unknown key {key!r}.{_suggest(key, COMPARISON_KEYS)}"
                                    f" Known keys: {', '.join(COMPARISON_KEYS)}.")
        if column in seen:
            raise SettingsError(f"{at}: the column is compared twice; keep one entry.")
        seen.add(column)
        kind = item.get("comparison", "exact")
        if kind not in COMPARISONS:
            raise SettingsError(f"{at}: comparison {kind!r} is not known."
                                f"{_suggest(kind, COMPARISONS)} Use one of: "
                                f"{', '.join(COMPARISONS)}.")
        meaning, default = COMPARISONS[kind]
        levels = item.get("levels", default)
        if not isinstance(levels, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels):
            raise SettingsError(f"{at}: levels must be a list of numbers ({meaning}), "
                                f"not {levels!r}.")
        levels = tuple(levels)
        if not default and levels:
            raise SettingsError(f"{at}: comparison {kind!r} takes no levels; remove 'levels'.")
        if kind in ("jaro_winkler", "name") and not all(0 < v <= 1 for v in levels):
            raise SettingsError(f"{at}: Jaro-Winkler levels are similarities in (0, 1], "
                                f"not {list(levels)}.")
        if kind in ("levenshtein", "date", "postcode") and not all(
                float(v).is_integer() and v >= 1 for v in levels):
            raise SettingsError(f"{at}: levels for {kind!r} are whole numbers of at least 1 "
                                f"({meaning}), not {list(levels)}.")
        if kind == "numeric" and not all(v >= 0 for v in levels):
            raise SettingsError(f"{at}: numeric levels are differences of at least 0, "
                                f"not {list(levels)}.")
        want = sorted(levels, reverse=kind in ("jaro_winkler", "name", "postcode"))
        if list(levels) != want or len(set(levels)) != len(levels):
            raise SettingsError(f"{at}: levels must be distinct and in order ({meaning}): "
                                f"write {want}.")
        for flag in ("term_frequency", "nicknames"):
            if not isinstance(item.get(flag, False), bool):
                raise SettingsError(f"{at}: {flag} is true or false, not {item[flag]!r}.")
        if item.get("nicknames") and kind not in ("name", "jaro_winkler", "exact", "phonetic"):
            raise SettingsError(f"{at}: nicknames apply to name columns; use comparison "
                                f"'name' or remove 'nicknames'.")
        swapped = item.get("swapped_with", "")
        if swapped and kind not in ("name", "jaro_winkler", "exact", "phonetic"):
            raise SettingsError(f"{at}: swapped_with applies to name and text comparisons "
                                f"(name, jaro_winkler, exact, phonetic).")
        out.append(Comparison(column, kind, levels, bool(item.get("term_frequency", False)),
                              bool(item.get("nicknames", False)), str(swapped or "")))
    names = [c.column for c in out]
    for i, c in enumerate(out):
        if c.swapped_with and (c.swapped_with not in names or c.swapped_with == c.column):
            raise SettingsError(f"{where}: comparisons[{i}] (column {c.column!r}): "
                                f"swapped_with {c.swapped_with!r} must name another compared "
                                f"column.{_suggest(c.swapped_with, names)}")
    return tuple(out)


def _parse_groups(items, comparisons, where: str) -> tuple:
    if not isinstance(items, list):
        raise SettingsError(f"{where}: groups is a list of {{columns: [...], max_weight: N}}.")
    out, used = [], set()
    compared = [c.column for c in comparisons]
    for i, item in enumerate(items):
        at = f"{where}: groups[{i}]"
        if not isinstance(item, dict) or set(item) - {"columns", "max_weight"} or not \
                isinstance(item.get("columns"), list) or len(item["columns"]) < 2:
            raise SettingsError(f"{at}: write {{columns: [phone, address], max_weight: 6}}: two "
                                f"or more compared columns and the most their weights may "
                                f"add up to, in bits.")
        cap = item.get("max_weight")
        if not isinstance(cap, (int, float)) or isinstance(cap, bool) or cap <= 0:
            raise SettingsError(f"{at}: max_weight must be a number above 0 (bits), "
                                f"not {cap!r}.")
        for column in item["columns"]:
            if column not in compared:
                raise SettingsError(f"{at}: {column!r} is not a compared column."
                                    f"{_suggest(column, compared)} Groups hold columns listed "
                                    f"under comparisons.")
            if column in used:
                raise SettingsError(f"{at}: {column!r} is already in another group.")
            used.add(column)
        out.append((tuple(item["columns"]), float(cap)))
    return tuple(out)


def parse_blocking_key(text: str, comparisons, at: str) -> BlockingKey:
    text = str(text).strip()
    function, arg, column = "", 0, text
    if "(" in text:
        if not text.endswith(")"):
            raise SettingsError(f"{at}: {text!r} is not a blocking key. Write a column, or "
                                f"one of {', '.join(f + '(column)' for f in BLOCKING_FUNCTIONS)}"
                                f" (prefix and suffix take a length: prefix(postcode, 3)).")
        function, inner = text[:-1].split("(", 1)
        function = function.strip()
        parts = [p.strip() for p in inner.split(",")]
        column = parts[0]
        if function not in BLOCKING_FUNCTIONS:
            raise SettingsError(f"{at}: {function!r} is not a blocking function."
                                f"{_suggest(function, BLOCKING_FUNCTIONS)} Use one of "
                                f"{', '.join(BLOCKING_FUNCTIONS)}.")
        if function in ("prefix", "suffix"):
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) < 1:
                raise SettingsError(f"{at}: {function} takes a column and a length, e.g. "
                                    f"{function}({column}, 3).")
            arg = int(parts[1])
        elif len(parts) != 1:
            raise SettingsError(f"{at}: {function} takes one column, e.g. {function}({column}).")
        if function in ("year", "month"):
            comp = next((c for c in comparisons if c.column == column), None)
            if comp is None or comp.kind != "date":
                raise SettingsError(f"{at}: {function}({column}) needs {column!r} compared as "
                                    f"a date (comparison: date) so it is parsed as one.")
    if not column:
        raise SettingsError(f"{at}: a blocking key needs a column name.")
    return BlockingKey(function, column, arg)


def _rejoin(items: list) -> list[str]:
    """A YAML flow list splits `prefix(postcode, 3)` at its comma: put such keys together."""
    out, buf = [], ""
    for item in items:
        buf = f"{buf}, {item}" if buf else str(item)
        if buf.count("(") <= buf.count(")"):
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    return out


def _parse_blocking(rules, comparisons, where: str):
    if not isinstance(rules, list) or not rules:
        raise SettingsError(f"{where}: 'blocking' must list at least one rule, e.g. "
                            f"blocking: [[surname], [given_name, year(date_of_birth)]]. "
                            f"A pair is compared only when it agrees on every key of a rule.")
    out = []
    for i, rule in enumerate(rules):
        at = f"{where}: blocking[{i}]"
        if isinstance(rule, str):
            rule = [k for k in rule.split("&")]
        if not isinstance(rule, list) or not rule:
            raise SettingsError(f"{at}: a rule is a list of keys, e.g. [surname, postcode], "
                                f"not {rule!r}.")
        keys = tuple(parse_blocking_key(k, comparisons, at) for k in _rejoin(rule))
        if keys in out:
            raise SettingsError(f"{at}: the same rule as an earlier one; remove it.")
        out.append(keys)
    return tuple(out)


def check_input_count(settings: Settings, inputs) -> None:
    n = len(inputs)
    where = settings.where
    if settings.link_type == "dedupe" and n != 1:
        raise SettingsError(f"{where}: link_type dedupe reads one input, but {n} were given. "
                            f"Give one (a file or a folder), or set link_type: link.")
    if settings.link_type in ("link", "link_and_dedupe") and n < 2:
        raise SettingsError(f"{where}: link_type {settings.link_type} links two or more "
                            f"inputs, but {n} {'was' if n == 1 else 'were'} given. Give them "
                            f"as --data a,b (or inputs: [a, b]), or set link_type: dedupe.")
    if settings.source_names and len(settings.source_names) != n:
        raise SettingsError(f"{where}: source_names has {len(settings.source_names)} names "
                            f"for {n} inputs; give one name per input.")


# --------------------------------------------------------------------------------------------
# Inputs: Parquet or CSV, a file or a folder, local or s3://

DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz", ".tsv")


def list_input_files(url: str) -> list[str]:
    """The data files of one input: the file itself, or the folder's Parquet/CSV files
    (sorted; files named truth.* are the evaluation's, not records)."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        if not fs.exists(path):
            raise SettingsError(f"Input {url!r} does not exist. Give a Parquet or CSV file, or a "
                                f"folder of them.")
        if fs.isdir(path):
            found = sorted(p for p in fs.find(path) if p.lower().endswith(DATA_SUFFIXES)
                           and not os.path.basename(p).startswith(("truth.", "_", ".")))
            if not found:
                raise SettingsError(f"Input folder {url!r} holds no .parquet or .csv files.")
            return [_url(fs, p) for p in found]
    except SettingsError:
        raise
    except Exception as exc:  # noqa: BLE001 - fsspec backends raise their own errors
        raise SettingsError(f"Input {url!r} cannot be read ({type(exc).__name__}: {exc}). "
                            f"Check the path and the credentials.") from None
    if not path.lower().endswith(DATA_SUFFIXES):
        raise SettingsError(f"Input {url!r} is neither Parquet nor CSV (by its name). Give a "
                            f".parquet or .csv file, or a folder of them.")
    return [_url(fs, path)]


def _url(fs, path: str) -> str:
    """A full URL for remote files; a plain path for local ones (as the user wrote it)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def estimate_rows(url: str) -> int:
    """Rows of a data file: a Parquet footer's count, or a CSV's size over the mean size of
    its first lines."""
    import fsspec
    import pyarrow.parquet as pq

    if not is_csv(url):
        with fsspec.open(url, "rb") as fh:
            return pq.ParquetFile(fh).metadata.num_rows
    fs, path = fsspec.core.url_to_fs(url)
    size = fs.size(path)
    with fsspec.open(url, "rb", compression="infer") as fh:
        head = fh.read(1 << 16)
    lines = max(head.count(b"\n"), 1)
    if url.lower().endswith(".gz"):
        size *= 4  # a guess at the ratio; this only sizes the partitions
    return max(1, int(size / (len(head) / lines)))


def is_csv(url: str) -> bool:
    return url.lower().endswith((".csv", ".csv.gz", ".tsv"))


def read_schema(url: str) -> pa.Schema:
    """The columns of one data file (names stripped of spaces), from its footer or header."""
    import fsspec
    import pyarrow.parquet as pq

    try:
        if is_csv(url):
            table = read_table(url, nrows=1000)
            return table.schema
        with fsspec.open(url, "rb") as fh:
            return pq.read_schema(fh)
    except SettingsError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SettingsError(f"Input file {url!r} cannot be read as "
                            f"{'CSV' if is_csv(url) else 'Parquet'} ({exc}).") from None


def read_table(url: str, nrows: int | None = None) -> pa.Table:
    """One data file as an Arrow table; CSV header names and string values are trimmed."""
    import fsspec
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if not is_csv(url):
        with fsspec.open(url, "rb") as fh:
            table = pq.read_table(fh)
    else:
        delimiter = "\t" if url.lower().endswith(".tsv") else ","
        with fsspec.open(url, "rb", compression="infer") as fh:
            data = fh.read() if nrows is None else b"".join(
                line for _, line in zip(range(nrows + 1), fh))
        # Everything as text: zips, ids and dates keep their leading zeros and their form;
        # each comparison parses what it needs.
        header = data.split(b"\n", 1)[0].decode("utf-8", "replace")
        names = [n.strip().strip('"') for n in header.split(delimiter)]
        table = pcsv.read_csv(pa.py_buffer(data), read_options=pcsv.ReadOptions(
            column_names=names, skip_rows=1), parse_options=pcsv.ParseOptions(
            delimiter=delimiter), convert_options=pcsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=True))
        table = pa.table({n: pc.utf8_trim_whitespace(table[n]) for n in table.column_names})
    return table.rename_columns([n.strip() for n in table.column_names])


READABLE = {
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
    or pa.types.is_integer(t) or pa.types.is_dictionary(t) or pa.types.is_null(t),
    "date": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
    or pa.types.is_integer(t) or pa.types.is_date(t) or pa.types.is_timestamp(t)
    or pa.types.is_null(t) or pa.types.is_dictionary(t),
    "numeric": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)
    or pa.types.is_decimal(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
    or pa.types.is_null(t),
}


def value_kind(comp: Comparison) -> str:
    return "date" if comp.kind == "date" else "numeric" if comp.kind == "numeric" else "string"


def check_schema(settings: Settings, schema: pa.Schema, url: str) -> None:
    """Every column the settings read is in `schema`, with a type its comparison can read."""
    names = schema.names
    wanted = ([settings.unique_id] if settings.unique_id else []) + settings.columns
    for column in wanted:
        if column not in names:
            role = ("unique_id" if column == settings.unique_id else
                    "a comparison" if settings.comparison_of(column) else "a blocking rule")
            raise SettingsError(
                f"Input {url!r} has no column {column!r} (named by {role} in "
                f"{settings.where}).{_suggest(column, names)} Its columns: {', '.join(names)}. "
                f"Rename the column in the settings, or drop the entry.")
    for comp in settings.comparisons:
        typ = schema.field(comp.column).type
        kind = value_kind(comp)
        if not READABLE[kind](typ):
            fix = {"date": "a date, a timestamp, yyyymmdd integers or date strings",
                   "numeric": "numbers", "string": "strings or integers"}[kind]
            raise SettingsError(
                f"Input {url!r}: column {comp.column!r} is {typ}, which comparison "
                f"{comp.kind!r} cannot read (it reads {fix}). Choose another comparison for "
                f"it in {settings.where}, or convert the column.")
    if settings.unique_id:
        typ = schema.field(settings.unique_id).type
        if pa.types.is_floating(typ) or pa.types.is_nested(typ):
            raise SettingsError(f"Input {url!r}: unique_id column {settings.unique_id!r} is "
                                f"{typ}; ids must be strings or integers.")


def check_inputs(settings: Settings, inputs) -> list[list[str]]:
    """The data files of each input, after checking each file's schema against the settings
    and, unless the settings keep each id's first record, that no id repeats in one input."""
    check_input_count(settings, inputs)
    files = []
    for url in inputs:
        found = list_input_files(url)
        for f in found:
            check_schema(settings, read_schema(f), f)
        files.append(found)
    if settings.unique_id and settings.duplicate_ids == "error":
        for url, found in zip(inputs, files):
            check_unique_ids(settings, url, found)
    return files


def id_hashes(url: str, column: str) -> np.ndarray:
    """A 64-bit hash of each id of one data file (whole strings, not a prefix), reading
    only the id column where the format allows."""
    import pyarrow.compute as pc

    ids = read_column(url, column)
    if pa.types.is_integer(ids.type):
        raw = pc.fill_null(ids, -(2**63)).to_numpy(zero_copy_only=False).astype(np.int64)
        return _mix64(raw.view(np.uint64))
    text = pc.fill_null(ids.cast(pa.string()), "").cast(pa.large_string())
    _, offsets_buf, data_buf = text.buffers()
    n = len(text)
    offsets = np.frombuffer(offsets_buf, np.int64)[text.offset: text.offset + n + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = np.full(n, 0xCBF29CE484222325, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(int(lengths.max()) if n else 0):
            has = lengths > j
            byte = data[starts[has] + j].astype(np.uint64)
            h[has] = (h[has] ^ byte) * np.uint64(0x100000001B3)
        return _mix64(h ^ lengths.astype(np.uint64))


def _mix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def read_column(url: str, column: str) -> pa.Array:
    """One column of one data file as one array (a Parquet file reads only that column)."""
    import fsspec
    import pyarrow.parquet as pq

    if is_csv(url):
        col = read_table(url)[column]
    else:
        with fsspec.open(url, "rb") as fh:
            col = pq.read_table(fh, columns=[column])[column]
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def repeated_rows(files: list[str], column: str) -> list[np.ndarray]:
    """For each file of one input, its rows whose id an earlier row (this file or an earlier
    one) already has: what keep_first drops. Holds 8 bytes an id while it runs."""
    hashes = [id_hashes(f, column) for f in files]
    whole = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    _, first = np.unique(whole, return_index=True)
    repeat = np.ones(len(whole), bool)
    repeat[first] = False
    out, at = [], 0
    for h in hashes:
        out.append(np.flatnonzero(repeat[at:at + len(h)]))
        at += len(h)
    return out


def check_unique_ids(settings: Settings, url: str, files: list[str]) -> None:
    """SettingsError naming the input, the column and a few ids when an id repeats in it."""
    column = settings.unique_id
    repeats = repeated_rows(files, column)
    if not any(len(r) for r in repeats):
        return
    found = []
    for f, rows in zip(files, repeats):
        if len(rows):
            found += read_column(f, column).take(pa.array(rows)).to_pylist()
    distinct = list(dict.fromkeys(found))
    shown = ", ".join(repr(v) for v in distinct[:5]) + (", ..." if len(distinct) > 5 else "")
    raise SettingsError(
        f"Input {url!r}: column {column!r} (unique_id in {settings.where}) repeats "
        f"{len(distinct):,} id{'s' if len(distinct) != 1 else ''}, {len(found):,} extra "
        f"record{'s' if len(found) != 1 else ''} in all: {shown}. Give each record its own id, "
        f"or add duplicate_ids: keep_first to the settings to keep each id's first record.")
