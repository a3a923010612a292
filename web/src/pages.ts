// The app's pages: the vendor's node list and the admin console's, each behind a permission.

/** A page's id, also its `#/id` hash. */
export type PageId = 'nodes' | 'sessions' | 'recordings' | 'audit' | 'users' | 'nodes-admin' | 'roles';

/** One entry of the top navigation. */
export interface PageLink {
  id: PageId;
  label: string;
  /** The permission GET /api/me must list; null for the page everyone has. */
  permission: string | null;
}

/** Every page, in navigation order. */
export const PAGES: readonly PageLink[] = [
  { id: 'nodes', label: 'Nodes', permission: null },
  { id: 'sessions', label: 'Live sessions', permission: 'sessions.observe' },
  { id: 'recordings', label: 'Recordings', permission: 'recordings.read' },
  { id: 'audit', label: 'Audit', permission: 'audit.read' },
  { id: 'users', label: 'Users', permission: 'users.manage' },
  { id: 'nodes-admin', label: 'Manage nodes', permission: 'nodes.manage' },
  { id: 'roles', label: 'Roles', permission: 'roles.manage' },
];

/** The pages a user holding `permissions` may see. */
export function pagesFor(permissions: readonly string[]): PageLink[] {
  return PAGES.filter((page) => page.permission === null || permissions.includes(page.permission));
}

/** The page a `#/id` hash names among `allowed`, else the node list. */
export function pageFromHash(hash: string, allowed: readonly PageLink[]): PageId {
  const id = hash.replace(/^#\/?/, '');
  return allowed.find((page) => page.id === id)?.id ?? 'nodes';
}
