"""``overt publish`` / ``overt verify`` / ``overt publisher`` end to end, on a real log directory."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from overt.cli import main as cli_main
from overt.formats.cosignature import ALG_COSIGNATURE_V1
from overt.formats.note import generate_key
from overt.log.log import Log, read_vkey


@pytest.fixture(autouse=True)
def _register_group(monkeypatch: pytest.MonkeyPatch) -> None:
    # The lead adds "publish" to _GROUPS; until then the tests register it themselves.
    if "publish" not in cli_main._GROUPS:
        monkeypatch.setattr(cli_main, "_GROUPS", (*cli_main._GROUPS, "publish"))


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli_main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def setup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    log_dir = tmp_path / "log"
    Log.create(log_dir, "log.example/overt").close()
    witness_lines = []
    paths: dict[str, Path] = {"log": log_dir}
    for region in ("asia", "europe", "americas"):
        skey, vkey = generate_key(f"{region}.witness.example", ALG_COSIGNATURE_V1)
        (tmp_path / f"{region}.skey").write_text(skey + "\n")
        paths[region] = tmp_path / f"{region}.skey"
        witness_lines.append(f"witness {region} {vkey}\n")
    key = tmp_path / "vendor.key"
    code, out, _ = run(capsys, "publisher", "keygen", key, "--name", "vendor.example/release")
    assert code == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "vendor.key.pub").read_text().strip() == out.splitlines()[0]
    (tmp_path / "witnesses.policy").write_text(
        "".join(witness_lines) + "group regions 2 asia europe americas\nquorum regions\n"
    )
    policy = {
        "version": 1,
        "logs": [read_vkey(log_dir)],
        "witness_policy_file": "witnesses.policy",
        "publisher": (tmp_path / "vendor.key.pub").read_text().strip(),
        "pins": [{"product": "agent", "channels": ["stable"]}],
        "max_checkpoint_age": 3600,
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    paths.update(key=key, policy=tmp_path / "policy.json", state=tmp_path / "state")
    return paths


def publish(capsys: pytest.CaptureFixture[str], p: dict[str, Path], artifact: Path,
            version: str, key: Path | None = None) -> tuple[int, str, str]:  # fmt: skip
    return run(
        capsys, "publish", artifact, "--log", p["log"], "--key", key or p["key"],
        "--kind", "update", "--product", "agent", "--version", version,
        "--unsafe-local-witness", p["asia"], "--unsafe-local-witness", p["americas"],
    )  # fmt: skip


def verify(capsys: pytest.CaptureFixture[str], p: dict[str, Path], artifact: Path) -> tuple[int, str, str]:  # fmt: skip
    return run(
        capsys, "verify", artifact, "--bundle", f"{artifact}.overt", "--policy", p["policy"],
        "--state", p["state"], "--log", p["log"],
    )  # fmt: skip


def test_publish_then_verify(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    artifact = tmp_path / "agent-1.0.0.msi"
    artifact.write_bytes(b"agent build 1.0.0")
    code, out, err = publish(capsys, setup, artifact, "1.0.0")
    assert code == 0, err
    assert (tmp_path / "agent-1.0.0.msi.overt").is_file()
    code, out, err = verify(capsys, setup, artifact)
    assert code == 0, err
    assert out.startswith("ok: update agent 1.0.0 (stable)")
    assert "cosigned by americas, asia" in out

    # A second release: the client's state requires consistency, fetched from the log dir.
    second = tmp_path / "agent-1.1.0.msi"
    second.write_bytes(b"agent build 1.1.0")
    code, _, err = publish(capsys, setup, second, "1.1.0")
    assert code == 0, err
    assert verify(capsys, setup, second)[0] == 0

    # Attacks through the CLI: one line naming the first failing check, exit 1.
    artifact.write_bytes(b"agent build 1.0.0 + implant")
    code, out, err = verify(capsys, setup, artifact)
    assert (code, out) == (1, "")
    assert err.startswith("overt: artifact-digest: ") and err.count("\n") == 1
    artifact.write_bytes(b"agent build 1.0.0")
    code, _, err = verify(capsys, setup, artifact)
    assert code == 1 and err.startswith("overt: rollback: "), err


def test_rotation_and_revocation_through_the_cli(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    new_key = tmp_path / "vendor2.key"
    chain = Path(f"{setup['key']}.chain")
    code, out, err = run(
        capsys, "publisher", "revoke", "--key", setup["key"], "--chain", chain,
        "--log", setup["log"], "--revoke", f"{setup['key']}.pub",
    )  # fmt: skip
    assert code == 1 and "no key would remain" in err
    code, out, err = run(
        capsys, "publisher", "rotate", setup["key"], new_key, "--chain", chain,
        "--log", setup["log"], "--revoke-old",
    )  # fmt: skip
    assert code == 0, err
    assert "key set 1 logged" in out
    artifact = tmp_path / "agent.msi"
    artifact.write_bytes(b"agent 2.0.0")
    # The old key is no longer in the chain's current set: publishing refuses early.
    code, _, err = publish(capsys, setup, artifact, "2.0.0")
    assert code == 1 and "not a key of the current key set 1" in err
    code, _, err = run(
        capsys, "publish", artifact, "--log", setup["log"], "--key", new_key, "--chain", chain,
        "--kind", "update", "--product", "agent", "--version", "2.0.0",
        "--unsafe-local-witness", setup["europe"], "--unsafe-local-witness", setup["americas"],
    )  # fmt: skip
    assert code == 0, err
    code, out, err = verify(capsys, setup, artifact)
    assert code == 0, err


def test_unwitnessed_checkpoint_fails_the_quorum(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"a")
    code, _, err = run(
        capsys, "publish", artifact, "--log", setup["log"], "--key", setup["key"],
        "--kind", "update", "--product", "agent", "--version", "1", "--unsafe-local-witness",
        setup["asia"],
    )  # fmt: skip
    assert code == 0, err
    code, _, err = verify(capsys, setup, artifact)
    assert code == 1 and err.startswith("overt: witness-quorum: "), err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["publish", "x", "--kind", "nonsense"])
    assert exc.value.code == 2
