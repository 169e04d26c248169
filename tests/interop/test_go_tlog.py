"""A conformant third-party client reads overt's log: Go's own sumdb/note and sumdb/tlog.

The Go program below is built from Debian's golang-golang-x-mod-dev (offline,
GO111MODULE=off GOPATH=/usr/share/gocode). Over HTTP from a running overt log
server it verifies the checkpoint signature with note.Open, recomputes the root
from the tiles with tlog.TileHashReader (which checks every tile it reads
against the signed tree) and tlog.TreeHash, and checks inclusion proofs of
entries read from the entry bundles with tlog.ProveRecord/CheckRecord. Go's
tlog names tiles ``tile/8/L/N`` and data tiles ``tile/8/data/N``; the reader
maps those to the c2sp paths (``tile/L/N``, ``tile/entries/N``), which is the
only difference between the two layouts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from overt.log.log import Log
from overt.log.server import LogApp

GOPATH = Path("/usr/share/gocode")

PROGRAM = r"""
package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func get(url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		fail("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	return b
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func c2sp(t tlog.Tile) string {
	p := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
	return strings.Replace(p, "tile/data/", "tile/entries/", 1)
}

type reader struct{ base string }

func (r reader) Height() int { return 8 }
func (r reader) SaveTiles([]tlog.Tile, [][]byte) {}
func (r reader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		out[i] = get(r.base + "/" + c2sp(t))
	}
	return out, nil
}

func entry(base string, size, index int64) []byte {
	n := index / 256
	w := size - n*256
	if w > 256 {
		w = 256
	}
	t := tlog.Tile{H: 8, L: -1, N: n, W: int(w)}
	b := get(base + "/" + c2sp(t))
	for i := int64(0); ; i++ {
		l := int64(binary.BigEndian.Uint16(b))
		if i == index%256 {
			return b[2 : 2+l]
		}
		b = b[2+l:]
	}
}

func main() {
	base, vkey := os.Args[1], os.Args[2]
	v, err := note.NewVerifier(vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	n, err := note.Open(get(base+"/checkpoint"), note.VerifierList(v))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	raw, _ := base64.StdEncoding.DecodeString(lines[2])
	var root tlog.Hash
	copy(root[:], raw)
	tree := tlog.Tree{N: size, Hash: root}
	hr := tlog.TileHashReader(tree, reader{base})
	h, err := tlog.TreeHash(size, hr)
	if err != nil || h != root {
		fail("tree hash from tiles: %v %v", err, h)
	}
	for _, index := range []int64{0, 1, size / 3, size / 2, size - 2, size - 1} {
		if index < 0 || index >= size {
			continue
		}
		p, err := tlog.ProveRecord(size, index, hr)
		if err != nil {
			fail("prove %d: %v", index, err)
		}
		if err := tlog.CheckRecord(p, size, root, index, tlog.RecordHash(entry(base, size, index))); err != nil {
			fail("check %d: %v", index, err)
		}
	}
	fmt.Printf("ok %s %d %s\n", n.Sigs[0].Name, size, lines[2])
}
"""


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None or not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        pytest.skip(
            "Go and golang-golang-x-mod-dev are not installed (apt-get install golang-go golang-golang-x-mod-dev)"
        )
    work = tmp_path_factory.mktemp("go")
    (work / "main.go").write_text(PROGRAM)
    env = dict(
        os.environ, GO111MODULE="off", GOPATH=str(GOPATH), GOCACHE=str(work / "cache"), GOFLAGS=""
    )
    subprocess.run(
        ["go", "build", "-o", str(work / "client"), str(work / "main.go")],
        env=env,
        check=True,
        cwd=work,
        timeout=300,
    )
    return work / "client"


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 70_000])
def test_go_sumdb_tlog_verifies_overt_log(
    go_client: Path, tmp_path: Path, asgi_server: Any, size: int
) -> None:
    log = Log.create(tmp_path / "log", "interop.example/log")
    try:
        # Several batches, so partial tiles of earlier sizes exist too.
        entries = [b"go interop %d" % i for i in range(size)]
        for start in range(0, size, 9999):
            log.add_many(entries[start : start + 9999])
        server = asgi_server(LogApp(log))
        out = subprocess.run(
            [str(go_client), server.url, log.vkey], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"ok interop.example/log {size} ")
    finally:
        log.close()


def test_go_refuses_a_tampered_tile(go_client: Path, tmp_path: Path, asgi_server: Any) -> None:
    log = Log.create(tmp_path / "log", "interop.example/log")
    try:
        log.add_many([b"entry %d" % i for i in range(600)])
        tile = tmp_path / "log" / "tiles" / "tile" / "0" / "001"
        data = bytearray(tile.read_bytes())
        data[100] ^= 1
        tile.write_bytes(bytes(data))
        log.tile_cache.clear()
        server = asgi_server(LogApp(log))
        out = subprocess.run(
            [str(go_client), server.url, log.vkey], capture_output=True, text=True, timeout=120
        )
        assert out.returncode != 0
    finally:
        log.close()
