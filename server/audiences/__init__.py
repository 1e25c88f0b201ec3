"""Audiences: targeting a project's users by what they did and who they are.

What lives here: what rules mean (:mod:`server.audiences.rules`), their parsing from
proto with every invalid rule named by path (:mod:`server.audiences.parsing`), the
evaluation over a project's users (:mod:`server.audiences.evaluation`) and the in-memory
audience index that evaluation reads when it serves the project, kept exact by the
database's change feed (:mod:`server.audiences.index`; what it holds,
:mod:`server.audiences.index_contents`; how it knows it is current,
:mod:`server.audiences.catch_up`). The servicer is
:mod:`server.services.audiences`.

May import: :mod:`server.errors`, :mod:`server.validation`, :mod:`storage`,
:mod:`trackd_wire` and the generated ``trackd.v1`` code.
"""

from server.audiences.evaluation import Evaluator
from server.audiences.index import AudienceIndex
from server.audiences.index_contents import IndexView
from server.audiences.parsing import parse_audience

__all__ = ["AudienceIndex", "Evaluator", "IndexView", "parse_audience"]
