// Drives trackd's /console in Debian's chromium (playwright-core), one command at a time:
// each line on stdin is a JSON command, each answer one JSON line on stdout ({"ok": ...}
// or {"error": "..."}), so the Python test sends events between steps. The page's errors,
// failed requests and every request's URL are reported by the "done" command.
// Usage: node console_page.mjs BASE_URL CHROMIUM USER_DATA_DIR
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [baseUrl, executablePath, userDataDir] = process.argv.slice(2);
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath, headless: true, viewport: { width: 1360, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] ?? (await context.newPage());
const requests = [];
const failed = [];
const errors = [];
page.on("request", (request) => requests.push(request.url()));
page.on("requestfailed", (request) => {
  const reason = request.failure()?.errorText ?? "failed";
  // A stream the page aborts itself (sign-out, closing) is not a failure.
  if (reason !== "net::ERR_ABORTED") failed.push({ url: request.url(), error: reason });
});
page.on("response", (response) => {
  if (response.status() >= 400) failed.push({ url: response.url(), status: response.status() });
});
page.on("pageerror", (error) => errors.push(String(error)));
page.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });

const WAIT = { timeout: 60_000 };
const rowWith = (list, text) =>
  page.locator(`#${list} > li`).filter({ hasText: text }).first();

const commands = {
  async open() {
    await page.goto(`${baseUrl}/console`, { waitUntil: "load", ...WAIT });
    return { title: await page.title() };
  },
  async signin({ key }) {
    await page.fill("#key", "");
    await page.locator("#key").focus();
    await page.keyboard.type(key);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("status").textContent === "live",
      null, { polling: 50, ...WAIT });
    return { stored: await page.evaluate(() => sessionStorage.length), url: page.url() };
  },
  async signin_error({ key }) {
    await page.fill("#key", key);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("sign-in-error").textContent,
      null, { polling: 50, ...WAIT });
    const text = await page.textContent("#sign-in-error");
    return { text };
  },
  async row({ list, text }) {
    const row = rowWith(list, text);
    await row.waitFor({ state: "attached", ...WAIT });
    const at = Date.now();
    return { at, text: await row.innerText() };
  },
  async expand({ text }) {
    const row = rowWith("events", text);
    await row.locator("summary").first().focus();
    await page.keyboard.press("Enter");  // details open by keyboard
    const pretty = await row.locator("pre.pretty").textContent();
    return {
      pretty,
      open: await row.locator("details").first().evaluate((d) => d.open),
      scripts: await page.locator("#events script, #events img, #events b").count(),
      injected: await page.evaluate(() => window.__injected ?? null),
    };
  },
  async filter({ id, value }) {
    if (id === "f-door" || id === "f-decision") await page.selectOption(`#${id}`, value);
    else await page.fill(`#${id}`, value);
    const visible = (list) => page.$$eval(`#${list} > li`, (rows) =>
      rows.filter((row) => !row.hidden).map((row) => row.dataset.name + "|" + row.dataset.kind));
    return { events: await visible("events"), decisions: await visible("decisions") };
  },
  async pause() {
    await page.locator("#pause").focus();
    await page.keyboard.press("Enter");
    return { pressed: await page.getAttribute("#pause", "aria-pressed"),
             label: await page.textContent("#pause"),
             badge: await page.isVisible("#paused-count") };
  },
  async paused_count({ count }) {
    await page.waitForFunction((n) => {
      const badge = document.getElementById("paused-count");
      return !badge.hidden && badge.textContent.startsWith(`${n} arrived`);
    }, count, { polling: 50, ...WAIT });
    return { text: await page.textContent("#paused-count") };
  },
  async has_row({ list, text }) {
    return { count: await rowWith(list, text).count() };
  },
  async view({ name }) {
    await page.click(`#tab-${name}`);
    if (name === "overview") {
      await page.waitForSelector("#chart-svg rect.bar", WAIT);
    }
    return {};
  },
  async chart() {
    return {
      bars: await page.locator("#chart-svg rect.bar").count(),
      series: await page.$$eval("#chart-svg rect.bar", (bars) =>
        [...new Set(bars.map((bar) => bar.dataset.series))].sort()),
      legend: await page.$$eval("#legend li", (items) => items.map((i) => i.textContent)),
      names: await page.$$eval("#top-names li", (items) => items.map((i) => i.textContent)),
      violations: await page.$$eval("#top-violations li", (items) =>
        items.map((i) => [...i.children].map((span) => span.textContent))),
      webhooks: await page.textContent("#webhooks"),
    };
  },
  async viewport({ width, height }) {
    await page.setViewportSize({ width, height });
    return {};
  },
  async screenshot({ path, full }) {
    await page.screenshot({ path, fullPage: Boolean(full) });
    return { path };
  },
  async done() {
    return { requests, failed, errors };
  },
};

const lines = createInterface({ input: process.stdin });
console.log(JSON.stringify({ ok: { ready: true } }));
try {
  for await (const line of lines) {
    const command = JSON.parse(line);
    try {
      const result = await commands[command.do](command);
      console.log(JSON.stringify({ ok: result }));
    } catch (error) {
      console.log(JSON.stringify({ error: String(error) }));
    }
    if (command.do === "done") break;
  }
} finally {
  await context.close();
}
