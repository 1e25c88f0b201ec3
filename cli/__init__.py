"""The ``trackd`` command: reads the settings, wires storage, server and gateway together.

What lives here: the one typed settings object read from flags and the environment
(:mod:`cli.settings`); the command line, parsed and dispatched (:mod:`cli.main`); the
server's composition root, ``trackd serve`` (:mod:`cli.serve`, and :mod:`cli.supervisor` for
``--workers N``); the admin commands ``keys`` and ``websites`` (:mod:`cli.admin`); the
database both use (:mod:`cli.database`); how settings and failures are named to the user
(:mod:`cli.usage`); logging (:mod:`cli.logs`) and the data dir's serve lock
(:mod:`cli.instance`).

May import: every other package (it is the composition root); nothing imports it.
"""
