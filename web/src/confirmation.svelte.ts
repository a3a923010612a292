// The one confirm dialog of the admin pages: `await confirmation.ask(...)` answers yes or no.

class Confirmation {
  /** The question shown, or null when no dialog is open. */
  question = $state<string | null>(null);
  /** The label of the button that goes ahead. */
  action = $state('Yes');
  private resolve: ((yes: boolean) => void) | null = null;

  /** Shows the dialog; a question asked while another is open answers the older one no. */
  ask(question: string, action = 'Yes'): Promise<boolean> {
    this.answer(false);
    this.question = question;
    this.action = action;
    return new Promise((resolve) => (this.resolve = resolve));
  }

  /** Closes the dialog with the user's answer. */
  answer(yes: boolean): void {
    const resolve = this.resolve;
    this.resolve = null;
    this.question = null;
    resolve?.(yes);
  }
}

/** The page's confirm dialog. */
export const confirmation = new Confirmation();
