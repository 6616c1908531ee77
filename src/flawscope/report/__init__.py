"""HTML evaluation report and its figures.

- :func:`write_report` writes one self-contained HTML file (inline CSS, base64 PNG figures) from
  a :class:`ReportData`; :func:`render_report` returns the same HTML as a string.
- :func:`overlay` blends a heat colour map of an anomaly map over an image; ``flawscope inspect``
  uses it for overlay PNGs too.
"""

from flawscope.report.figures import overlay
from flawscope.report.html import Panel, ReportData, render_report, write_report

__all__ = ["Panel", "ReportData", "overlay", "render_report", "write_report"]
