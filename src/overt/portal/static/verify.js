// overt portal: verify a log entry in the visitor's own browser (or in node >= 20).
//
// The same steps as the portal server's overt/portal/checks.py, from the same raw
// bytes, with WebCrypto only (SHA-256, Ed25519): a visitor need not trust the
// server's word, only the log and witness keys (compare them with the ones your
// update client pins). Specs: c2sp.org/signed-note, c2sp.org/tlog-checkpoint,
// c2sp.org/tlog-cosignature, c2sp.org/tlog-proof, c2sp.org/tlog-tiles, RFC 9162 2.1.3.
//
// Parsing is strict like the Python side: canonical base64, decimal without
// leading zeros, exact lengths. verifyEntry never throws: a failure is a step
// with ok=false and the reason.

const subtle = globalThis.crypto.subtle;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
const TILE_WIDTH = 256;
const ALG_ED25519 = 0x01;
const ALG_COSIGNATURE_V1 = 0x04;
const ALG_ML_DSA_44 = 0x06; // c2sp.org/tlog-cosignature: no browser has ML-DSA yet
const KEY_LENGTHS = { [ALG_ED25519]: 32, [ALG_COSIGNATURE_V1]: 32, [ALG_ML_DSA_44]: 1312 };
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DECIMAL = /^(0|[1-9][0-9]{0,18})$/;

export class FormatError extends Error {}

export function b64decode(text) {
  if (!B64.test(text)) throw new FormatError(`not canonical base64: ${text.slice(0, 40)}`);
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  // canonical: re-encoding gives the same text (no stray bits in the padding)
  if (b64encode(out) !== text) throw new FormatError(`not canonical base64: ${text.slice(0, 40)}`);
  return out;
}

export function b64encode(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function decimal(text, what) {
  if (!DECIMAL.test(text)) throw new FormatError(`${what}: not a canonical decimal: ${text}`);
  return BigInt(text);
}

export async function sha256(data) {
  return new Uint8Array(await subtle.digest("SHA-256", data));
}

export const leafHash = (entry) => sha256(concat(Uint8Array.of(0), entry));
const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

async function ed25519Verify(publicKey, signature, message) {
  const key = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return subtle.verify({ name: "Ed25519" }, key, signature, message);
}

// A verifier key "name+hexid+base64(alg || key)"; the key ID is checked.
export async function parseVkey(vkey) {
  // "+" never appears in a key name but may in the base64: split at the first two only.
  const m = /^([^+]+)\+([^+]*)\+(.*)$/s.exec(vkey);
  if (!m) throw new FormatError(`not a verifier key: ${vkey.slice(0, 40)}`);
  const [, name, id, b64] = m;
  const raw = b64decode(b64);
  if (!/^[0-9a-f]{8}$/.test(id) || raw.length !== 1 + (KEY_LENGTHS[raw[0]] ?? -1)) {
    throw new FormatError(`not a verifier key: ${vkey.slice(0, 40)}`);
  }
  const expect = (await sha256(concat(enc.encode(name + "\n"), raw))).slice(0, 4);
  if (hex(expect) !== id) throw new FormatError(`key ID ${id} does not match key ${name}`);
  return { name, keyId: expect, alg: raw[0], publicKey: raw.slice(1) };
}

// A signed note: {text (bytes, ending in a newline), signatures: [{name, keyId, signature}]}.
export function parseNote(bytes) {
  const str = dec.decode(bytes);
  const cut = str.lastIndexOf("\n\n");
  if (cut < 0 || !str.endsWith("\n")) throw new FormatError("note: no signature block");
  const text = enc.encode(str.slice(0, cut + 1));
  const signatures = [];
  for (const line of str.slice(cut + 2, -1).split("\n")) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new FormatError(`note: malformed signature line: ${line.slice(0, 60)}`);
    const raw = b64decode(m[2]);
    if (raw.length < 5) throw new FormatError("note: signature too short");
    signatures.push({ name: m[1], keyId: raw.slice(0, 4), signature: raw.slice(4) });
  }
  return { text, signatures };
}

export function parseCheckpoint(text) {
  const lines = dec.decode(text).split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "") {
    throw new FormatError("checkpoint: fewer than three lines");
  }
  const root = b64decode(lines[2]);
  if (root.length !== 32) throw new FormatError("checkpoint: root hash is not 32 bytes");
  return { origin: lines[0], size: decimal(lines[1], "checkpoint size"), root };
}

