"""Audiences: targeting a project's users by what they did and who they are.

What lives here: what rules mean (:mod:`trackd.server.audiences.rules`), their parsing from
proto with every invalid rule named by path (:mod:`trackd.server.audiences.parsing`), the
evaluation over a project's users (:mod:`trackd.server.audiences.evaluation`) and the in-memory
audience index that evaluation reads when it serves the project, kept exact by the
database's change feed (:mod:`trackd.server.audiences.index`; what it holds,
:mod:`trackd.server.audiences.index_contents`; how it knows it is current,
:mod:`trackd.server.audiences.catch_up`). The servicer is
:mod:`trackd.server.services.audiences`.

May import: :mod:`trackd.server.errors`, :mod:`trackd.server.validation`, :mod:`trackd.storage`,
:mod:`trackd.wire` and the generated ``trackd.v1`` code.
"""

from trackd.server.audiences.evaluation import Evaluator
from trackd.server.audiences.index import AudienceIndex
from trackd.server.audiences.index_contents import IndexView
from trackd.server.audiences.parsing import parse_audience

__all__ = ["AudienceIndex", "Evaluator", "IndexView", "parse_audience"]
