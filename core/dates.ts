import { LOCAL_DATE_TIME } from './invoice-line.ts';

/** Invoice dates are Europe/London wall-clock time without a zone (see DESIGN.md). */
export const SOURCE_TIME_ZONE = 'Europe/London';

export class InvalidLocalDateTimeError extends Error {
  constructor(
    readonly value: string,
    options?: { cause?: unknown },
  ) {
    super(`not a local date-time YYYY-MM-DDTHH:MM:SS: '${value}'`, options);
    this.name = 'InvalidLocalDateTimeError';
  }
}

const DAY_MS = 86_400_000;

const londonParts = new Intl.DateTimeFormat('en-GB', {
  timeZone: SOURCE_TIME_ZONE,
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

/** London's UTC offset in ms at a UTC instant (wall clock read as if UTC, minus the instant). */
function londonOffsetAt(utcMs: number): number {
  let y = 0;
  let mo = 0;
  let d = 0;
  let h = 0;
  let mi = 0;
  let s = 0;
  for (const p of londonParts.formatToParts(utcMs)) {
    if (p.type === 'year') y = Number(p.value);
    else if (p.type === 'month') mo = Number(p.value);
    else if (p.type === 'day') d = Number(p.value);
    else if (p.type === 'hour') h = Number(p.value);
    else if (p.type === 'minute') mi = Number(p.value);
    else if (p.type === 'second') s = Number(p.value);
  }
  const wall = Date.UTC(y, mo - 1, d, h, mi, s);
  return wall - (utcMs - (((utcMs % 1000) + 1000) % 1000));
}

/**
 * The offset to subtract from a wall-clock time read as UTC. Resolution follows Temporal's
 * 'compatible' rule: a time that occurs twice (the autumn hour) is the earlier one (BST), a time
 * that does not exist (the spring hour) is shifted forward by the gap (01:30 -> 02:30 BST).
 */
function offsetForWall(wallMs: number): number {
  const before = londonOffsetAt(wallMs - DAY_MS);
  const after = londonOffsetAt(wallMs + DAY_MS);
  if (before === after) return before;
  const earlier = Math.max(before, after);
  const later = Math.min(before, after);
  if (londonOffsetAt(wallMs - earlier) === earlier) return earlier;
  if (londonOffsetAt(wallMs - later) === later) return later;
  return before;
}

interface HourInfo {
  /** The wall-clock start of the hour, read as UTC. */
  wallMs: number;
  offsetMs: number;
  dateKey: number;
  /** ISO day of week: 1 = Monday .. 7 = Sunday. */
  dayOfWeek: number;
  hour: number;
}

// London changes offset only on whole hours, so one entry per local hour is exact. The bound keeps
// a long-running simulator from growing the cache forever; the real data set needs ~9k entries.
const MAX_CACHE = 200_000;
const hourCache = new Map<string, HourInfo>();

function hourInfo(local: string): HourInfo {
  const key = local.slice(0, 13);
  const hit = hourCache.get(key);
  if (hit) return hit;
  if (!LOCAL_DATE_TIME.test(local)) throw new InvalidLocalDateTimeError(local);
  const y = Number(local.slice(0, 4));
  const mo = Number(local.slice(5, 7));
  const d = Number(local.slice(8, 10));
  const h = Number(local.slice(11, 13));
  const wallMs = Date.UTC(y, mo - 1, d, h);
  const check = new Date(wallMs);
  // Date.UTC rolls 2011-02-30 over to March; a round trip that changes the fields means no such day.
  if (
    y < 1000 ||
    check.getUTCFullYear() !== y ||
    check.getUTCMonth() !== mo - 1 ||
    check.getUTCDate() !== d
  ) {
    throw new InvalidLocalDateTimeError(local);
  }
  if (h > 23) throw new InvalidLocalDateTimeError(local);
  const info: HourInfo = {
    wallMs,
    offsetMs: offsetForWall(wallMs),
    dateKey: y * 10_000 + mo * 100 + d,
    dayOfWeek: ((check.getUTCDay() + 6) % 7) + 1,
    hour: h,
  };
  if (hourCache.size >= MAX_CACHE) hourCache.clear();
  hourCache.set(key, info);
  return info;
}

function minutesSeconds(local: string): number {
  const mi = Number(local.slice(14, 16));
  const s = Number(local.slice(17, 19));
  // The hour cache skipped the full pattern check, so check the rest of the string here.
  if (local.length !== 19 || local[13] !== ':' || local[16] !== ':' || !(mi <= 59 && s <= 59)) {
    throw new InvalidLocalDateTimeError(local);
  }
  return mi * 60_000 + s * 1000;
}

/** A wall-clock time read as UTC, in epoch ms (the value of a SQL `timestamp` without zone). */
export function wallClockMs(local: string): number {
  return hourInfo(local).wallMs + minutesSeconds(local);
}

/** The UTC instant of a London wall-clock time; correct on both sides of the BST switches. */
export function londonToUtc(local: string): Date {
  return new Date(londonToUtcMs(local));
}

/** As londonToUtc, in epoch milliseconds (no Date allocation on the hot path). */
export function londonToUtcMs(local: string): number {
  const info = hourInfo(local);
  return info.wallMs + minutesSeconds(local) - info.offsetMs;
}

let lastIsoLocal = '';
let lastIso = '';

/**
 * londonToUtc as an ISO string. Lines of one invoice share their date and arrive together, so
 * remembering the last answer skips most of the Date formatting.
 */
export function londonToUtcIso(local: string): string {
  if (local !== lastIsoLocal) {
    lastIso = new Date(londonToUtcMs(local)).toISOString();
    lastIsoLocal = local;
  }
  return lastIso;
}

/** The London calendar day as a number, e.g. 20111209 (the warehouse's dim_date key). */
export function dateKey(local: string): number {
  return hourInfo(local).dateKey;
}

/** 'YYYY-MM' of the London calendar day. */
export function monthKey(local: string): string {
  hourInfo(local);
  return local.slice(0, 7);
}

/** ISO day of week of the London calendar day: 1 = Monday .. 7 = Sunday. */
export function dayOfWeek(local: string): number {
  return hourInfo(local).dayOfWeek;
}

/** Hour of the London wall clock, 0..23. */
export function hourOfDay(local: string): number {
  return hourInfo(local).hour;
}

/** London's offset from UTC in minutes at that wall-clock time (0 in GMT, 60 in BST). */
export function londonOffsetMinutes(local: string): number {
  return hourInfo(local).offsetMs / 60_000;
}

/** A UTC instant as London wall-clock time 'YYYY-MM-DDTHH:MM:SS' (the inverse of londonToUtc). */
export function utcToLondon(instant: Date | number): string {
  const ms = typeof instant === 'number' ? instant : instant.getTime();
  if (!Number.isFinite(ms)) throw new InvalidLocalDateTimeError(String(instant));
  return new Date(ms + londonOffsetAt(ms)).toISOString().slice(0, 19);
}
