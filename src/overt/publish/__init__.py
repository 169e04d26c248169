"""Publishing: publisher keys and key sets, signed and logged publications, bundles.

- :mod:`overt.publish.keys`: Ed25519 publisher keys (files, text forms, DSSE key IDs).
- :mod:`overt.publish.keyset`: rotation and revocation as logged key-set statements.
- :mod:`overt.publish.bundle`: the ``.overt`` bundle format.
- :mod:`overt.publish.publisher`: :func:`publish` a batch to a log, write bundles.

The names below are re-exported lazily (imported on first use), so importing
the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.publish.bundle import Bundle, format_bundle, parse_bundle
    from overt.publish.keys import PublisherKey, PublisherSigner, parse_publisher_key
    from overt.publish.keyset import KeyState, follow_keyset, make_keyset_entry
    from overt.publish.publisher import Publication, publish, write_bundle

__all__ = [
    "Bundle",
    "KeyState",
    "Publication",
    "PublisherKey",
    "PublisherSigner",
    "follow_keyset",
    "format_bundle",
    "make_keyset_entry",
    "parse_bundle",
    "parse_publisher_key",
    "publish",
    "write_bundle",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.publish.bundle": ["Bundle", "format_bundle", "parse_bundle"],
            "overt.publish.keys": ["PublisherKey", "PublisherSigner", "parse_publisher_key"],
            "overt.publish.keyset": ["KeyState", "follow_keyset", "make_keyset_entry"],
            "overt.publish.publisher": ["Publication", "publish", "write_bundle"],
        },
    )
