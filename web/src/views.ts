// The views other than the timeline: agent cards, the lease table at the cursor, the task
// board, rejections, peers and the node's own state. Each is a pure function of the data.

import { agentColour, clockTime, fullTime, h, LATE_EXPLAINED, lateText, relative, short } from "./dom";
import type { Card, Claim, Lease, NodeInfo, NodeStatus, Rejection, Task, TimelineConstraint } from "./model";

export type Names = Map<string, string>;

function agentLabel(id: string, names: Names): HTMLElement {
  const name = names.get(id);
  return h("span", { class: "agent", title: id, "data-agent": id },
    h("span", { class: "swatch", "aria-hidden": "true", "data-colour": agentColour(id) }),
    name ? `${name} (${short(id)})` : short(id));
}

/** Sets the swatches' colours through the CSSOM (the page's CSP forbids inline style attributes). */
export function paintSwatches(root: HTMLElement): void {
  for (const swatch of root.querySelectorAll<HTMLElement>(".swatch[data-colour]")) {
    swatch.style.backgroundColor = swatch.dataset.colour ?? "";
  }
}

export function agentsView(cards: Card[], lastSeen: Map<string, number>, at: number): HTMLElement {
  if (cards.length === 0) {
    return h("p", { class: "empty" }, "No live capability cards at this time. Agents appear here once they announce a card (plexus announce).");
  }
  return h("ul", { class: "cards", "aria-label": "Live agents" },
    ...cards.map((card) => {
      const seen = Math.max(card.published_ms, lastSeen.get(card.author) ?? 0);
      return h("li", { class: "card", "data-agent": card.author },
        h("h3", {}, h("span", { class: "swatch", "aria-hidden": "true", "data-colour": agentColour(card.author) }), card.name),
        h("p", { class: "id", title: card.author }, `agent ${short(card.author)}`, card.version ? ` · v${card.version}` : ""),
        card.description ? h("p", {}, card.description) : null,
        h("ul", { class: "skills", "aria-label": "Skills" },
          ...card.skills.map((skill) =>
            h("li", { title: skill.description ?? "" }, skill.name || skill.id,
              ...(skill.tags ?? []).map((tag) => h("span", { class: "tag" }, tag))))),
        h("p", { class: "seen" },
          h("time", { datetime: fullTime(seen), title: fullTime(seen) }, `last seen ${relative(seen, at)}`),
          " · ",
          h("time", { datetime: fullTime(card.expires_ms), title: fullTime(card.expires_ms) }, `card expires ${relative(card.expires_ms, at)}`)));
    }));
}

