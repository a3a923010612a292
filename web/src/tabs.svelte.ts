import type { Node } from './api';
import { TerminalSession } from './terminal_session.svelte';

/** The open terminal tabs and which one is shown. */
class Tabs {
  list = $state<TerminalSession[]>([]);
  activeId = $state<number | null>(null);

  /** The tab shown, if any. */
  get active(): TerminalSession | null {
    return this.list.find((tab) => tab.id === this.activeId) ?? null;
  }

  /** Opens a terminal on `node` as `login` in a new tab and shows it. */
  open(node: Node, login: string): void {
    const tab = new TerminalSession(node, login);
    this.list.push(tab);
    this.activeId = tab.id;
  }

  /** Shows a tab. */
  select(tab: TerminalSession): void {
    this.activeId = tab.id;
  }

  /** Closes a tab and shows its neighbour. */
  close(tab: TerminalSession): void {
    const index = this.list.indexOf(tab);
    if (index < 0) return;
    tab.dispose();
    this.list.splice(index, 1);
    if (this.activeId === tab.id) {
      this.activeId = this.list[Math.min(index, this.list.length - 1)]?.id ?? null;
    }
  }

  /** Closes every tab (at sign-out). */
  closeAll(): void {
    for (const tab of this.list) tab.dispose();
    this.list = [];
    this.activeId = null;
  }
}

/** The page's terminal tabs. */
export const tabs = new Tabs();

// For the browser tests: the shown terminal's buffer.
window.portcullisTerminalText = () => tabs.active?.text() ?? '';
