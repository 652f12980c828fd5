// Starts real `plexus` nodes for the browser tests: each in its own data directory on
// 127.0.0.1, with its API token and a small JSON client of its HTTP API.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Resolves with the first stdout line matching `pattern`, or rejects after `timeoutMs`. */
function waitForLine(child, pattern, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; output so far:\n${seen}`)), timeoutMs);
    const onData = (chunk) => {
      seen += chunk.toString();
      for (const line of seen.split("\n")) {
        const match = line.match(pattern);
        if (match) {
          clearTimeout(timer);
          child.stdout.off("data", onData);
          resolve(match);
          return;
        }
      }
    };
    child.stdout.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`plexus exited with ${code} before ${what}; output:\n${seen}`));
    });
  });
}

export class TestNode {
  /**
   * The global options naming a data directory and its own config file, so that a config file
   * in the user's home (`$XDG_CONFIG_HOME/plexus/config.toml`) never changes a test node.
   */
  static options(dir) {
    return ["--data-dir", dir, "--config", join(dir, "config.toml")];
  }

  /** A new data directory with an identity and a log, for `start` (or offline publishes). */
  static prepare(binary, namespace) {
    const dir = mkdtempSync(join(tmpdir(), "plexus-ui-test-"));
    execFileSync(binary, [...TestNode.options(dir), "init", "--namespace", namespace], { stdio: "ignore" });
    return dir;
  }

  static async start(binary, namespace, bootstrap, prepared) {
    const dir = prepared ?? TestNode.prepare(binary, namespace);
    const args = [...TestNode.options(dir), "run", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--api-listen", "127.0.0.1:0"];
    if (bootstrap) args.push("--bootstrap", bootstrap);
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "inherit"] });
    const listening = waitForLine(child, /^listening on (\/ip4\/127\.0\.0\.1\/tcp\/\S+)/, 60_000, "the node to listen");
    const api = waitForLine(child, /HTTP API on http:\/\/(\S+)/, 60_000, "the node's API");
    const [[, address], [, origin]] = await Promise.all([listening, api]);
    const token = readFileSync(join(dir, "api.token"), "utf8").trim();
    return new TestNode(dir, child, address, `http://${origin}`, token);
  }

  constructor(dir, child, address, origin, token) {
    this.dir = dir;
    this.child = child;
    this.address = address;
    this.origin = origin;
    this.token = token;
  }

  async request(method, path, body) {
    const response = await fetch(this.origin + path, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
    return answer;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body);
  }

  /** Re-asks `probe` on every event of the node's stream until `check` holds. */
  async waitFor(what, probe, check, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    const controller = new AbortController();
    const events = await fetch(`${this.origin}/v1/events`, {
      headers: { Authorization: `Bearer ${this.token}` },
      signal: controller.signal,
    });
    const reader = events.body.getReader();
    try {
      for (;;) {
        const value = await probe();
        if (check(value)) return value;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(value)}`);
        // The next event, or the deadline, whichever comes first.
        await Promise.race([reader.read(), new Promise((resolve) => setTimeout(resolve, left))]);
      }
    } finally {
      controller.abort();
    }
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once("exit", resolve));
      this.child.kill("SIGTERM");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
