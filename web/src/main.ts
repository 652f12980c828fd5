// The page: reads the token, loads each view from the node's API, follows the event stream
// and reloads only what an event touched. Read-only: it never writes to the node.

import "./style.css";
import { Api, AuthError, forgetToken, takeToken } from "./api";
import { clockTime, fullTime, h, LATE_EXPLAINED } from "./dom";
import type { Card, Lease, NodeInfo, NodeStatus, Rejection, Task, Timeline, TimelineConstraint } from "./model";
import { drawTimeline, type DrawnTimeline } from "./timeline";
import { agentsView, leaseTable, nodeView, paintSwatches, peersView, rejectionsView, tasksView } from "./views";

type ViewName = "agents" | "leases" | "tasks" | "rejections" | "peers" | "node";
type Part = "agents" | "leases" | "timeline" | "tasks" | "rejections" | "status";

const VIEWS: [ViewName, string][] = [
  ["agents", "Agents"],
  ["leases", "Leases"],
  ["tasks", "Tasks"],
  ["rejections", "Rejections"],
  ["peers", "Peers"],
  ["node", "Node"],
];
const ALL_PARTS: Part[] = ["agents", "leases", "timeline", "tasks", "rejections", "status"];
const SPANS: [number, string][] = [
  [60_000, "1 min"],
  [5 * 60_000, "5 min"],
  [15 * 60_000, "15 min"],
  [3_600_000, "1 hour"],
  [6 * 3_600_000, "6 hours"],
  [24 * 3_600_000, "24 hours"],
];
/** Coalesces a burst of events into one reload. */
const RELOAD_DELAY_MS = 40;

class App {
  private view: ViewName = "agents";
  /** The time cursor; null follows the present. */
  private at: number | null = null;
  private span = 5 * 60_000;
  private now = Date.now();
  private readonly names = new Map<string, string>();
  private readonly lastSeen = new Map<string, number>();
  private readonly openTasks = new Set<string>();
  private cards: Card[] = [];
  private leases: Lease[] = [];
  private tasks: Task[] = [];
  private rejections: Rejection[] = [];
  private status: NodeStatus | null = null;
  private timeline: Timeline | null = null;
  private drawn: DrawnTimeline | null = null;
  private rendered = "";
  private readonly dirty = new Set<Part>();
  private timer: number | undefined;
  private loading = false;
  private readonly main = h("main", { id: "main", tabindex: -1 });
  private readonly connection = h("span", { class: "connection", role: "status", "aria-live": "polite" }, "connecting…");
  private readonly slider = h("input", { type: "range", id: "cursor", step: 1, value: 0 }) as HTMLInputElement;
  private readonly cursorText = h("output", { for: "cursor", id: "cursor-time" });
  private readonly liveButton = h("button", { type: "button", id: "live" }, "Back to live") as HTMLButtonElement;

  constructor(
    private readonly api: Api,
    private readonly node: NodeInfo,
    private readonly namespace: string,
  ) {}

  start(root: HTMLElement): void {
    const spanSelect = h("select", { id: "span", "aria-label": "Time window" },
      ...SPANS.map(([ms, label]) => h("option", { value: ms, selected: ms === this.span }, label))) as HTMLSelectElement;
    spanSelect.addEventListener("change", () => {
      this.span = Number(spanSelect.value);
      this.mark("timeline");
    });
    this.slider.addEventListener("input", () => this.setCursor(Number(this.slider.value)));
    this.liveButton.addEventListener("click", () => this.setCursor(0));
    root.replaceChildren(
      h("header", {},
        h("h1", {}, "Plexus"),
        h("span", { class: "namespace" }, `namespace ${this.namespace}`),
        h("span", { class: "node-id", title: this.node.agent_id }, `node ${this.node.agent_id.slice(0, 8)}`),
        this.connection),
      h("nav", { "aria-label": "Views" },
        h("ul", {}, ...VIEWS.map(([name, label]) => h("li", {}, h("a", { href: `#/${name}`, "data-view": name }, label))))),
      h("div", { class: "timebar" },
        h("label", { for: "cursor" }, "Time"),
        this.slider,
        this.cursorText,
        this.liveButton,
        spanSelect),
      this.main,
    );
    window.addEventListener("hashchange", () => this.route());
    window.addEventListener("resize", () => this.render(true));
    // The clock moves the present on screen; it asks the node for nothing new unless the
    // timeline's fetched window runs out.
    window.setInterval(() => this.tick(), 1000);
    this.route();
    this.updateTimebar();
    void this.follow();
  }

