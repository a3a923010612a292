// Node and token labels as the admin types them: `k=v` pairs separated by commas or lines.

/** The labels of a `k=v, k2=v2` list; throws naming the first entry without `=`. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const entry of text.split(/[,\n]/)) {
    const item = entry.trim();
    if (!item) continue;
    const at = item.indexOf('=');
    if (at <= 0) throw new Error(`"${item}" is not key=value`);
    labels[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  return labels;
}

/** Labels as a `k=v, k2=v2` list, sorted by key (text the gateway wrote stays as it is). */
export function labelText(labels: Record<string, string> | string | null | undefined): string {
  if (typeof labels === 'string') return labels;
  return Object.entries(labels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${value}`)
    .join(', ');
}

/** The names of a comma-separated list, without blanks. */
export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
}
