// The node's HTTP API as the page uses it: the token, JSON queries and the event stream.
//
// The token arrives in the address's fragment (`#token=...`), which browsers never send to the
// server. The page moves it to sessionStorage (gone when the tab closes), removes it from the
// address bar and history, and sends it only as an `Authorization: Bearer` header. The event
// stream is read with fetch rather than EventSource, because EventSource cannot send headers.

const TOKEN_KEY = "plexus.api-token";

/** The node refused the token (HTTP 401). */
export class AuthError extends Error {}

/** Any other failed request, with the node's own error message. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * Takes `token=...` out of the fragment into sessionStorage and strips it from the address bar;
 * returns the token to use (from the fragment, or from earlier in this tab), if any.
 */
export function takeToken(): string | null {
  const fragment = location.hash.replace(/^#/, "");
  const params = new URLSearchParams(fragment);
  const fromAddress = params.get("token");
  if (fromAddress !== null) {
    sessionStorage.setItem(TOKEN_KEY, fromAddress.trim());
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class Api {
  constructor(private readonly token: string) {}

  private headers(accept: string): HeadersInit {
    return { Authorization: `Bearer ${this.token}`, Accept: accept };
  }

  /** GETs a JSON document; `query` values that are undefined are left out. */
  async get<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const response = await fetch(url, { headers: this.headers("application/json"), cache: "no-store" });
    if (response.status === 401) throw new AuthError(await errorMessage(response));
    if (!response.ok) throw new RequestError(await errorMessage(response), response.status);
    return (await response.json()) as T;
  }

  /**
   * Follows `GET /v1/events` until the stream ends or `signal` aborts, calling `onEvent` for
   * each server-sent event. Resolves when the stream ends; rejects on a failed request.
   */
  async follow(
    namespace: string,
    onOpen: () => void,
    onEvent: (type: string, data: string) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const url = new URL("/v1/events", location.origin);
    url.searchParams.set("namespace", namespace);
    const response = await fetch(url, { headers: this.headers("text/event-stream"), signal, cache: "no-store" });
    if (response.status === 401) throw new AuthError(await errorMessage(response));
    if (!response.ok || response.body === null) {
      throw new RequestError(await errorMessage(response), response.status);
    }
    onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser(onEvent);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.push(value);
    }
  }
}

/** Splits a text/event-stream into events (the WHATWG server-sent events format). */
export class SseParser {
  private buffer = "";
  private type = "";
  private data: string[] = [];

  constructor(private readonly onEvent: (type: string, data: string) => void) {}

  push(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0) this.onEvent(this.type || "message", this.data.join("\n"));
      this.type = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return; // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
  }
}

async function errorMessage(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { error?: { message?: string } };
    if (body.error?.message) return body.error.message;
  } catch {
    // not JSON: fall through to the status line
  }
  return `HTTP ${response.status} ${response.statusText}`;
}
