"""Short captions built from what a data set knows about each example, and parsed back to conditions.

A caption grammar is a list of *slots* (size, shape, position, ...), each a set of mutually
exclusive words. A condition is one token id per slot, (S,) int64, with 0 where the caption leaves
the slot open; word ids are 1..V in slot order (``Grammar.vocabulary``). Three grammars:

    shapes  "a small heart, rotated, top left"      size, shape, rotation, vertical, horizontal
    digits  "a thick, left-slanted seven"           thickness, slant, digit
    labels  "a cat"                                 the class (any labelled data)

Shapes captions follow the factors exactly (``caption_for``): small below scale 0.75; rotated when
the rotation, folded by the shape's symmetry, is more than a quarter-period from upright; top when
y < 0.5 and left when x < 0.5. Digit captions are measured (``digit_measures``): the stroke width is
the ink mass over half the ink's boundary length (2A/P, class-free unlike the raw ink mass), binned
at the data's terciles (the model tracks them); the slant is the second-moment shear
mu_uv / mu_vv of the ink (dx per dy, positive leaning right), upright within +-0.15 (8.5 degrees).
Parsing ignores articles and prepositions and fails on any other unknown word with the vocabulary.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import GenlabError

STOP_WORDS = ("a", "an", "the", "at", "in", "on", "of", "and", "with", "is", "its", "to")
ALIASES = {"big": "large", "tiny": "small", "circle": "ellipse", "oval": "ellipse", "tilted": "rotated",
           "upper": "top", "lower": "bottom", "bold": "thick", "straight": "upright"}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SHAPE_WORDS = ("square", "ellipse", "heart")  # the order of genlab.data.builtin.SHAPE_NAMES
ROTATION_SYMMETRY = (4, 2, 1)  # square, ellipse, heart: the same shape every 2 pi / k
SLANT_UPRIGHT = 0.15  # |shear| below this is upright


@dataclass(frozen=True)
class Grammar:
    """Slots of mutually exclusive words, and the order they are written in.

    ``groups`` lists slot names per comma-separated phrase ("a small heart, rotated, top left" is
    ((size, shape), (rotation,), (vertical, horizontal))); ``class_slot`` holds the data's label.
    """

    name: str
    slots: tuple[tuple[str, tuple[str, ...]], ...]
    groups: tuple[tuple[str, ...], ...]
    class_slot: str

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return tuple(w for _, words in self.slots for w in words)

    @property
    def num_slots(self) -> int:
        return len(self.slots)

    def offsets(self) -> Tensor:
        """(S,) id of each slot's first word minus one: token id = offset + word index + 1."""
        sizes = torch.tensor([0] + [len(w) for _, w in self.slots[:-1]])
        return sizes.cumsum(0)

    def slot_index(self, name: str) -> int:
        return [s for s, _ in self.slots].index(name)

    def ids(self, values: Tensor) -> Tensor:
        """Word indices per slot (N, S), -1 for an open slot -> token ids (N, S), 0 for open."""
        return torch.where(values >= 0, values + 1 + self.offsets().to(values.device), 0)

    def from_labels(self, y: Tensor) -> Tensor:
        """(N,) labels -> (N, S) conditions naming only the class ("a heart", "a seven")."""
        values = torch.full((len(y), self.num_slots), -1, dtype=torch.long, device=y.device)
        values[:, self.slot_index(self.class_slot)] = y
        return self.ids(values)

    def caption(self, ids: Tensor) -> str:
        """(S,) token ids -> the caption, e.g. "a small heart, rotated, top left"."""
        vocab, words = self.vocabulary, {}
        for (slot, _), t in zip(self.slots, ids.tolist(), strict=True):
            if t > 0:
                words[slot] = vocab[t - 1]
        phrases = [" ".join(words[s] for s in group if s in words) for group in self.groups]
        text = ", ".join(p for p in phrases if p)
        if not text:
            return "anything"
        return ("an " if text[0] in "aeiou" else "a ") + text

    def parse(self, text: str) -> Tensor:
        """A caption -> (S,) token ids; an unknown word or two words for one slot is a GenlabError."""
        slot_of = {w: (i, j) for i, (_, words) in enumerate(self.slots) for j, w in enumerate(words)}
        ids = torch.zeros(self.num_slots, dtype=torch.long)
        offsets = self.offsets()
        for word in _words(text, slot_of):
            if word in STOP_WORDS:
                continue
            if word not in slot_of:
                raise GenlabError(f"unknown word {word!r} in the caption {text!r}; the vocabulary is: "
                                  f"{', '.join(self.vocabulary)} (articles and prepositions are ignored)")
            i, j = slot_of[word]
            if ids[i] and ids[i] != offsets[i] + j + 1:
                other = self.vocabulary[int(ids[i]) - 1]
                raise GenlabError(f"the caption {text!r} gives the {self.slots[i][0]} twice: "
                                  f"{other!r} and {word!r}")
            ids[i] = offsets[i] + j + 1
        return ids


def _words(text: str, known: dict) -> list[str]:
    """Lower-case tokens; a hyphenated token not in the vocabulary is split ("top-left")."""
    out: list[str] = []
    text = re.sub(r"\b(left|right)[\s-]+(slanted|leaning)\b", r"\1-slanted", text.lower())
    for token in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text):
        parts = [token] if token in known or "-" not in token else token.split("-")
        for p in parts:
            p = DIGIT_WORDS[int(p)] if p.isdigit() and int(p) < 10 else p
            out.append(ALIASES.get(p, p) if p not in known else p)
    return out


