// The watch WebSocket's text frames (docs/admin.md, "Live sessions"), as pure functions.

/** What the server says about the watched session. */
export type WatchMessage =
  | { type: 'start'; cols: number; rows: number }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'closed'; reason: string };

/** A watch text frame, or null when it is none we know. */
export function parseWatchMessage(text: string): WatchMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!value || typeof value !== 'object') return null;
  const message = value as Record<string, unknown>;
  if (message.type === 'start' || message.type === 'resize') {
    const { cols, rows } = message;
    if (typeof cols !== 'number' || typeof rows !== 'number') return null;
    return { type: message.type, cols, rows };
  }
  if (message.type === 'closed') {
    return { type: 'closed', reason: typeof message.reason === 'string' ? message.reason : '' };
  }
  return null;
}

/** The banner once the watch socket is closed. */
export function watchClosedText(reason: string | null): string {
  return reason === null ? 'Watch connection lost' : `Session ended: ${reason || 'no reason given'}`;
}