export function leaseTable(leases: Lease[], constraints: TimelineConstraint[], names: Names, at: number): HTMLElement {
  const claimCell = (claims: Claim[]) =>
    claims.length === 0
      ? h("td", {}, "—")
      : h("td", {}, ...claims.map((claim) =>
          h("div", { class: "claim", "data-claim": claim.claim_id },
            agentLabel(claim.author, names),
            ` until ${clockTime(claim.expires_ms)}`,
            claim.action ? ` · ${claim.action}` : "",
            claim.standing === "blocked" && claim.until_ms ? ` · blocked until ${clockTime(claim.until_ms)}` : "",
            claim.standing === "rate_limited" ? " · rate-limited" : "",
            claim.late
              ? h("span", { class: "late", title: LATE_EXPLAINED, "data-late-after-ms": claim.late_after_ms ?? 0 }, lateText(claim.late_after_ms))
              : null)));
  const table = h("table", { class: "leases", "aria-label": `Leases at ${fullTime(at)}` },
    h("caption", {}, `Leases at ${clockTime(at)}`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Resource"), h("th", { scope: "col" }, "Held by"), h("th", { scope: "col" }, "Waiting, in order"), h("th", { scope: "col" }, "Not counted"))),
    h("tbody", {},
      ...(leases.length === 0
        ? [h("tr", {}, h("td", { colspan: 4, class: "empty" }, "Nobody holds or waits for anything at this time."))]
        : leases.map((lease) =>
            h("tr", { "data-resource": lease.resource, "data-holders": lease.holders.map((c) => c.author).join(" ") },
              h("th", { scope: "row" }, lease.resource, lease.max_holders > 1 ? ` (up to ${lease.max_holders})` : ""),
              claimCell(lease.holders),
              claimCell(lease.waiting),
              claimCell(lease.excluded))))));
  const live = constraints.filter((c) => c.published_ms <= at && at < c.expires_ms);
  return h("div", {}, table,
    live.length === 0 ? null : h("ul", { class: "constraints", "aria-label": "Constraints in force" },
      ...live.map((c) => h("li", {}, h("strong", {}, c.resource), ` ${describeRule(c)} until ${clockTime(c.expires_ms)}`, c.note ? ` — ${c.note}` : ""))));
}

export function describeRule(constraint: TimelineConstraint): string {
  const rule = constraint.rule;
  switch (rule.type) {
    case "notBefore":
      return `nobody holds before ${clockTime(rule.at ?? 0)}`;
    case "maxHolders":
      return `at most ${rule.limit} holders`;
    case "rateLimit":
      return `at most ${rule.claims} claims per agent in ${Math.round((rule.windowMs ?? 0) / 1000)} s`;
    default:
      return "exclusive";
  }
}

/** A2A's task states, in the board's column order. */
const TASK_STATES = [
  "TASK_STATE_SUBMITTED",
  "TASK_STATE_WORKING",
  "TASK_STATE_INPUT_REQUIRED",
  "TASK_STATE_AUTH_REQUIRED",
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_REJECTED",
];

export function stateName(state: string): string {
  return state.replace("TASK_STATE_", "").toLowerCase().replace("_", " ");
}

export function tasksView(tasks: Task[], names: Names, open: Set<string>, at: number): HTMLElement {
  const columns = TASK_STATES.filter(
    (state, index) => index < 2 || index === 4 || tasks.some((task) => task.state === state),
  );
  return h("div", { class: "board" },
    ...columns.map((state) => {
      const here = tasks.filter((task) => task.state === state).sort((a, b) => b.updated_ms - a.updated_ms);
      return h("section", { class: "column", "aria-label": `${stateName(state)}: ${here.length}`, "data-state": state },
        h("h3", {}, stateName(state), h("span", { class: "count" }, String(here.length))),
        ...here.map((task) => {
          const details = h("details", { class: "task", "data-task": task.task_id, open: open.has(task.task_id) },
            h("summary", {}, h("strong", {}, task.task_id), h("span", { class: "message" }, task.message),
              h("span", { class: "meta" }, agentLabel(task.updated_by, names), ` · ${relative(task.updated_ms, at)}`)),
            h("ol", { class: "history", "aria-label": `History of ${task.task_id}` },
              ...task.history.map((item) =>
                h("li", { class: item.rejected ? "rejected" : "" },
                  h("time", { datetime: fullTime(item.timestamp_ms) }, clockTime(item.timestamp_ms)),
                  ` ${stateName(item.state)} by `, agentLabel(item.author, names),
                  item.message ? `: ${item.message}` : "",
                  item.rejected ? h("span", { class: "why" }, ` refused: ${item.rejected}`) : null))));
          details.addEventListener("toggle", () => {
            if ((details as HTMLDetailsElement).open) open.add(task.task_id);
            else open.delete(task.task_id);
          });
          return details;
        }));
    }));
}

export function rejectionsView(rejections: Rejection[]): HTMLElement {
  if (rejections.length === 0) return h("p", { class: "empty" }, "This node has refused nothing.");
  return h("table", { class: "rejections" },
    h("caption", {}, `The ${rejections.length} newest refusals, newest first`),
    h("thead", {}, h("tr", {}, ...["Time", "Reason", "Rule", "Policy", "Detail", "From"].map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {},
      ...[...rejections].reverse().map((record) =>
        h("tr", { "data-reason": record.reason },
          h("td", {}, h("time", { datetime: fullTime(record.time_ms), title: fullTime(record.time_ms) }, clockTime(record.time_ms))),
          h("td", {}, record.reason),
          h("td", {}, record.rule ?? "—"),
          h("td", {}, record.policy_version === null ? "—" : `v${record.policy_version}`),
          h("td", { class: "detail" }, record.detail),
          h("td", {}, record.source)))));
}

export function peersView(status: NodeStatus | null, names: Names): HTMLElement {
  if (status === null) return h("p", { class: "empty" }, "Loading…");
  const peers = status.network.peers;
  return h("div", {},
    h("p", {}, `Topics: ${status.network.topics.join(", ") || "none"}`,
      status.network.connections ? ` · connections ${status.network.connections.incoming} in, ${status.network.connections.outgoing} out of at most ${status.network.connections.max_established}` : ""),
    peers.length === 0
      ? h("p", { class: "empty" }, "No peers connected.")
      : h("table", { class: "peers" },
          h("caption", {}, `${peers.length} connected peers`),
          h("thead", {}, h("tr", {}, ...["Peer", "Agent", "Score", "Direction", "Mesh topics"].map((title) => h("th", { scope: "col" }, title)))),
          h("tbody", {},
            ...peers.map((peer) =>
              h("tr", { "data-peer": peer.peer_id },
                h("td", { title: peer.peer_id }, `${peer.peer_id.slice(0, 12)}…`),
                h("td", {}, peer.agent_id ? agentLabel(peer.agent_id, names) : "—"),
                h("td", {}, peer.score === null ? "—" : peer.score.toFixed(2)),
                h("td", {}, peer.dialed ? "outbound" : "inbound"),
                h("td", {}, peer.mesh.join(", ") || "—"))))));
}

export function nodeView(node: NodeInfo, status: NodeStatus | null): HTMLElement {
  const own = status?.feeds.filter((feed) => feed.author === node.agent_id) ?? [];
  const row = (term: string, ...value: (string | HTMLElement)[]) => [h("dt", {}, term), h("dd", {}, ...value)];
  return h("div", {},
    h("dl", { class: "facts" },
      ...row("Agent id", h("code", {}, node.agent_id)),
      ...row("Peer id", h("code", {}, node.peer_id)),
      ...row("Version", node.version),
      ...row("Namespaces", node.namespaces.join(", ")),
      ...row("Listening on", ...node.listen_addrs.map((addr) => h("code", { class: "block" }, addr))),
      ...(status
        ? [
            ...row("Log size", `${status.log.entries} entries in ${status.log.feeds} feeds`),
            ...row("Pending, forks, rejected", `${status.log.pending} pending · ${status.log.forks} forks · ${status.log.rejected} rejected`),
            ...row("Quarantined feeds", String(status.quarantined.length)),
          ]
        : [])),
    h("h3", {}, "This node's own feed heads"),
    own.length === 0
      ? h("p", { class: "empty" }, "This agent has published nothing yet.")
      : h("table", { class: "feeds" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Namespace"), h("th", { scope: "col" }, "Seq"), h("th", { scope: "col" }, "Head entry id"))),
          h("tbody", {}, ...own.map((feed) => h("tr", { "data-feed": feed.namespace }, h("td", {}, feed.namespace), h("td", {}, String(feed.seq)), h("td", {}, h("code", {}, feed.id)))))));
}
