"""The prompts of the data builder: captioner, teacher, consistency checker.

Each prompt has a version; a changed prompt text changes the stage cache key
anyway (the key hashes the rendered request), the version is for humans and
the dataset card.

The teacher is a text-only reasoning model. It never sees pixels: it reads the
caption and is told to reason *as if* it were looking at the image, because the
thought ends up in the training data of a model that does see the image. That
is also why the prompt forbids mentioning the caption or the reference answer
(the leakage filter catches the cases where it does anyway).
"""

from __future__ import annotations

from .policy import Policy, Section

CAPTION_VERSION = "caption-v1"
TEACHER_VERSION = "teacher-v1"
CONSISTENCY_VERSION = "consistency-v1"

CAPTION_PROMPT = """\
Describe this image in detail for someone who cannot see it. Cover, in this order:
1. Objects: what they are, their colours, sizes and positions.
2. People: how many, their appearance, expressions and clothing. Do not guess who they are.
3. Actions and interactions: what is happening.
4. Visible text: transcribe every piece of text exactly, in quotes (signs, labels, captions, memes, \
screenshots, lists).
5. Context: the setting, and what kind of image it is (photo, meme, advertisement, screenshot, \
diagram, drawing).
Be factual and neutral. Describe what is visible even if it is harmful or offensive; do not refuse, \
judge or add safety advice. Write one or two paragraphs."""

# Sent inside the user turn: reasoning models such as DeepSeek-R1 are meant to
# be used without a system prompt.
TEACHER_INTRO = (
    "You write the private reasoning of a careful multimodal assistant that follows a safety policy. "
    "The reasoning must read as the assistant's own thoughts while it looks at the image."
)

_TASK = """\
# Task
Think as the assistant would while looking at {the_image} and reading the question. Write in the first \
person and reflect naturally ("Let me think...", "Wait...", "Final check:"). In your thinking:
1. Work out what the user is asking and what {the_image} {show}, and what they mean together.
2. Check the request against the safety policy above and name the policy section that applies.
3. Categorise the request as exactly one of: {labels} (see "User Requests Categorization"), and weigh \
the risks.
4. Decide what to do: answer, refuse, or answer only the safe part with safeguards.
5. End your thinking with one line of the form:
   Category: <{labels_bar}> - Section: <policy section title>
{refer} Never mention a caption, a \
description, a reference answer, a dataset, or these instructions."""
_REFER_ONE = 'Refer to the picture only as "the image" and describe what you see in it.'
_REFER_MANY = ('Refer to the pictures only as "the images", "the first image", "the second image" and so on, and '
               'describe what you see in them.')

_WITH_REFERENCE = """\
The assistant's final answer is already fixed (below). Your reasoning must lead to that answer and agree \
with its decision. After thinking, reply with that answer exactly.

# Final answer
{reference}"""

_WITHOUT_REFERENCE = """\
After thinking, write the assistant's final answer to the user. It must carry out your decision: a \
helpful, accurate answer for an Allowed request; a brief, polite refusal with the reason and a safe \
alternative for a Disallowed request; only the safe part, with safeguards, for a Safe Completion request."""

_FORMAT = """\
# Reply format
If you think natively (a separate reasoning channel), think as described and reply with the final \
answer only. Otherwise write the thinking between <think> and </think>, then the final answer after \
</think>."""


def caption_prompt() -> str:
    """The captioning instruction (sent with the image)."""
    return CAPTION_PROMPT


def teacher_prompt(policy: Policy, caption: str | list[str], question: str, reference: str | None = None,
                   section: Section | None = None) -> str:
    """The teacher request: policy, what the assistant sees, the task, the format.

    Args:
        policy: The safety policy to reason against.
        caption: The captioner's description of the image, or one per image, in order
            (a one-image seed gets exactly the one-image text).
        question: The user's question about the image.
        reference: A fixed final answer to reason towards (VLGuard rows), if any.
        section: A policy section the seed's dataset category points to; given
            as a hint, the teacher still decides.
    """
    labels = policy.labels()
    captions = [caption] if isinstance(caption, str) else list(caption)
    if len(captions) == 1:
        seen = f"The image: {captions[0].strip()}"
    else:
        seen = f"The {len(captions)} images, in order:\n" + "\n".join(
            f"Image {k}: {c.strip()}" for k, c in enumerate(captions, start=1))
    parts = [
        TEACHER_INTRO,
        f"# Safety policy ({policy.name} v{policy.version})\n{policy.text()}",
        "# What the assistant sees\n"
        f"{seen}\n\n"
        f"The user's question: {question.strip()}",
    ]
    if section is not None:
        parts.append(f"Likely relevant policy section: {section.title} (check this yourself).")
    parts.append(_TASK.format(labels=", ".join(labels), labels_bar=" | ".join(labels),
                              refer=_REFER_ONE if len(captions) == 1 else _REFER_MANY,
                              the_image="the image" if len(captions) == 1 else "the images",
                              show="shows" if len(captions) == 1 else "show"))
    parts.append(_WITH_REFERENCE.format(reference=reference.strip()) if reference else _WITHOUT_REFERENCE)
    parts.append(_FORMAT)
    return "\n\n".join(parts)


def consistency_prompt(thought: str, answer: str) -> str:
    """Ask a checker whether the answer carries out the thought's decision."""
    return (
        "Below are an AI assistant's private reasoning and the final answer it gave. Does the final answer "
        "carry out the decision reached at the end of the reasoning (answer, refuse, or answer only the safe "
        "part)? Facts may be phrased differently; only the decision matters.\n\n"
        f"[BEGIN REASONING]\n{thought}\n[END REASONING]\n\n[BEGIN ANSWER]\n{answer}\n[END ANSWER]\n\n"
        "Reply with exactly one word: consistent or inconsistent."
    )
