// The terminal WebSocket's messages (docs/web.md, "The terminal"), as pure functions.

/** What the server says in a text frame. */
export type ServerMessage =
  | { type: 'exit'; status?: number; signal?: string }
  | { type: 'closed'; reason: string };

/** The socket's URL for a terminal of `cols` x `rows` on `node` as `login`. */
export function terminalUrl(page: Location, node: string, login: string, cols: number, rows: number): string {
  const scheme = page.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = new URLSearchParams({ node, login, cols: String(cols), rows: String(rows) });
  return `${scheme}//${page.host}/api/terminal?${query}`;
}

/** The text frame telling the server the terminal's size. */
export function resizeMessage(cols: number, rows: number): string {
  return JSON.stringify({ type: 'resize', cols, rows });
}

/** A server text frame, or null when it is none we know. */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!value || typeof value !== 'object' || !('type' in value)) return null;
  const message = value as Record<string, unknown>;
  if (message.type === 'exit') {
    return {
      type: 'exit',
      status: typeof message.status === 'number' ? message.status : undefined,
      signal: typeof message.signal === 'string' ? message.signal : undefined,
    };
  }
  if (message.type === 'closed') {
    return { type: 'closed', reason: typeof message.reason === 'string' ? message.reason : '' };
  }
  return null;
}

/** How a shell ended, from its exit message. */
export function exitText(message: { status?: number; signal?: string }): string {
  if (message.signal) return `ended by signal ${message.signal}`;
  return `exit status ${message.status ?? '?'}`;
}

/** The banner shown once the socket is closed. */
export function closedText(reason: string | null, exit: string | null): string {
  const head = reason === null ? 'Connection lost' : `Connection closed: ${reason || 'no reason given'}`;
  return exit ? `${head} (${exit})` : head;
}
