"""overt: prove, rather than promise, that security software hides nothing.

The package is laid out by architecture:

- ``overt.formats``: the wire formats (one module per C2SP/in-toto spec) and the
  verification core. Pure functions, no I/O: bytes in, verified objects or a
  typed error out.
- ``overt.log``: the tiled transparency log (storage, sequencer, HTTP server, client).
- ``overt.witness``: a witness that cosigns a log's checkpoints (and its client).
- ``overt.monitor``: follow a log, prove it append-only, compare with witnesses.
- ``overt.publish`` and ``overt.gate``: signed, logged publications; the endpoint's gate.
- ``overt.rules``: the YARA rule auditor.
- ``overt.errors``: the exception tree.
- ``overt.cli``: the ``overt`` command, a thin shell over the library.

Each package declares a small public API in ``__all__``, imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
