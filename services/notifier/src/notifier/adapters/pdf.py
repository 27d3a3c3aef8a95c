"""A reminder letter as PDF (reportlab): letterhead in the tenant's colour, the address in the window
position of a DIN 5008 envelope, date, subject, the rendered body (invoice table rows in monospace)."""

from __future__ import annotations

import io
from datetime import date
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Frame, Paragraph, Preformatted, Spacer

from notifier.domain.messages import OutboundMessage

_BODY = ParagraphStyle("body", fontName="Helvetica", fontSize=10.5, leading=14, spaceAfter=6)
_SUBJECT = ParagraphStyle("subject", fontName="Helvetica-Bold", fontSize=12, leading=16, spaceAfter=10)
_TABLE = ParagraphStyle("table", fontName="Courier", fontSize=9.5, leading=12)


def _colour(value: str | None) -> colors.Color:
    try:
        return colors.HexColor(value or "#1F4E79")
    except (ValueError, TypeError):
        return colors.HexColor("#1F4E79")


def render_letter_pdf(message: OutboundMessage, today: date, primary_color: str | None = None) -> bytes:
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=A4, invariant=True)  # invariant: same input, same bytes
    canvas.setTitle(message.subject)
    canvas.setAuthor(message.sender.company_name)
    width, height = A4
    canvas.setFillColor(_colour(primary_color))
    canvas.rect(0, height - 18 * mm, width, 18 * mm, stroke=0, fill=1)
    canvas.setFillColor(colors.white)
    canvas.setFont("Helvetica-Bold", 14)
    canvas.drawString(20 * mm, height - 12 * mm, message.sender.company_name[:80])
    canvas.setFillColor(colors.black)
    # Return address line above the window, then the recipient (DIN 5008 form B window: 45 mm from the top).
    canvas.setFont("Helvetica", 7)
    canvas.drawString(
        20 * mm, height - 42 * mm, " · ".join([message.sender.company_name, *message.sender.return_address])[:120]
    )
    canvas.setFont("Helvetica", 10.5)
    y = height - 50 * mm
    for line in message.postal_address.as_lines() if message.postal_address else [message.recipient_name or ""]:
        canvas.drawString(20 * mm, y, line[:70])
        y -= 5 * mm
    canvas.drawRightString(width - 20 * mm, height - 90 * mm, today.isoformat())
    story = [Paragraph(escape(message.subject), _SUBJECT)]
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            story.append(Paragraph(escape(" ".join(paragraph)), _BODY))
            paragraph.clear()

    for line in message.text.splitlines():
        if line.startswith("  "):  # invoice table rows keep their columns
            flush()
            story.append(Preformatted(line, _TABLE))
        elif not line.strip():
            flush()
            story.append(Spacer(1, 4))
        else:
            paragraph.append(line.strip())
    flush()
    frame = Frame(20 * mm, 25 * mm, width - 40 * mm, height - 125 * mm, showBoundary=0)
    frame.addFromList(story, canvas)  # consumes what fits
    for _page in range(20):  # long letters continue on further pages (bounded: a flowable may never fit)
        if not story:
            break
        canvas.showPage()
        frame = Frame(20 * mm, 25 * mm, width - 40 * mm, height - 45 * mm, showBoundary=0)
        frame.addFromList(story, canvas)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()
