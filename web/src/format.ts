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

/** A byte count, short (`1.2 MiB`). */
export function bytes(count: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Seconds as `m:ss.s` (or `h:mm:ss`). */
export function clock(seconds: number): string {
  const total = Math.max(0, seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}:${String(m).padStart(2, '0')}:${String(Math.floor(s)).padStart(2, '0')}`;
  return `${m}:${s.toFixed(1).padStart(4, '0')}`;
}

/** A `datetime-local` input's value as RFC 3339 (UTC), or '' when empty or invalid. */
export function rfc3339(local: string): string {
  if (!local.trim()) return '';
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}
