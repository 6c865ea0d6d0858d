"""The web UI in a real browser (Debian's Chromium driven by Playwright), against a real quill and
the real SDK test services: register through the UI, invoke from the playground, find an
invocation and read its journal, resolve its awakeable, kill a running one, edit state. Every page
is driven by its accessible names (the UI's contract), and no page logs a console error or asks
any other host for anything."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright, expect

from tests.conftest import QUILL_TEST_ENV
from tests.support import CHROMIUM, CHROMIUM_FLAGS, Quill, SdkService

# Chromium comes from `make test` (apt-get install chromium): no skip, a missing browser fails.
pytestmark = pytest.mark.asyncio(loop_scope="module")  # one browser for the module


@pytest.fixture(scope="module")
def ui_quill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quill]:
    server = Quill(tmp_path_factory.mktemp("ui") / "data", env=QUILL_TEST_ENV)
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        await launched.close()


class Watched:
    """A page with what it logged as errors and every request it made elsewhere."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.expected: list[str] = []  # errors a test provokes on purpose
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self._request(request, origin))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _request(self, request: Request, origin: str) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == origin:
            return
        self.foreign.append(request.url)

    def clean(self) -> None:
        unexpected = [e for e in self.errors if not any(x in e for x in self.expected)]
        assert unexpected == [] and self.foreign == []


@pytest.fixture
def registered(ui_quill: Quill, sdk_service: SdkService) -> Quill:
    """The SDK services registered (as the registration test does through the UI; the same
    deployment registered again is a no-op), so each test also runs on its own."""
    response = httpx.post(f"{ui_quill.admin}/deployments", json={"uri": sdk_service.url, "use_http_11": True})
    assert response.status_code in (200, 201), response.text
    return ui_quill


@pytest_asyncio.fixture(loop_scope="module")
async def ui(browser: Browser, ui_quill: Quill) -> AsyncIterator[Watched]:
    context = await browser.new_context(base_url=ui_quill.admin)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    watched = Watched(page, ui_quill.admin)
    yield watched
    await context.close()
    watched.clean()


async def test_root_redirects_and_every_page_renders(ui: Watched, ui_quill: Quill) -> None:
    page = ui.page
    await page.goto("/")
    assert urlsplit(page.url).path == "/ui/"
    for name in ("Services", "Deployments", "Invocations", "State", "Timers", "Limits", "Dapr", "SQL", "Health"):
        await page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(name))
    await expect(page.get_by_role("status").first).to_be_visible()


async def test_register_through_the_ui(ui: Watched, ui_quill: Quill, sdk_service: SdkService) -> None:
    page = ui.page
    await page.goto("/ui/deployments")
    await page.get_by_label("Deployment URI").fill(sdk_service.url)
    await page.get_by_label("Use HTTP/1.1").check()
    await page.get_by_role("button", name="Dry run").click()
    await expect(page.get_by_text("Dry run: these services would be registered.")).to_be_visible()
    await expect(page.get_by_text("Greeter", exact=True)).to_be_visible()
    assert httpx.get(f"{ui_quill.admin}/services").json()["services"] == []  # a dry run registers nothing
    await page.get_by_role("button", name="Register").click()
    await expect(page.get_by_text(re.compile(r"^Registered dp_"))).to_be_visible()
    await expect(page.get_by_role("table", name="Deployments")).to_contain_text(sdk_service.url)
    await page.get_by_role("link", name="Services", exact=True).click()
    await expect(page.get_by_role("link", name="Greeter", exact=True)).to_be_visible()
    await page.get_by_role("link", name="Greeter", exact=True).click()
    await expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    await page.get_by_label("Inactivity timeout").fill("2m")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_text(re.compile("^Saved"))).to_be_visible()
    assert httpx.get(f"{ui_quill.admin}/services/Greeter").json()["inactivity_timeout"] == "2m"


async def test_invoke_from_the_playground_and_read_the_invocation(ui: Watched, registered: Quill) -> None:
    page = ui.page
    await page.goto("/ui/")
    await page.get_by_role("link", name="Playground Greeter/greet").click()
    await page.get_by_role("textbox", name="Request body").fill('"Mary"')
    await page.get_by_role("button", name="Invoke").click()
    body = page.get_by_label("Response body")
    await expect(body).to_contain_text("Hello Mary")
    await expect(page.get_by_text("200 OK")).to_be_visible()
    await page.get_by_role("region", name="Response").get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("greet")
    await expect(page.get_by_text("succeeded").first).to_be_visible()
    await expect(page.get_by_role("button", name="Restart")).to_be_visible()
    await expect(page.get_by_role("button", name="Purge")).to_be_visible()


async def test_find_an_invocation_read_its_journal_and_resolve_its_awakeable(ui: Watched, registered: Quill) -> None:
    ui_quill = registered
    page = ui.page
    sent = httpx.post(f"{ui_quill.ingress}/restate/send/Caller/wait_for_awakeable", json="ui-awake")
    invocation_id = sent.json()["invocationId"]
    await page.goto("/ui/invocations")
    await page.get_by_label("Service").select_option("Caller")
    await page.get_by_label("Status").select_option("unfinished")
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_role("table", name="Invocations").get_by_role("link", name=re.compile("^inv_")).first.click()
    assert page.url.endswith(invocation_id)
    journal = page.get_by_role("list", name="Journal")
    await expect(journal).to_contain_text("Input")
    await expect(journal).to_contain_text('"publish"')  # the run that publishes the awakeable id
    await expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    await page.get_by_role("button", name="Resolve").click()
    await expect(page.get_by_text("succeeded").first).to_be_visible(timeout=20_000)
    output = httpx.get(f"{ui_quill.ingress}/restate/output/{invocation_id}")
    assert output.json() == "got done"