export function parseTlogProof(bytes) {
  let cut = -1;
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] === 10 && bytes[i + 1] === 10) {
      cut = i;
      break;
    }
  }
  if (cut < 0) throw new FormatError("tlog-proof: no blank line before the checkpoint");
  let lines = dec.decode(bytes.slice(0, cut)).split("\n");
  if (lines[0] !== "c2sp.org/tlog-proof@v1") throw new FormatError("tlog-proof: wrong header");
  lines = lines.slice(1);
  if (lines.length && lines[0].startsWith("extra ")) lines = lines.slice(1);
  if (!lines.length || !lines[0].startsWith("index ")) throw new FormatError("tlog-proof: no index");
  const index = decimal(lines[0].slice(6), "tlog-proof index");
  const hashes = lines.slice(1).map((l) => {
    const h = b64decode(l);
    if (h.length !== 32) throw new FormatError("tlog-proof: a hash is not 32 bytes");
    return h;
  });
  const checkpoint = bytes.slice(cut + 2);
  parseCheckpoint(parseNote(checkpoint).text); // a proof carries a well-formed checkpoint
  return { index, hashes, checkpoint };
}

// RFC 9162 2.1.3.2: the root an inclusion proof leads to, or an error.
export async function rootFromInclusion(leaf, index, size, proof) {
  if (index >= size) throw new FormatError(`index ${index} is not below tree size ${size}`);
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new FormatError("inclusion proof is too long");
    if (fn % 2n === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2n === 0n) {
        while (fn % 2n === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new FormatError("inclusion proof is too short");
  return r;
}

function findSignature(note, key) {
  return note.signatures.find((s) => s.name === key.name && equal(s.keyId, key.keyId));
}

// One cosignature/v1: {ok, timestamp, detail}; ok is null for an ML-DSA-44 cosignature,
// which the browser cannot check (the server's column has its verdict).
export async function checkCosignature(note, key) {
  const sig = findSignature(note, key);
  if (!sig) return { ok: false, timestamp: null, detail: "no cosignature" };
  if (key.alg === ALG_ML_DSA_44) {
    return { ok: null, timestamp: null, detail: "ML-DSA-44: browsers cannot verify it, checked on the server" };
  }
  if (key.alg !== ALG_COSIGNATURE_V1 || sig.signature.length !== 72) {
    return { ok: false, timestamp: null, detail: "not an Ed25519 cosignature/v1" };
  }
  const stamp = new DataView(sig.signature.buffer, sig.signature.byteOffset).getBigUint64(0);
  const message = concat(enc.encode(`cosignature/v1\ntime ${stamp}\n`), note.text);
  const ok = await ed25519Verify(key.publicKey, sig.signature.slice(8), message);
  return { ok, timestamp: Number(stamp), detail: ok ? "verified" : `invalid signature by ${key.name}` };
}

// The checkpoint's steps: log signature, each witness's cosignature, the quorum.
// Returns the parsed checkpoint, or null if it does not parse.
async function checkCheckpoint(checkpoint, trust, step) {
  let note = null;
  let cp = null;
  let logOk = false;
  let logUnchecked = false; // an ML-DSA-44 log signature (tlog-checkpoint's SHOULD): the server's
  try {
    note = parseNote(checkpoint);
    cp = parseCheckpoint(note.text);
    const logKey = await parseVkey(trust.log);
    const sig = findSignature(note, logKey);
    if (sig !== undefined && logKey.alg === ALG_ML_DSA_44 && cp.origin === logKey.name) {
      logUnchecked = true;
      step("log signature", null, `${logKey.name}, tree size ${cp.size}: ML-DSA-44, browsers cannot verify it, checked on the server`);
    } else {
      const ok =
        sig !== undefined &&
        logKey.alg === ALG_ED25519 &&
        cp.origin === logKey.name &&
        (await ed25519Verify(logKey.publicKey, sig.signature, note.text));
      logOk = ok;
      step("log signature", ok, ok ? `${logKey.name}, tree size ${cp.size}` : "no valid signature by the log key");
    }
  } catch (err) {
    step("log signature", false, String(err.message));
  }
  const cosigned = new Set();
  const unchecked = new Set(); // present, but of a type the browser cannot verify
  let invalid = 0; // present but not valid: like overt.formats.policy, that refuses the checkpoint
  for (const w of trust.witnesses) {
    try {
      if (note === null) throw new FormatError("no checkpoint");
      const result = await checkCosignature(note, await parseVkey(w.vkey));
      if (result.ok) cosigned.add(w.name);
      else if (result.ok === null) unchecked.add(w.name);
      else if (result.timestamp !== null || result.detail !== "no cosignature") invalid++;
      step(`cosignature ${w.name}`, result.ok, result.detail);
    } catch (err) {
      step(`cosignature ${w.name}`, false, String(err.message));
    }
  }
  if (trust.quorum !== null && trust.quorum !== undefined) {
    // The checkpoint is trusted only with the log's signature and the quorum (overt.formats.policy).
    const named = trust.witnesses.length;
    let why = invalid ? `, and ${invalid} invalid cosignature(s) by policy witnesses` : "";
    if (!logOk && !logUnchecked) why += ", and no valid log signature";
    const have = `${cosigned.size} of ${named} cosigned (${describeQuorum(trust.quorum)})`;
    if (logOk && invalid === 0 && quorumMet(trust.quorum, cosigned)) {
      step("witness quorum", true, have);
    } else if ((logOk || logUnchecked) && invalid === 0 && quorumMet(trust.quorum, new Set([...cosigned, ...unchecked]))) {
      const left = [logUnchecked ? "the log signature" : "", unchecked.size ? `${unchecked.size} cosignature(s)` : ""];
      step("witness quorum", null, `${have}: met if the ML-DSA-44 ${left.filter(Boolean).join(" and ")} hold, checked on the server`);
    } else {
      step("witness quorum", false, `${have}: not met${why}`);
    }
  }
  return cp;
}

// trust.quorum: {top, groups: [{name, k, members}]} as overt.formats.policy reads the
// policy's group lines: a name is a witness (met when it cosigned), a group (met when k
// of its members are) or "none" (always met). Groups only name earlier names: no cycles.
export function quorumMet(quorum, cosigned) {
  const groups = new Map(quorum.groups.map((g) => [g.name, g]));
  const memo = new Map();
  const met = (name) => {
    if (name === "none") return true;
    if (!memo.has(name)) {
      const group = groups.get(name);
      memo.set(name, group ? group.members.filter(met).length >= group.k : cosigned.has(name));
    }
    return memo.get(name);
  };
  return met(quorum.top);
}

function describeQuorum(quorum) {
  const group = quorum.groups.find((g) => g.name === quorum.top);
  return group ? `quorum ${quorum.top}: ${group.k} of ${group.members.join(", ")}` : `quorum ${quorum.top}`;
}

// The log page's checks of the published checkpoint (no entry): {checkpoint: bytes, trust}.
export async function verifyCheckpoint({ checkpoint, trust }) {
  const steps = [];
  await checkCheckpoint(checkpoint, trust, (name, ok, detail) => steps.push({ name, ok, detail }));
  return steps;
}

// Every step for one entry. trust: {log: vkey, witnesses: [{name, vkey}] (every cosigner of
// the policy: witnesses and mirrors), quorum: {top, groups} or null (no policy)}.
export async function verifyEntry({ entry, proof, tile, trust }) {
  const steps = [];
  const step = (name, ok, detail) => steps.push({ name, ok, detail });
  const leaf = await leafHash(entry);
  step("leaf hash", true, hex(leaf));
  let parsed;
  try {
    parsed = parseTlogProof(proof);
  } catch (err) {
    step("tlog-proof", false, String(err.message));
    return steps;
  }
  const offset = Number(parsed.index % BigInt(TILE_WIDTH));
  const at = tile.slice(offset * 32, offset * 32 + 32);
  const tileOk = tile.length % 32 === 0 && at.length === 32 && equal(at, leaf);
  step("tile", tileOk, `hash ${offset} of the level-0 tile${tileOk ? "" : " differs from the leaf"}`);
  const cp = await checkCheckpoint(parsed.checkpoint, trust, step);
  try {
    if (cp === null) throw new FormatError("no checkpoint");
    const root = await rootFromInclusion(leaf, parsed.index, cp.size, parsed.hashes);
    const ok = equal(root, cp.root);
    step("inclusion", ok, ok ? `index ${parsed.index} in tree size ${cp.size}` : "the proof leads to another root");
  } catch (err) {
    step("inclusion", false, String(err.message));
  }
  return steps;
}
