// Browser tests of the web page: Debian's headless Chromium, driven by playwright-core,
// against two real `plexus run` nodes on 127.0.0.1. Run by scripts/test.sh:
//   PLEXUS_BIN=target/debug/plexus node web/tests/browser.mjs
// Every wait is for a condition in the page or the node, with a timeout; nothing sleeps.

import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { TestNode } from "./node-harness.mjs";

const binary = process.env.PLEXUS_BIN ?? "target/debug/plexus";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** The promise: the page shows a claim within a second of it being made. */
const LIVE_UPDATE_MS = 1000;
const NAMESPACE = "ui-test";

const results = [];
async function check(name, body) {
  const started = Date.now();
  try {
    await body();
    results.push(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push(`FAIL ${name}: ${error.stack ?? error}`);
    throw error;
  }
}

// A third agent claims while its node is offline; its node joins only after the clock-skew
// window (30 s) has passed, so node A receives that claim by backfill, late (PROTOCOL.md §9.4).
const CLOCK_SKEW_MS = 30_000;
const lateDir = TestNode.prepare(binary, NAMESPACE);
const lateClaim = JSON.parse(execFileSync(binary, [
  ...TestNode.options(lateDir), "publish", "--offline", "--json", "--namespace", NAMESPACE, "--kind", "intent",
  "--body", JSON.stringify({ resource: "late/printer", action: "print", leaseMs: 3_600_000 }),
]).toString());
let late;

// Everything started from here on is stopped in `finally`, whatever fails first (a node that
// does not start, a Chromium that is missing), so no node outlives the run.
let a;
let b;
let browser;
let failed = false;
try {
  a = await TestNode.start(binary, NAMESPACE);
  b = await TestNode.start(binary, NAMESPACE, `${a.address}`);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const idA = (await a.get("/v1/node")).agent_id;
  const idB = (await b.get("/v1/node")).agent_id;
  await a.post("/v1/capability", { name: "coder-1", description: "writes Rust", skills: [{ id: "rust", name: "Rust", tags: ["code"] }], ttlMs: 600_000 });
  await b.post("/v1/capability", { name: "coder-2", skills: [{ id: "review", name: "Review", tags: ["code"] }], ttlMs: 600_000 });
  const first = await a.post("/v1/claims", { resource: "repo/plexus", action: "write", leaseMs: 600_000 });
  await a.waitFor("node A to see both cards", () => a.get("/v1/agents"), (answer) => answer.agents.length === 2);

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const elsewhere = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(a.origin) && !request.url().startsWith("data:")) elsewhere.push(request.url());
  });
  const tokenInRequest = [];
  page.on("request", (request) => {
    if (request.url().includes(a.token)) tokenInRequest.push(request.url());
  });

  await check("the page loads with the token and takes it out of the address bar", async () => {
    await page.goto(`${a.origin}/ui/#token=${a.token}`);
    await page.waitForSelector(`.connection[data-state="live"]`, { timeout: 10_000 });
    assert.ok(!page.url().includes("token"), `the address still shows the token: ${page.url()}`);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("plexus.api-token")), a.token);
  });

  await check("the agents view shows both agents the API reports", async () => {
    const reported = (await a.get("/v1/agents")).agents.map((card) => card.author).sort();
    assert.deepEqual(reported, [idA, idB].sort());
    for (const id of reported) await page.waitForSelector(`.card[data-agent="${id}"]`, { timeout: 5_000 });
    assert.equal(await page.locator(".card").count(), 2);
    assert.match(await page.locator(`.card[data-agent="${idA}"]`).innerText(), /coder-1[\s\S]*Rust[\s\S]*last seen/);
  });

  await check("the leases view shows the holder the API reports", async () => {
    await page.keyboard.press("Tab"); // the skip link first: the views are keyboard navigable
    await page.focus(`nav a[data-view="leases"]`);
    await page.keyboard.press("Enter");
    await page.waitForSelector(`main h2:text("Leases")`);
    const holder = (await a.get("/v1/leases")).leases[0].holders[0].author;
    assert.equal(holder, idA);
    await page.waitForSelector(`tr[data-resource="repo/plexus"][data-holders="${holder}"]`, { timeout: 5_000 });
    await page.waitForSelector(`svg.timeline g.row[data-resource="repo/plexus"] rect.bar-holding[data-author="${idA}"]`, { timeout: 5_000 });
  });

  await check(`a claim shows up within ${LIVE_UPDATE_MS} ms, pushed by the event stream`, async () => {
    const before = Date.now();
    await a.post("/v1/claims", { resource: "db/main", action: "migrate", leaseMs: 600_000 });
    await page.waitForSelector(`tr[data-resource="db/main"][data-holders="${idA}"]`, { timeout: LIVE_UPDATE_MS });
    results.push(`     (the claim showed ${Date.now() - before} ms after the request was sent)`);
  });

  // The first holder releases once it has held for three seconds, so the cursor (which moves
  // by whole seconds from the keyboard) has a span to land in; then node B claims and holds.
  const firstMs = first.claim.claimed_ms;
  await a.waitFor("the clock to pass three seconds of holding", async () => Date.now(), (now) => now > firstMs + 3_000, 10_000);
  await a.post(`/v1/claims/${first.claim.claim_id}/release`, {});
  await b.waitFor("node B to see the release", () => b.get("/v1/leases?resource=repo/plexus"), (answer) => answer.leases[0].holders.length === 0);
  await b.post("/v1/claims", { resource: "repo/plexus", action: "review", leaseMs: 600_000 });

  await check("the live view follows the new holder on the other node", async () => {
    await page.waitForSelector(`tr[data-resource="repo/plexus"][data-holders="${idB}"]`, { timeout: 15_000 });
  });

  await check("the time cursor, moved back by keyboard, shows the earlier holder", async () => {
    const target = firstMs + 1_500;
    const secondsBack = Math.round((Date.now() - target) / 1000);
    await page.focus("#cursor");
    for (let step = 0; step < secondsBack; step++) await page.keyboard.press("ArrowLeft");
    await page.waitForSelector(`tr[data-resource="repo/plexus"][data-holders="${idA}"]`, { timeout: 5_000 });
    assert.match(await page.locator("#cursor-time").innerText(), /in the past/);
    const at = await page.locator("table.leases").getAttribute("aria-label");
    const api = await a.get(`/v1/leases?resource=repo/plexus&at=${Date.parse(at.replace("Leases at ", ""))}`);
    assert.equal(api.leases[0].holders[0].author, idA, "the page and the API disagree about that moment");
    await page.click("#live");
    await page.waitForSelector(`tr[data-resource="repo/plexus"][data-holders="${idB}"]`, { timeout: 5_000 });
  });

  await check("the tasks board places each task by state, with its history", async () => {
    await a.post("/v1/tasks", { taskId: "T-1", status: { state: "TASK_STATE_SUBMITTED", message: "write the parser" } });
    await a.post("/v1/tasks", { taskId: "T-1", status: { state: "TASK_STATE_WORKING", message: "on it" } });
    await page.click(`nav a[data-view="tasks"]`);
    const task = page.locator(`section[data-state="TASK_STATE_WORKING"] details[data-task="T-1"]`);
    await task.waitFor({ timeout: 5_000 });
    await task.locator("summary").focus();
    await page.keyboard.press("Enter");
    assert.equal(await task.locator(".history li").count(), 2);
  });

  await check("the peers and node views show the other node and this node's feed head", async () => {
    await page.click(`nav a[data-view="peers"]`);
    const peerOfB = (await b.get("/v1/node")).peer_id;
    await page.waitForSelector(`tr[data-peer="${peerOfB}"]`, { timeout: 10_000 });
    await page.click(`nav a[data-view="node"]`);
    const own = (await a.get("/v1/status")).feeds.find((feed) => feed.author === idA);
    await page.waitForSelector(`tr[data-feed="${NAMESPACE}"]`, { timeout: 5_000 });
    const row = await page.locator(`tr[data-feed="${NAMESPACE}"]`).innerText();
    assert.ok(row.includes(own.id), `the node view shows ${row}, the API's head is ${own.id}`);
    await page.click(`nav a[data-view="rejections"]`);
    await page.waitForSelector(`main h2:text("Rejections")`);
  });

  await check("a claim node A received late is marked, and why, on the leases board and the timeline", async () => {
    const due = lateClaim.timestamp_ms + CLOCK_SKEW_MS + 1_000;
    await a.waitFor("the clock-skew window to pass since the offline claim", async () => Date.now(), (now) => now > due, Math.max(0, due - Date.now()) + 10_000);
    late = await TestNode.start(binary, NAMESPACE, a.address, lateDir);
    const answer = await a.waitFor("node A to hold the offline claim, flagged late", () => a.get("/v1/leases?resource=late/printer"),
      (leases) => leases.leases[0]?.holders[0]?.claim_id === lateClaim.id && leases.leases[0].holders[0].late === true, 60_000);
    const lateAfter = answer.leases[0].holders[0].late_after_ms;
    assert.ok(lateAfter > CLOCK_SKEW_MS, `late_after_ms is ${lateAfter}`);
    await page.click(`nav a[data-view="leases"]`);
    const mark = page.locator(`tr[data-resource="late/printer"] .claim[data-claim="${lateClaim.id}"] .late`);
    await mark.waitFor({ timeout: 10_000 });
    assert.equal(await mark.innerText(), `late: arrived by backfill ${Math.round(lateAfter / 1000)} s after its timestamp`);
    assert.match(await mark.getAttribute("title"), /more than the clock-skew window[\s\S]*back-dated/);
    const bar = page.locator(`svg.timeline g.row[data-resource="late/printer"] rect.bar-late[data-late="true"]`).first();
    await bar.waitFor({ timeout: 10_000 });
    assert.match(await bar.locator("title").textContent(), /late: arrived by backfill \d+ s after its timestamp/);
    // Claims this node received live are not marked.
    assert.equal(await page.locator(`tr[data-resource="repo/plexus"] .late`).count(), 0);
    assert.equal(await page.locator(`svg.timeline g.row[data-resource="repo/plexus"] rect.bar-late`).count(), 0);
  });

  await check("at a phone's width nothing runs off the side", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const view of ["agents", "leases", "tasks", "peers", "node"]) {
      await page.click(`nav a[data-view="${view}"]`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the ${view} view is ${overflow} px wider than the screen`);
    }
  });

  await check("the page asked nothing of any other server, and never sent the token in an address", async () => {
    assert.deepEqual(elsewhere, []);
    assert.deepEqual(tokenInRequest, []);
  });

  await check("a wrong token shows a clear message", async () => {
    const other = await browser.newPage();
    await other.goto(`${a.origin}/ui/#token=not-the-token`);
    const problem = other.locator("#problem");
    await problem.waitFor({ timeout: 5_000 });
    assert.match(await problem.innerText(), /refused this page's token[\s\S]*plexus ui/);
    await other.close();
  });
  await context.close();
} catch (error) {
  failed = true;
  // A failed check recorded itself; anything else (setup) is said here.
  if (!results.some((line) => line.startsWith("FAIL"))) results.push(`FAIL setup: ${error.stack ?? error}`);
} finally {
  await browser?.close();
  await Promise.all([a?.stop(), b?.stop(), late ? late.stop() : rmSync(lateDir, { recursive: true, force: true })]);
}
console.log(results.join("\n"));
process.exit(failed ? 1 : 0);
