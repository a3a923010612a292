// The recording player's timing, as pure functions: a media clock that runs at a speed,
// which events are due, when to wake next, and when to fetch the next window.

import type { CastEvent } from './admin_api';

/** Seconds of recording one frames request covers. */
export const WINDOW = 30;

/** The speeds the player offers. */
export const SPEEDS = [0.5, 1, 2, 4, 8] as const;

/** Longest wait between two updates of the shown time (ms). */
export const MAX_WAKE_MS = 100;

/** Recording time, advancing at `speed` × wall time from an anchor while running. */
export interface Clock {
  /** Recording time (s) at the anchor. */
  media: number;
  /** Wall time (ms, performance.now()) at the anchor. */
  wall: number;
  speed: number;
  running: boolean;
}

/** The clock's recording time at wall time `now`. */
export function clockTime(clock: Clock, now: number): number {
  return clock.running ? clock.media + ((now - clock.wall) / 1000) * clock.speed : clock.media;
}

/** The clock re-anchored at `now` (same reading), with changes applied from there on. */
export function reanchor(clock: Clock, now: number, changes: Partial<Omit<Clock, 'media' | 'wall'>> = {}): Clock {
  return { ...clock, ...changes, media: clockTime(clock, now), wall: now };
}

/** A clock stopped at `media` from `now`. */
export function heldAt(clock: Clock, media: number, now: number): Clock {
  return { ...clock, media, wall: now };
}

/** How many of the (time-ordered) events are due at recording time `t`. */
export function dueCount(events: readonly CastEvent[], t: number): number {
  let count = 0;
  while (count < events.length && events[count][0] <= t) count++;
  return count;
}

/** The events at or before `t` (written at once after a seek) and those after (played). */
export function splitAt(events: readonly CastEvent[], t: number): { now: CastEvent[]; later: CastEvent[] } {
  const sorted = [...events].sort((a, b) => a[0] - b[0]);
  const n = dueCount(sorted, t);
  return { now: sorted.slice(0, n), later: sorted.slice(n) };
}

/** Whether to fetch more: the known events run out within a few seconds of playing. */
export function needsMore(known: number, t: number, speed: number): boolean {
  return known - t < Math.max(5, 3 * speed);
}

/** Milliseconds until the next event is due (or the next time update), at most MAX_WAKE_MS. */
export function wakeIn(nextEvent: number | null, t: number, speed: number): number {
  if (nextEvent === null) return MAX_WAKE_MS;
  const ms = ((nextEvent - t) / speed) * 1000;
  return Math.max(0, Math.min(MAX_WAKE_MS, ms));
}

/** `t` kept within the recording. */
export function clampTime(t: number, duration: number): number {
  if (!Number.isFinite(t)) return 0;
  return Math.min(Math.max(0, t), Math.max(0, duration));
}
