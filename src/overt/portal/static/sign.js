// overt portal: sign a handed-out statement in the visitor's browser (WebCrypto Ed25519).
//
// The key is the text of an overt publisher key file, "PRIVATE+KEY+name+keyid+base64(0x01 ||
// seed)" (c2sp.org/signed-note's private key form). It is read from a field no form sends,
// imported as a non-extractable WebCrypto key and used once: the envelope is what
// overt.formats.dsse.sign_envelope makes (DSSE v1 over PAE, key ID = hex SHA-256 of the
// raw public key, as overt.publish.keys.PublisherKey.keyid), canonical JSON with sorted
// members. The portal then verifies it against the partner's logged key like any other.
import { b64decode, b64encode, hex, sha256 } from "/static/verify.js";

const enc = new TextEncoder();
const PAYLOAD_TYPE = "application/vnd.in-toto+json";
// PKCS#8 wrapping of a 32-byte Ed25519 seed (RFC 8410): this prefix, then the seed.
const PKCS8_PREFIX = Uint8Array.of(
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
);

export function pae(type, body) {
  const t = enc.encode(type);
  const head = enc.encode(`DSSEv1 ${t.length} `);
  const mid = enc.encode(` ${body.length} `);
  const out = new Uint8Array(head.length + t.length + mid.length + body.length);
  out.set(head, 0);
  out.set(t, head.length);
  out.set(mid, head.length + t.length);
  out.set(body, head.length + t.length + mid.length);
  return out;
}

// {name, seed} of an overt Ed25519 private key text, or throws.
export function parseSkey(text) {
  const m = /^PRIVATE\+KEY\+([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(text.trim());
  if (!m) throw new Error("not an overt private key (PRIVATE+KEY+name+keyid+base64)");
  const raw = b64decode(m[3]);
  if (raw.length !== 33 || raw[0] !== 0x01) throw new Error("not an Ed25519 (type 0x01) private key");
  return { name: m[1], seed: raw.slice(1) };
}

// The canonical DSSE envelope of payload (bytes) signed with the key text skey.
export async function signEnvelope(payload, skey) {
  const { seed } = parseSkey(skey);
  const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + 32);
  pkcs8.set(PKCS8_PREFIX);
  pkcs8.set(seed, PKCS8_PREFIX.length);
  const extractable = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", extractable); // its public half, x
  const publicKey = b64decode(jwk.x.replace(/-/g, "+").replace(/_/g, "/") + "=");
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, pae(PAYLOAD_TYPE, payload)));
  const keyid = hex(await sha256(publicKey));
  // Canonical form (overt.formats.dsse.format_envelope): sorted members, no spaces.
  return JSON.stringify({ payload: b64encode(payload), payloadType: PAYLOAD_TYPE, signatures: [{ keyid, sig: b64encode(sig) }] });
}

function main() {
  const button = document.getElementById("sign-button");
  if (!button) return;
  const status = document.getElementById("sign-status");
  button.addEventListener("click", async () => {
    const keyField = document.getElementById("sign-key");
    try {
      const statement = enc.encode(document.getElementById("statement").value);
      document.getElementById("envelope").value = await signEnvelope(statement, keyField.value);
      status.className = "ok";
      status.textContent = "Signed in your browser: check the envelope below, then upload it.";
    } catch (err) {
      status.className = "bad";
      status.textContent = `Not signed: ${err.message}`;
    } finally {
      keyField.value = ""; // the key is not kept in the page
    }
  });
}

if (typeof document !== "undefined") main();
