// The gateway's JSON API (crates/gateway/src/web/openapi.json), same origin, under /api/.

/** A signed-in session, as login and invite redemption answer. */
export interface SignedIn {
  user: string;
  csrf: string;
  session_expires: string;
}

/** `GET /api/me`. */
export interface Me extends SignedIn {
  permissions: string[];
  expires: string | null;
}

/** One node the user may open a terminal on. */
export interface Node {
  name: string;
  labels: Record<string, string>;
  logins: string[];
  /** Whether the agent is connected; null for agentless nodes. */
  online: boolean | null;
  /** Whether the user may upload and download files there (/api/files). */
  file_transfer: boolean;
}

/** `GET /api/invite/{token}`. */
export interface InviteInfo {
  user: string;
  expires: string;
}

/** `POST /api/invite/{token}/enroll`. */
export interface Enrollment {
  secret_base32: string;
  otpauth_uri: string;
}

/** `POST /api/files`. */
export interface Uploaded {
  path: string;
  bytes: number;
}

/** A refusal, with the gateway's one-line message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// The session's CSRF token; every POST made while signed in carries it.
let csrf: string | null = null;

/** Remembers (or, with null, forgets) the session's CSRF token. */
export function setCsrf(token: string | null): void {
  csrf = token;
}

/** A message for the user from anything an API call threw. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Sends one API request; JSON answers are parsed, refusals thrown as ApiError. */
export async function request<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let payload: BodyInit | undefined;
  if (body instanceof Blob) {
    headers['Content-Type'] = 'application/octet-stream';
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'The gateway cannot be reached.');
  }
  const text = await response.text();
  const json: unknown = text ? parseJson(text) : null;
  if (!response.ok) throw new ApiError(response.status, refusal(response, json));
  return json as T;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function refusal(response: Response, json: unknown): string {
  if (json && typeof json === 'object' && 'error' in json && typeof json.error === 'string') {
    return json.error;
  }
  return `${response.status} ${response.statusText}`.trim();
}

function signedIn(session: SignedIn): SignedIn {
  setCsrf(session.csrf);
  return session;
}

const invitePath = (token: string) => `/api/invite/${encodeURIComponent(token)}`;

/** The signed-in user; an ApiError with status 401 when nobody is. */
export async function me(): Promise<Me> {
  const answer = await request<Me>('GET', '/api/me');
  setCsrf(answer.csrf);
  return answer;
}

/** Signs in with password and a TOTP code. */
export async function login(user: string, password: string, code: string): Promise<SignedIn> {
  return signedIn(await request<SignedIn>('POST', '/api/login', { user, password, totp_code: code }));
}

/** Ends the session and its terminals. */
export async function logout(): Promise<void> {
  try {
    await request<null>('POST', '/api/logout');
  } finally {
    setCsrf(null);
  }
}

/** The nodes the user may open a terminal on. */
export async function nodes(): Promise<Node[]> {
  return (await request<{ nodes: Node[] }>('GET', '/api/nodes')).nodes;
}

/** Whom an invite (or setup) link is for. */
export function invite(token: string): Promise<InviteInfo> {
  return request<InviteInfo>('GET', invitePath(token));
}

/** A new TOTP secret for the invite; the last one made counts. */
export function enroll(token: string): Promise<Enrollment> {
  return request<Enrollment>('POST', `${invitePath(token)}/enroll`);
}

/** Sets password and TOTP, uses the invite up and signs in. */
export async function redeem(token: string, password: string, code: string): Promise<SignedIn> {
  return signedIn(await request<SignedIn>('POST', invitePath(token), { password, totp_code: code }));
}

/** The URL of a file on a node; a GET downloads it. */
export function filesUrl(node: string, login: string, path: string): string {
  return `/api/files?${new URLSearchParams({ node, login, path })}`;
}

/** Uploads a file to `path` on the node (relative paths from the login's home). */
export function upload(node: string, login: string, path: string, file: Blob): Promise<Uploaded> {
  return request<Uploaded>('POST', filesUrl(node, login, path), file);
}
