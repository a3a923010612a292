// The page paths the gateway serves index.html for.

/** The token of an `/invite/{token}` or `/setup/{token}` path, else null. */
export function inviteToken(pathname: string): string | null {
  const match = /^\/(?:invite|setup)\/([^/]+)\/?$/.exec(pathname);
  return match ? decodeURIComponent(match[1]) : null;
}
