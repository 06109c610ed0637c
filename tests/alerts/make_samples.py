"""Render the alert samples in docs/ from one realistic alert.

- ``docs/alert-sample-email.html``: the HTML part of the e-mail, as sent;
- ``docs/alert-sample-discord.json``: the Discord webhook payload, as sent;
- ``docs/alert-sample-discord.png``: a picture of that payload drawn roughly the way Discord
  shows it (dark theme, colour bar, title, description, fields), by headless Chromium.

Run with ``python -m tests.alerts.make_samples`` (Chromium from ``/usr/bin/chromium`` or
``$CHROMIUM``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wsgimon.alerts.discord import build_discord_payload
from wsgimon.alerts.email import render_parts
from wsgimon.alerts.model import Alert

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOW = datetime(2025, 6, 3, 14, 12, tzinfo=timezone.utc).timestamp()
WIDTH = 720


def sample_alert() -> Alert:
    """The first message of an incident: a ValueError in GET /checkout, 37 occurrences, and its error rate."""
    return Alert(
        key="incident|12",
        rule="exception",
        severity="critical",
        state="firing",
        title="Incident #12: ValueError in GET /checkout (and 1 more)",
        summary="2 problem(s) firing since 2025-06-03 13:57:00 UTC.",
        kind="firing",
        incident=12,
        thread="incident-12-1748959020",
        thread_title="Incident #12: ValueError in GET /checkout",
        items=(
            "\N{LARGE RED CIRCLE} firing · ValueError in GET /checkout: ValueError: invalid literal for int() with "
            "base <num>: <str>. Seen 37 time(s) in all, on 1 endpoint(s); it breaks in shop.forms in parse_quantity.",
            "\N{LARGE RED CIRCLE} firing · Error rate of GET /checkout above 5.0%: 37 of 597 requests failed (6.2%) "
            "in the last 5 min.",
        ),
        opened_at=NOW - 900,
        endpoint="/checkout",
        method="GET",
        error_type="ValueError",
        message="invalid literal for int() with base 10: 'two'",
        traceback=(
            "Traceback (most recent call last):\n"
            '  File "/srv/shop/.venv/lib/python3.12/site-packages/flask/app.py", line 1511, in wsgi_app\n'
            "    response = self.full_dispatch_request()\n"
            '  File "/srv/shop/.venv/lib/python3.12/site-packages/flask/app.py", line 919, in full_dispatch_request\n'
            "    rv = self.dispatch_request()\n"
            '  File "/srv/shop/shop/views.py", line 88, in checkout\n'
            "    quantity = parse_quantity(request.args['quantity'])\n"
            '  File "/srv/shop/shop/forms.py", line 21, in parse_quantity\n'
            "    return int(value)\n"
            "ValueError: invalid literal for int() with base 10: 'two'\n"
        ),
        count=37,
        first_seen=NOW - 900,
        last_seen=NOW - 40,
        fields=(("Error rate", "6.2 % of 597 requests"), ("Release", "2025.06.03-2")),
        dashboard_url="https://shop.example.com/monitoring/",
    )


def _relative(epoch: int) -> str:
    seconds = NOW - epoch
    if seconds < 45:
        return "a few seconds ago"
    minutes = round(seconds / 60)
    if minutes < 60:
        return "a minute ago" if minutes == 1 else f"{minutes} minutes ago"
    hours = round(minutes / 60)
    return "an hour ago" if hours == 1 else f"{hours} hours ago"


_INLINE = re.compile(r"`([^`]+)`|<t:(\d+):R>|\*\*(.+?)\*\*|\\([^\w\s])")
_CIRCLES = {"\N{LARGE RED CIRCLE}": "#e74c3c", "\N{LARGE ORANGE CIRCLE}": "#e67e22", "\N{LARGE BLUE CIRCLE}": "#3498db"}


def _inline(text: str) -> str:
    """The little of Discord's markdown our payloads use: inline code, timestamps, bold, escapes."""
    out: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        out.append(_plain(text[position : match.start()]))
        code, stamp, bold, escaped = match.groups()
        if code is not None:
            out.append(f'<code class="inline">{html.escape(code)}</code>')
        elif stamp is not None:
            out.append(f'<span class="stamp">{_relative(int(stamp))}</span>')
        elif bold is not None:
            out.append(f"<strong>{_inline(bold)}</strong>")
        else:
            out.append(html.escape(escaped))
        position = match.end()
    out.append(_plain(text[position:]))
    return "".join(out)


def _plain(text: str) -> str:
    escaped = html.escape(text).replace("\n", "<br>")
    for emoji, colour in _CIRCLES.items():  # no colour emoji font on a server: draw the circle
        escaped = escaped.replace(emoji, f'<span class="dot" style="background:{colour}"></span>')
    return escaped


def _markdown(text: str) -> str:
    """Code blocks, then inline markup between them."""
    parts: list[str] = []
    position = 0
    for match in re.finditer(r"```(\w*)\n(.*?)\n```", text, re.S):
        parts.append(_inline(text[position : match.start()].strip("\n")))
        parts.append(f"<pre>{html.escape(match.group(2))}</pre>")
        position = match.end()
    parts.append(_inline(text[position:].strip("\n")))
    return "".join(part for part in parts if part)


