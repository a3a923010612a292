// Cursor paging for the admin lists: the cursor of the page shown, the next page's, and a
// stack of the earlier pages' cursors for "previous".

/** Where a list is among its pages. */
export class Pager {
  /** The cursor the shown page was fetched with (null: the first page). */
  cursor = $state<string | null>(null);
  /** The next page's cursor, from the last answer (null: this is the last page). */
  next = $state<string | null>(null);
  private earlier = $state<(string | null)[]>([]);

  /** Whether there is a page before the shown one. */
  get hasPrevious(): boolean {
    return this.earlier.length > 0;
  }

  /** Back to the first page (new filters). */
  reset(): void {
    this.cursor = null;
    this.next = null;
    this.earlier = [];
  }

  /** Moves to the next page; false when there is none. */
  forward(): boolean {
    if (this.next === null) return false;
    this.earlier.push(this.cursor);
    this.cursor = this.next;
    return true;
  }

  /** Moves to the previous page; false when there is none. */
  back(): boolean {
    if (this.earlier.length === 0) return false;
    this.cursor = this.earlier.pop() ?? null;
    return true;
  }
}
