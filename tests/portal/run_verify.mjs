// Runs the portal's verify.js on vectors from stdin (JSON list of cases, bytes in
// base64) and prints each case's steps as JSON: tests/portal/test_verify_js.py.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [modulePath] = process.argv.slice(2);
const { verifyCheckpoint, verifyEntry, b64decode } = await import(pathToFileURL(modulePath).href);
const cases = JSON.parse(readFileSync(0, "utf-8"));
const out = [];
for (const c of cases) {
  const started = performance.now();
  const steps = c.checkpoint !== undefined
    ? await verifyCheckpoint({ checkpoint: b64decode(c.checkpoint), trust: c.trust })
    : await verifyEntry({
        entry: b64decode(c.entry),
        proof: b64decode(c.proof),
        tile: b64decode(c.tile),
        trust: c.trust,
      });
  out.push({ steps, ms: performance.now() - started });
}
process.stdout.write(JSON.stringify(out));
