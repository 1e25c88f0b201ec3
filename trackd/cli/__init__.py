"""The ``trackd`` command: reads the settings, wires storage, server and gateway together.

What lives here: the one typed settings object read from flags and the environment
(:mod:`trackd.cli.settings`); the command line, parsed and dispatched (:mod:`trackd.cli.main`); the
server's composition root, ``trackd serve`` (:mod:`trackd.cli.serve`, and
:mod:`trackd.cli.supervisor` for
``--workers N``); the admin commands ``keys`` and ``websites`` (:mod:`trackd.cli.admin`); the
database both use (:mod:`trackd.cli.database`); how settings and failures are named to the user
(:mod:`trackd.cli.usage`); logging (:mod:`trackd.cli.logs`) and the data dir's serve lock
(:mod:`trackd.cli.instance`).

May import: every other package (it is the composition root); nothing imports it.
"""