def discord_preview(payload: dict[str, Any]) -> str:
    """A self-contained page drawing ``payload`` in Discord's dark theme."""
    (embed,) = payload["embeds"]
    colour = f"#{embed['color']:06x}"
    title = _inline(embed["title"])
    if embed.get("url"):
        title = f'<a href="{html.escape(embed["url"])}">{title}</a>'
    fields = []
    for item in embed.get("fields", []):
        width = "inline" if item.get("inline") else "wide"
        fields.append(
            f'<div class="field {width}"><div class="name">{_inline(item["name"])}</div>'
            f'<div class="value">{_inline(item["value"])}</div></div>'
        )
    when = datetime.fromisoformat(embed["timestamp"].replace("Z", "+00:00")).strftime("%H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>wsgimon alert in Discord</title>
<style>
  html, body {{ margin: 0; background: #313338; }}
  body {{ width: {WIDTH}px; font: 15px/1.375 "Noto Sans", "Helvetica Neue", Helvetica, Arial, sans-serif;
          color: #dbdee1; }}
  .message {{ display: flex; gap: 16px; padding: 18px 20px 22px 16px; }}
  .avatar {{ flex: none; width: 40px; height: 40px; border-radius: 50%; background: #5865f2; color: #fff;
             font-weight: 700; font-size: 18px; display: flex; align-items: center; justify-content: center; }}
  .head {{ display: flex; align-items: baseline; gap: 6px; }}
  .user {{ color: #f2f3f5; font-weight: 600; }}
  .badge {{ background: #5865f2; color: #fff; font-size: 10px; font-weight: 700; padding: 1px 4px;
            border-radius: 3px; position: relative; top: -1px; }}
  .time {{ color: #949ba4; font-size: 12px; }}
  .dot {{ display: inline-block; width: 14px; height: 14px; border-radius: 50%; vertical-align: -2px; }}
  .embed {{ margin-top: 6px; max-width: 560px; background: #2b2d31; border-left: 4px solid {colour};
            border-radius: 4px; padding: 10px 16px 14px 12px; }}
  .title {{ font-weight: 600; font-size: 16px; margin: 4px 0 8px; color: #f2f3f5; }}
  .title a {{ color: #00a8fc; text-decoration: none; }}
  .description {{ font-size: 14px; }}
  pre {{ margin: 6px 0; padding: 7px 9px; background: #1e1f22; border: 1px solid #1e1f22; border-radius: 4px;
         font: 12.5px/1.35 "DejaVu Sans Mono", Consolas, monospace; color: #dbdee1; white-space: pre-wrap;
         overflow-wrap: anywhere; }}
  code.inline {{ font: 12.5px "DejaVu Sans Mono", Consolas, monospace; background: #1e1f22; padding: 1px 3px;
                 border-radius: 3px; }}
  strong {{ color: #f2f3f5; }}
  .fields {{ display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px 12px; margin-top: 10px; }}
  .field.wide {{ grid-column: 1 / -1; }}
  .field .name {{ font-weight: 600; font-size: 14px; color: #f2f3f5; margin-bottom: 1px; }}
  .field .value {{ font-size: 14px; }}
  .stamp {{ background: #3f4147; border-radius: 3px; padding: 0 2px; }}
  .footer {{ margin-top: 10px; font-size: 12px; color: #b5bac1; }}
</style></head>
<body><div class="message">
  <div class="avatar">W</div>
  <div class="body">
    <div class="head"><span class="user">wsgimon</span><span class="badge">APP</span>
      <span class="time">Today at {when}</span></div>
    <div class="content">{_inline(payload.get("content", ""))}</div>
    <div class="embed">
      <div class="title">{title}</div>
      <div class="description">{_markdown(embed.get("description", ""))}</div>
      <div class="fields">{"".join(fields)}</div>
      <div class="footer">{html.escape(embed["footer"]["text"])} &bull; Today at {when}</div>
    </div>
  </div>
</div>
<script>document.body.dataset.height = Math.ceil(document.documentElement.getBoundingClientRect().height);</script>
</body></html>
"""


def _chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        sys.exit("make_samples: Chromium not found (install Debian's chromium or set CHROMIUM)")
    return found


def screenshot(page: str, target: Path) -> None:
    """Load ``page`` once to measure its height, then screenshot it at exactly that size."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "preview.html"
        source.write_text(page, encoding="utf-8")
        common = [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={scratch}/profile",
            "--force-device-scale-factor=1",
        ]
        dom = subprocess.run(
            [*common, f"--window-size={WIDTH},800", "--dump-dom", source.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        measured = re.search(r'data-height="(\d+)"', dom)
        height = int(measured.group(1)) if measured else 900
        subprocess.run(
            [*common, f"--window-size={WIDTH},{height}", f"--screenshot={target}", source.as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )


def main() -> None:
    alert = sample_alert()
    payload = build_discord_payload(alert)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "alert-sample-email.html").write_text(render_parts(alert)[1], encoding="utf-8")
    (DOCS / "alert-sample-discord.json").write_text(
        json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    screenshot(discord_preview(payload), DOCS / "alert-sample-discord.png")
    for name in ("alert-sample-email.html", "alert-sample-discord.json", "alert-sample-discord.png"):
        print(f"wrote docs/{name}")


if __name__ == "__main__":
    main()
