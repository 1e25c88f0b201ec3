// Opens trackd's /docs in Debian's chromium (driven by playwright-core), waits for Swagger
// UI to render the document, and prints one JSON line: the operations shown, every request
// made, every one that failed (or answered >= 400), and the page's errors. A screenshot of
// the whole page goes to the given path.
// Usage: node docs_page.mjs BASE_URL SCREENSHOT CHROMIUM USER_DATA_DIR
import { chromium } from "playwright-core";

const [baseUrl, screenshot, executablePath, userDataDir] = process.argv.slice(2);
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const requests = [];
  const failed = [];
  const errors = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("requestfailed", (request) =>
    failed.push({ url: request.url(), error: request.failure()?.errorText ?? "failed" }));
  page.on("response", (response) => {
    if (response.status() >= 400) failed.push({ url: response.url(), status: response.status() });
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  await page.goto(`${baseUrl}/docs`, { waitUntil: "networkidle", timeout: 60_000 });
  await page.waitForSelector(".opblock", { timeout: 60_000 });
  const operations = await page.$$eval(".opblock", (blocks) => blocks.map((block) => {
    const path = block.querySelector(".opblock-summary-path");
    return {
      method: block.querySelector(".opblock-summary-method")?.textContent.trim(),
      path: path?.getAttribute("data-path") ?? path?.textContent.trim(),
    };
  }));
  const title = await page.$eval(".info .title", (element) => element.textContent.trim());
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ title, operations, requests, failed, errors }));
} finally {
  await context.close();
}
