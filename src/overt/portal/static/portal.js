// overt portal: run verify.js on an entry page and fill in the "Your browser" column.
import { verifyCheckpoint, verifyEntry } from "/static/verify.js";

async function bytes(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function main() {
  const table = document.getElementById("steps");
  const verdict = document.getElementById("browser-verdict");
  if (!table) return;
  const trust = JSON.parse(table.dataset.trust);
  verdict.textContent = "Verifying in your browser...";
  try {
    const started = performance.now();
    let steps;
    if (trust.index === null) {
      // The log page: the published checkpoint and its cosignatures.
      steps = await verifyCheckpoint({ checkpoint: await bytes("/checkpoint"), trust });
    } else {
      const base = `/entries/${trust.index}`;
      const [entry, proof, tile] = await Promise.all([
        bytes(`${base}/entry`), bytes(`${base}/proof`), bytes(`${base}/tile`),
      ]);
      steps = await verifyEntry({ entry, proof, tile, trust });
    }
    const ms = performance.now() - started;
    const body = table.tBodies[0];
    for (const s of steps) {
      let row = body.querySelector(`tr[data-step="${CSS.escape(s.name)}"]`);
      if (!row) {
        row = body.insertRow();
        row.dataset.step = s.name;
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = s.name;
        row.append(th, row.insertCell(), row.insertCell());
        row.cells[1].textContent = "not checked on the server";
        row.cells[2].className = "browser";
      }
      const cell = row.querySelector("td.browser") || row.cells[2];
      // ok null: a step the browser cannot run (ML-DSA-44), left to the server's column.
      const state = s.ok === null ? "server" : s.ok ? "ok" : "bad";
      cell.className = `browser ${state}`;
      const word = { server: "checked on the server", ok: "pass", bad: "FAIL" }[state];
      cell.textContent = `${word}: ${s.detail}`;
    }
    const failed = steps.filter((s) => s.ok === false).length;
    const server = steps.filter((s) => s.ok === null).length;
    verdict.className = failed ? "bad" : "ok";
    verdict.textContent = failed
      ? `Browser verification FAILED: ${failed} step(s) red (${ms.toFixed(0)} ms).`
      : server
        ? `Verified in your browser but for ${server} step(s) checked on the server only (ML-DSA-44) (${ms.toFixed(0)} ms).`
        : `Verified in your browser: every step passed (${ms.toFixed(0)} ms).`;
  } catch (err) {
    verdict.className = "bad";
    verdict.textContent = `Browser verification could not run: ${err.message}`;
  }
}

main();
