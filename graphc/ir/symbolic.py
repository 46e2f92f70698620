"""Symbolic batch size: a text (IR or generated source) with the numbers that follow the batch size named B.

    t = SizeTemplate.fit(text_at_64, 64, text_at_32, 32)   # None when the texts differ otherwise
    t.text                -> '... f32[B,784] ... for i0 in range(B): ...'
    t.matches(text_at_17, 17)   -> True only if text_at_17 is exactly t.text with B = 17

Two texts of the same program at two batch sizes must agree everywhere but in numbers; a number
that differs must be an integer affine function of the size (k * B + c: a batch, a flattened
[B, 128] buffer, a float 64.0 from a mean over the batch).  Anything else (a structure that depends
on the size, a 1/B baked into a float) is a leak the template cannot express, and fit() says None.
Every later size is checked against the template before its code runs, so a leak the two first
sizes did not show (a branch on `x.size(0) > 50`) is caught there, never run with wrong numbers.
"""
from __future__ import annotations

import re

SYMBOL = "B"

# A number token: an integer or a float literal (1e-05, 0.5, 64.0), inside an identifier too
# (v11_as_64), since the generated source names reshaped views after their sizes.
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _split(text):
    """['text', '64', 'text', '784', ...]: text pieces at even positions, number tokens at odd ones."""
    return _NUMBER.split(text), _NUMBER.findall(text)


def _value(token):
    return float(token) if any(ch in token for ch in ".eE") else int(token)


class Slot:
    """A number k * B + c at one place in the text; `in_name` when it sits inside an identifier."""

    __slots__ = ("k", "c", "is_float", "in_name")

    def __init__(self, k, c, is_float, in_name):
        self.k, self.c, self.is_float, self.in_name = k, c, is_float, in_name

    def at(self, size):
        return self.k * size + self.c

    def render(self):
        """The slot as the template prints it: B, 128*B, (B - 2); inside a name: v11_as_B, v49_as_128B."""
        k, c = self.k, self.c
        if self.in_name:
            return (f"{k}{SYMBOL}" if k != 1 else SYMBOL) + (f"p{c}" if c > 0 else f"m{-c}" if c < 0 else "")
        term = SYMBOL if k == 1 else f"{k}*{SYMBOL}"
        if c == 0:
            return term
        return f"({term} + {c})" if c > 0 else f"({term} - {-c})"


class SizeTemplate:
    """A text with symbolic-size slots; fit() builds one from two sizes, matches() checks a third."""

    def __init__(self, pieces, slots):
        self.pieces = pieces   # text pieces; between pieces i and i+1 sits either a literal or a Slot
        self.slots = slots     # one per gap: a Slot, or the literal token string

    @classmethod
    def fit(cls, text_a, size_a, text_b, size_b):
        """The template both texts are instances of, or None (see the module docstring)."""
        if size_a == size_b:
            return None
        pieces_a, nums_a = _split(text_a)
        pieces_b, nums_b = _split(text_b)
        if pieces_a != pieces_b or len(nums_a) != len(nums_b):
            return None
        if re.search(rf"\b{SYMBOL}\b", "".join(pieces_a)):
            return None   # the name is taken in this text: the template would be ambiguous
        slots = []
        for i, (ta, tb) in enumerate(zip(nums_a, nums_b)):
            if ta == tb:
                slots.append(ta)
                continue
            va, vb = _value(ta), _value(tb)
            k, rem = divmod(vb - va, size_b - size_a)
            if rem != 0 or k != int(k) or k == 0:
                return None
            k = int(k)
            c = va - k * size_a
            if c != int(c):
                return None
            in_name = bool(re.search(r"\w$", pieces_a[i])) and bool(pieces_a[i])
            slots.append(Slot(k, int(c), isinstance(va, float), in_name))
        template = cls(pieces_a, slots)
        if not template.matches(text_a, size_a) or not template.matches(text_b, size_b):
            return None
        return template

    @property
    def symbolic(self):
        return any(isinstance(s, Slot) for s in self.slots)

    @property
    def text(self):
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:]):
            out.append(slot.render() if isinstance(slot, Slot) else slot)
            out.append(piece)
        return "".join(out)

    def matches(self, text, size):
        """True when `text` is this template with B = size: same text, same constants, every slot's value."""
        pieces, nums = _split(text)
        if pieces != self.pieces or len(nums) != len(self.slots):
            return False
        for slot, token in zip(self.slots, nums):
            if isinstance(slot, Slot):
                value = _value(token)
                if isinstance(value, float) != slot.is_float or value != slot.at(size):
                    return False
            elif slot != token:
                return False
        return True


def size_parameter(source):
    """Generated source whose kernels read B: B becomes the first parameter of every function that
    mentions it (and of the driver), and every call of such a function passes it on.

        def sum_7(a0, o0): ... range(B)  ->  def sum_7(B, a0, o0): ...;   sum_7(v19, v25) -> sum_7(B, v19, v25)
    """
    blocks = re.split(r"(?m)^(?=@|def )", source)
    takes_size = set()
    for block in blocks:
        match = re.search(r"(?m)^def (\w+)\(", block)
        code = re.sub(r"#.*", "", block)   # B in a comment (an IR line's type) is no reason to take it
        if match and (match.group(1) == "driver" or re.search(rf"\b{SYMBOL}\b", code)):
            takes_size.add(match.group(1))
    # A function that calls one that takes B takes it too (out-of-line kernels called from a wrapper).
    changed = True
    while changed:
        changed = False
        for block in blocks:
            match = re.search(r"(?m)^def (\w+)\(", block)
            if match and match.group(1) not in takes_size and \
                    any(re.search(rf"\b{name}\(", block[match.end():]) for name in takes_size):
                takes_size.add(match.group(1))
                changed = True
    if not takes_size:
        return source
    names = "|".join(sorted(takes_size, key=len, reverse=True))
    source = re.sub(rf"(?m)^def ({names})\(", rf"def \1({SYMBOL}, ", source)
    return re.sub(rf"(?<![\w.])(?<!def )({names})\((?!{SYMBOL}, )", rf"\1({SYMBOL}, ", source)
