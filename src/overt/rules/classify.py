"""What a decoded pattern text is: human content or a technical artefact.

Each text is put in one :class:`Kind`; the first that applies wins::

    identifier   e-mail address (not a free-mail contact), directory DN/OU,
                 DOMAIN\\user, PGP key ID or fingerprint, employee or badge
                 number, internal or government host name, a user's own folder
    artefact     anything with code or path punctuation, API and format tokens,
                 hashes, hex, mixed digits and letters without words
    natural      words of a natural language: at least 80% of the words are
                 among the 20,000 most frequent of one of ~20 languages
                 (wordfreq's ``small`` lists, shipped with the package)
    name         Title-case personal names ("Nguyen Van Thanh", "J. Smith")
    codename     code-name-like tokens: ALL-CAPS pronounceable words, CamelCase
                 built from dictionary words, hyphens and digits ("BLUE-HARBOR-7")

Example::

    >>> classify("ou=Finance,dc=corp,dc=example").kind
    'identifier'
    >>> classify("GetProcAddress").kind
    'artefact'

The word lists are loaded lazily on the first call (~1 s, 3 MB kept): only
rules whose requirement sets carry no malicious indicator reach it.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import heapq
import os
import re
import warnings
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HUMAN_KINDS",
    "Classified",
    "WordSet",
    "classify",
    "common_words",
    "use_word_file",
    "word_file",
]

#: Kinds that make a requirement set a collection or targeting set.
HUMAN_KINDS = frozenset({"identifier", "natural", "name", "codename"})

# wordfreq languages with a 'small' list that need no extra tokenizer package.
_LANGS = [
    "en",
    "fr",
    "de",
    "es",
    "pt",
    "it",
    "nl",
    "ru",
    "uk",
    "vi",
    "id",
    "ms",
    "tr",
    "ar",
    "fa",
    "pl",
    "ko",
    "he",
    "cs",
    "hu",
    "ro",
    "sv",
    "fil",
    "bg",
    "el",
]


@dataclass(frozen=True)
class Classified:
    kind: str
    detail: str


class WordSet:
    """A set of words held as sorted 64-bit digests (3 MB for the ~390,000 words of
    :data:`_LANGS`, against ~130 MB as a ``frozenset`` of ``str``): membership only.

    A word not in the lists collides with one that is with probability ~2e-14.
    """

    __slots__ = ("_digests",)

    def __init__(self, words: Iterable[str] = (), digests: array[int] | None = None) -> None:
        self._digests = (
            digests if digests is not None else array("Q", sorted(set(map(_digest, words))))
        )

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        d = _digest(word)
        i = bisect.bisect_left(self._digests, d)
        return i < len(self._digests) and self._digests[i] == d

    def __len__(self) -> int:
        return len(self._digests)


def _digest(word: str) -> int:
    # Stable across processes (the set is kept on disk and read by the workers); of the
    # UTF-8 bytes, not of the str, whose CPython hash covers its internal buffer ("ów",
    # UCS-1 f3 77, and "石", UCS-2 77f3, collide there).
    raw = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "little")


def _build() -> array[int]:
    """The digests of the lists, one language at a time, with wordfreq's own caches
    emptied after each: they hold every list whole (~150 MB at the peak otherwise)."""
    import wordfreq

    per_lang: list[array[int]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lang in _LANGS:
            words = wordfreq.top_n_list(lang, _TOP_N, wordlist="small")
            per_lang.append(array("Q", sorted({_digest(w) for w in words})))
            wordfreq.top_n_list.cache_clear()
            wordfreq.get_frequency_list.cache_clear()
            wordfreq.get_frequency_dict.cache_clear()
    merged = array("Q")
    for d in heapq.merge(*per_lang):  # sorted runs merged without a list of 500,000 ints
        if not merged or merged[-1] != d:
            merged.append(d)
    return merged


_TOP_N = 20000
#: Set by :func:`use_word_file` (a worker process): where :func:`common_words` reads.
_WORD_FILE: list[Path] = []


def word_file() -> Path | None:
    """The word set on disk (``$XDG_CACHE_HOME/overt`` or ``~/.cache/overt``), built
    on first use for this wordfreq version and these languages: the audit's workers
    read it (3 MB) instead of each importing wordfreq and hashing its lists (~1 s and
    ~20 MB each). None when no cache folder can be written (each worker builds it).

    The file is the sorted digests followed by the SHA-256 of them; one that does not
    match is built again.
    """
    from importlib.metadata import version

    from overt.log.fs import atomic_write

    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(f"{version('wordfreq')} {_TOP_N} {' '.join(_LANGS)}".encode()).hexdigest()
    path = Path(cache) / "overt" / f"words-{key[:16]}.bin"
    if _read(path) is not None:
        return path
    digests = common_words()._digests
    data = digests.tobytes()
    try:
        atomic_write(path, data + hashlib.sha256(data).digest(), sync=False)  # derived data
    except OSError:
        return None
    return path


def _read(path: Path) -> array[int] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    body, check = data[:-32], data[-32:]
    if not body or len(body) % 8 or hashlib.sha256(body).digest() != check:
        return None
    out = array("Q")
    out.frombytes(body)
    return out


def use_word_file(path: str) -> None:
    """Read the word set from ``path`` (:func:`word_file`) from now on."""
    _WORD_FILE[:] = [Path(path)]
    common_words.cache_clear()


@functools.cache
def common_words() -> WordSet:
    """The 20,000 most frequent words of each language in ``_LANGS``: from the file
    :func:`use_word_file` named when it reads well, else built from wordfreq."""
    digests = _read(_WORD_FILE[0]) if _WORD_FILE else None
    return WordSet(digests=digests if digests is not None else _build())


_FREE_MAIL = re.compile(
    r"@(?:proton(?:mail)?\.|tutanota|tuta\.|gmail\.|yahoo\.|outlook\.|hotmail\.|aol\.|"
    r"mail\.ru|yandex\.|cock\.li|onionmail|airmail|secmail|mailfence|keemail|qq\.com|163\.com|"
    r"firemail|msgsafe|torbox|dnmx|xmpp|jabber|exploit\.im|onion)",
    re.I,
)
# An organisation's mail domain on its own ("@corp.example"), or any address at a
# government or military domain; a single contact address at another domain is
# usually the author's or the attacker's, an artefact.
_EMAIL = re.compile(
    r"(?:^|\s)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\s*$|"
    r"[\w.+-]*@(?:[A-Za-z0-9-]+\.)+(?:gov|mil|int|gov\.[a-z]{2}|mil\.[a-z]{2}|go\.[a-z]{2}|gouv\.fr)\b",
    re.I,
)
_MAIL_HEADER = re.compile(r"(?im)^(?:from|to|cc|bcc|reply-to|x-sender)\s*:\s*\S+@\S+")
_DN = re.compile(r"(?i)(?:^|[,/])\s*(?:OU|CN|DC|O)\s*=\s*[^,=]+")
# NetBIOS domains are written in capitals; WMI namespaces (root\cimv2) and the
# built-in principals are not accounts of anyone.
_DOMAIN_USER = re.compile(
    r"(?!NT AUTHORITY|BUILTIN|ROOT\\)[A-Z][A-Z0-9-]{1,14}\\[A-Za-z][\w.-]{1,30}"
)
_HEADER_NAME = re.compile(r"(?:X-)?[A-Z][a-z]+(?:-[A-Z][a-z]*)+:?")
_PGP = re.compile(
    r"(?i)(?:0x[0-9a-f]{8}|0x[0-9a-f]{16}|(?:[0-9a-f]{4} ?){10}|(?:[0-9a-f]{4} ){4}[0-9a-f]{4})"
)
_BADGE = re.compile(
    r"(?i)\b(?:emp(?:loyee)?|badge|staff|personnel|service|dod ?id|edipi)\s*"
    r"(?:no\.?|num(?:ber)?|id|#)?\s*[:#\-]?\s*[A-Z]{0,3}[0-9]{4,}"
)
_HOST = re.compile(
    r"(?i)(?:[a-z0-9-]+\.)+(?:local|corp|internal|intra|intranet|lan|ad|gov|mil|"
    r"gov\.[a-z]{2}|mil\.[a-z]{2}|go\.id|gov\.vn|go\.th|gouv\.fr)"
)
# A documents folder of no one in particular (a named user's is a build path).
_USER_FOLDER = re.compile(
    r"(?i)^(?:[A-Z]:)?(?:\\|/)?(?:(?:Users|home|Documents and Settings)(?:\\|/)"
    r"(?:\*|%USERNAME%|\$USER|~)(?:\\|/))?(?:AppData\\Roaming\\Microsoft\\Windows\\)?"
    r"(?:Documents|Desktop|Downloads|OneDrive[^\\/]*|Recent|My Documents)(?:\\|/|$)"
)
_CODE_PUNCT = re.compile(
    r"[\\/{}\[\]<>=;|$%&*^~`#@_]|\w\(|\(\w+\)|::|->|-{3,}|','|\",\"|:\s*$|:\d|\.\w{2,4}$|"
    r"0x[0-9a-f]|\bv\.|\d+\.\d+",
    re.I,
)
# The register of software: a string that speaks of processes, ports or files is a
# program's message (usage text, an error, a banner), not the subject of a document.
# wordfreq says *that* a text is language; this list says *which* register it is in.
_TECH_WORDS = frozenset(
    """
    access account address addresses admin administrator agent alert algorithm allocate
    api app application archive argument arguments armed attack attempt authentication
    auto backdoor backup binary bit bits boot bot browser brute buffer bug build byte bytes
    cache call callback certificate channel check checker chrome client code coded command
    commands compile compiled compiler computer config configuration connect connected
    connection console control cookie cookies copyright corporation cpu crack cracked crash
    create created credential credentials crypt crypto current daemon data database debug
    decode decrypt decrypted default delete deleted device devices dialog directory disable
    disk display dll dns domain done download downloaded driver dump dumped elevation
    enable encode encoded encrypt encrypted encryption engine entry error errors exe execute
    executed execution exit exploit export extension failed fatal file files filename
    finished firewall firmware flag flags folder format found function hack hacked hacker
    handle hash header hidden hide hiding host hosts http https icon ids image implant
    import inject injected injection input install installed installer instance interface
    internet invalid ips java kernel key keyboard keylogger keys kill killed launch layout
    library license link links linux list listen listening load loaded loader local lock
    locked log logged login logon logs lost mac machine mail malware manager mapped memory
    menu message microsoft mode module monitor mouse network node null object open option
    options output packet packets page panel parameter password passwords patch path
    payload permission persistence pid ping plugin port ports print printer privilege
    process processes program protocol proxy query ransom read reboot received record
    registry reject remote request resolve resource response restart result rights root
    router run running sandbox scan scanned scanner scanning screen screenshot script
    secret sent server service session setting settings setup shell shellcode shutdown
    socket software source spy start started startup status steal stealer stop stream
    string success successfully sync system target task terminal test thread token tool
    trojan tunnel unable unknown unlock update upgrade upload url usage user username
    users utility value variable version virtual virus wallet web website window windows
    worm write written
    """.split()  # noqa: SIM905 -- a word list reads best as words
)
_WORD = re.compile(r"[^\W\d_]{2,}")
_NAME = re.compile(r"(?:[A-Z][a-z]+|[A-Z]\.)(?: (?:[A-Z][a-z]+|[A-Z]\.)){1,3}")
_ALLCAPS = re.compile(r"[A-Z][A-Z0-9]{3,19}(?:[ \-_][A-Z0-9]{2,19}){0,3}")
_CAMEL = re.compile(r"(?:[A-Z][a-z]+){2,4}(?:[-_ ]?[0-9]{1,4})?")
_TECH = re.compile(
    r"GET|SET|SEND|RECV|PATH|NAME|HOST|PORT|URL|LIST|START|STOP|INSTALL|PLUGIN|FILE|DIR|"
    r"KEY|REG|PROC|DLL|EXE|CMD|WND|FRM|SOCK|CONN|INIT|LOAD|FIND|READ|WRITE|OPEN|CLOSE|"
    r"SERV|CLIENT|CONF|CFG|DATA|BUF|PTR|HANDLE|THREAD|MUTEX|HOOK|SHELL|TEMP|USER|PASS|"
    r"INFO|VER|RESOURCE|CRYPT|HTTP|TCP|UDP|DNS|FTP|SMB|LDAP|SQL|ADMIN|SYS|WIN|API|BOT|"
    r"LOG|DUMP|INJECT|PAYLOAD|SPY|STEAL|RAT|KEYLOG|BACKDOOR|CLASS|FORM|MAIN|MODULE|TASK",
)
_VOWELS = set("AEIOUY")


def _is_identifier(text: str) -> str | None:
    if _MAIL_HEADER.search(text):
        return "e-mail header with an address"
    m = _EMAIL.search(text)
    if m and not _FREE_MAIL.search(text):
        return f"e-mail address or mail domain {m.group(0)!r}"
    if _DN.search(text) and re.search(r"(?i)\b(?:OU|DC)\s*=", text):
        return "directory DN/OU"
    if _DOMAIN_USER.fullmatch(text):
        return "DOMAIN\\user account"
    if _PGP.fullmatch(text.strip()):
        return "PGP key ID or fingerprint"
    if _BADGE.search(text):
        return "employee or badge number"
    if _HOST.fullmatch(text.strip()):
        return "internal or government host name"
    if _USER_FOLDER.search(text) and not re.search(r"(?i)\.(?:exe|dll|pdb|ps1|bat|vbs|js)\b", text):
        return "a user's documents folder"
    return None


def _codename(text: str, words: WordSet) -> bool:
    t = text.strip()
    if _ALLCAPS.fullmatch(t):
        letters = [c for c in t if c.isalpha()]
        if len(letters) < 4 or sum(c in _VOWELS for c in letters) < 0.25 * len(letters):
            return False
        return not _TECH.search(re.sub(r"[\s\-_]", "", t))
    if _CAMEL.fullmatch(t):
        parts = re.findall(r"[A-Z][a-z]+", t)
        return all(p.lower() in words for p in parts) and not _TECH.search(t.upper())
    return False


@functools.lru_cache(maxsize=65536)
def classify(text: str) -> Classified:
    """The :class:`Kind` of one decoded pattern text (see the module docstring)."""
    t = text.strip()
    if len(t) < 3:
        return Classified("artefact", "too short to mean anything")
    why = _is_identifier(t)
    if why:
        return Classified("identifier", why)
    if _HEADER_NAME.fullmatch(t):
        return Classified("artefact", "a protocol header name")
    if _CODE_PUNCT.search(t):
        return Classified("artefact", "code, path or format punctuation")
    words = common_words()
    tech = [w for w in _WORD.findall(t) if w.casefold() in _TECH_WORDS]
    if tech:
        return Classified("artefact", f"software register ({tech[0]!r})")
    if _codename(t, words):
        return Classified("codename", "code-name-like token")
    tokens = _WORD.findall(t)
    letters = sum(len(w) for w in tokens)
    if not tokens or letters < 0.6 * len(t.replace(" ", "")):
        return Classified("artefact", "not made of words")
    if any(any(c.isupper() for c in w[1:]) and not w.isupper() for w in tokens):
        return Classified("artefact", "mixed-case identifier")
    known = sum(w.casefold() in words for w in tokens)
    if len(tokens) == 1:
        w = tokens[0]
        if len(w) >= 4 and known and not w.isupper():
            return Classified("natural", f"the word {w!r}")
    elif known >= 0.8 * len(tokens):
        return Classified("natural", f"{len(tokens)} words of a natural language")
    if _NAME.fullmatch(t):
        return Classified("name", "a personal name")
    return Classified("artefact", "no known words")
