"""Profile -> prompt text and token ids: rendering, sanitising and the truncation policy.

A :class:`piaa.schema.Profile` (any subset of PARA/LAPIS fields and free text, possibly empty) becomes a block of
plain text placed inside the *user* turn of the LLM's chat template, between fixed wording from
:mod:`pmllm.constants`. Rendering is deterministic.

Sanitising (everything the user wrote, structured values included):

* Unicode control and format characters (C0/C1 controls, zero-width, bidi overrides...) are removed; tabs and
  newlines become spaces/newlines; runs of blank lines collapse.
* Any special token of the tokenizer (``<|im_start|>``, ``<|im_end|>``, ``</s>``...) and anything shaped like
  ``<|...|>`` is removed, so text cannot close the user turn or open a system/assistant turn. Prompt-injection
  wording ("ignore previous instructions...") therefore stays inside the user-content block as quoted data; the
  prefix says the block is the user's words, not instructions.

Truncation policy (limits in :mod:`pmllm.constants`): structured values are cut to ``MAX_FIELD_CHARS``; free text
is cut to ``MAX_TEXT_CHARS`` at a word boundary with a ``" [...]"`` mark (a 100k-character text is cheap: it is
cut to a bounded window before any regex runs); finally the rendered block is cut to ``MAX_PROFILE_TOKENS``
tokens, keeping the beginning - structured lines come first, so the free text is what gets cut.

Library module, no entry point.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

from piaa.schema import Profile
from pmllm import constants as C

_LABELS = {
    "age": "Age",
    "gender": "Gender",
    "education": "Education",
    "art_experience": "Experience with art",
    "photography_experience": "Experience with photography",
    "nationality": "Nationality",
    "colorblind": "Colour blind",
}
_BIG5 = (("big5_O", "openness"), ("big5_C", "conscientiousness"), ("big5_E", "extraversion"),
         ("big5_A", "agreeableness"), ("big5_N", "neuroticism"))  # fmt: skip
_SPECIAL_SHAPE = re.compile(r"<\|[^<>|]{0,64}\|>")
_PROFILE_MARK = "\x1epmllm-profile\x1e"  # sentinels: control characters cannot survive sanitising
_SUFFIX_MARK = "\x1epmllm-suffix\x1e"


def sanitize(text: object, max_chars: int, special_tokens: tuple[str, ...] = ()) -> str:
    """Clean user-supplied text: no control/format characters, no special tokens, bounded length."""
    s = str(text)[: max_chars * 4 + 64]  # bounded work on huge inputs; the exact cut happens below
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    s = "".join(ch for ch in s if ch == "\n" or unicodedata.category(ch)[0] != "C")
    for tok in special_tokens:
        if tok:
            s = s.replace(tok, " ")
    s = _SPECIAL_SHAPE.sub(" ", s)
    s = re.sub(r"[ \u00a0]{2,}", " ", s)
    s = re.sub(r"\n\s*\n\s*\n+", "\n\n", s).strip()
    if len(s) > max_chars:
        cut = s[:max_chars]
        space = cut.rfind(" ")
        s = (cut[:space] if space > max_chars // 2 else cut).rstrip() + C.TRUNCATION_MARK
    return s


def _num(x: float) -> str:
    return f"{x:g}"


def render_profile(profile: Profile, special_tokens: tuple[str, ...] = ()) -> str:
    """The profile as plain text lines (structured fields first, then free text); a fixed sentence if empty."""

    def clean(v: object) -> str:
        return sanitize(v, C.MAX_FIELD_CHARS, special_tokens)

    lines = []
    for key, label in _LABELS.items():
        v = getattr(profile, key)
        if v is not None and not (isinstance(v, float) and math.isnan(v)) and clean(v):
            lines.append(f"{label}: {clean(v)}")
    big5 = [(name, getattr(profile, key)) for key, name in _BIG5]
    big5 = [(n, v) for n, v in big5 if v is not None and math.isfinite(float(v))]
    if big5:
        lines.append("Personality (Big Five): " + ", ".join(f"{n} {_num(float(v))}" for n, v in big5))
    if profile.vaiak:
        lines.append("Interest in and knowledge of visual art (VAIAK items): " + ", ".join(map(_num, profile.vaiak)))
    if profile.vaiak2:
        lines.append("Art knowledge (2VAIAK items): " + ", ".join(map(_num, profile.vaiak2)))
    for k, v in sorted(profile.extra.items()):
        if clean(k) and clean(v):
            lines.append(f"{clean(k)}: {clean(v)}")
    text = sanitize(profile.text, C.MAX_TEXT_CHARS, special_tokens) if profile.text else ""
    if text:
        lines.append(f"In my own words: {text}")
    return "\n".join(lines) if lines else C.EMPTY_PROFILE


@dataclass
class PromptIds:
    """Token ids of one user's prompt: ``prefix`` (cached per user) and ``suffix`` (per photo).

    For the fused model the suffix is only the assistant's first words (``ANSWER_PREFIX``, 2 tokens): the photo
    enters there by cross-attention, so everything before it is shared by all photos and cached.

    ``span = (start, end)``: the profile tokens inside ``prefix`` (pooled into the profile representation).
    """

    prefix: list[int]
    span: tuple[int, int]
    suffix: list[int]
    profile_text: str
    truncated: bool


def _template_parts(tokenizer) -> tuple[str, str, str]:
    """(head, middle, tail) strings of the chat-templated prompt around the profile block and the image slot."""
    user = f"{C.PROFILE_INTRO}\n{_PROFILE_MARK}\n\n{C.QUESTION}\n{_SUFFIX_MARK}"
    messages = [{"role": "system", "content": C.SYSTEM_PROMPT}, {"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:  # a plain LM without a chat template: a readable fallback with the same structure
        rendered = f"System: {C.SYSTEM_PROMPT}\n\nUser: {user}\n\nAssistant: "
    head, rest = rendered.split(_PROFILE_MARK)
    middle, tail = rest.split(_SUFFIX_MARK)
    return head, middle, tail


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def build_prompt(tokenizer, profile: Profile, image_text: str | None = None) -> PromptIds:
    """Render and tokenize ``profile``; ``image_text`` optionally describes the photo in words (prompt-only)."""
    special = tuple(getattr(tokenizer, "all_special_tokens", ()) or ())
    text = render_profile(profile, special)
    head, middle, tail = _template_parts(tokenizer)
    head_ids, prof_ids = _encode(tokenizer, head), _encode(tokenizer, text)
    truncated = len(prof_ids) > C.MAX_PROFILE_TOKENS
    if truncated:
        prof_ids = prof_ids[: C.MAX_PROFILE_TOKENS - 4] + _encode(tokenizer, C.TRUNCATION_MARK)
    if image_text is None:  # fused model: the photo enters by cross-attention at the answer tokens
        prefix = head_ids + prof_ids + _encode(tokenizer, middle + C.IMAGE_SLOT + tail)
        suffix = _encode(tokenizer, C.ANSWER_PREFIX)
    else:  # prompt-only baseline: the photo is described in words, per photo
        prefix = head_ids + prof_ids + _encode(tokenizer, middle)
        slot = f"{C.IMAGE_SLOT} (it shows: {sanitize(image_text, 300)})"
        suffix = _encode(tokenizer, slot + tail + C.ANSWER_PREFIX)
    return PromptIds(prefix, (len(head_ids), len(head_ids) + len(prof_ids)), suffix, text, truncated)


def prompt_text(tokenizer, profile: Profile) -> str:
    """The full prompt as one string (for inspection and tests)."""
    p = build_prompt(tokenizer, profile)
    return tokenizer.decode(p.prefix + p.suffix)
