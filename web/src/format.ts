// How values from the API read on the page.

/** An RFC 3339 time in the browser's locale. */
export function when(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A node's `online` field: agent connected, not connected, or agentless. */
export function onlineText(online: boolean | null): string {
  if (online === null) return 'direct';
  return online ? 'online' : 'offline';
}

/** The last part of a remote path, for a download's file name. */
export function baseName(path: string): string {
  return path.split('/').filter(Boolean).pop() ?? '';
}
