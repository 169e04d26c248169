#!/usr/bin/env bash
# Walk one release through publish -> verify, then show the endpoint gate refusing
# a swapped artifact, a rollback and a revoked publisher key.
#
#   scripts/demo_release.sh [DEMO_DIR]        (default: a fresh temporary directory)
#
# The three witnesses here are local keys standing in for the transparency
# centers (Asia, Europe, Americas); `--unsafe-local-witness` cosigns with them.
# With witnesses running (`make run`), publish to the log's URL instead and the
# log collects the cosignatures itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
DEMO="${1:-$(mktemp -d)}"
mkdir -p "$DEMO"
cd "$DEMO"

overt() {
  "$PY" -m overt.cli.main "$@"
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
expect_refusal() {
  if overt "$@"; then echo "!! expected a refusal" >&2; exit 1; fi
}

step "a log, three witnesses and a publisher key"
overt log init log --origin demo.example/overt >/dev/null
for region in asia europe americas; do
  "$PY" -c 'import sys
from overt.formats.cosignature import ALG_COSIGNATURE_V1
from overt.formats.note import generate_key
skey, vkey = generate_key(sys.argv[1] + ".witness.example", ALG_COSIGNATURE_V1)
open(sys.argv[1] + ".skey", "w").write(skey + "\n")
print("witness", sys.argv[1], vkey)' "$region"
done > witnesses.policy
echo "group regions 2 asia europe americas" >> witnesses.policy
echo "quorum regions" >> witnesses.policy
overt publisher keygen vendor.key --name vendor.example/release
cat witnesses.policy

step "the endpoint's client policy"
cat > policy.json <<JSON
{
  "version": 1,
  "logs": ["$(overt log vkey log)"],
  "witness_policy_file": "witnesses.policy",
  "publisher": "$(cat vendor.key.pub)",
  "pins": [{"product": "agent", "channels": ["stable"]}],
  "max_checkpoint_age": 86400
}
JSON
cat policy.json

step "publish agent 1.2.0 (logged, cosigned by 2 of 3 witnesses)"
echo "agent build 1.2.0" > agent-1.2.0.msi
overt publish agent-1.2.0.msi --log log --key vendor.key \
  --kind update --product agent --version 1.2.0 --channel stable \
  --unsafe-local-witness asia.skey --unsafe-local-witness europe.skey
head -c 300 agent-1.2.0.msi.overt; echo " ..."

step "verify it on the endpoint"
overt verify agent-1.2.0.msi --bundle agent-1.2.0.msi.overt --policy policy.json --state state

step "attack: the artifact is swapped after publishing"
cp agent-1.2.0.msi agent-evil.msi && echo "implant" >> agent-evil.msi
expect_refusal verify agent-evil.msi --bundle agent-1.2.0.msi.overt --policy policy.json --state state

step "attack: roll the endpoint back to an old, properly published version"
echo "agent build 1.1.0" > agent-1.1.0.msi
overt publish agent-1.1.0.msi --log log --key vendor.key --kind update --product agent \
  --version 1.1.0 --unsafe-local-witness europe.skey --unsafe-local-witness americas.skey
expect_refusal verify agent-1.1.0.msi --bundle agent-1.1.0.msi.overt --policy policy.json \
  --state state --log log

step "rotate to a new key, revoking the old one (itself a logged key-set statement)"
overt publisher rotate vendor.key vendor2.key --chain vendor.key.chain --log log --revoke-old
echo "agent build 1.3.0" > agent-1.3.0.msi
overt publish agent-1.3.0.msi --log log --key vendor2.key \
  --kind update --product agent --version 1.3.0 \
  --unsafe-local-witness asia.skey --unsafe-local-witness americas.skey
overt verify agent-1.3.0.msi --bundle agent-1.3.0.msi.overt --policy policy.json --state state --log log

step "attack: the thief of the revoked key logs a targeted update"
echo "agent build 1.4.0 (backdoored)" > agent-1.4.0.msi
cp vendor.key.chain stolen.chain
# The old key is no longer current, so the tool refuses; the thief builds the entry by hand.
"$PY" - <<'PYEOF'
import hashlib
from pathlib import Path
from overt.formats.statement import Update
from overt.log.log import Log
from overt.publish.chain import read_chain
from overt.publish.keys import load_publisher_signer
from overt.publish.publisher import Publication, publish, write_bundle
from overt.formats.note import parse_note, parse_skey, sign_note

signer = load_publisher_signer(Path("vendor.key"))
_, chain = read_chain(Path("vendor.key.chain"))
witnesses = [parse_skey(Path(f"{r}.skey").read_text().strip()) for r in ("asia", "europe")]
def cosign(note):
    parsed = parse_note(note)
    return sign_note(parsed.text, witnesses, existing=parsed)
artifact = Path("agent-1.4.0.msi").read_bytes()
item = Publication("agent-1.4.0.msi", hashlib.sha256(artifact).hexdigest(), Update("agent", "1.4.0", "stable"))
with Log.open("log") as log:
    (bundle,) = publish(log, signer, [item], keysets=chain, cosign=cosign)
write_bundle(Path("agent-1.4.0.msi.overt"), bundle)
print("the thief logged entry", bundle.proof.index)
PYEOF
expect_refusal verify agent-1.4.0.msi --bundle agent-1.4.0.msi.overt --policy policy.json \
  --state state --log log

step "done: demo files in $DEMO"
