declare global {
  interface Window {
    /** The active terminal's buffer text, for the browser tests. */
    portcullisTerminalText: () => string;
    /** The watched session's buffer text (admin console), for the browser tests. */
    portcullisWatchText: () => string;
    /** The recording player's buffer text (admin console), for the browser tests. */
    portcullisPlayerText: () => string;
  }
}

export {};
