"""What a rule needs to match: minimal requirement sets of its condition.

A condition is read (from :func:`overt.rules.parse.tokenize_condition` tokens)
into a small expression tree and reduced to *requirement sets* in disjunctive
form: the rule matches when every :class:`Atom` of at least one set holds.
Example::

    >>> req = requirements("($m1 or $sc) and filesize < 1MB")
    >>> sorted(sorted(a.text for a in s) for s in req.sets)
    [['$m1', 'filesize < 1MB'], ['$sc', 'filesize < 1MB']]

So a malicious indicator ``$sc`` lowers nothing: the rule matches with
``$m1`` alone. The grammar followed is YARA's
(https://yara.readthedocs.io/en/stable/writingrules.html#conditions):
``or`` < ``and`` < ``not`` < comparisons < bitwise/arithmetic < primary, with
``N of (...)``, ``for ... : (...)``, ``$a at e``, ``$a in (a..b)``.

Semantics kept on purpose:

- ``not e`` requires nothing positive (``not pe.is_pe`` is satisfied by any
  document); it becomes one non-indicator atom ``not ...``.
- ``#a > 0`` / ``#a >= 1`` / ``@a[1]`` / ``!a[1]`` / ``$a at`` / ``$a in`` need ``$a``;
  ``#a == 0`` or ``#a < 3`` need nothing.
- A reference to another rule of the same file (private or not) is inlined,
  at most :data:`MAX_DEPTH` deep; an unknown one is an ``rule`` atom.
- Sets are capped at :data:`MAX_SETS`: beyond that ``complete`` is False and
  callers must not conclude that an indicator is needed everywhere.

Raises nothing: a condition it cannot read yields ``Requirements(parsed=False)``.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from overt.rules.parse import ConditionToken, tokenize_condition

__all__ = ["MAX_DEPTH", "MAX_SETS", "Atom", "Requirements", "requirements"]

MAX_SETS = 128
MAX_DEPTH = 8


class Atom(NamedTuple):
    """One thing a match needs (a tuple: hashed and compared in C, and the
    reduction hashes millions of them on a large rule set).

    ``kind``: ``string`` (``$id``), ``magic`` (an integer read compared with a
    constant, ``text`` is ``uint16(0) == 0x5a4d``), ``module`` (a module field
    or function used positively), ``filesize``, ``external`` (a front-end
    variable such as ``filepath``), ``not`` (a negation), ``rule`` (a rule
    outside the file), ``other``.
    """

    kind: str
    text: str
    owner: str = ""  # the inlined rule a string atom belongs to ("" = this rule)

    def __str__(self) -> str:
        return f"{self.owner}:{self.text}" if self.owner else self.text


Set_ = frozenset[Atom]


@dataclass
class Requirements:
    """The minimal requirement sets (``sets``) of a condition."""

    sets: list[Set_] = field(default_factory=list)
    parsed: bool = True
    complete: bool = True
    _tree: _Node | None = None
    _reducer: _Reducer | None = None

    def every_set_has(self, pred: Callable[[Atom], bool]) -> bool | None:
        """Whether every requirement set holds an atom for which ``pred`` is true,
        decided on the syntax tree (exact even when :attr:`sets` was truncated);
        None for an unreadable condition."""
        if self._tree is None or self._reducer is None:
            return None
        try:
            return self._reducer.covered(self._tree, pred, "")
        except (_UnreadableError, ValueError, RecursionError):
            return None

    def strings(self) -> set[str]:
        return {a.text for s in self.sets for a in s if a.kind == "string"}


class _UnreadableError(Exception):
    pass


def _minimal(sets: list[Set_]) -> tuple[list[Set_], bool]:
    """The sets of which no other is a subset, smallest first, and whether
    they fit in :data:`MAX_SETS`.

    A kept set is indexed under its rarest atom: a later (larger or equal)
    set is compared only with the kept sets indexed under one of its own
    atoms, the only ones that can be its subsets (``any of ($s*)`` with 100
    strings is 100 look-ups, not 5,000 subset tests; an atom every set shares,
    such as ``uint16(0) == 0x5a4d``, indexes none of them). A set is indexed
    once the sets of its size are done: sets of one size are never subsets of
    each other (``10 of them`` gives 128 sets of 10 atoms, and no comparison).
    """
    if len(sets) <= 1:
        return list(sets), True  # one set is minimal (most conditions, most "and" steps)
    # In the order given, duplicates dropped: a set of frozensets would iterate in an
    # order that changes with PYTHONHASHSEED, and with it the set a finding shows.
    uniq = sorted(dict.fromkeys(sets), key=len)
    if uniq and not uniq[0]:
        return [uniq[0]], True  # "always true" needs nothing: it covers every set
    if len(uniq[0]) == len(uniq[-1]):
        out = uniq
    else:
        seen = collections.Counter(a for s in uniq for a in s)
        out = []
        index: dict[Atom, list[Set_]] = {}
        size = len(uniq[0])
        group: list[Set_] = []
        for s in uniq:
            if len(s) != size:
                for kept in group:
                    index.setdefault(min(kept, key=seen.__getitem__), []).append(kept)
                size, group = len(s), []
            if any(o < s for a in s for o in index.get(a, ())):
                continue
            out.append(s)
            group.append(s)
    if len(out) > MAX_SETS:
        return out[:MAX_SETS], False
    return out, True


_TRUE: list[Set_] = [frozenset()]
_FALSE: list[Set_] = []

_CMP = frozenset(
    {"==", "!=", "<", ">", "<=", ">=", "contains", "icontains", "startswith", "istartswith"}
    | {"endswith", "iendswith", "iequals", "matches"}
)
_INT_READ = re.compile(r"u?int(?:8|16|32)(?:be)?")
_QUANT = frozenset({"all", "any", "none"})


@dataclass
class _Node:
    op: str  # and, or, not, of, for, cmp, str, atom, true, false, value
    kids: list[_Node] = field(default_factory=list)
    text: str = ""
    atom: Atom | None = None
    strs: list[str] = field(default_factory=list)  # string refs under a value
    quant: str = ""  # for "of"/"for": all, any, none, or a number
    members: list[str] = field(default_factory=list)  # for "of": $ids or rule names


def _join(toks: list[ConditionToken]) -> str:
    return re.sub(r"\s*([()\[\],.])\s*", r"\1", " ".join(t.text for t in toks))


class _Parser:
    def __init__(self, toks: list[ConditionToken], string_ids: list[str]) -> None:
        self.t = toks
        self.i = 0
        self.ids = string_ids

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.t[j].text if j < len(self.t) else ""

    def tok(self) -> ConditionToken:
        if self.i >= len(self.t):
            raise _UnreadableError("unexpected end")
        t = self.t[self.i]
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        if self.tok().text != text:
            raise _UnreadableError(f"expected {text}")

    def parse(self) -> _Node:
        n = self.or_()
        if self.i != len(self.t):
            raise _UnreadableError(f"trailing {self.peek()!r}")
        return n

    def or_(self) -> _Node:
        kids = [self.and_()]
        while self.peek() == "or":
            self.i += 1
            kids.append(self.and_())
        return kids[0] if len(kids) == 1 else _Node("or", kids)

    def and_(self) -> _Node:
        kids = [self.not_()]
        while self.peek() == "and":
            self.i += 1
            kids.append(self.not_())
        return kids[0] if len(kids) == 1 else _Node("and", kids)

    def not_(self) -> _Node:
        if self.peek() == "not":
            start = self.i
            self.i += 1
            inner = self.not_()
            text = _join(self.t[start : self.i])
            return _Node("not", [inner], text=text)
        if self.peek() == "defined":
            self.i += 1
            return self.not_()
        return self.cmp()

    def cmp(self) -> _Node:
        start = self.i
        left = self.value()
        if self.peek() in _CMP:
            op = self.tok().text
            right = self.value()
            text = _join(self.t[start : self.i])
            return _Node("cmp", [left, right], text=text, quant=op)
        return left

    def value(self) -> _Node:
        # Binary arithmetic/bitwise operators: operands merged (strings they read).
        start = self.i
        node = self.unary()
        kids = [node]
        while self.peek() in ("+", "-", "*", "\\", "%", "&", "|", "^", "<<", ">>", "/"):
            self.i += 1
            kids.append(self.unary())
        if len(kids) == 1:
            return node
        strs = [s for k in kids for s in k.strs]
        return _Node("value", text=_join(self.t[start : self.i]), strs=strs)

    def unary(self) -> _Node:
        if self.peek() in ("-", "~"):
            self.i += 1
            inner = self.unary()
            return _Node("value", text="-" + inner.text, strs=inner.strs)
        return self.primary()

    def set_members(self) -> list[str]:
        if self.peek() == "them":
            self.i += 1
            return list(self.ids)
        self.expect("(")
        out: list[str] = []
        while True:
            t = self.tok()
            if t.kind == "strref":
                pat = t.text
                if pat.endswith("*"):
                    out += [s for s in self.ids if s.startswith(pat[:-1])]
                else:
                    out.append(pat)
            elif t.kind == "ident":
                out.append(t.text + ("*" if self.peek() == "*" else ""))
                if self.peek() == "*":
                    self.i += 1
            else:
                raise _UnreadableError("set member")
            sep = self.tok().text
            if sep == ")":
                return out
            if sep != ",":
                raise _UnreadableError("set separator")

    def quantifier(self) -> str | None:
        t = self.peek()
        if t in _QUANT:
            self.i += 1
            return t
        if self.i < len(self.t) and self.t[self.i].kind == "num":
            if self.peek(1) == "%":
                num = self.tok().text
                self.i += 1
                return num + "%"
            return None
        return None

    def primary(self) -> _Node:
        t = self.tok()
        if t.text == "(":
            n = self.or_()
            self.expect(")")
            return n
        if t.text == "true":
            return _Node("true")
        if t.text == "false":
            return _Node("false")
        # N of ..., all of ..., for ...
        if t.text == "for":
            quant = self.tok().text
            if quant not in _QUANT and not re.fullmatch(r"[0-9]+", quant):
                raise _UnreadableError("for quantifier")
            if self.peek() == "of":
                self.i += 1
                members = self.set_members()
                self.expect(":")
                body = self.paren_body()
                return _Node("of", [body], quant=quant, members=members)
            # for q var[, var] in iterable : (body)
            while self.peek() not in ("in", ""):
                self.i += 1
            self.expect("in")
            first = self.peek()
            self.skip_iterable()
            self.expect(":")
            body = self.paren_body()
            node = _Node("for", [body], quant=quant)
            if "." in first:
                node.text = first  # iterating a module's array needs the module
            return node
        if t.text in _QUANT or (t.kind == "num" and self.peek() in ("of", "%")):
            quant = t.text
            if self.peek() == "%":
                self.i += 1
                quant += "%"
            if self.peek() == "of":
                self.i += 1
                members = self.set_members()
                node = _Node("of", [], quant=quant, members=members)
                if self.peek() in ("in", "at"):
                    self.i += 1
                    self.value()
                return node
            if t.kind == "num":
                return _Node("value", text=t.text)
            raise _UnreadableError("quantifier without of")
        if t.kind == "strref":
            name = "$" + t.text[1:]
            if t.text[0] == "$":
                node = _Node("str", text=name)
                if self.peek() == "at":
                    self.i += 1
                    self.value()
                elif self.peek() == "in":
                    self.i += 1
                    self.range_()
                return node
            # #a, @a[i], !a[i], #a in (range)
            if self.peek() == "[":
                self.i += 1
                self.or_()
                self.expect("]")
            if t.text[0] == "#" and self.peek() == "in":
                self.i += 1
                self.range_()
            return _Node("value", text=t.text, strs=[name], quant=t.text[0])
        if t.kind in ("num", "str", "regex"):
            return _Node("value", text=t.text)
        if t.kind == "ident":
            text = t.text
            if self.peek() == "(":
                # a function call: an integer read, a module function or a rule-less call
                self.i += 1
                depth = 1
                while depth:
                    nxt = self.tok().text
                    depth += {"(": 1, ")": -1}.get(nxt, 0)
            while self.peek() in ("[", "."):
                if self.peek() == "[":
                    self.i += 1
                    self.or_()
                    self.expect("]")
                else:
                    self.i += 1
                    self.tok()
            return _Node("ident", text=text)
        raise _UnreadableError(f"unexpected {t.text!r}")

    def paren_body(self) -> _Node:
        if self.peek() == "(":
            self.i += 1
            n = self.or_()
            self.expect(")")
            return n
        return self.cmp()

    def range_(self) -> None:
        self.expect("(")
        self.value()
        self.expect("..")
        self.value()
        self.expect(")")

    def skip_iterable(self) -> None:
        if self.peek() == "(":
            depth = 0
            while True:
                x = self.tok().text
                depth += {"(": 1, ")": -1}.get(x, 0)
                if depth == 0:
                    return
        self.value()


def _strings(refs: list[str]) -> list[Atom]:
    # ``$``, ``#``, ``@`` alone stand for the member of an enclosing ``for ... of``.
    return [Atom("string", s) for s in refs if s != "$"]


def _and(a: list[Set_], b: list[Set_]) -> tuple[list[Set_], bool]:
    # Bounded: a product beyond the cap makes the answer incomplete, not slow.
    cap = MAX_SETS * 4
    whole = len(a) * len(b) <= cap
    product = [x | y for x, y in itertools.islice(itertools.product(a, b), cap)]
    sets, ok = _minimal(product)
    return sets, ok and whole


class _Reducer:
    def __init__(
        self,
        rules: Mapping[str, tuple[str, list[str]]],
        string_ids: list[str],
        depth: int,
        seen: frozenset[str],
    ) -> None:
        self.rules = rules
        self.ids = string_ids
        self.depth = depth
        self.seen = seen
        self.complete = True

    def sets(self, n: _Node) -> list[Set_]:
        if n.op == "true":
            return list(_TRUE)
        if n.op == "false":
            return list(_FALSE)
        if n.op == "or":
            out: list[Set_] = []
            for k in n.kids:
                out += self.sets(k)
            res, ok = _minimal(out)
            self.complete &= ok
            return res
        if n.op == "and":
            acc = list(_TRUE)
            for k in n.kids:
                acc, ok = _and(acc, self.sets(k))
                self.complete &= ok
            return acc
        if n.op == "not":
            return [frozenset({Atom("not", n.text)})]
        if n.op == "str":
            return [frozenset({Atom("string", n.text)})] if n.text != "$" else list(_TRUE)
        if n.op == "of":
            return self.of(n)
        if n.op == "for":
            if n.quant == "none" or n.quant == "0":
                return list(_TRUE)
            body = self.sets(n.kids[0])
            if n.text:
                body, ok = _and(body, [frozenset({Atom("module", n.text)})])
                self.complete &= ok
            return body
        if n.op == "cmp":
            return self.cmp(n)
        if n.op == "ident":
            return self.ident(n.text)
        if n.op == "value":
            # a bare value is true when non-zero: #a, @a[1] need $a
            return [frozenset(_strings(n.strs))]
        return [frozenset({Atom("other", n.text)})]

    def ident(self, text: str) -> list[Set_]:
        if text in self.rules and "." not in text:
            if text in self.seen or self.depth >= MAX_DEPTH:
                return [frozenset({Atom("rule", text)})]
            cond, ids = self.rules[text]
            sub = _reduce(
                tokenize_condition(cond), ids, self.rules, self.depth + 1, self.seen | {text}
            )
            if not sub.parsed:
                return [frozenset({Atom("rule", text)})]
            self.complete &= sub.complete
            return [frozenset(Atom(a.kind, a.text, a.owner or text) for a in s) for s in sub.sets]
        if "." in text:
            return [frozenset({Atom("module", text)})]
        if text == "filesize":
            return [frozenset({Atom("filesize", text)})]
        if text in ("filename", "filepath", "extension", "filetype", "owner"):
            return [frozenset({Atom("external", text)})]
        return [frozenset({Atom("rule" if text not in ("entrypoint",) else "other", text)})]

    def cmp(self, n: _Node) -> list[Set_]:
        left, right = n.kids
        op = n.quant
        # #a compared with a number: needed only if the relation excludes 0
        for a, b, flip in ((left, right, False), (right, left, True)):
            if a.op == "value" and a.quant == "#" and b.op == "value" and b.text.isdigit():
                k = int(b.text)
                o = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op) if flip else op
                needs = {
                    ">": k >= 0,
                    ">=": k >= 1,
                    "==": k >= 1,
                    "!=": k == 0,
                    "<": False,
                    "<=": False,
                }.get(o, True)
                return [frozenset(_strings(a.strs))] if needs else list(_TRUE)
        strs = [s for k in (left, right) for s in k.strs]
        atoms = set(_strings(strs))
        head = left.text.split("(")[0]
        if left.op == "ident" and _INT_READ.fullmatch(head):
            atoms.add(Atom("magic", n.text))
        elif left.op == "ident" and head == "filesize":
            atoms.add(Atom("filesize", n.text))
        elif left.op == "ident" and "." in head:
            atoms.add(Atom("module", n.text))
        elif left.op == "ident" and head in self.rules:
            atoms.add(Atom("rule", n.text))
        elif left.op == "ident":
            atoms.add(Atom("external", n.text))
        elif not atoms:
            atoms.add(Atom("other", n.text))
        return [frozenset(atoms)]

    def _need(self, quant: str, k: int) -> int:
        if quant == "none":
            return 0
        if quant == "all":
            return k
        if quant == "any":
            return 1
        if quant.endswith("%"):
            return max(1, -(-k * int(quant[:-1]) // 100))
        return int(quant)

    def _sub(self, name: str) -> _Node | None:
        if name in self.seen or self.depth >= MAX_DEPTH or name not in self.rules:
            return None
        cond, ids = self.rules[name]
        try:
            return _Parser(tokenize_condition(cond), ids).parse()
        except _UnreadableError:
            return None

    def covered(self, n: _Node, pred: Callable[[Atom], bool], owner: str) -> bool:
        """Every requirement set of ``n`` holds an atom satisfying ``pred``."""
        if n.op == "true":
            return False
        if n.op == "false":
            return True
        if n.op == "or":
            return all(self.covered(k, pred, owner) for k in n.kids)
        if n.op == "and":
            return any(self.covered(k, pred, owner) for k in n.kids)
        if n.op == "of":
            flags: list[bool] = []
            for m in n.members:
                if m.startswith("$"):
                    flags.append(pred(Atom("string", m, owner)))
                else:
                    names = (
                        [r for r in self.rules if r.startswith(m[:-1])] if m.endswith("*") else [m]
                    )
                    flags += [self._ident_covered(r, pred, owner) for r in names]
            need = self._need(n.quant, len(flags))
            body = self.covered(n.kids[0], pred, owner) if n.kids else False
            if need == 0:
                return False
            return body or need > len(flags) or need > flags.count(False)
        if n.op == "for":
            if n.quant in ("none", "0"):
                return False
            mod = bool(n.text) and pred(Atom("module", n.text))
            return mod or self.covered(n.kids[0], pred, owner)
        if n.op == "ident" and "." not in n.text and n.text in self.rules:
            return self._ident_covered(n.text, pred, owner)
        return all(
            any(pred(Atom(a.kind, a.text, a.owner or owner)) for a in st) for st in self.sets(n)
        )

    def _ident_covered(self, name: str, pred: Callable[[Atom], bool], owner: str) -> bool:
        sub = self._sub(name)
        if sub is None:
            return pred(Atom("rule", name))
        inner = _Reducer(self.rules, self.rules[name][1], self.depth + 1, self.seen | {name})
        return inner.covered(sub, pred, name)

    def of(self, n: _Node) -> list[Set_]:
        members: list[list[Set_]] = []
        for m in n.members:
            if m.startswith("$"):
                members.append([frozenset({Atom("string", m)})])
            elif m.endswith("*"):
                for r in self.rules:
                    if r.startswith(m[:-1]):
                        members.append(self.ident(r))
            else:
                members.append(self.ident(m))
        body = self.sets(n.kids[0]) if n.kids else list(_TRUE)
        k = len(members)
        q = n.quant
        if q == "none":
            return list(_TRUE)
        if q == "all":
            need = k
        elif q == "any":
            need = 1
        elif q.endswith("%"):
            need = max(1, -(-k * int(q[:-1]) // 100))
        else:
            need = int(q)
        if need == 0:
            return list(_TRUE)
        if need > k:
            return list(_FALSE)
        out: list[Set_] = []
        if all(len(m) == 1 for m in members):
            # Plain members: each combination is one set, all incomparable.
            if math.comb(k, need) > MAX_SETS:
                self.complete = False
            for combo in itertools.islice(itertools.combinations(range(k), need), MAX_SETS):
                out.append(frozenset().union(*(members[i][0] for i in combo)))
            res, ok = _minimal(out)
            res2, ok2 = _and(res, body)
            self.complete &= ok and ok2
            return res2
        for n_combo, combo in enumerate(itertools.combinations(range(k), need)):
            if n_combo >= MAX_SETS:
                self.complete = False
                break
            acc = list(_TRUE)
            for idx in combo:
                acc, ok = _and(acc, members[idx])
                self.complete &= ok
            out += acc
        res, ok = _minimal(out)
        self.complete &= ok
        res2, ok2 = _and(res, body)
        self.complete &= ok2
        return res2


_STRING_ID = re.compile(r"\$[A-Za-z0-9_]*")


def _reduce(
    toks: list[ConditionToken],
    string_ids: list[str],
    rules: Mapping[str, tuple[str, list[str]]],
    depth: int,
    seen: frozenset[str],
) -> Requirements:
    try:
        tree = _Parser(toks, string_ids).parse()
        red = _Reducer(rules, string_ids, depth, seen)
        sets = red.sets(tree)
    except (_UnreadableError, ValueError, RecursionError):
        return Requirements([], parsed=False, complete=False)
    return Requirements(sets, parsed=True, complete=red.complete, _tree=tree, _reducer=red)


def requirements(
    condition: str,
    string_ids: list[str] | None = None,
    rules: Mapping[str, tuple[str, list[str]]] | None = None,
    name: str = "",
) -> Requirements:
    """Minimal requirement sets of ``condition``.

    ``string_ids`` are the rule's ``$`` identifiers (for ``them`` and ``$a*``);
    ``rules`` maps the names of the rules of the file to ``(condition, string
    ids)``; a referenced rule is inlined and its string atoms carry its name
    (:attr:`Atom.owner`).
    """
    toks = tokenize_condition(condition)
    ids = string_ids if string_ids is not None else sorted(set(_STRING_ID.findall(condition)))
    table = rules or {}
    if not any(
        t.kind == "ident" and (t.text in table or toks[i + 1 : i + 2] == [_STAR])
        for i, t in enumerate(toks)
    ):
        # Names no rule of the file (nor a family of them, ``any of (helper*)``): the sets
        # depend on the condition and the string ids alone, and a third of the corpora's
        # rules repeat one of the others' ("uint16(0) == 0x5a4d and 3 of them").
        return _plain(condition, tuple(ids))
    return _reduce(toks, ids, table, 0, frozenset({name}) if name else frozenset())


_STAR = ConditionToken("op", "*")


@functools.lru_cache(maxsize=1024)
def _plain(condition: str, ids: tuple[str, ...]) -> Requirements:
    # Shared between the rules that ask: callers read it, none changes it.
    return _reduce(tokenize_condition(condition), list(ids), {}, 0, frozenset())
