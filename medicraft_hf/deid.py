"""De-identification: clinical identifiers become salted hashes, never copied."""

from __future__ import annotations

import hashlib
import os

# The salt keeps pseudonyms unlinkable to the clinic's ids. Set MEDICRAFT_ID_SALT to a
# secret of your own for real data; keep it to re-identify nothing, only to re-link
# new exports of the same patient to the same pseudonym.
DEFAULT_SALT = "medicraft-hf"


def pseudonym(identifier: str, salt: str | None = None, prefix: str = "p") -> str:
    """A stable, salted, non-reversible pseudonym such as 'p-3f9a1c2b7d4e'."""
    if identifier is None or str(identifier).strip() == "":
        raise ValueError("Cannot pseudonymize an empty identifier.")
    salt = salt if salt is not None else os.environ.get("MEDICRAFT_ID_SALT", DEFAULT_SALT)
    digest = hashlib.sha256(f"{salt}\x00{identifier}".encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:12]}"
