"""What every browser journey checks on each page it shows: axe-core finds no WCAG 2.1 A/AA
violation, nothing scrolls sideways, and a screenshot is kept for a person to look at."""

from __future__ import annotations

import json
from pathlib import Path

from tests.browser.conftest import ARTIFACTS

AXE = Path(__file__).with_name("vendor") / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORTS = {"phone": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 800}}


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the page as it is now (script injected from the vendored copy)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))", WCAG_TAGS)
    return result


def horizontal_overflow(page) -> int:
    """Pixels the page is wider than its viewport (0 when nothing scrolls sideways)."""
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")


def check_page(page, name: str) -> None:
    """Screenshot `name`, then fail on any axe-core violation or sideways scrolling."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    violations = axe_violations(page)
    assert not violations, f"{name}: axe-core violations\n{json.dumps(violations, indent=1, ensure_ascii=False)}"
    overflow = horizontal_overflow(page)
    assert overflow <= 0, f"{name}: the page scrolls {overflow} px sideways"
