"""The self-contained HTML page of the error-analysis report (inline CSS, images as base64 PNG, no script)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["case_card", "escape_text", "metrics_table", "page", "png_img"]

_CSS = """
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 28px; }
.note { color: #555; font-size: 13px; }
table.metrics { border-collapse: collapse; margin: 8px 0; } table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 4px 10px; font-size: 14px; }
table.metrics th { background: #f2f2f2; text-align: left; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; } .figures figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
.cases { display: flex; flex-direction: column; gap: 12px; }
.case { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; }
.case.wrong { border-left: 6px solid #c0392b; } .case.right { border-left: 6px solid #27ae60; }
.case h3 { font-size: 15px; margin: 2px 0 6px 0; font-family: "DejaVu Sans Mono", monospace; }
.case .facts { font-size: 13px; margin-bottom: 6px; } .case .pictures { display: flex; gap: 8px; align-items: flex-start; flex-wrap: wrap; }
.case img { max-height: 260px; border: 1px solid #eee; } .missing { font-size: 12px; color: #a00; }
"""


def escape_text(text: str) -> str:
    """Plain text made safe inside HTML."""
    return escape(str(text))


def png_img(data: bytes | None, alt: str, css_class: str = "") -> str:
    """An ``<img>`` holding PNG bytes as a data URI (or a short note when there is no picture)."""
    if not data:
        return f'<span class="missing">{escape(alt)}: not available</span>'
    encoded = base64.b64encode(data).decode("ascii")
    cls = f' class="{escape(css_class)}"' if css_class else ""
    return f'<img{cls} alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'


def metrics_table(values: Mapping[str, str]) -> str:
    """A one-row table: names as headers, formatted values below."""
    head = "".join(f"<th>{escape(k)}</th>" for k in values)
    body = "".join(f"<td>{escape(v)}</td>" for v in values.values())
    return f'<table class="metrics"><tr>{head}</tr><tr>{body}</tr></table>'


def case_card(case_id: str, facts: str, correct: bool, pictures: Sequence[str]) -> str:
    """One case: its datalist id, label / prediction / probability, and its pictures."""
    return (f'<div class="case {"right" if correct else "wrong"}" data-case-id="{escape(case_id)}">'
            f'<h3 class="case-id">{escape(case_id)}</h3><div class="facts">{escape(facts)}</div>'
            f'<div class="pictures">{"".join(pictures)}</div></div>')


def page(title: str, sections: Sequence[tuple[str, str, str]], intro: str = "") -> str:
    """The whole document.

    Args:
        title: page title.
        sections: ``(html id, heading, inner html)`` in order.
        intro: a paragraph of plain text under the title.
    """
    body = "".join(f'<section id="{escape(sid)}"><h2>{escape(heading)}</h2>{inner}</section>' for sid, heading, inner in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{_CSS}</style></head><body><h1>{escape(title)}</h1><p class="note">{escape(intro)}</p>{body}'
            "</body></html>\n")
