import type { Terminal } from '@xterm/xterm';
import { errorText, frames, type CastEvent, type RecordingDetail } from './admin_api';
import {
  WINDOW,
  clampTime,
  clockTime,
  dueCount,
  heldAt,
  needsMore,
  reanchor,
  splitAt,
  wakeIn,
  type Clock,
} from './player';
import { parseSize } from './xterm_view';

/** How long to wait before asking again once an answer reached a running recording's written end. */
const POLL_MS = 1000;

/** Where the player is: the `player` element's data-state. */
export type PlayerState = 'loading' | 'playing' | 'paused' | 'ended';

/**
 * Plays one recording into a terminal a window at a time: a seek fetches the screen at
 * the keyframe before the target plus the events after it, and playing fetches the next
 * window's events before the known ones run out. The whole recording is never fetched.
 */
export class Playback {
  state = $state<PlayerState>('loading');
  /** Recording time shown (s). */
  time = $state(0);
  speed = $state(1);
  error = $state('');
  /** Where a recording that was running when opened turned out to end, once known. */
  endTime = $state<number | null>(null);

  private clock: Clock = { media: 0, wall: 0, speed: 1, running: false };
  /** Fetched events not yet written, in time order. */
  private queue: CastEvent[] = [];
  /** Events up to here have been received; the next request starts here. */
  private known = 0;
  /** Whether the recording's end has been received. */
  private end = false;
  private fetching = false;
  /** The latest event time received. */
  private latest = 0;
  /** No fetch before this performance.now() time: the last one reached the written end. */
  private quietUntil = 0;
  /** Bumped by every seek, so answers to older requests are dropped. */
  private generation = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly detail: RecordingDetail,
    private readonly term: Terminal,
  ) {}

  /** A recording still being written whose end has not arrived yet: no duration, no end. */
  get open(): boolean {
    return this.detail.duration === null && this.endTime === null;
  }

  get duration(): number {
    // A recording still being written may not say yet.
    return this.endTime ?? (Number(this.detail.duration) || 0);
  }

  /**
   * `t` within the recording. One still being written has no duration yet, so no end; one
   * cut off by a crash has a duration in whole seconds, so its last events may lie up to a
   * second past it.
   */
  private clamp(t: number): number {
    return this.open ? Math.max(0, t) : clampTime(t, this.duration + 1);
  }

  /** Shows the screen at `t` (the server picks the keyframe), then plays on if `play`. */
  async seek(target: number, play = this.state === 'playing'): Promise<void> {
    const t = this.clamp(target);
    const generation = ++this.generation;
    this.stopTimer();
    this.state = 'loading';
    this.time = t;
    this.error = '';
    this.fetching = false;
    this.quietUntil = 0;
    let answer;
    try {
      answer = await frames(this.detail.id, t, t + WINDOW);
    } catch (error) {
      if (generation !== this.generation) return;
      this.error = errorText(error);
      this.state = 'paused';
      return;
    }
    if (generation !== this.generation) return;
    const { now, later } = splitAt(answer.events, t);
    this.term.reset();
    // The size when the keyframe was taken: the session may have been resized before it.
    this.term.resize(Math.max(2, answer.cols || this.detail.width), Math.max(1, answer.rows || this.detail.height));
    this.term.write(answer.screen);
    for (const event of now) this.apply(event);
    this.queue = later;
    this.received(answer.events, answer.end, answer.start);
    this.known = answer.through;
    await new Promise<void>((done) => this.term.write('', done));
    if (generation !== this.generation) return;
    this.clock = { media: t, wall: performance.now(), speed: this.speed, running: play };
    if (this.finished(t)) {
      this.finish();
    } else {
      this.state = play ? 'playing' : 'paused';
      if (play) this.tick();
    }
  }

  /** Plays from the shown time (from the start once ended). */
  play(): void {
    if (this.state === 'ended') {
      void this.seek(0, true);
    } else if (this.state === 'paused') {
      this.clock = { media: this.time, wall: performance.now(), speed: this.speed, running: true };
      this.state = 'playing';
      this.tick();
    } else if (this.state === 'loading') {
      // Let the seek under way play on when it lands.
      this.clock = { ...this.clock, running: true };
      void this.seek(this.time, true);
    }
  }

  /** Stops at the shown time. */
  pause(): void {
    if (this.state === 'loading') {
      void this.seek(this.time, false);
      return;
    }
    if (this.state !== 'playing') return;
    this.stopTimer();
    this.clock = reanchor(this.clock, performance.now(), { running: false });
    this.time = this.clamp(this.clock.media);
    this.state = 'paused';
  }

  /** Plays at `speed` × real time from now on. */
  setSpeed(speed: number): void {
    this.speed = speed;
    this.clock = reanchor(this.clock, performance.now(), { speed });
    if (this.state === 'playing') {
      this.stopTimer();
      this.tick();
    }
  }

  /** Stops for good (the player is gone). */
  dispose(): void {
    this.generation++;
    this.stopTimer();
  }

  private tick(): void {
    this.timer = null;
    if (this.state !== 'playing') return;
    const wall = performance.now();
    let t = clockTime(this.clock, wall);
    if (!this.end && t > this.known) {
      // Past what has arrived: hold the clock until the next window does.
      t = this.known;
      this.clock = heldAt(this.clock, t, wall);
    }
    const due = dueCount(this.queue, t);
    for (const event of this.queue.splice(0, due)) this.apply(event);
    this.time = this.clamp(t);
    if (this.finished(t)) {
      this.finish();
      return;
    }
    if (!this.end && !this.fetching && wall >= this.quietUntil && needsMore(this.known, t, this.speed)) {
      void this.fetchMore();
    }
    const next = this.queue.length > 0 ? this.queue[0][0] : this.end ? this.duration : null;
    this.timer = setTimeout(() => this.tick(), wakeIn(next, t, this.speed));
  }

  private async fetchMore(): Promise<void> {
    const generation = this.generation;
    const from = this.known;
    this.fetching = true;
    try {
      const until = from + WINDOW;
      const answer = await frames(this.detail.id, from, until, true);
      if (generation !== this.generation) return;
      const fresh = answer.events.filter((event) => event[0] > from).sort((a, b) => a[0] - b[0]);
      this.queue.push(...fresh);
      this.received(fresh, answer.end, from);
      this.known = Math.max(from, answer.through);
      // Short of the window asked for (less a millisecond for the query's rounding): the
      // end of what a running recording has written so far. Ask again in a while.
      if (!answer.end && answer.through < until - 0.002) this.quietUntil = performance.now() + POLL_MS;
    } catch (error) {
      if (generation !== this.generation) return;
      this.error = errorText(error);
      this.pause();
    } finally {
      if (generation === this.generation) this.fetching = false;
    }
  }

  /** Notes the events' latest time, and where the recording ends once its end arrived. */
  private received(events: readonly CastEvent[], end: boolean, start: number): void {
    for (const [t] of events) this.latest = Math.max(this.latest, t);
    this.end = end;
    if (end && this.detail.duration === null) this.endTime = Math.max(this.latest, start);
  }

  private finished(t: number): boolean {
    return this.end && this.queue.length === 0 && t >= this.duration - 1e-6;
  }

  private finish(): void {
    this.stopTimer();
    // One that was running when opened ends at its last event, once that has arrived.
    const end = this.open ? this.time : this.duration;
    this.clock = { ...this.clock, media: end, running: false };
    this.time = end;
    this.state = 'ended';
  }

  private apply([, code, data]: CastEvent): void {
    if (code === 'o') {
      this.term.write(data);
    } else if (code === 'r') {
      const size = parseSize(data);
      if (size) this.term.resize(size.cols, size.rows);
    }
  }

  private stopTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