  private route(): void {
    const wanted = location.hash.replace(/^#\/?/, "") as ViewName;
    // Other fragments (the skip link's #main) leave the view as it is.
    if (VIEWS.some(([name]) => name === wanted)) this.view = wanted;
    for (const link of document.querySelectorAll<HTMLElement>("nav a")) {
      if (link.dataset.view === this.view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    this.render(true);
  }

  /** `secondsBack` is the slider's value: 0 is now, -60 a minute ago. */
  private setCursor(secondsBack: number): void {
    this.now = Date.now();
    this.at = secondsBack >= 0 ? null : this.now + secondsBack * 1000;
    this.updateTimebar();
    this.drawn?.moveCursor(this.at ?? this.now);
    this.mark("agents", "leases", "tasks");
  }

  private updateTimebar(): void {
    const seconds = Math.round(this.span / 1000);
    this.slider.min = String(-seconds);
    this.slider.max = "0";
    const at = this.at ?? this.now;
    this.slider.value = String(this.at === null ? 0 : Math.round((this.at - this.now) / 1000));
    const text = this.at === null ? `now (${clockTime(at)})` : `${clockTime(at)}, in the past`;
    this.slider.setAttribute("aria-valuetext", text);
    this.cursorText.textContent = text;
    this.cursorText.classList.toggle("past", this.at !== null);
    this.liveButton.disabled = this.at === null;
  }

  private tick(): void {
    this.now = Date.now();
    if (this.at !== null && this.at < this.now - this.span) {
      // The cursor stays inside the window; the views follow it.
      this.at = this.now - this.span;
      this.mark("agents", "leases", "tasks");
    }
    this.updateTimebar();
    if (this.timeline && this.now > this.timeline.to_ms - this.span / 10) this.mark("timeline");
    if (this.view === "leases") this.drawTimeline();
  }

  private mark(...parts: Part[]): void {
    for (const part of parts) this.dirty.add(part);
    if (this.timer === undefined) this.timer = window.setTimeout(() => void this.reload(), RELOAD_DELAY_MS);
  }

  private async reload(): Promise<void> {
    this.timer = undefined;
    if (this.loading) return; // the running reload looks at `dirty` again when it ends
    this.loading = true;
    try {
      while (this.dirty.size > 0) {
        const parts = [...this.dirty];
        this.dirty.clear();
        await Promise.all(parts.map((part) => this.load(part)));
        this.render(false);
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.loading = false;
    }
  }

  private async load(part: Part): Promise<void> {
    const namespace = this.namespace;
    const at = this.at ?? undefined;
    switch (part) {
      case "agents": {
        const reply = await this.api.get<{ agents: Card[] }>("/v1/agents", { namespace, at });
        this.cards = reply.agents;
        for (const card of reply.agents) this.names.set(card.author, card.name);
        break;
      }
      case "leases":
        this.leases = (await this.api.get<{ leases: Lease[] }>("/v1/leases", { namespace, at })).leases;
        break;
      case "tasks":
        this.tasks = (await this.api.get<{ tasks: Task[] }>("/v1/tasks", { namespace, at })).tasks;
        break;
      case "timeline": {
        const now = Date.now();
        const from = now - this.span;
        const to = now + Math.round(this.span / 2);
        this.timeline = await this.api.get<Timeline>("/v1/timeline", { namespace, from, to });
        break;
      }
      case "rejections":
        this.rejections = (await this.api.get<{ rejections: Rejection[] }>("/v1/rejections", { limit: 200 })).rejections;
        break;
      case "status":
        this.status = await this.api.get<NodeStatus>("/v1/status");
        break;
    }
  }

  /** Follows the event stream for as long as the page is open, reconnecting after a break. */
  private async follow(): Promise<void> {
    let delay = 500;
    for (;;) {
      try {
        await this.api.follow(
          this.namespace,
          () => {
            delay = 500;
            this.setConnection("live", "live");
            // Load everything once the stream is open, so no change falls in between.
            this.mark(...ALL_PARTS);
          },
          (type, data) => this.onEvent(type, data),
          new AbortController().signal,
        );
      } catch (error) {
        if (error instanceof AuthError) {
          this.fail(error);
          return;
        }
      }
      this.setConnection("broken", `event stream broken; reconnecting in ${delay / 1000} s`);
      await new Promise((resolve) => window.setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }

  private onEvent(type: string, data: string): void {
    if (type === "lagged") {
      this.mark(...ALL_PARTS);
      return;
    }
    let event: { kind?: string; data?: { author?: string; timestamp_ms?: number } };
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (type === "entry") {
      const author = event.data?.author;
      const timestamp = event.data?.timestamp_ms;
      if (author && timestamp) this.lastSeen.set(author, Math.max(timestamp, this.lastSeen.get(author) ?? 0));
      const kind = event.kind ?? "";
      if (kind.startsWith("capability")) this.mark("agents");
      if (kind.startsWith("intent") || kind === "constraint") this.mark("leases", "timeline");
      if (kind === "task") this.mark("tasks");
      // Refusals raise no event of their own; any arrival may come with one.
      this.mark("status", "rejections");
    } else if (type === "task") {
      this.mark("tasks");
    } else {
      this.mark("leases", "timeline");
    }
  }

  private setConnection(state: string, text: string): void {
    this.connection.textContent = text;
    this.connection.dataset.state = state;
  }

  private fail(error: unknown): void {
    if (error instanceof AuthError) {
      forgetToken();
      showProblem(document.getElementById("app")!, "The node refused this page's token",
        "Run `plexus ui` again and open the new address: the token it carries must be the one in api.token in the node's data directory.");
      return;
    }
    this.setConnection("broken", `error: ${error instanceof Error ? error.message : String(error)}`);
  }

  private render(force: boolean): void {
    const at = this.at ?? this.now;
    const data = this.viewData();
    const signature = JSON.stringify([this.view, this.at, data]);
    if (!force && signature === this.rendered) return;
    this.rendered = signature;
    const title = VIEWS.find(([name]) => name === this.view)?.[1] ?? "";
    const liveOnly = ["rejections", "peers", "node"].includes(this.view) && this.at !== null ? " (live: the time cursor does not apply here)" : "";
    const heading = h("h2", {}, title, h("small", {}, liveOnly));
    let body: HTMLElement;
    switch (this.view) {
      case "agents":
        body = agentsView(this.cards, this.lastSeen, at);
        break;
      case "leases":
        body = h("div", {},
          h("div", { id: "timeline-box", class: "timeline-box" }),
          h("p", { class: "legend" },
            h("span", { class: "key holding" }, "holding"), h("span", { class: "key waiting" }, "waiting"),
            h("span", { class: "key excluded" }, "blocked or rate-limited"), h("span", { class: "key constraint" }, "constraint in force"),
            h("span", { class: "key future" }, "future, as the fold predicts it"),
            h("span", { class: "key late", title: LATE_EXPLAINED }, "late: this node received it by backfill after the clock-skew window")),
          leaseTable(this.leases, constraintsOf(this.timeline), this.names, at));
        break;
      case "tasks":
        body = tasksView(this.tasks, this.names, this.openTasks, at);
        break;
      case "rejections":
        body = rejectionsView(this.rejections);
        break;
      case "peers":
        body = peersView(this.status, this.names);
        break;
      case "node":
        body = nodeView(this.node, this.status);
        break;
    }
    this.main.replaceChildren(heading, body);
    paintSwatches(this.main);
    if (this.view === "leases") this.drawTimeline();
  }

  private viewData(): unknown {
    switch (this.view) {
      case "agents":
        return [this.cards, this.at === null ? Math.floor(this.now / 10_000) : 0];
      case "leases":
        return [this.leases, this.timeline];
      case "tasks":
        return this.tasks;
      case "rejections":
        return this.rejections;
      case "peers":
      case "node":
        return this.status;
    }
  }

  private drawTimeline(): void {
    const box = document.getElementById("timeline-box");
    if (!box || !this.timeline) return;
    if (box.dataset.dragging === "yes") return;
    const from = this.now - this.span;
    const to = this.now + Math.round(this.span / 8);
    this.drawn = drawTimeline({
      timeline: this.timeline,
      from,
      to,
      now: this.now,
      cursor: this.at ?? this.now,
      width: Math.max(280, box.clientWidth),
      names: this.names,
      onCursor: (ms) => this.setCursor(Math.min(0, Math.round((ms - Date.now()) / 1000))),
    });
    const svg = this.drawn.svg;
    svg.addEventListener("pointerdown", () => (box.dataset.dragging = "yes"));
    const release = () => delete box.dataset.dragging;
    svg.addEventListener("pointerup", release);
    svg.addEventListener("pointercancel", release);
    box.replaceChildren(
      this.timeline.resources.length === 0
        ? h("p", { class: "empty" }, `No claims between ${clockTime(from)} and ${clockTime(to)}.`)
        : svg,
      this.timeline.truncated ? h("p", { class: "note" }, "Only part of this window is shown: choose a shorter one.") : "",
    );
  }
}

/** The constraints of every row, each once (a pattern such as `deploy/*` shades several rows). */
function constraintsOf(timeline: Timeline | null): TimelineConstraint[] {
  const seen = new Map<string, TimelineConstraint>();
  for (const resource of timeline?.resources ?? []) {
    for (const constraint of resource.constraints) seen.set(constraint.entry_id, constraint);
  }
  return [...seen.values()];
}

function showProblem(root: HTMLElement, title: string, advice: string): void {
  root.replaceChildren(
    h("main", { id: "main", class: "problem" },
      h("div", { id: "problem", role: "alert" }, h("h1", {}, title), h("p", {}, advice))),
  );
}

async function boot(): Promise<void> {
  const root = document.getElementById("app")!;
  const token = takeToken();
  if (token === null || token === "") {
    showProblem(root, "This page needs the node's API token",
      "Open the address that `plexus ui` prints: it carries the token after the #, which the browser never sends to the server.");
    return;
  }
  const api = new Api(token);
  try {
    const node = await api.get<NodeInfo>("/v1/node");
    new App(api, node, node.namespace).start(root);
  } catch (error) {
    if (error instanceof AuthError) {
      forgetToken();
      showProblem(root, "The node refused this page's token",
        "Run `plexus ui` again and open the new address: the token it carries must be the one in api.token in the node's data directory.");
    } else {
      showProblem(root, "Cannot reach the node",
        `${error instanceof Error ? error.message : String(error)} (at ${fullTime(Date.now())}). Is \`plexus run\` still running?`);
    }
  }
}

void boot();
