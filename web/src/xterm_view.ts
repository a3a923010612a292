import { Terminal } from '@xterm/xterm';

/** A terminal that shows someone else's output: no keyboard, fixed size. */
export function readOnlyTerminal(cols: number, rows: number): Terminal {
  return new Terminal({
    cols: Math.max(2, cols),
    rows: Math.max(1, rows),
    disableStdin: true,
    cursorBlink: false,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 13,
    scrollback: 2000,
    theme: { background: '#101418', foreground: '#d8dee4' },
  });
}

/** Every line of a terminal's buffer, for tests. */
export function bufferText(term: Terminal | null): string {
  const buffer = term?.buffer.active;
  if (!buffer) return '';
  const lines: string[] = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
  return lines.join('\n');
}

/** A `COLSxROWS` resize event's size, or null. */
export function parseSize(data: string): { cols: number; rows: number } | null {
  const match = /^(\d+)x(\d+)$/.exec(data.trim());
  return match ? { cols: Number(match[1]), rows: Number(match[2]) } : null;
}