SHAPES = Grammar(
    name="shapes",
    slots=(("size", ("small", "large")), ("shape", SHAPE_WORDS), ("rotation", ("upright", "rotated")),
           ("vertical", ("top", "bottom")), ("horizontal", ("left", "right"))),
    groups=(("size", "shape"), ("rotation",), ("vertical", "horizontal")),
    class_slot="shape")

DIGITS = Grammar(
    name="digits",
    slots=(("thickness", ("thin", "medium", "thick")), ("slant", ("left-slanted", "upright", "right-slanted")),
           ("digit", DIGIT_WORDS)),
    groups=(("thickness",), ("slant", "digit")),
    class_slot="digit")


def labels_grammar(num_classes: int, class_names: tuple[str, ...] | None = None) -> Grammar:
    """One slot, the class: its name when names are distinct single words, else class0, class1, ..."""
    names = [str(c).lower() for c in class_names] if class_names else []
    plain = (len(names) == num_classes and len(set(names)) == num_classes
             and all(re.fullmatch(r"[a-z][a-z0-9_]*", c) and c not in STOP_WORDS for c in names))
    words = tuple(names) if plain else tuple(f"class{k}" for k in range(num_classes))
    return Grammar(name="labels", slots=(("class", words),), groups=(("class",),), class_slot="class")


def grammar_for(captions: str, *, kind: str, num_classes: int | None,
                class_names: tuple[str, ...] | None) -> Grammar:
    """The grammar named by ``captions`` ("auto": shapes or digits when the class names say so)."""
    if not num_classes:
        raise GenlabError("caption-conditional models need labelled data, and this data set has no labels")
    names = tuple(class_names or ())
    if captions == "auto":
        captions = ("shapes" if names == SHAPE_WORDS else
                    "digits" if names == tuple(str(k) for k in range(10)) and kind == "image" else "labels")
    if captions == "shapes" and num_classes == len(SHAPE_WORDS):
        return SHAPES
    if captions == "digits" and num_classes == 10 and kind == "image":
        return DIGITS
    if captions == "labels":
        return labels_grammar(num_classes, class_names)
    raise GenlabError(f"captions={captions!r} does not fit this data ({num_classes} classes, {kind}); "
                      f"choose auto, shapes (the shapes set), digits (mnist5k, digits) or labels")


# --- from what the data knows to slot values -----------------------------------------------------
def shape_values(factors: Tensor) -> Tensor:
    """Shapes factors (N, 5) (shape, scale, rotation, x, y) -> word indices (N, 5) of ``SHAPES``."""
    shape = factors[:, 0].round().long()  # (N,)
    period = 2 * math.pi / torch.tensor(ROTATION_SYMMETRY, dtype=factors.dtype, device=factors.device)[shape]
    angle = torch.remainder(factors[:, 2], period)
    off_upright = torch.minimum(angle, period - angle)  # (N,) in [0, period / 2]
    return torch.stack([(factors[:, 1] >= 0.75).long(), shape, (off_upright >= period / 4).long(),
                        (factors[:, 4] >= 0.5).long(), (factors[:, 3] >= 0.5).long()], 1)


def caption_for(factors: Tensor) -> list[str]:
    """The full caption of each shapes example, (N, 5) factors -> N strings, deterministic."""
    return [SHAPES.caption(row) for row in SHAPES.ids(shape_values(factors))]


def digit_measures(x: Tensor) -> tuple[Tensor, Tensor]:
    """Images (N, C, H, W) in [0, 1] -> stroke width as a fraction of the side (N,), slant (N,).

    Width 2A/P: ink mass A over half its boundary length P (total variation, image border included).
    Slant: the shear mu_uv / mu_vv of the ink about its centroid, u right and v up.
    """
    ink = x.mean(1)  # (N, H, W)
    n, h, w = ink.shape
    padded = torch.nn.functional.pad(ink, (1, 1, 1, 1))  # (N, H+2, W+2): the border counts as boundary
    perimeter = ((padded[:, 1:] - padded[:, :-1]).abs().sum((1, 2))
                 + (padded[:, :, 1:] - padded[:, :, :-1]).abs().sum((1, 2)))
    mass = ink.sum((1, 2))  # (N,)
    width = 2 * mass / perimeter.clamp_min(1e-6) / h
    u = torch.arange(w, dtype=ink.dtype, device=ink.device).view(1, 1, w)
    v = -torch.arange(h, dtype=ink.dtype, device=ink.device).view(1, h, 1)
    m = mass.clamp_min(1e-6).view(-1, 1, 1)
    du = u - (ink * u).sum((1, 2), keepdim=True) / m  # (N, 1, W) after broadcasting below
    dv = v - (ink * v).sum((1, 2), keepdim=True) / m  # (N, H, 1)
    slant = (ink * du * dv).sum((1, 2)) / (ink * dv * dv).sum((1, 2)).clamp_min(1e-6)
    return width, slant


def digit_values(x: Tensor, y: Tensor, width_edges: Tensor) -> Tensor:
    """Digit images and labels -> word indices (N, 3) of ``DIGITS`` (thickness binned at ``width_edges``)."""
    width, slant = digit_measures(x)
    thickness = torch.bucketize(width, width_edges.to(width))  # (N,) 0 thin, 1 medium, 2 thick
    lean = torch.where(slant < -SLANT_UPRIGHT, 0, torch.where(slant > SLANT_UPRIGHT, 2, 1))
    return torch.stack([thickness, lean, y.long()], 1)
