"""Reading a free-text profile: "I love warm pictures of animals; blurry shots annoy me" -> a taste code.

The code is what pmllm's personal head sees of the user's own words (:class:`pmllm.fusion.PersonalHead`,
``personal_input="fields+text"``). Three frozen steps, no training here:

1. :func:`split_clauses` cuts the (already sanitised) text into clauses at sentence ends, semicolons, dashes and
   ", and"/", but"/"but" joints - one preference per clause is the common way people write about taste.
2. Polarity: the frozen causal LLM reads each clause in a few-shot prompt (:mod:`pmllm.constants`) and we take the
   logit difference of " positive" vs " negative" for the next token. A tiny LLM is biased towards "positive", so
   the raw value is standardised with a centre/scale fitted on training users' clauses (stored in the checkpoint
   config) and squashed with tanh: ``w in (-1, 1)``. A clause that states a tolerance ("I don't mind grain",
   :data:`pmllm.constants.TOLERANCE_PATTERNS`) weighs ``TOLERANCE_WEIGHT`` instead (a mild like); a rhetorical
   question weighs ``+-RHETORICAL_WEIGHT`` by its frame (:func:`rhetorical`), and a negative question is read in its
   positive form (:func:`polarity_text`); any other question keeps its "?" for the LLM to see.
3. Topic: the frozen sentence encoder (all-MiniLM-L6-v2 by default) embeds each clause and the fixed concept
   vocabulary ``TASTE_CONCEPTS`` (each concept in a few phrasings, :func:`pmllm.constants.concept_phrases`; a
   clause's cosine with a concept is its best over them); the soft assignment is
   ``softmax(cos / CONCEPT_TEMPERATURE)``.

``code[c]`` = the signed ``w * assignment[c]`` of the clause with the largest magnitude for concept ``c`` (one number
per concept: liked > 0, disliked < 0; a repeated clause does not add up). How a concept maps onto
photos is *learned* by the personal head from training users' ratings; nothing here knows what "blurry" looks like.
An empty text gives an all-zero code (exactly no shift). Library module, no entry point.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from pmllm import constants as C

_SPLIT = re.compile(r"(?<=[.!?;])\s+|;\s*|\n+|\s+-+\s+(?:(?:and|but)\s+)?|,\s+(?:and|but)\s+|\s+but\s+", re.IGNORECASE)
_STRIP = " .;,-!\"'"  # a question keeps its "?": the rhetorical rule and the LLM see that it is a question


_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_INSTRUCTION = re.compile("|".join(C.INSTRUCTION_PATTERNS), re.IGNORECASE)
_TOLERANCE = re.compile("|".join(C.TOLERANCE_PATTERNS), re.IGNORECASE)
_NEGATION = re.compile(C.TOLERANCE_NEGATION, re.IGNORECASE)
_DISLIKE = re.compile(C.TOLERANCE_DISLIKE, re.IGNORECASE)
_RHETORICAL_POSITIVE = re.compile("|".join(C.RHETORICAL_POSITIVE), re.IGNORECASE)
_RHETORICAL_NEGATIVE = re.compile("|".join(C.RHETORICAL_NEGATIVE), re.IGNORECASE)
_ASSERTS = re.compile(C.RHETORICAL_ASSERTS, re.IGNORECASE)
_CANCEL = re.compile(C.RHETORICAL_CANCEL, re.IGNORECASE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def plain(clause: str) -> str:
    """``clause`` with its apostrophes as "'" and no surrounding blanks: what the rule patterns read."""
    return clause.translate(_APOSTROPHES).strip()


def tolerance(clause: str) -> bool:
    """Whether ``clause`` states a tolerance ("I don't mind grain"): a tolerance phrase with no negation before it
    and no dislike in the clause (:data:`pmllm.constants.TOLERANCE_PATTERNS`); it then weighs ``TOLERANCE_WEIGHT``."""
    text = plain(clause)
    m = _TOLERANCE.search(text)
    return bool(m) and not _NEGATION.search(text[: m.start()]) and not _DISLIKE.search(text)


def rhetorical(clause: str) -> int:
    """The taste a rhetorical question states by its frame: +1 ("Who doesn't love a sunset?"), -1 ("Why would anyone
    want a blurry photo?"), 0 for a clause that is no such question, matches frames of both signs, or negates after
    a negative frame ("Why would anyone hate a sunset?") (:data:`pmllm.constants.RHETORICAL_POSITIVE` /
    ``RHETORICAL_NEGATIVE`` / ``RHETORICAL_CANCEL``); it then weighs ``+-RHETORICAL_WEIGHT``."""
    text = plain(clause)
    if not text.endswith("?"):
        return 0
    neg = _RHETORICAL_NEGATIVE.search(text)
    if neg and _CANCEL.search(text, neg.end()):
        return 0
    return int(bool(_RHETORICAL_POSITIVE.search(text))) - int(bool(neg))


def polarity_text(clause: str) -> str:
    """What the LLM reads for ``clause``'s polarity: a negative question asserts its positive form ("Isn't a starry
    sky breathtaking?" -> "a starry sky breathtaking", :data:`pmllm.constants.RHETORICAL_ASSERTS`); any other clause
    as written."""
    text = plain(clause)
    m = _ASSERTS.match(text) if text.endswith("?") else None
    return m.group("rest") if m else clause


def rule(clause: str) -> tuple[float, str] | None:
    """``(weight, "tolerance" | "rhetorical")`` when a rule decides ``clause`` instead of the LLM's polarity reading:
    a dismissive rhetorical question ``-RHETORICAL_WEIGHT`` (even with a tolerance word in it: "Why is grain
    acceptable to anyone?"), a tolerance ``TOLERANCE_WEIGHT`` (:func:`tolerance`), an approving rhetorical question
    ``+RHETORICAL_WEIGHT`` (:func:`rhetorical`); else None."""
    sign = rhetorical(clause)
    if sign < 0:
        return -C.RHETORICAL_WEIGHT, "rhetorical"
    if tolerance(clause):
        return C.TOLERANCE_WEIGHT, "tolerance"
    return (C.RHETORICAL_WEIGHT, "rhetorical") if sign > 0 else None


def unreadable(clause: str) -> str | None:
    """Why the reader does not use ``clause`` (text it cannot read, or an instruction to the model), else None.
    A clause no concept is near is decided later, in :meth:`TasteReader.read`."""
    letters = _LETTER.findall(clause)
    latin = sum(ch.isascii() for ch in letters)
    if len(_LATIN_WORD.findall(clause)) < C.MIN_WORDS or latin < 0.5 * len(letters):
        return "no words I can read (the models read English)"
    if _INSTRUCTION.search(clause):
        return "an instruction to the model, not a taste"
    return None


def split_clauses(text: str) -> list[str]:
    """Clauses of ``text`` (at most ``MAX_CLAUSES``, each at most ``MAX_CLAUSE_CHARS``); empty text -> []."""
    out = []
    for part in _SPLIT.split(text or ""):
        part = (part or "").strip(_STRIP)
        if len(part) > 2:
            out.append(part[: C.MAX_CLAUSE_CHARS])
        if len(out) == C.MAX_CLAUSES:
            break
    return out


@dataclass
class TasteReading:
    """What was read from one text: per clause its raw polarity, signed weight and top concept; and the code."""

    clauses: list[str]
    polarity: list[float]  # raw LLM logit difference " positive" - " negative"
    weight: list[float]  # tanh((polarity - centre) / scale), or the weight a rule fixes (:func:`rule`)
    concept: list[str]  # the most similar concept of each clause
    assign: torch.Tensor  # (clauses, len(TASTE_CONCEPTS)) soft topic assignment
    code: torch.Tensor  # (len(TASTE_CONCEPTS),)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (clause, why it was not used)
    tolerant: list[bool] = field(init=False)  # per clause: a tolerance (:func:`rule`), weighed TOLERANCE_WEIGHT
    fixed: list[float | None] = field(init=False)  # per clause: the weight a rule fixes (:func:`rule`), else None

    def __post_init__(self):
        rules = [rule(c) for c in self.clauses]
        self.tolerant = [r is not None and r[1] == "tolerance" for r in rules]
        self.fixed = [None if r is None else r[0] for r in rules]

    def summary(self) -> list[str]:
        """Human-readable lines, e.g. ``"likes 'animals' (+0.83): I love pictures of animals"`` (``"tolerates"``
        for a tolerance clause), then one line per clause that was not used, with the reason."""
        verb = ["tolerates" if t else "likes" if w > 0 else "dislikes" for t, w in zip(self.tolerant, self.weight)]
        used = [f"{v} '{k}' ({w:+.2f}): {c}" for c, v, w, k in zip(self.clauses, verb, self.weight, self.concept)]
        return used + [f"could not use: {c!r} ({why})" for c, why in self.skipped]


POLARITY_BATCH = 32  # clauses read in one batch after the few-shot head


class TasteReader:
    """Frozen LLM (polarity) + frozen sentence encoder (topic) -> :class:`TasteReading`; results cached per text."""

    def __init__(self, llm, tokenizer, encoder, *, centre: float = 0.0, scale: float = 1.0, cache_size: int = 256,
                 concepts: torch.Tensor | None = None):  # fmt: skip
        """``concepts``: the concept phrases' embeddings by this ``encoder``, when stored (a checkpoint's), else
        encoded on first use."""
        if scale <= 0:
            raise ValueError(f"polarity scale must be > 0, got {scale}")
        self.llm, self.tokenizer, self.encoder = llm, tokenizer, encoder
        self.centre, self.scale = float(centre), float(scale)
        ids = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in C.POLARITY_WORDS]
        self.word_ids = [int(i[0]) for i in ids]
        if len(set(self.word_ids)) != len(self.word_ids):
            raise ValueError(f"polarity words {C.POLARITY_WORDS} share a first token in this tokenizer")
        shots = "".join(C.POLARITY_TEMPLATE.format(s) + f" {a}\n" for s, a in C.POLARITY_EXAMPLES)
        self._head = C.POLARITY_INSTRUCTION + shots
        self._phrases, owner = C.concept_phrases()
        if concepts is not None and concepts.shape[0] != len(self._phrases):
            raise ValueError(f"concepts: {concepts.shape[0]} embeddings for {len(self._phrases)} concept phrases")
        self._concepts: torch.Tensor | None = concepts
        self._owner = torch.tensor(owner)  # phrase -> index in TASTE_CONCEPTS
        self._own = torch.tensor([owner.index(i) for i in range(len(C.TASTE_CONCEPTS))])  # each concept's own phrase
        self._head_kv: tuple[tuple, list[int], list] | None = None
        self._cache: OrderedDict[str, TasteReading] = OrderedDict()
        self._cache_size = cache_size

    def forget(self, head: bool = False) -> None:
        """Drop the cached readings; ``head=True`` also the few-shot head's keys/values (after training the LLM)."""
        self._cache.clear()
        if head:
            self._head_kv = None

    @property
    def concepts(self) -> torch.Tensor:
        """``(phrases, dim)`` embeddings of every concept phrase (:func:`pmllm.constants.concept_phrases`)."""
        if self._concepts is None:
            self._concepts = self.encoder.encode(self._phrases)
        return self._concepts

    def similarity(self, clauses: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Two ``(clauses, len(TASTE_CONCEPTS))`` cosines: per concept, the clause's best over the concept's
        phrases (the topic), and with the concept's own phrase alone (what ``MIN_CONCEPT_COSINE`` is set on: more
        phrasings raise the best match of any sentence, "My cat is called Tom" included)."""
        sim = self.encoder.encode(clauses) @ self.concepts.T
        out = torch.full((len(clauses), len(C.TASTE_CONCEPTS)), -1.0, dtype=sim.dtype)
        best = out.scatter_reduce(1, self._owner.expand(len(clauses), -1), sim, reduce="amax")
        return best, sim[:, self._own]

    def prepare(self) -> None:
        """Run the few-shot head once now (its keys/values are kept for every later read)."""
        with torch.no_grad():
            self._head_state()

    def _head_state(self) -> tuple[list[int], list]:
        """Token ids and keys/values of the few-shot head (the same for every clause), computed once."""
        param = next(self.llm.parameters())
        key = (param.device, param.dtype)  # a moved or cast LLM computes the head again
        if self._head_kv is None or self._head_kv[0] != key:
            from pmllm.hf_llm import cache_tensors, output_cache

            ids = self.tokenizer(self._head, add_special_tokens=False)["input_ids"]
            out = self.llm.get_decoder()(input_ids=torch.tensor([ids], device=param.device), use_cache=True)
            self._head_kv = (key, ids, [(k.detach(), v.detach()) for k, v in cache_tensors(output_cache(out))])
        return self._head_kv[1], self._head_kv[2]

    @torch.no_grad()
    def polarity(self, clauses: list[str]) -> list[float]:
        """Raw ``logit(" positive") - logit(" negative")`` of the frozen LLM for each clause.

        The few-shot head is run once (its keys/values kept); the clauses run together after it, right-padded
        (causal attention: a clause never sees the padding after it). A clause whose tokens do not start with the
        head's (a tokenizer merging across the boundary) runs whole on its own.
        """
        from pmllm.hf_llm import make_cache, with_cache
        from pmllm.readout import level_logits

        if not clauses:
            return []
        device = next(self.llm.parameters()).device
        head_ids, head_kv = self._head_state()
        n_head = len(head_ids)
        full = [self.tokenizer(self._head + C.POLARITY_TEMPLATE.format(c.replace('"', "'")),
                               add_special_tokens=False)["input_ids"] for c in clauses]  # fmt: skip
        decoder = self.llm.get_decoder()
        last: dict[int, torch.Tensor] = {}
        tails = {i: ids[n_head:] for i, ids in enumerate(full) if ids[:n_head] == head_ids and len(ids) > n_head}
        order = list(tails)
        for start in range(0, len(order), POLARITY_BATCH):  # each row holds its own copy of the head's keys/values
            rows = order[start : start + POLARITY_BATCH]
            length = max(len(tails[i]) for i in rows)
            ids = torch.tensor([tails[i] + [tails[i][-1]] * (length - len(tails[i])) for i in rows], device=device)
            pos = torch.arange(n_head, n_head + length, device=device).unsqueeze(0).expand(len(rows), -1)
            cache = make_cache(head_kv, len(rows))
            hidden = decoder(input_ids=ids, position_ids=pos, use_cache=True, **with_cache(decoder, cache))
            for r, i in enumerate(rows):
                last[i] = hidden.last_hidden_state[r, len(tails[i]) - 1]
        for i, ids in enumerate(full):
            if i not in last:
                last[i] = decoder(input_ids=torch.tensor([ids], device=device)).last_hidden_state[0, -1]
        logits = level_logits(self.llm, torch.stack([last[i] for i in range(len(clauses))]), self.word_ids).float()
        return (logits[:, 0] - logits[:, 1]).tolist()

    def read(self, text: str | None) -> TasteReading:
        key = text or ""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        parts = split_clauses(key)
        why = {c: unreadable(c) for c in parts}  # each distinct clause judged once
        skipped = [(c, why[c]) for c in parts if why[c]]
        clauses = [c for c in parts if not why[c]]
        assign = torch.zeros(0, len(C.TASTE_CONCEPTS))
        pol: list[float] = []
        if clauses:
            unique = list(dict.fromkeys(clauses))  # a repeated clause is read once
            sim, own = self.similarity(unique)  # (clauses, concepts) cosines
            far = {c for c, s in zip(unique, own.max(-1).values.tolist()) if s < C.MIN_CONCEPT_COSINE}
            skipped += [(c, "not about anything I can find in a photo") for c in clauses if c in far]
            keep = [i for i, c in enumerate(unique) if c not in far]
            unique, sim = [unique[i] for i in keep], sim[keep]
            clauses = [c for c in clauses if c not in far]
            pol_u = dict(zip(unique, self.polarity([polarity_text(c) for c in unique])))
            assign_u = torch.softmax(sim / C.CONCEPT_TEMPERATURE, dim=-1)
            row = {c: i for i, c in enumerate(unique)}
            pol = [pol_u[c] for c in clauses]
            assign = assign_u[[row[c] for c in clauses]] if clauses else assign
        reading = self.recode(TasteReading(clauses, pol, [], [], assign, torch.zeros(len(C.TASTE_CONCEPTS)),
                                           skipped))  # fmt: skip
        self._cache[key] = reading
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return reading

    def recode(self, reading: TasteReading) -> TasteReading:
        """Weights, top concepts and code of ``reading`` under this reader's polarity centre/scale (a clause a rule
        decides, :func:`rule`: that rule's weight)."""
        w = torch.tanh((torch.tensor(reading.polarity, dtype=torch.float32) - self.centre) / self.scale)
        w = torch.tensor([f if f is not None else v for f, v in zip(reading.fixed, w.tolist())], dtype=torch.float32)
        reading.weight = w.tolist()
        reading.concept = [C.TASTE_CONCEPTS[i] for i in reading.assign.argmax(-1).tolist()]
        if len(w):  # per concept, the strongest clause's signed weight: repeating a sentence does not amplify it
            contrib = w[:, None] * reading.assign
            reading.code = contrib.gather(0, contrib.abs().argmax(0, keepdim=True))[0]
        else:
            reading.code = torch.zeros(len(C.TASTE_CONCEPTS))
        return reading

    def set_polarity(self, centre: float, scale: float) -> None:
        """Change the polarity standardisation (cached readings are re-coded, not re-read)."""
        if scale <= 0:
            raise ValueError(f"polarity scale must be > 0, got {scale}")
        self.centre, self.scale = float(centre), float(scale)
        for reading in self._cache.values():
            self.recode(reading)

    def code(self, text: str | None) -> torch.Tensor:
        """``(1, len(TASTE_CONCEPTS))`` taste code of ``text`` (zeros for no text)."""
        return self.read(text).code[None]
