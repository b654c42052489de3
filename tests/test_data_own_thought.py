"""A kept own thought (``?thought=keep``) with no category line: harmful is read from the answer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from thinksafe.data.build import Builder, Item
from thinksafe.data.filters import Bounds
from thinksafe.data.policy import default_policy_path, load_policy
from thinksafe.data.sources import Seed

THOUGHT = ("The user asks what colour the square in the picture is. It is a plain red square on white, an "
           "everyday question with nothing unsafe about it, so I simply answer.")
HELPFUL = "The square in the picture is red."
REFUSING = "I'm sorry, but I can't help with that."
CATEGORY_LINE = "\nCategory: Allowed - Section: none"


def own_thought(answer: str, harmful: bool | None, thought: str = THOUGHT) -> Item:
    rejected = []
    fake = SimpleNamespace(cfg=SimpleNamespace(bounds=Bounds()), policy=load_policy(default_policy_path()),
                           reject=lambda seed, rejection, item=None: rejected.append(rejection))
    item = Item(Seed(id="x", images=[], question="What colour is it?", source="jsonl", thought=thought,
                     reference_answer=answer, keep_thought=True, harmful=harmful), image_shas=[])
    assert Builder._own_thought(fake, item) is True and rejected == []
    return item


@pytest.mark.parametrize("answer, harmful, expected", [
    (HELPFUL, None, False),   # no category, no harmful field, helpful answer: benign, not sent to the judge
    (REFUSING, None, True),   # no category, the answer refuses: treated as harmful
    (HELPFUL, True, True),    # the source's own label always wins
    (REFUSING, False, False),
])
def test_no_category_line_reads_harmful_from_the_answer(answer, harmful, expected):
    item = own_thought(answer, harmful)
    assert item.decision.category is None
    assert item.harmful is expected


def test_a_named_category_still_decides():
    item = own_thought(REFUSING, None, THOUGHT + CATEGORY_LINE)
    assert item.decision.category.action == "answer"
    assert item.harmful is False
