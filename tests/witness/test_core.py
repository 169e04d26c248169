"""The witness's I/O-free decision: every status code of c2sp.org/tlog-witness, in spec order."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import ConfigError
from overt.formats.checkpoint import Checkpoint, format_checkpoint, open_checkpoint, sign_checkpoint
from overt.formats.cosignature import CosignatureSigner, cosignature_timestamp
from overt.formats.merkle import EMPTY_ROOT
from overt.formats.note import (
    Ed25519Signer,
    Note,
    Signature,
    format_note,
    open_note,
    parse_note,
    sign_note,
)
from overt.formats.witness import AddCheckpointRequest, parse_cosignature_lines
from overt.witness import core as core_module
from overt.witness.core import (
    Cosigned,
    CosignedCheckpoint,
    add_checkpoint,
    decide,
    known_logs,
    verify_submission,
)
from overt.witness.errors import (
    UnknownLogError,
    WitnessConflictError,
    WitnessConsistencyError,
    WitnessError,
    WitnessRequestError,
    WitnessSignatureError,
)

from .simulators import T0, Clock, LogSimulator

WITNESS = "witness.example/w1"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(clock: Clock) -> CosignatureSigner:
    return CosignatureSigner(WITNESS, Ed25519PrivateKey.generate(), clock)


@pytest.fixture
def log() -> LogSimulator:
    return LogSimulator("core.example/log")


def _request(old: int, proof: list[bytes], note: bytes) -> AddCheckpointRequest:
    return AddCheckpointRequest(old, tuple(proof), note)


def _submit(
    stored: CosignedCheckpoint | None,
    log: LogSimulator,
    signer: CosignatureSigner,
    old: int,
    new: int | None = None,
) -> Cosigned:
    return add_checkpoint(
        stored, known_logs([log.verifier]), _request(*log.request(old, new)), signer
    )


def test_exported_members() -> None:
    assert set(core_module.__all__) == {
        "Cosigned",
        "CosignedCheckpoint",
        "KnownLogs",
        "Submission",
        "add_checkpoint",
        "decide",
        "known_logs",
        "verify_submission",
    }


# --- 200 -------------------------------------------------------------------------------


def test_first_checkpoint_is_cosigned_with_a_timestamped_cosignature(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    note = log.grow(5)
    result = _submit(None, log, signer, 0)
    (sig,) = parse_cosignature_lines(result.lines)
    assert (sig.name, sig.key_id) == (WITNESS, signer.key_id)
    assert cosignature_timestamp(sig.signature) == int(T0)
    # The reply appended to the checkpoint is a note the witness key verifies.
    opened = open_checkpoint(note + result.lines, log.verifier, cosigners=[signer.verifier()])
    assert [v.name for v, _ in opened.cosignatures()] == [WITNESS]
    assert result.state == CosignedCheckpoint(
        log.origin, 5, log.tree.root(), parse_note(note).text + b"\n" + _lines(note) + result.lines
    )


def _lines(note: bytes) -> bytes:
    return note[note.rindex(b"\n\n") + 2 :]


def test_stored_note_keeps_only_verified_log_signatures_and_the_cosignature(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    log.grow(3)
    other = Ed25519Signer("someone.else/key", Ed25519PrivateKey.generate())
    note = sign_note(
        parse_note(log.checkpoint()).text, [other], existing=parse_note(log.checkpoint())
    )
    result = add_checkpoint(None, known_logs([log.verifier]), _request(0, [], note), signer)
    names = [s.name for s in parse_note(result.state.note).signatures]
    assert names == [log.origin, WITNESS]


def test_each_step_is_checked_against_the_stored_root(
    log: LogSimulator, signer: CosignatureSigner, clock: Clock
) -> None:
    stored = None
    for grow in (1, 1, 2, 5, 8, 13, 1, 64):
        log.grow(grow)
        old = 0 if stored is None else stored.size
        clock.now += 1
        result = _submit(stored, log, signer, old)
        assert (result.state.size, result.state.root_hash) == (log.size, log.tree.root())
        stored = result.state


def test_same_size_same_root_is_cosigned_again_with_a_fresh_timestamp(
    log: LogSimulator, signer: CosignatureSigner, clock: Clock
) -> None:
    log.grow(7)
    first = _submit(None, log, signer, 0)
    clock.now += 3600
    again = _submit(first.state, log, signer, 7)
    (sig,) = parse_cosignature_lines(again.lines)
    assert cosignature_timestamp(sig.signature) == int(T0) + 3600
    assert again.state.size == 7


def test_empty_tree_is_cosigned(log: LogSimulator, signer: CosignatureSigner) -> None:
    result = _submit(None, log, signer, 0)
    assert (result.state.size, result.state.root_hash) == (0, EMPTY_ROOT)
    log.grow(4)
    assert _submit(result.state, log, signer, 0).state.size == 4


def test_unknown_signatures_are_ignored_but_a_trusted_one_is_needed(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    log.grow(2)
    stranger = Ed25519Signer(log.origin, Ed25519PrivateKey.generate())  # same name, other key
    text = parse_note(log.checkpoint()).text
    both = sign_note(text, [stranger], existing=parse_note(log.checkpoint()))
    assert _accept(log, signer, both)
    with pytest.raises(WitnessSignatureError):
        add_checkpoint(
            None, known_logs([log.verifier]), _request(0, [], sign_note(text, [stranger])), signer
        )


def _accept(log: LogSimulator, signer: CosignatureSigner, note: bytes) -> bool:
    add_checkpoint(None, known_logs([log.verifier]), _request(0, [], note), signer)
    return True


def test_any_of_several_keys_for_an_origin_may_sign(signer: CosignatureSigner) -> None:
    old_key = LogSimulator("rotating.example/log")
    new_key = LogSimulator("rotating.example/log")
    logs = known_logs([old_key.verifier, new_key.verifier])
    assert len(logs["rotating.example/log"]) == 2
    for log in (old_key, new_key):
        log.grow(1)
        add_checkpoint(None, logs, _request(*log.request(0)), signer)


# --- 400 -------------------------------------------------------------------------------


def test_old_size_larger_than_checkpoint_is_400(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    log.grow(5)
    stored = _submit(None, log, signer, 0).state
    with pytest.raises(WitnessRequestError, match="larger than the checkpoint size") as err:
        add_checkpoint(
            stored, known_logs([log.verifier]), _request(5, [], log.checkpoint(3)), signer
        )
    assert err.value.status == 400


@pytest.mark.parametrize(
    "text",
    [
        b"core.example/log\n",  # too few lines
        b"core.example/log\n01\n" + b"A" * 43 + b"=\n",  # size with leading zero
        b"\ncore.example/log\n1\n" + b"A" * 43 + b"=\n",  # leading empty line
        b"core.example/log\n1\nAAAA\n",  # short root
    ],
)
def test_a_note_that_is_not_a_checkpoint_is_400(
    log: LogSimulator, signer: CosignatureSigner, text: bytes
) -> None:
    note = sign_note(text, [log.signer])
    with pytest.raises(WitnessRequestError) as err:
        add_checkpoint(None, known_logs([log.verifier]), _request(0, [], note), signer)
    assert err.value.status == 400


# --- 403 -------------------------------------------------------------------------------


def test_checkpoint_signed_by_an_untrusted_key_is_403(signer: CosignatureSigner) -> None:
    log, impostor = LogSimulator("core.example/log"), LogSimulator("core.example/log")
    impostor.grow(3)
    with pytest.raises(WitnessSignatureError) as err:
        add_checkpoint(None, known_logs([log.verifier]), _request(*impostor.request(0)), signer)
    assert err.value.status == 403


def test_bad_signature_by_the_trusted_key_is_403(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    log.grow(3)
    note = parse_note(log.checkpoint())
    (sig,) = note.signatures
    bad = Signature(sig.name, sig.key_id, bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    forged = format_note(Note(note.text, (bad,)))
    with pytest.raises(WitnessSignatureError, match="invalid signature"):
        add_checkpoint(None, known_logs([log.verifier]), _request(0, [], forged), signer)


def test_a_bad_trusted_signature_refuses_even_beside_a_good_one(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    log.grow(3)
    second = LogSimulator(log.origin)
    note = parse_note(log.checkpoint())
    text = note.text
    good = note.signatures[0]
    bad = Signature(second.origin, second.signer.key_id, b"\0" * 64)
    forged = format_note(Note(text, (good, bad)))
    with pytest.raises(WitnessSignatureError):
        add_checkpoint(
            None, known_logs([log.verifier, second.verifier]), _request(0, [], forged), signer
        )


def test_two_signatures_by_one_trusted_key_is_403(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    log.grow(3)
    note = parse_note(log.checkpoint())
    doubled = format_note(Note(note.text, (note.signatures[0], note.signatures[0])))
    with pytest.raises(WitnessSignatureError, match="two signatures"):
        add_checkpoint(None, known_logs([log.verifier]), _request(0, [], doubled), signer)


def test_a_witness_cosignature_alone_is_not_a_log_signature_403(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    log.grow(3)
    text = parse_note(log.checkpoint()).text
    only_cosigned = sign_note(text, [CosignatureSigner(log.origin, Ed25519PrivateKey.generate())])
    with pytest.raises(WitnessSignatureError):
        add_checkpoint(None, known_logs([log.verifier]), _request(0, [], only_cosigned), signer)


# --- 404 -------------------------------------------------------------------------------


def test_unknown_origin_is_404(signer: CosignatureSigner) -> None:
    known, unknown = LogSimulator("known.example/log"), LogSimulator("unknown.example/log")
    unknown.grow(1)
    with pytest.raises(UnknownLogError) as err:
        add_checkpoint(None, known_logs([known.verifier]), _request(*unknown.request(0)), signer)
    assert (err.value.status, err.value.origin) == (404, "unknown.example/log")


def test_unknown_origin_is_404_before_looking_at_signatures(signer: CosignatureSigner) -> None:
    text = format_checkpoint(Checkpoint("nobody.example/log", 1, b"\1" * 32))
    note = format_note(Note(text, (Signature("nobody.example/log", b"\0" * 4, b"\0" * 64),)))
    with pytest.raises(UnknownLogError):
        verify_submission(_request(0, [], note), known_logs([]))


# --- 409 -------------------------------------------------------------------------------


@pytest.mark.parametrize("old", [0, 3, 5, 7, 10])
def test_old_size_other_than_the_stored_size_is_409_with_the_stored_size(
    log: LogSimulator, signer: CosignatureSigner, old: int
) -> None:
    log.grow(6)
    stored = _submit(None, log, signer, 0).state
    log.grow(4)
    with pytest.raises(WitnessConflictError) as err:
        _submit(stored, log, signer, old)
    assert (err.value.status, err.value.size, err.value.old_size) == (409, 6, old)


def test_never_cosigned_counts_as_size_zero(log: LogSimulator, signer: CosignatureSigner) -> None:
    log.grow(6)
    with pytest.raises(WitnessConflictError) as err:
        _submit(None, log, signer, 3)
    assert err.value.size == 0


# --- 422 -------------------------------------------------------------------------------


def test_size_zero_with_another_root_is_422(log: LogSimulator, signer: CosignatureSigner) -> None:
    note = sign_checkpoint(Checkpoint(log.origin, 0, b"\1" * 32), log.signer)
    with pytest.raises(WitnessConsistencyError, match="empty tree") as err:
        add_checkpoint(None, known_logs([log.verifier]), _request(0, [], note), signer)
    assert err.value.status == 422


def test_proof_from_size_zero_must_be_empty_422(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    log.grow(4)
    with pytest.raises(WitnessConsistencyError, match="must be empty"):
        add_checkpoint(
            None, known_logs([log.verifier]), _request(0, [b"\0" * 32], log.checkpoint()), signer
        )


def test_every_corrupted_proof_is_422(log: LogSimulator, signer: CosignatureSigner) -> None:
    log.grow(11)
    stored = _submit(None, log, signer, 0).state
    log.grow(6)
    old, proof, note = log.request(11)
    logs = known_logs([log.verifier])
    add_checkpoint(stored, logs, _request(old, proof, note), signer)  # the honest one passes
    corrupted = [proof[:i] + proof[i + 1 :] for i in range(len(proof))]
    corrupted += [[*proof, b"\0" * 32]]
    for i in range(len(proof)):
        for bit in (0, 7, 255):
            h = bytearray(proof[i])
            h[bit // 8] ^= 1 << (bit % 8)
            corrupted.append([*proof[:i], bytes(h), *proof[i + 1 :]])
    corrupted += [list(reversed(proof))] if len(proof) > 1 else []
    for bad in corrupted:
        with pytest.raises(WitnessConsistencyError):
            add_checkpoint(stored, logs, _request(old, bad, note), signer)


def test_same_size_with_another_root_is_422(log: LogSimulator, signer: CosignatureSigner) -> None:
    log.grow(5)
    stored = _submit(None, log, signer, 0).state
    fork = log.rollback(4, regrow=1)
    with pytest.raises(WitnessConsistencyError, match="fork"):
        add_checkpoint(stored, known_logs([log.verifier]), _request(5, [], fork), signer)


@settings(max_examples=40, deadline=None)
@given(old=st.integers(1, 40), grow=st.integers(0, 40), keep=st.integers(0, 39))
def test_a_rewritten_history_never_gets_a_cosignature(old: int, grow: int, keep: int) -> None:
    """Whatever proof a log sends, a tree that does not extend the cosigned one is refused."""
    signer = CosignatureSigner(WITNESS, KEY, lambda: T0)
    log = LogSimulator("prop.example/log", LOG_KEY)
    log.grow(old)
    stored = _submit(None, log, signer, 0).state
    keep = min(keep, old - 1)
    log.rollback(keep, regrow=old - keep + grow)  # a different leaf at index `keep`
    honest_looking = log.proof(old)  # the best proof the forked tree can offer
    with pytest.raises(WitnessConsistencyError):
        add_checkpoint(
            stored,
            known_logs([log.verifier]),
            _request(old, honest_looking, log.checkpoint()),
            signer,
        )


KEY = Ed25519PrivateKey.generate()
LOG_KEY = Ed25519PrivateKey.generate()


# --- spec order and odds ---------------------------------------------------------------


def test_409_is_answered_before_422(log: LogSimulator, signer: CosignatureSigner) -> None:
    # A stale old size with a garbage proof: the spec's order says 409 first.
    log.grow(4)
    stored = _submit(None, log, signer, 0).state
    log.grow(4)
    with pytest.raises(WitnessConflictError):
        add_checkpoint(
            stored, known_logs([log.verifier]), _request(2, [b"\0" * 32], log.checkpoint()), signer
        )


def test_every_refusal_carries_its_status() -> None:
    statuses = {
        WitnessRequestError: 400,
        WitnessSignatureError: 403,
        UnknownLogError: 404,
        WitnessConflictError: 409,
        WitnessConsistencyError: 422,
    }
    for cls, status in statuses.items():
        assert issubclass(cls, WitnessError)
        assert cls.status == status


def test_a_clock_at_zero_never_yields_a_cosignature(log: LogSimulator) -> None:
    signer = CosignatureSigner(WITNESS, Ed25519PrivateKey.generate(), lambda: 0.0)
    log.grow(1)
    with pytest.raises(ConfigError, match="timestamp"):
        _submit(None, log, signer, 0)


def test_decide_refuses_a_record_of_another_log(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    other = LogSimulator("other.example/log")
    other.grow(1)
    stored = _submit(None, other, signer, 0).state
    log.grow(1)
    submission = verify_submission(_request(*log.request(0)), known_logs([log.verifier]))
    with pytest.raises(ConfigError):
        decide(stored, submission, signer)


def test_known_logs_refuses_a_cosignature_key_as_a_log_key() -> None:
    with pytest.raises(ConfigError):
        known_logs([CosignatureSigner("x.example/log", Ed25519PrivateKey.generate()).verifier()])


def test_cosignature_verifies_with_open_note_and_no_other_key(
    log: LogSimulator, signer: CosignatureSigner
) -> None:
    note = log.grow(2)
    result = _submit(None, log, signer, 0)
    opened = open_note(result.state.note, [signer.verifier()])
    assert [s.name for _, s in opened.verified] == [WITNESS]
    assert open_note(note + result.lines, [log.verifier, signer.verifier()])


@settings(max_examples=30, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 6), st.integers(0, 30)),
        min_size=1,
        max_size=25,
    )
)
def test_no_two_roots_are_ever_cosigned_at_one_size(steps: list[tuple[str, int, int]]) -> None:
    """Two views of one log (a split view) submit in any order, from any old size.

    Whatever happens, the witness's cosigned history is one chain: sizes never go
    down, no size gets two roots, and each cosigned tree extends the previous one.
    """
    signer = CosignatureSigner(WITNESS, KEY, lambda: T0)
    a = LogSimulator("split.example/log", LOG_KEY)
    a.grow(3)
    b = a.fork()
    views = {"a": a, "b": b}
    logs = known_logs([a.verifier])
    stored: CosignedCheckpoint | None = None
    cosigned: dict[int, bytes] = {}
    history: list[tuple[str, int]] = []
    for view_name, grow, old_hint in steps:
        view = views[view_name]
        view.grow(grow, tag=view_name.encode())
        old = min(old_hint, view.size)
        try:
            result = add_checkpoint(stored, logs, _request(*view.request(old)), signer)
        except WitnessError:
            continue
        state = result.state
        assert stored is None or state.size >= stored.size
        assert cosigned.setdefault(state.size, state.root_hash) == state.root_hash
        if stored is not None and stored.size > 3:
            # Beyond the common prefix, the witness stays on the view it first followed.
            assert history[-1][0] == view_name
        history.append((view_name, state.size))
        stored = state
