// The admin console's part of the API (docs/admin.md). Each path answers 404 to callers
// without its permission, so the UI only calls what GET /api/me says the user holds.

import { ApiError, request, type Node } from './api';

export { errorText } from './api';

/** One page of a list, with the cursor of the next (null on the last page). */
export interface Page {
  next_cursor: string | null;
}

/** A live session, as `GET /api/sessions` lists it. */
export interface LiveSession {
  id: string;
  user: string;
  node: string;
  login: string;
  client: string;
  kind: 'shell' | 'exec' | 'sftp' | string;
  recorded: boolean;
  start: string;
  bytes_in: number;
  bytes_out: number;
}

/** A recording, as listed. */
export interface Recording {
  id: string;
  session_id: string;
  user: string;
  node: string;
  login: string;
  client: string;
  command: string | null;
  bytes: number;
  complete: boolean;
  start: string;
  end: string | null;
  /** Seconds; null while the recording still runs. */
  duration: number | null;
  /** Seconds of a running recording surely in its file when answered; null once ended. */
  written: number | null;
}

/** `GET /api/recordings/{id}`: what the player needs besides the list's fields. */
export interface RecordingDetail extends Recording {
  width: number;
  height: number;
  /** Times (seconds) of the screen snapshots seeking starts from. */
  keyframes: number[];
}

/** What the recordings list is narrowed to; empty strings are left out. */
export interface RecordingFilter {
  user?: string;
  node?: string;
  since?: string;
  until?: string;
  complete?: 'true' | 'false' | '';
}

/** One line of recorded output matching a search. */
export interface SearchHit {
  recording_id: string;
  user: string;
  node: string;
  start: string;
  /** Seconds from the recording's start. */
  t: number;
  line: string;
}

/** An asciicast v2 event: time, code (`o` output, `r` resize, `i` input, `m` marker), data. */
export type CastEvent = [number, string, string];

/** `GET /api/recordings/{id}/frames`. */
export interface Frames {
  /** The keyframe time the screen was taken at. */
  start: number;
  /** The terminal's size at `start`. */
  cols: number;
  rows: number;
  /** Output that redraws the screen as at `start` on a freshly reset terminal. */
  screen: string;
  events: CastEvent[];
  /** Whether the recording ends within the window asked for. */
  end: boolean;
  /** The events are complete up to here: the next request starts after it. */
  through: number;
}

/** An audit event exactly as in the log: fixed keys plus the event's own. */
export interface AuditEvent {
  seq: number;
  time: string;
  type: string;
  user?: string | null;
  src_ip?: string | null;
  node?: string | null;
  session_id?: string | null;
  [key: string]: unknown;
}

/** What the audit list is narrowed to. */
export interface AuditFilter {
  type?: string;
  user?: string;
  node?: string;
  session?: string;
  since?: string;
  until?: string;
}

/** `GET /api/audit/verify`. */
export interface ChainState {
  ok: boolean;
  verified_up_to: number;
  broken_at: number | null;
  error: string | null;
}

/** An account, as `GET /api/users` lists it. */
export interface User {
  name: string;
  roles: string[];
  enrolled: boolean;
  keys: number;
  locked: boolean;
  expires: string | null;
}

/** A new account's (or re-enrollment's) one-time link. */
export interface Invitation {
  name?: string;
  invite_url: string;
}

/** What a `nodes.manage` caller sees of a node besides the vendor fields. */
export interface NodeManage {
  source: string;
  addr: string | null;
  host_key: string | null;
  labels_static: Record<string, string>;
}

/** A node as `GET /api/nodes` answers a `nodes.manage` caller. */
export interface ManagedNode extends Node {
  manage?: NodeManage;
}

/** An agent join token (never the secret itself). */
export interface JoinToken {
  id: string;
  /** The labels an agent joining with it gets, as a map or as `k=v` text. */
  labels: Record<string, string> | string | null;
  expires: string | null;
  /** Whether (or when) it was used. */
  used: boolean | string | null;
  /** `valid`, `used`, `expired` or `revoked`, where the gateway says. */
  state?: string;
}

/** A role and its definition. */
export interface Role {
  name: string;
  toml: string;
  builtin?: boolean;
}

// Called when a request finds the session gone, so the app can show the sign-in page.
let sessionEnded: () => void = () => {};

/** Sets what happens when an admin request answers 401. */
export function onSessionEnded(handler: () => void): void {
  sessionEnded = handler;
}

async function call<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
  try {
    return await request<T>(method, path, body);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) sessionEnded();
    throw error;
  }
}

