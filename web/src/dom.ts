// A small DOM builder and the page's formatting helpers. Everything the node returns (names,
// notes, messages from other agents) goes into text nodes, never into HTML.

type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

export function h(tag: string, attributes: Attributes = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  append(element, children);
  return element;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag: string, attributes: Attributes = {}, ...children: Child[]): SVGElement {
  const element = document.createElementNS(SVG_NS, tag);
  setAttributes(element, attributes);
  append(element, children);
  return element;
}

function setAttributes(element: Element, attributes: Attributes): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.replace(/^on/, ""), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(element: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "object" ? child : String(child));
  }
}

/** Why a claim is marked late, in words (PROTOCOL.md §9.4). */
export function lateText(lateAfterMs: number | undefined): string {
  const seconds = Math.round((lateAfterMs ?? 0) / 1000);
  return `late: arrived by backfill ${seconds} s after its timestamp`;
}

/** The longer explanation behind the late mark, for its tooltip. */
export const LATE_EXPLAINED =
  "This node received the claim as history (a backfill after a partition, or a file) more than the clock-skew window after its timestamp: it was made across a long partition, or back-dated. It still counts in the lease order; other nodes may not mark it.";

/** The first 8 hex digits of an id, enough to tell agents apart on one screen. */
export function short(id: string): string {
  return id.slice(0, 8);
}

export function clockTime(ms: number): string {
  const date = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function fullTime(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

/** "12 s ago", "in 3 min": a duration relative to `now`. */
export function relative(ms: number, now: number): string {
  const delta = Math.round((ms - now) / 1000);
  const magnitude = Math.abs(delta);
  const text =
    magnitude < 60
      ? `${magnitude} s`
      : magnitude < 3600
        ? `${Math.round(magnitude / 60)} min`
        : magnitude < 86400
          ? `${Math.round(magnitude / 3600)} h`
          : `${Math.round(magnitude / 86400)} d`;
  return delta <= 0 ? `${text} ago` : `in ${text}`;
}

/** A stable colour per agent, from its id, readable on the page's light background. */
export function agentColour(id: string): string {
  let hash = 0;
  for (let index = 0; index < Math.min(id.length, 16); index++) {
    hash = (hash * 31 + id.charCodeAt(index)) >>> 0;
  }
  return `hsl(${hash % 360} 62% 42%)`;
}
