"""The launcher behind ``procman.run`` and ``procman run``, one concept per module."""