/** A query string of the non-empty values, with a leading `?` (or nothing). */
export function query(values: Record<string, string | number | null | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    if (value !== null && value !== undefined && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

const part = encodeURIComponent;

// --- live sessions ---

/** Live sessions, oldest first. */
export async function liveSessions(): Promise<LiveSession[]> {
  return (await call<{ sessions: LiveSession[] }>('GET', '/api/sessions')).sessions;
}

/** Ends a live session; its user sees "session closed by gateway". */
export function killSession(id: string): Promise<{ killed: boolean }> {
  return call('POST', `/api/sessions/${part(id)}/kill`);
}

/** The watch socket's URL for a live session. */
export function watchUrl(page: Location, id: string): string {
  const scheme = page.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${page.host}/api/sessions/${part(id)}/watch`;
}

// --- recordings ---

/** A page of recordings, newest first. */
export function recordings(filter: RecordingFilter, cursor: string | null): Promise<Page & { recordings: Recording[] }> {
  return call('GET', `/api/recordings${query({ ...filter, cursor })}`);
}

/** Lines of recorded output containing every word of `q`. */
export function searchRecordings(q: string, cursor: string | null): Promise<Page & { hits: SearchHit[] }> {
  return call('GET', `/api/recordings/search${query({ q, cursor })}`);
}

/** One recording with its size and keyframes. */
export function recording(id: string): Promise<RecordingDetail> {
  return call('GET', `/api/recordings/${part(id)}`);
}

/** The asciicast file's URL (a download). */
export function castUrl(id: string): string {
  return `/api/recordings/${part(id)}/cast`;
}

/**
 * The screen at (the keyframe before) `from` and the events up to `until`; with
 * `eventsOnly`, just the events after `from`.
 */
export function frames(id: string, from: number, until: number, eventsOnly = false): Promise<Frames> {
  const window = query({
    from: seconds(from, Math.floor),
    until: seconds(until, Math.ceil),
    events_only: eventsOnly ? 'true' : null,
  });
  return call('GET', `/api/recordings/${part(id)}/frames${window}`);
}

// Times in queries: milliseconds are plenty, and keep URLs short. Rounded outwards, so a
// window never loses an event at its edges (the player drops those it already has).
const seconds = (t: number, round: (x: number) => number) => String(Math.max(0, round(t * 1000) / 1000));

// --- audit ---

/** A page of audit events, newest first. */
export function auditEvents(filter: AuditFilter, cursor: string | null): Promise<Page & { events: AuditEvent[] }> {
  return call('GET', `/api/audit${query({ ...filter, cursor })}`);
}

/** The hash chain checked end to end. */
export function verifyAudit(): Promise<ChainState> {
  return call('GET', '/api/audit/verify');
}

// --- users ---

/** Every account. */
export async function users(): Promise<User[]> {
  return (await call<{ users: User[] }>('GET', '/api/users')).users;
}

/** Makes an account and answers its one-time enrollment link. */
export function inviteUser(name: string, roles: string[], ttl: string | null): Promise<Invitation> {
  return call('POST', '/api/users', { name, roles, ttl });
}

/** One of the per-account actions. */
export type UserAction = 'lock' | 'unlock' | 'expire' | 'reset-totp';

/** Locks, unlocks or expires an account, or clears its TOTP (answering a new link). */
export function userAction(name: string, action: UserAction): Promise<{ user?: unknown; invite_url?: string }> {
  return call('POST', `/api/users/${part(name)}/${action}`);
}

// --- nodes and join tokens ---

/** Every node, each with its `manage` object. */
export async function managedNodes(): Promise<ManagedNode[]> {
  return (await call<{ nodes: ManagedNode[] }>('GET', '/api/nodes')).nodes;
}

/** Replaces a node's static labels. */
export function setNodeLabels(name: string, labels: Record<string, string>): Promise<unknown> {
  return call('PUT', `/api/nodes/${part(name)}/labels`, { labels });
}

/** Forgets a node's pinned host key; the next connection pins the one it presents. */
export function repinNode(name: string): Promise<unknown> {
  return call('POST', `/api/nodes/${part(name)}/repin`);
}

/** Agent join tokens. */
export async function joinTokens(): Promise<JoinToken[]> {
  return (await call<{ tokens: JoinToken[] }>('GET', '/api/tokens')).tokens;
}

/** Makes a join token; the token itself is answered only this once. */
export function createJoinToken(ttl: string | null, labels: Record<string, string>): Promise<{ id?: string; token: string }> {
  return call('POST', '/api/tokens', { ttl, labels });
}

/** Revokes a join token. */
export function revokeJoinToken(id: string): Promise<unknown> {
  return call('POST', `/api/tokens/${part(id)}/revoke`);
}

// --- roles ---

/** Every role with its TOML. */
export async function roles(): Promise<Role[]> {
  return (await call<{ roles: Role[] }>('GET', '/api/roles')).roles;
}

/** Applies role definitions; a 400 names the bad line. */
export function applyRoles(toml: string): Promise<{ applied: string[] }> {
  return call('POST', '/api/roles', { toml });
}
