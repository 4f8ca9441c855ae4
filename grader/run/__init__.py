"""``lab3 grade``: the batch, the sandbox, the warm worker process (parent side and sandbox side)."""
