"""The dashboard at / and the docs at /docs, in a real browser, against the real app."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.conftest import AppClient
from tests.support import STATUS_PATH, Client

API_KEY = "dashboard-test-key"
TIMEOUT_MS = 10_000


async def open_page(browser: Browser, client: Client, path: str) -> tuple[Page, list[str]]:
    """The page, and a list that collects the page's uncaught script errors."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(str(client.make_url(path)))
    return page, errors


async def place(page: Page, amount: str, input_token: str, output_token: str) -> None:
    form = page.locator("#order-form")
    await form.locator("[name=inputAmount]").fill(amount)
    await form.locator("[name=inputToken]").select_option(input_token)
    await form.locator("[name=outputToken]").select_option(output_token)
    await form.locator("button[type=submit]").click()


async def test_market_order_is_followed_to_confirmed_with_its_route_and_detail(
    start_app: AppClient, browser: Browser, tmp_path: Path
) -> None:
    """With API_KEYS set the page still loads and asks for the key; once it is entered, a
    market order placed with the form gets a row that its wallet socket moves to
    confirmed, with the route drawn; its detail shows the route, the quotes per DEX and
    every event; health and the live charts show the engine's own data."""
    client = await start_app(api_keys=(API_KEY,))
    page, errors = await open_page(browser, client, "/")
    await expect(page.locator("#banner")).to_contain_text("API key", timeout=TIMEOUT_MS)

    await page.locator("#api-key").fill(API_KEY)
    await page.locator("#api-key").dispatch_event("change")
    await expect(page.locator("#socket-state")).to_have_text("socket: live", timeout=TIMEOUT_MS)
    await expect(page.locator("[name=inputToken] option")).not_to_have_count(0)
    await place(page, "1.5", "SOL", "USDC")

    row = page.locator("#order-rows tr").first
    await expect(row.locator(".status")).to_have_text("confirmed", timeout=TIMEOUT_MS)
    await expect(row.locator("svg.route path.leg")).to_have_count(1)
    order_id = await row.get_attribute("data-order-id")
    assert order_id is not None
    stored = await (
        await client.get(f"/api/orders/{order_id}", headers={"X-API-Key": API_KEY})
    ).json()
    assert stored["status"] == "confirmed"
    await expect(row).to_contain_text(f"{stored['amountOut']} USDC")

    await row.click()
    detail = page.locator("#detail")
    await expect(detail.locator("#detail-id")).to_have_text(order_id)
    await expect(detail.locator("#detail-route svg.route path.leg")).to_have_count(1)
    await expect(detail.locator("#detail-quotes tbody tr")).to_have_count(2)
    statuses = detail.locator("#detail-events li")
    await expect(statuses).to_have_count(5)
    shown = await statuses.evaluate_all("items => items.map(i => i.dataset.status)")
    assert shown == STATUS_PATH

    for component in ("postgres", "redis", "queue"):
        await expect(page.locator(f'#health [data-component="{component}"]')).to_have_class(
            "pill ok"
        )
    # The confirmation shows in the latency chart once its second is over.
    await expect(page.locator("#chart-latency polyline.p50")).to_have_attribute(
        "points", re.compile(r"\d"), timeout=TIMEOUT_MS
    )

    shot = tmp_path / "order.png"
    await page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []


