// The lease timeline, drawn as SVG by hand: one row per resource, a bar per claim segment
// (solid while holding, pale while waiting, grey while blocked or rate-limited), constraints
// shaded behind, the future (what the node's fold predicts without new entries) greyed, and
// a cursor that can be dragged back in time.

import { agentColour, clockTime, fullTime, lateText, s, short } from "./dom";
import type { ResourceTimeline, Timeline, TimelineClaim, TimelineConstraint } from "./model";

export interface TimelineDrawing {
  timeline: Timeline;
  /** The window shown, which may be narrower than the one fetched. */
  from: number;
  to: number;
  now: number;
  cursor: number;
  width: number;
  names: Map<string, string>;
  onCursor: (ms: number) => void;
}

const AXIS_HEIGHT = 22;
const LANE_HEIGHT = 16;
const ROW_PADDING = 6;

export interface DrawnTimeline {
  svg: SVGElement;
  /** Moves the cursor without redrawing, so a drag in progress keeps its pointer. */
  moveCursor: (ms: number) => void;
}

export function drawTimeline(drawing: TimelineDrawing): DrawnTimeline {
  const { from, to, width } = drawing;
  const labelWidth = width < 560 ? 96 : 180;
  const plotWidth = Math.max(40, width - labelWidth - 10);
  const x = (ms: number) => labelWidth + ((Math.min(Math.max(ms, from), to) - from) / (to - from)) * plotWidth;
  const rows = drawing.timeline.resources.map((resource) => layoutRow(resource));
  const height = AXIS_HEIGHT + rows.reduce((sum, row) => sum + row.height, 0) + 4;
  const svg = s("svg", {
    class: "timeline",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Lease timeline of ${rows.length} resources from ${clockTime(from)} to ${clockTime(to)}; drag to move the time cursor, or use the time slider`,
  });
  svg.append(axis(from, to, x, height));
  let top = AXIS_HEIGHT;
  for (const row of rows) {
    svg.append(drawRow(row, top, x, labelWidth, plotWidth, drawing));
    top += row.height;
  }
  if (drawing.now < to) {
    svg.append(
      s("rect", { class: "future", x: x(drawing.now), y: AXIS_HEIGHT, width: x(to) - x(drawing.now), height: height - AXIS_HEIGHT },
        s("title", {}, "the future: what the fold says if nothing new arrives")),
    );
  }
  svg.append(s("line", { class: "now", x1: x(drawing.now), x2: x(drawing.now), y1: 0, y2: height }));
  const cursorLine = s("line", { y1: 0, y2: height });
  const cursorHandle = s("rect", { y: 0, width: 10, height: 12, rx: 2 });
  svg.append(s("g", { class: "cursor" }, cursorLine, cursorHandle));
  const moveCursor = (ms: number) => {
    const cursorX = x(ms);
    cursorLine.setAttribute("x1", String(cursorX));
    cursorLine.setAttribute("x2", String(cursorX));
    cursorHandle.setAttribute("x", String(cursorX - 5));
  };
  moveCursor(drawing.cursor);
  attachDrag(svg, (clientX) => {
    const bounds = svg.getBoundingClientRect();
    const offset = ((clientX - bounds.left) / bounds.width) * width;
    const ms = from + ((offset - labelWidth) / plotWidth) * (to - from);
    drawing.onCursor(Math.round(Math.min(Math.max(ms, from), drawing.now)));
  });
  return { svg, moveCursor };
}

interface Row {
  resource: ResourceTimeline;
  lanes: TimelineClaim[][];
  height: number;
}

/** Puts each claim in the first lane where it does not overlap the previous claim. */
function layoutRow(resource: ResourceTimeline): Row {
  const lanes: TimelineClaim[][] = [];
  const laneEnds: number[] = [];
  const claims = [...resource.claims].sort((a, b) => start(a) - start(b));
  for (const claim of claims) {
    let lane = laneEnds.findIndex((end) => end <= start(claim));
    if (lane < 0) {
      lane = lanes.length;
      lanes.push([]);
      laneEnds.push(0);
    }
    lanes[lane].push(claim);
    laneEnds[lane] = end(claim);
  }
  const height = Math.max(1, lanes.length) * LANE_HEIGHT + 2 * ROW_PADDING;
  return { resource, lanes, height };
}

const start = (claim: TimelineClaim) => claim.segments[0]?.from_ms ?? claim.claimed_ms;
const end = (claim: TimelineClaim) => claim.segments[claim.segments.length - 1]?.to_ms ?? claim.claimed_ms;

function drawRow(
  row: Row,
  top: number,
  x: (ms: number) => number,
  labelWidth: number,
  plotWidth: number,
  drawing: TimelineDrawing,
): SVGElement {
  const group = s("g", { class: "row", "data-resource": row.resource.resource });
  group.append(s("rect", { class: "row-back", x: labelWidth, y: top, width: plotWidth, height: row.height }));
  for (const constraint of row.resource.constraints) {
    group.append(shade(constraint, top, row.height, x));
  }
  group.append(
    s("text", { class: "row-label", x: 4, y: top + row.height / 2 + 4 },
      truncate(row.resource.resource, labelWidth < 120 ? 12 : 24),
      s("title", {}, row.resource.resource)),
  );
  row.lanes.forEach((lane, index) => {
    const y = top + ROW_PADDING + index * LANE_HEIGHT;
    for (const claim of lane) {
      const name = drawing.names.get(claim.author) ?? short(claim.author);
      for (const segment of claim.segments) {
        const left = x(segment.from_ms);
        const barWidth = Math.max(1.5, x(segment.to_ms) - left);
        const late = claim.late ? `; ${lateText(claim.late_after_ms)}` : "";
        const label = `${name} ${segment.standing.replace("_", " ")} ${row.resource.resource} ${clockTime(segment.from_ms)}–${clockTime(segment.to_ms)} (claim ${short(claim.claim_id)}${claim.action ? `, ${claim.action}` : ""}${late})`;
        const bar = s("rect", {
          class: `bar bar-${segment.standing}${claim.late ? " bar-late" : ""}`,
          x: left,
          y: y + 1,
          width: barWidth,
          height: LANE_HEIGHT - 3,
          rx: 2,
          fill: segment.standing === "holding" || segment.standing === "waiting" ? agentColour(claim.author) : undefined,
          "data-author": claim.author,
          "data-standing": segment.standing,
          "data-late": claim.late ? "true" : undefined,
        }, s("title", {}, label));
        group.append(bar);
        if (segment.standing === "holding" && barWidth > 48) {
          group.append(s("text", { class: "bar-label", x: left + 4, y: y + LANE_HEIGHT - 5 }, truncate(name, Math.floor(barWidth / 7))));
        }
      }
    }
  });
  return group;
}

function shade(constraint: TimelineConstraint, top: number, height: number, x: (ms: number) => number): SVGElement {
  const rule = constraint.rule;
  const description =
    rule.type === "notBefore"
      ? `nobody holds before ${fullTime(rule.at ?? 0)}`
      : rule.type === "maxHolders"
        ? `at most ${rule.limit} holders`
        : rule.type === "rateLimit"
          ? `at most ${rule.claims} claims per agent in ${Math.round((rule.windowMs ?? 0) / 1000)} s`
          : "exclusive";
  const until = rule.type === "notBefore" ? Math.min(constraint.expires_ms, rule.at ?? constraint.expires_ms) : constraint.expires_ms;
  const left = x(constraint.published_ms);
  return s("rect", {
    class: `constraint constraint-${rule.type}`,
    x: left,
    y: top,
    width: Math.max(0, x(until) - left),
    height,
  }, s("title", {}, `constraint on ${constraint.resource}: ${description}${constraint.note ? ` (${constraint.note})` : ""}, ${clockTime(constraint.published_ms)}–${clockTime(constraint.expires_ms)}`));
}

function axis(from: number, to: number, x: (ms: number) => number, height: number): SVGElement {
  const group = s("g", { class: "axis" });
  const steps = [1e3, 5e3, 1e4, 3e4, 6e4, 3e5, 6e5, 18e5, 36e5, 108e5, 216e5, 864e5];
  const step = steps.find((candidate) => (to - from) / candidate <= 8) ?? 864e5;
  for (let tick = Math.ceil(from / step) * step; tick <= to; tick += step) {
    group.append(s("line", { x1: x(tick), x2: x(tick), y1: AXIS_HEIGHT - 4, y2: height }));
    group.append(s("text", { x: x(tick) + 2, y: 12 }, clockTime(tick)));
  }
  return group;
}

/** Pointer dragging on the drawing moves the cursor (the slider does the same by keyboard). */
function attachDrag(svg: SVGElement, move: (clientX: number) => void): void {
  let dragging = false;
  svg.addEventListener("pointerdown", (event) => {
    dragging = true;
    svg.setPointerCapture(event.pointerId);
    move(event.clientX);
  });
  svg.addEventListener("pointermove", (event) => {
    if (dragging) move(event.clientX);
  });
  const stop = () => {
    dragging = false;
  };
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}
