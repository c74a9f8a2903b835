"""An identity-keyed store of forward quantities, shared by one forward and backward.

Backpropagation through the unrolled descent (:mod:`skam._graph.backprop`)
re-evaluates, at every recorded state, what the forward step already computed
there: the layer norm of the tokens, the queries, keys and attention weights,
the memory's hidden units. When a training minibatch builds its graph with a
:class:`ForwardMemo`, the forward pass keeps those arrays and the backward
pass finds them again by the *identity* of the array they were computed from
(the tape holds the very state arrays of the forward pass). Inference builds
its graphs without one, so nothing is kept there.
"""


class ForwardMemo:
    """Values computed from an array, found again by that array's identity."""

    def __init__(self):
        self._items = []

    def get(self, source, tag, compute):
        """``compute()``, or what it returned before for ``source`` and ``tag``.

        ``source`` stays referenced by the memo, so its ``id`` is never reused
        while the memo lives.
        """
        for key, key_tag, value in self._items:
            if key is source and key_tag == tag:
                return value
        value = compute()
        self._items.append((source, tag, value))
        return value


def memoised(memo, source, tag, compute):
    """``compute()`` through ``memo`` when there is one."""
    if memo is None:
        return compute()
    return memo.get(source, tag, compute)