async def test_split_and_two_hop_routes_are_drawn_leg_by_leg(
    client: Client, browser: Browser, screenshot_dir: Path
) -> None:
    """A large SOL -> USDC order splits across both DEXs and JUP -> WIF goes through USDC
    (seed 7): the split is two legs between the same two tokens, the path two legs
    through three tokens. The README's screenshot is taken here, the split's detail open."""
    page, errors = await open_page(browser, client, "/")
    await expect(page.locator("#socket-state")).to_have_text("socket: live", timeout=TIMEOUT_MS)
    for count, (amount, src, dst) in enumerate(
        [("1.5", "SOL", "USDC"), ("2000", "SOL", "USDC"), ("500", "JUP", "WIF")], start=1
    ):
        await place(page, amount, src, dst)
        await expect(page.locator("#order-rows tr")).to_have_count(count)
        # One at a time: orders quoted on the same slot's prices could slip each other.
        newest = page.locator("#order-rows tr").first
        await expect(newest.locator(".status")).to_have_text("confirmed", timeout=TIMEOUT_MS)

    routes = page.locator("#order-rows tr svg.route")
    two_hop, split = routes.nth(0), routes.nth(1)
    await expect(split).to_have_attribute("data-kind", "split")
    await expect(split.locator("path.leg")).to_have_count(2)
    await expect(split.locator("circle.token")).to_have_count(2)
    await expect(two_hop).to_have_attribute("data-kind", "two-hop")
    await expect(two_hop.locator("path.leg")).to_have_count(2)
    await expect(two_hop.locator("circle.token")).to_have_count(3)

    await page.locator("#order-rows tr").nth(1).click()
    await expect(page.locator("#detail-route svg.route")).to_have_attribute("data-kind", "split")
    await expect(page.locator("#chart-latency polyline.p50")).to_have_attribute(
        "points", re.compile(r"\d"), timeout=TIMEOUT_MS
    )
    await page.screenshot(path=screenshot_dir / "dashboard.png", full_page=True)
    assert errors == []


async def test_refused_order_shows_the_servers_error_by_field(
    client: Client, browser: Browser
) -> None:
    """The form sends a limit order with API.md's fields; the server's 400 is shown with
    its code and the message of each field it names, the field marked, and no row added;
    corrected, the order is placed and rests, its trigger in its waiting event."""
    page, errors = await open_page(browser, client, "/")
    await expect(page.locator("#socket-state")).to_have_text("socket: live", timeout=TIMEOUT_MS)
    form = page.locator("#order-form")
    await form.locator("[name=type]").select_option("limit")
    await form.locator("[name=limitPrice]").fill("0")
    async with page.expect_request("**/api/orders/execute") as sent:
        await form.locator("button[type=submit]").click()
    body = (await sent.value).post_data_json
    assert body is not None
    assert (body["type"], body["limitPrice"]) == ("limit", "0")

    error = page.locator("#form-error")
    await expect(error).to_contain_text("validation_error")
    await expect(error.locator("li")).to_contain_text("limitPrice")
    await expect(form.locator("[name=limitPrice]")).to_have_class("invalid")
    await expect(page.locator("#order-rows tr")).to_have_count(0)

    await form.locator("[name=limitPrice]").fill("1000")
    await form.locator("button[type=submit]").click()
    row = page.locator("#order-rows tr").first
    await expect(row.locator(".status")).to_have_text("waiting", timeout=TIMEOUT_MS)
    await row.click()
    await expect(page.locator("#detail")).to_contain_text("rests until 1000 or better")
    assert errors == []


async def test_docs_list_the_order_endpoints_from_the_live_document(
    client: Client, browser: Browser, tmp_path: Path
) -> None:
    """/docs is Swagger UI, served from the package with no network, over /openapi.json;
    /redoc renders the same document."""
    page, errors = await open_page(browser, client, "/docs")
    paths = page.locator(".opblock-summary-path")
    await expect(paths.first).to_be_visible(timeout=TIMEOUT_MS)
    listed = set(await paths.evaluate_all("nodes => nodes.map(n => n.dataset.path)"))
    assert {
        "/api/orders",
        "/api/orders/execute",
        "/api/orders/{orderId}",
        "/api/orders/{orderId}/events",
        "/api/orders/{orderId}/execute",
        "/api/orders/{orderId}/cancel",
        "/api/orders/user/{wallet}",
    } <= listed
    await page.screenshot(path=tmp_path / "docs.png")
    assert errors == []

    redoc, errors = await open_page(browser, client, "/redoc")
    await expect(redoc.locator("h1")).to_contain_text("order-engine", timeout=TIMEOUT_MS)
    assert errors == []
