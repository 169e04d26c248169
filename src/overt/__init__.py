"""overt: prove, rather than promise, that security software hides nothing.

The package is laid out by architecture:

- ``overt.formats``: the wire formats (one module per C2SP/in-toto spec) and the
  verification core. Pure functions, no I/O: bytes in, verified objects or a
  typed error out.
- ``overt.log``: the tiled transparency log (storage, sequencer, HTTP server).
- ``overt.cli``: the ``overt`` command, a thin shell over the library.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
