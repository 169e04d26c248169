"""The Transparency Center portal: one web site over the log and what is logged in it.

- :mod:`overt.portal.app`: :class:`Portal`, the ASGI app (server-rendered Jinja2
  pages, readable with curl), configured by :class:`PortalConfig`.
- :mod:`overt.portal.entries`: :func:`decode_entry` and :class:`EntryIndex`, what an
  entry says and searching entries by kind, product, version and digest (SQLite on disk).
- :mod:`overt.portal.checks`: :func:`entry_steps`, the server's verification steps;
  ``static/verify.js`` repeats them in the visitor's browser with WebCrypto.
- :mod:`overt.portal.accounts`, :mod:`overt.portal.partners`, :mod:`overt.portal.area`:
  the partners' area (accounts and sessions; the statement handed out and the signed
  envelope accepted back, verified against the partner's logged key; its HTTP face).

Example (decoding an entry that is not a statement)::

    >>> from overt.portal import decode_entry
    >>> decode_entry(0, b"hello\\n").kind
    'text'

The names below are imported on first use, so ``import overt.portal`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.portal.app import Portal, PortalConfig
    from overt.portal.checks import Step, entry_steps
    from overt.portal.entries import DecodedEntry, EntryIndex, decode_entry

__all__ = [
    "DecodedEntry",
    "EntryIndex",
    "Portal",
    "PortalConfig",
    "Step",
    "decode_entry",
    "entry_steps",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.portal.app": ["Portal", "PortalConfig"],
            "overt.portal.checks": ["Step", "entry_steps"],
            "overt.portal.entries": ["DecodedEntry", "EntryIndex", "decode_entry"],
        },
    )
