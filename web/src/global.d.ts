declare global {
  interface Window {
    /** The active terminal's buffer text, for the browser tests. */
    portcullisTerminalText: () => string;
  }
}

export {};
