"""The ``trackd`` command: reads the settings, wires storage, server and gateway together.

What lives here: the one typed settings object read from flags and the environment
(:mod:`cli.settings`) and the commands (:mod:`cli.main`: ``serve``, ``keys``).

May import: every other package (it is the composition root); nothing imports it.
"""
