"""Tiny pure-Python wheels written by the tests themselves, for @pypi tests that resolve from a
local folder (`--find-links DIR --no-index`) instead of the network."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile


def make_wheel(folder: str, name: str, version: str, files: dict[str, str]) -> str:
    """Write `name`-`version` holding `files` ({path in the wheel: text}) into `folder`;
    returns the wheel's path."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = os.path.join(folder, f"{dist}-py3-none-any.whl")
    info = f"{dist}.dist-info"
    entries = {**files,
               f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
               f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: rayflow-tests\n"
                                "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    with zipfile.ZipFile(path, "w") as wheel:
        for name_in, text in entries.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name_in},sha256={digest.decode()},{len(data)}")
            wheel.writestr(name_in, data)
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path
