import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import type { Node } from './api';
import { clipboardKeys, copyText } from './clipboard';
import { closedText, exitText, parseServerMessage, resizeMessage, terminalUrl } from './terminal_protocol';

/** Where a terminal's socket is: the value of the `terminal` element's data-state. */
export type TerminalState = 'connecting' | 'open' | 'closed';

const encoder = new TextEncoder();
let nextId = 1;

/** One terminal tab: an xterm and its WebSocket to `login@node`. */
export class TerminalSession {
  readonly id = nextId++;
  readonly title: string;
  state = $state<TerminalState>('connecting');
  /** The closed / lost banner, empty while the socket is up. */
  message = $state('');

  private term: Terminal | null = null;
  private readonly fit = new FitAddon();
  private socket: WebSocket | null = null;
  private observer: ResizeObserver | null = null;
  private sentSize = '';
  private reason: string | null = null;
  private exit: string | null = null;

  constructor(
    readonly node: Node,
    readonly login: string,
  ) {
    this.title = `${login}@${node.name}`;
  }

  /** Opens the xterm in `element`, fits it, and connects. */
  attach(element: HTMLElement): void {
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: '#101418', foreground: '#d8dee4' },
    });
    this.term = term;
    term.loadAddon(this.fit);
    term.open(element);
    this.refit(element);
    term.onData((data) => this.send(encoder.encode(data)));
    term.onBinary((data) => this.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
    term.onResize(({ cols, rows }) => this.sendSize(cols, rows));
    term.onSelectionChange(() => copyText(term.getSelection()));
    term.attachCustomKeyEventHandler((event) => clipboardKeys(term, event));
    this.observer = new ResizeObserver(() => this.refit(element));
    this.observer.observe(element);
    this.connect(term);
    term.focus();
  }

  /** Gives the keyboard to this terminal. */
  focus(): void {
    this.term?.focus();
  }

  /** Every line of the terminal's buffer, for tests. */
  text(): string {
    const buffer = this.term?.buffer.active;
    if (!buffer) return '';
    const lines: string[] = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  }

  /** Closes the socket (the gateway hangs the shell up) and frees the xterm. */
  dispose(): void {
    this.observer?.disconnect();
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close(1000);
    }
    this.term?.dispose();
  }

  private connect(term: Terminal): void {
    this.sentSize = `${term.cols}x${term.rows}`;
    const socket = new WebSocket(terminalUrl(location, this.node.name, this.login, term.cols, term.rows));
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.onopen = () => {
      this.state = 'open';
      // The size may have changed while connecting.
      this.sendSize(term.cols, term.rows);
    };
    socket.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
      if (typeof event.data !== 'string') {
        term.write(new Uint8Array(event.data));
        return;
      }
      const message = parseServerMessage(event.data);
      if (message?.type === 'exit') this.exit = exitText(message);
      if (message?.type === 'closed') this.reason = message.reason;
    };
    socket.onclose = () => {
      this.state = 'closed';
      this.message = closedText(this.reason, this.exit);
      term.options.disableStdin = true;
      term.options.cursorBlink = false;
    };
  }

  private refit(element: HTMLElement): void {
    // A hidden tab has no size; it fits again when shown.
    if (element.clientWidth === 0 || element.clientHeight === 0) return;
    try {
      this.fit.fit();
    } catch {
      // Not rendered yet; the next resize fits it.
    }
  }

  private send(bytes: Uint8Array): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(bytes);
  }

  private sendSize(cols: number, rows: number): void {
    const size = `${cols}x${rows}`;
    if (size === this.sentSize || this.socket?.readyState !== WebSocket.OPEN) return;
    this.sentSize = size;
    this.socket.send(resizeMessage(cols, rows));
  }
}
