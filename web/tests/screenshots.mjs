// Takes the screenshots in docs/screenshots/ from `plexus demo --ui`: one per view at
// 1280×800, and the leases view at a phone's width. Run by hand after a change to the page:
//   PLEXUS_BIN=target/debug/plexus node web/tests/screenshots.mjs docs/screenshots

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const binary = process.env.PLEXUS_BIN ?? "target/debug/plexus";
const out = process.argv[2] ?? "docs/screenshots";
mkdirSync(out, { recursive: true });
const dir = mkdtempSync(join(tmpdir(), "plexus-demo-ui-"));
const demo = spawn(binary, ["demo", "--ui", "--api-listen", "127.0.0.1:0", "--dir", dir], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve, reject) => {
  let seen = "";
  demo.stdout.on("data", (chunk) => {
    seen += chunk.toString();
    const match = seen.match(/watch them at\s+(http:\/\/\S+)/);
    if (match) resolve(match[1]);
  });
  demo.on("exit", (code) => reject(new Error(`the demo exited with ${code}:\n${seen}`)));
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url);
  await page.waitForSelector(`.connection[data-state="live"]`);
  await page.selectOption("#span", "60000");
  for (const view of ["agents", "leases", "tasks", "rejections", "peers", "node"]) {
    await page.click(`nav a[data-view="${view}"]`);
    const ready = { agents: ".card", leases: "svg.timeline", tasks: "details.task", rejections: "table.rejections", peers: "table.peers", node: "table.feeds" };
    await page.waitForSelector(ready[view]);
    if (view === "tasks") await page.locator("details.task").first().click();
    await page.screenshot({ path: join(out, `${view}.png`) });
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click(`nav a[data-view="leases"]`);
  await page.waitForSelector("svg.timeline");
  await page.screenshot({ path: join(out, "leases-phone.png"), fullPage: true });
} finally {
  await browser.close();
  demo.kill("SIGINT");
  await new Promise((resolve) => demo.once("exit", resolve));
  rmSync(dir, { recursive: true, force: true });
}
