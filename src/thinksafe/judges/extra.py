"""Registration hook for the judges that live in their own modules.

Importing a module registers its judges with the factory registry:

* :mod:`.rubrics`: ``llm`` (now also ``llm:trace``, ``llm:policy[@N]``);
* :mod:`.guard`: ``guard[:chat|prompt][+noimage]``;
* :mod:`.ensemble`: ``ensemble:JUDGE1,JUDGE2,...``.
"""

from __future__ import annotations


def register_all() -> None:
    """Register the extra judges (idempotent: re-registering replaces the same factory)."""
    from . import ensemble, guard, rubrics  # noqa: F401 - imported for their @register_judge side effect
