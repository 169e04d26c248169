"""Asking a witness for cosignatures (c2sp.org/tlog-witness), and reading what it cosigned.

A log (or a test) talks to one witness through one :class:`WitnessClient`,
over one keep-alive HTTP connection (the spec asks clients to keep them)::

    with WitnessClient("http://127.0.0.1:9001", timeout=5.0) as witness:
        try:
            lines = witness.add_checkpoint(old_size, proof, signed_checkpoint)
        except WitnessConflictError as err:
            proof = log.consistency_proof(err.size, new_size)      # retry from the
            lines = witness.add_checkpoint(err.size, proof, signed_checkpoint)  # witness's size
        cosigned = signed_checkpoint + lines   # a note with the witness's cosignature

Every status the spec names becomes its :class:`~overt.witness.errors.WitnessError`
subclass; anything else (network failure, timeout, 5xx, a reply that breaks the
protocol) is :class:`~overt.witness.errors.WitnessUnavailableError`. The reply is
parsed strictly; with ``verifier`` (the witness's cosignature/v1 key) each
returned cosignature by that key is also verified, and one must be present.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import httpx

from overt._http import fetch
from overt.errors import FormatError
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.note import MAX_NOTE_SIZE, Verifier, parse_note
from overt.formats.witness import (
    CONTENT_TYPE_SIZE,
    AddCheckpointRequest,
    SignSubtreeRequest,
    format_add_checkpoint,
    format_sign_subtree,
    parse_cosignature_lines,
    parse_size_body,
)
from overt.witness.errors import (
    UnknownLogError,
    WitnessConflictError,
    WitnessConsistencyError,
    WitnessError,
    WitnessRequestError,
    WitnessSignatureError,
    WitnessUnavailableError,
)

__all__ = ["WitnessClient"]

#: The largest ``/logs`` reply read (one origin a line).
MAX_LOGS_REPLY = 1 << 20
#: The largest ``add-checkpoint`` reply read: cosignature lines, capped alike by
#: :func:`overt.formats.witness.parse_cosignature_lines`.
MAX_COSIGNATURE_REPLY = 64 * 1024

_REFUSALS: dict[int, type[WitnessError]] = {
    400: WitnessRequestError,
    413: WitnessRequestError,  # a body larger than any valid request
    403: WitnessSignatureError,
    422: WitnessConsistencyError,
}


class WitnessClient:
    """One witness, at ``url`` (its submission and monitoring prefix).

    ``verifier``, if given, is the witness's cosignature key: returned
    cosignatures are then checked against the submitted checkpoint.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        *,
        verifier: Verifier | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.verifier = verifier
        self._client = client or httpx.Client(timeout=timeout, headers={"user-agent": "overt"})

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> WitnessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_checkpoint(
        self, old_size: int, proof: Sequence[bytes], checkpoint: bytes, *, cosigns: bool = True
    ) -> bytes:
        """Submits a signed checkpoint with a consistency proof from ``old_size``.

        Returns the witness's cosignature line(s), ``— <name> <base64>\\n`` each,
        ready to be appended to ``checkpoint``. ``cosigns=False`` is for a mirror
        (c2sp.org/tlog-mirror), which only takes the checkpoint as pending and may
        reply with an empty body: the reply is then returned unchecked.

        Raises:
            FormatError: the arguments do not make a valid request (nothing is sent).
            WitnessConflictError: 409; ``.size`` is the witness's latest cosigned size.
            WitnessRequestError, WitnessSignatureError, UnknownLogError,
                WitnessConsistencyError: 400, 403, 404, 422.
            WitnessUnavailableError: no reply, a timeout, another status, or a
                malformed reply.
            InvalidSignatureError: with ``verifier``, a cosignature by it is bad
                (or absent, as WitnessUnavailableError).
        """
        body = format_add_checkpoint(AddCheckpointRequest(old_size, tuple(proof), checkpoint))
        url = f"{self.url}/add-checkpoint"
        response = fetch(
            self._client, "POST", url, MAX_COSIGNATURE_REPLY, WitnessUnavailableError, content=body
        )
        status, reply, reason = response.status, response.content, response.reason
        if status == 200:
            return self._check_cosignatures(url, checkpoint, reply) if cosigns else reply
        if status == 409:
            ctype = response.headers.get("content-type", "").split(";")[0].strip()
            try:
                if ctype != CONTENT_TYPE_SIZE:
                    raise FormatError("409 reply", f"content type {ctype!r}")
                size = parse_size_body(reply)
            except FormatError as err:
                raise WitnessUnavailableError(
                    f"POST {url}: 409 without a size: {err}", 409
                ) from err
            raise WitnessConflictError(size, old_size)
        if status == 404:
            origin = checkpoint.split(b"\n", 1)[0].decode("utf-8", "replace")
            raise UnknownLogError(origin, f"{url}: 404: {reason}")
        refusal = _REFUSALS.get(status)
        if refusal is not None:
            raise refusal(f"{url}: {status}: {reason}")
        raise WitnessUnavailableError(f"POST {url}: HTTP {status}: {reason}", status)

    def sign_subtree(
        self,
        start: int,
        end: int,
        subtree_hash: bytes,
        proof: Sequence[bytes],
        checkpoint: bytes,
    ) -> bytes:
        """Asks for a subtree cosignature of ``[start, end)`` (c2sp.org/tlog-witness sign-subtree).

        ``checkpoint`` must carry this witness's cosignature and ``proof`` be the subtree
        consistency proof to it (:func:`overt.formats.subtree.subtree_consistency_proof`).
        Returns the witness's signature line(s). With ``verifier`` (the witness's ML-DSA-44
        key) a subtree cosignature by it must be present and verify.

        Raises:
            FormatError: the arguments do not make a valid request (nothing is sent).
            WitnessRequestError, WitnessSignatureError, UnknownLogError,
                WitnessConsistencyError: 400, 403, 404 (also: the witness does not offer
                sign-subtree), 422.
            WitnessUnavailableError: no reply, a timeout, another status, a malformed
                reply, or (with ``verifier``) no cosignature by it.
            InvalidSignatureError: with ``verifier``, its subtree cosignature is bad.
        """
        request = SignSubtreeRequest(start, end, subtree_hash, tuple(proof), checkpoint)
        verify = None
        if self.verifier is not None:
            verify = getattr(self.verifier, "verify_subtree", None)
            if verify is None:
                raise FormatError("witness key", "cannot verify subtree cosignatures")
        try:
            origin = parse_checkpoint(request.note.text).origin
        except FormatError:
            origin = ""  # the witness will say 400; nothing is verified without an origin
        url = f"{self.url}/sign-subtree"
        response = fetch(
            self._client,
            "POST",
            url,
            MAX_COSIGNATURE_REPLY,
            WitnessUnavailableError,
            content=format_sign_subtree(request),
        )
        status, reply, reason = response.status, response.content, response.reason
        if status == 200:
            try:
                signatures = parse_cosignature_lines(reply)
            except FormatError as err:
                raise WitnessUnavailableError(f"POST {url}: malformed reply: {err}", 200) from err
            if self.verifier is not None and verify is not None:
                mine = [
                    s
                    for s in signatures
                    if (s.name, s.key_id) == (self.verifier.name, self.verifier.key_id)
                ]
                if not mine:
                    raise WitnessUnavailableError(
                        f"POST {url}: no subtree cosignature by {self.verifier.name}", 200
                    )
                for sig in mine:
                    verify(origin, start, end, subtree_hash, sig.signature)
            return reply
        if status == 404:
            raise UnknownLogError(origin, f"{url}: 404: {reason}")
        refusal = _REFUSALS.get(status)
        if refusal is not None:
            raise refusal(f"{url}: {status}: {reason}")
        raise WitnessUnavailableError(f"POST {url}: HTTP {status}: {reason}", status)

    def _check_cosignatures(self, url: str, checkpoint: bytes, reply: bytes) -> bytes:
        try:
            signatures = parse_cosignature_lines(reply)
        except FormatError as err:
            raise WitnessUnavailableError(f"POST {url}: malformed reply: {err}", 200) from err
        if self.verifier is not None:
            text = parse_note(checkpoint).text
            mine = [
                s
                for s in signatures
                if (s.name, s.key_id) == (self.verifier.name, self.verifier.key_id)
            ]
            if not mine:
                raise WitnessUnavailableError(
                    f"POST {url}: no cosignature by {self.verifier.name} in the reply", 200
                )
            for sig in mine:
                self.verifier.verify(text, sig.signature)  # raises InvalidSignatureError
        return reply

    def latest(self, origin: str) -> bytes | None:
        """The latest checkpoint the witness cosigned for ``origin`` (unverified), or None.

        Raises:
            WitnessUnavailableError: no reply, a timeout, or a status other than 200/404.
        """
        url = f"{self.url}/checkpoint/{quote(origin, safe='')}"
        response = fetch(self._client, "GET", url, MAX_NOTE_SIZE, WitnessUnavailableError)
        if response.status == 404:
            return None
        if response.status != 200:
            raise WitnessUnavailableError(f"GET {url}: HTTP {response.status}", response.status)
        return response.content

    def logs(self) -> list[str]:
        """The origins the witness has cosigned checkpoints for.

        Raises:
            WitnessUnavailableError: no reply, a timeout, or a status other than 200.
        """
        url = f"{self.url}/logs"
        response = fetch(self._client, "GET", url, MAX_LOGS_REPLY, WitnessUnavailableError)
        if response.status != 200:
            raise WitnessUnavailableError(f"GET {url}: HTTP {response.status}", response.status)
        try:
            return response.content.decode("utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise WitnessUnavailableError(f"GET {url}: reply is not UTF-8", 200) from err
