"""Post-quantum signatures (issue 15): ML-DSA-44 through overt beside ``cryptography``'s raw calls.

- **sign**: ``KeySigner.sign(text)`` (parse the checkpoint, build tlog-cosignature's
  ``subtree/v1`` message, sign, timestamp) and ``cosign_line`` (the same, as a base64
  signature line) against ``MLDSA44PrivateKey.sign(message)`` on the same message;
- **verify**: ``KeyVerifier.verify(text, signature)`` (what ``open_note`` calls for each
  signature) and ``open_note(note, [verifier])`` (strict parse of the whole note, 3.2 kB of
  base64 included, then that check) against ``MLDSA44PublicKey.verify`` (target for all
  four: within 1.2x);
- the same pairs for Ed25519 cosignature/v1, for scale (no target);
- **witness** ``POST /add-checkpoint`` with an ML-DSA-44 witness key: bench_witness's real
  server and load generator, 64 Ed25519 logs (target: >= 1,500 requests/s on 2 cores).

Raw and overt calls alternate in rounds; each figure is the fastest round's mean CPU time,
so a neighbour on a shared machine inflates neither side of a ratio.

    python -m bench pq
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import Result
from bench.bench_witness import bench_add_checkpoint
from overt.formats.checkpoint import Checkpoint, format_checkpoint, sign_checkpoint
from overt.formats.cosignature import COSIGNATURE_V1, ML_DSA_44_COSIGNATURE, cosign_line
from overt.formats.keytypes import ED25519_NOTE, KeySigner, KeyType, generate
from overt.formats.merkle import leaf_hash
from overt.formats.note import open_note

RATIO = 1.2
WITNESS_TARGET = 1500.0
ORIGIN = "bench.example/log"


def _fastest(calls: dict[str, Callable[[], object]], n: int, rounds: int) -> dict[str, float]:
    """CPU seconds per call of each function: the fastest of ``rounds`` interleaved rounds.

    This thread's CPU time (``cryptography`` signs and verifies in the calling thread), so
    that other processes on a shared machine slow neither side of a ratio.
    """
    best = dict.fromkeys(calls, float("inf"))
    for fn in calls.values():  # warm up
        for _ in range(3):
            fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.thread_time()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.thread_time() - start) / n)
    return best


def _pair(kind: KeyType, n: int, rounds: int) -> dict[str, float]:
    log = generate(ED25519_NOTE, ORIGIN)
    text = format_checkpoint(Checkpoint(ORIGIN, 1_000_000, leaf_hash(b"bench")))
    note = sign_checkpoint(Checkpoint(ORIGIN, 1_000_000, leaf_hash(b"bench")), log)
    signer: KeySigner = generate(kind, "bench.example/witness", clock=lambda: 1_764_000_000)
    verifier = signer.verifier()
    line = cosign_line(signer, text)
    cosigned = note + line
    signature = signer.sign(text)
    message = kind.message(signer.name, 1_764_000_000, text)
    raw_private, raw_public, raw_sig = signer._private, signer.public_key, signature[8:]
    return _fastest(
        {
            "raw sign": lambda: raw_private.sign(message),
            "KeySigner.sign(checkpoint text)": lambda: signer.sign(text),
            "cosign_line (a signature line)": lambda: cosign_line(signer, text),
            "raw verify": lambda: raw_public.verify(raw_sig, message),
            "KeyVerifier.verify(text, signature)": lambda: verifier.verify(text, signature),
            f"open_note ({len(cosigned)}-byte note)": lambda: open_note(cosigned, [verifier]),
        },
        n,
        rounds,
    )


def _results(label: str, t: dict[str, float], target: bool) -> list[Result]:
    out = []
    for name, took in t.items():
        if name.startswith("raw "):
            continue
        op = "sign" if "sign(" in name or "cosign" in name else "verify"
        raw = t[f"raw {op}"]
        ratio = took / raw
        out.append(
            Result(
                f"{label}: {name} / cryptography's raw {op}",
                ratio,
                "x",
                f"<= {RATIO}" if target else "",
                ratio <= RATIO if target else None,
                f"overt {took * 1e6:.0f} us, raw {raw * 1e6:.0f} us",
            )
        )
    return out


def run(quick: bool) -> list[Result]:
    n, rounds = (40, 3) if quick else (200, 7)
    results = _results("ML-DSA-44", _pair(ML_DSA_44_COSIGNATURE, n, rounds), target=True)
    results += _results("Ed25519 cosignature/v1", _pair(COSIGNATURE_V1, n, rounds), target=False)
    seconds = 2.0 if quick else 8.0
    with tempfile.TemporaryDirectory(prefix="overt-bench-pq-") as tmp:
        results += bench_add_checkpoint(
            Path(tmp), 64, seconds, key_type="ml-dsa-44", target=WITNESS_TARGET
        )
    return results