async def test_pages_of_invocations_go_back_in_time_without_gaps(ui: Watched, registered: Quill) -> None:
    ui_quill = registered
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [client.post(f"{ui_quill.ingress}/restate/call/Greeter/greet", json=f"p{i}") for i in range(60)]
        answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [200] * 60, [a.text for a in answers if a.status_code != 200][:3]
    ids = {answer.headers["x-restate-id"] for answer in answers}
    page = ui.page
    await page.goto("/ui/invocations?service=Greeter&handler=greet")
    seen: list[str] = []
    for _ in range(3):
        links = page.get_by_role("table", name="Invocations").get_by_role("link", name=re.compile("^inv_"))
        await expect(links.first).to_be_visible()
        seen += [await link.get_attribute("title") or "" for link in await links.all()]
        older = page.get_by_role("link", name="Older")
        if not await older.count():
            break
        before = page.url
        await older.click()
        await expect(page).not_to_have_url(before)
        await expect(page.get_by_role("link", name="Newest")).to_be_visible()
    assert len(seen) == len(set(seen)) and ids <= set(seen)


async def test_kill_a_running_invocation(ui: Watched, registered: Quill) -> None:
    ui_quill = registered
    page = ui.page
    sent = httpx.post(f"{ui_quill.ingress}/restate/send/Timers/sleep", json=600_000)
    invocation_id = sent.json()["invocationId"]
    await page.goto(f"/ui/invocations/{invocation_id}")
    await expect(page.get_by_role("list", name="Journal")).to_contain_text("Sleep")
    await page.get_by_role("button", name="Kill").click()
    await page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    await expect(page.get_by_text("killed", exact=True).first).to_be_visible()
    info = httpx.get(f"{ui_quill.admin}/invocations/{invocation_id}").json()
    assert info["completion_failure"] == "[409] killed"


async def test_edit_state(ui: Watched, registered: Quill) -> None:
    ui_quill = registered
    page = ui.page
    assert httpx.post(f"{ui_quill.ingress}/restate/call/Counter/ui-key/add", json=5).json() == 5
    await page.goto("/ui/state")
    await page.get_by_role("link", name="Counter").click()
    await page.get_by_role("link", name="ui-key").click()
    await page.get_by_role("textbox", name="value", exact=True).fill("41")
    await page.get_by_role("button", name="Save state").click()
    await expect(page.get_by_text(re.compile("^Saved"))).to_be_visible()
    assert httpx.post(f"{ui_quill.ingress}/restate/call/Counter/ui-key/add", json=1).json() == 42
    await page.reload()
    value = page.get_by_role("textbox", name="value", exact=True)
    await expect(value).to_have_value("42")
    # A stale version is refused: another writer changed the state since the page read it.
    ui.expected.append("409 (Conflict)")
    assert httpx.post(f"{ui_quill.ingress}/restate/call/Counter/ui-key/add", json=1).json() == 43
    await value.fill("0")
    await page.get_by_role("button", name="Save state").click()
    await expect(page.get_by_role("alert")).to_contain_text("outdated")


async def test_sql_console(ui: Watched, registered: Quill) -> None:
    page = ui.page
    await page.goto("/ui/sql")
    await page.get_by_label("SQL query").fill("SELECT name FROM sys_service ORDER BY name")
    await page.get_by_role("button", name="Run query").click()
    await expect(page.get_by_role("table", name="Results")).to_contain_text("Greeter")


async def test_ui_assets_ship_with_the_package() -> None:
    assets = Path(__file__).resolve().parents[2] / "admin" / "ui"
    assert {"index.html", "app.js", "app.css"} <= {p.name for p in assets.iterdir()}


async def test_limits_rules_and_what_runs_and_waits(ui: Watched, registered: Quill, sdk_service: SdkService) -> None:
    page = ui.page
    await page.goto("/ui/limits")
    await page.get_by_label("Pattern").fill("ui-batch")
    await page.get_by_label("Concurrency").fill("1")
    await page.get_by_role("button", name="Save rule").click()
    await expect(page.get_by_text("Saved rule ui-batch.")).to_be_visible()
    await expect(page.get_by_role("table", name="Rules")).to_contain_text("ui-batch")
    async with httpx.AsyncClient(timeout=30) as client:
        for n in (1, 2):  # Durable/process holds at the gate "uilimit": the second waits for the slot
            url = f"{registered.ingress}/restate/scope/ui-batch/send/Durable/process"
            sent = await client.post(url, json=f"uilimit-{n}")
            assert sent.status_code == 202, sent.text
        await sdk_service.wait(client, "entered:uilimit", 1)
        row = page.get_by_role("table", name="Usage").locator("tbody tr").filter(has_text="ui-batch")
        # Scope, limit key, level, running, limit, rule, available, waiting (refreshed every 2 s).
        cells = ["ui-batch", "", re.compile(r"\w+"), "1", "1", "ui-batch", "0", "1"]
        await expect(row.locator("td")).to_have_text(cells)
        await sdk_service.open(client, "uilimit")
        await sdk_service.wait(client, "done:uilimit", 2)
    await page.get_by_role("table", name="Rules").get_by_role("button", name="Delete").click()
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_role("table", name="Rules")).not_to_contain_text("ui-batch")
    query = {"query": "SELECT * FROM sys_rules"}
    rules = httpx.post(f"{registered.admin}/query", json=query, headers={"accept": "application/json"})
    assert rules.json()["rows"] == []
