"""Publishing: publisher keys and key sets, signed and logged publications, bundles.

- :mod:`overt.publish.keys`: Ed25519 publisher keys (files, text forms, DSSE key IDs).
- :mod:`overt.publish.keyset`: rotation and revocation as logged key-set statements.
- :mod:`overt.publish.bundle`: the ``.overt`` bundle format.
- :mod:`overt.publish.publisher`: :func:`publish` a batch to a log, write bundles.
"""

from __future__ import annotations

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
