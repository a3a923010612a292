import type { Terminal } from '@xterm/xterm';

/** Copies text to the clipboard where the browser allows it; failures are ignored. */
export function copyText(text: string): void {
  if (!text || !navigator.clipboard) return;
  navigator.clipboard.writeText(text).catch(() => {});
}

/**
 * xterm's custom key handler: Ctrl+Shift+C copies the selection, Ctrl+Shift+V is left to
 * the browser, whose paste event xterm then handles. False means xterm ignores the key.
 */
export function clipboardKeys(term: Terminal, event: KeyboardEvent): boolean {
  if (event.type !== 'keydown' || !event.ctrlKey || !event.shiftKey) return true;
  if (event.code === 'KeyC') {
    copyText(term.getSelection());
    event.preventDefault();
    return false;
  }
  return event.code !== 'KeyV';
}
