"""Control-chart PNGs for the service, drawn once per state of the results store.

Drawing a chart takes a few hundred milliseconds and the web page asks for it again and again,
so :class:`ChartCache` keeps the last PNG of each statistic with the key of the store's state it
was drawn from (e.g. number of results and newest id) and draws again only when that changes.
Matplotlib is not thread-safe, so drawing is serialised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from io import BytesIO

from flawscope.service.errors import ServiceError
from flawscope.spc import CHARTS, SPCResult

DPI = 100
"""Resolution of the PNG: the 10 x 4.4 inch figure becomes 1000 x 440 pixels."""


def chart_png(result: SPCResult, statistic: str) -> bytes:
    """One control chart of ``result`` as PNG bytes (1000 x 440 px).

    Raises:
        ServiceError: 422 ``statistic`` is not mean_score, fail_rate or nqi.
    """
    from flawscope.report.spc_report import TITLES, YLABELS, control_chart_figure

    check_statistic(statistic)
    chart = result.charts[statistic]
    fig = control_chart_figure(
        result.table.names,
        chart.values,
        chart.limits,
        chart.violations,
        TITLES.get(statistic, CHARTS[statistic]),
        YLABELS.get(statistic, CHARTS[statistic]),
        reference=result.reference_mask,
        side=chart.side,
        rules=result.rules,
    )
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def check_statistic(statistic: str) -> str:
    """``statistic`` when it is a charted one.

    Raises:
        ServiceError: 422 otherwise, naming the choices.
    """
    if statistic not in CHARTS:
        raise ServiceError(
            422, f"unknown statistic {statistic!r}", f"use one of {', '.join(CHARTS)}"
        )
    return statistic


class ChartCache:
    """The last chart PNG of each statistic, with the store state it shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pngs: dict[str, tuple[Hashable, bytes]] = {}

    def png(self, key: Hashable, statistic: str, analyse: Callable[[], SPCResult]) -> bytes:
        """The PNG of ``statistic`` for store state ``key``; ``analyse()`` runs on a miss.

        Raises:
            ServiceError: 422 unknown statistic; whatever ``analyse`` raises.
        """
        check_statistic(statistic)
        with self._lock:
            hit = self._pngs.get(statistic)
            if hit is not None and hit[0] == key:
                return hit[1]
            png = chart_png(analyse(), statistic)
            self._pngs[statistic] = (key, png)
            return png
