// Drive the Gradio Space like a person: upload two recordings, press Compare, read the score.
// node drive.mjs <url> <audio1> <audio2> <screenshot.png>  -> prints {"score": "...", "decision": "..."}
import { chromium } from "playwright-core";

const [url, first, second, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(url, { waitUntil: "networkidle" });
  await page.locator("#enroll input[type=file]").setInputFiles(first);
  await page.locator("#test input[type=file]").setInputFiles(second);
  // wait until both uploads are shown as audio players
  await page.waitForFunction(() => document.querySelectorAll("#enroll audio, #test audio").length >= 2, null, { timeout: 60000 });
  await page.locator("#compare").click();
  const score = page.locator("#score textarea");
  await page.waitForFunction(() => {
    const el = document.querySelector("#score textarea");
    return el && el.value.trim().length > 0;
  }, null, { timeout: 120000 });
  const decision = await page.locator("#decision textarea").inputValue();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ score: await score.inputValue(), decision }));
} finally {
  await browser.close();
}
