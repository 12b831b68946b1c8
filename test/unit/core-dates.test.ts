import { describe, expect, it } from 'vitest';
import {
  dateKey,
  dayOfWeek,
  hourOfDay,
  InvalidLocalDateTimeError,
  londonOffsetMinutes,
  londonToUtc,
  monthKey,
  utcToLondon,
} from '#core/dates';

const utc = (local: string) => londonToUtc(local).toISOString();

describe('londonToUtc', () => {
  it('is UTC+0 in winter and UTC+1 in summer', () => {
    expect(utc('2010-12-01T08:26:00')).toBe('2010-12-01T08:26:00.000Z');
    expect(utc('2011-07-15T12:00:30')).toBe('2011-07-15T11:00:30.000Z');
  });

  it('switches to BST at 01:00 GMT on 2011-03-27', () => {
    expect(utc('2011-03-27T00:59:59')).toBe('2011-03-27T00:59:59.000Z');
    expect(utc('2011-03-27T02:00:00')).toBe('2011-03-27T01:00:00.000Z');
    expect(utc('2011-03-27T23:59:59')).toBe('2011-03-27T22:59:59.000Z');
    expect(utc('2011-03-26T12:00:00')).toBe('2011-03-26T12:00:00.000Z');
  });

  it('moves a wall time inside the skipped hour forward (01:30 did not exist on 2011-03-27)', () => {
    expect(utc('2011-03-27T01:30:00')).toBe('2011-03-27T01:30:00.000Z');
    expect(utcToLondon(londonToUtc('2011-03-27T01:30:00'))).toBe('2011-03-27T02:30:00');
  });

  it('switches back to GMT at 01:00 UTC on 2011-10-30, reading the repeated hour as BST', () => {
    expect(utc('2011-10-30T00:30:00')).toBe('2011-10-29T23:30:00.000Z');
    expect(utc('2011-10-30T01:30:00')).toBe('2011-10-30T00:30:00.000Z');
    expect(utc('2011-10-30T02:00:00')).toBe('2011-10-30T02:00:00.000Z');
    expect(utc('2011-10-29T12:00:00')).toBe('2011-10-29T11:00:00.000Z');
    expect(utc('2011-10-31T12:00:00')).toBe('2011-10-31T12:00:00.000Z');
  });

  it('reports the offset in minutes', () => {
    expect(londonOffsetMinutes('2011-01-10T10:00:00')).toBe(0);
    expect(londonOffsetMinutes('2011-06-10T10:00:00')).toBe(60);
  });

  it('round-trips through utcToLondon outside the ambiguous hours', () => {
    for (const local of [
      '2010-12-01T08:26:00',
      '2011-03-27T03:15:00',
      '2011-08-31T23:59:59',
      '2011-12-09T12:50:00',
    ]) {
      expect(utcToLondon(londonToUtc(local))).toBe(local);
    }
  });

  it('rejects malformed or impossible wall times with a clear error', () => {
    for (const bad of [
      '2011-02-30T10:00:00',
      '2011-13-01T10:00:00',
      '2011-01-01T24:00:00',
      '2011-01-01T10:60:00',
    ]) {
      expect(() => londonToUtc(bad), bad).toThrow(InvalidLocalDateTimeError);
    }
    expect(() => londonToUtc('12/1/2010 8:26')).toThrow(/YYYY-MM-DDTHH:MM:SS/);
    expect(() => londonToUtc('2011-01-01T10:00:00Z')).toThrow(InvalidLocalDateTimeError);
    // Same hour as a valid time already cached: the rest of the string is still checked.
    londonToUtc('2011-01-01T10:00:00');
    for (const bad of ['2011-01-01T10x00:00', '2011-01-01T10:ab:00', '2011-01-01T10:00:0']) {
      expect(() => londonToUtc(bad), bad).toThrow(InvalidLocalDateTimeError);
    }
  });
});

describe('calendar keys', () => {
  it('takes the London calendar day, not the UTC one', () => {
    // 00:30 BST on 2011-10-30 is still 2011-10-29 in UTC.
    expect(dateKey('2011-10-30T00:30:00')).toBe(20111030);
    expect(monthKey('2011-10-30T00:30:00')).toBe('2011-10');
    expect(hourOfDay('2011-10-30T00:30:00')).toBe(0);
  });

  it('uses ISO days of week, Monday = 1 .. Sunday = 7', () => {
    expect(dayOfWeek('2010-12-01T08:26:00')).toBe(3); // a Wednesday
    expect(dayOfWeek('2011-12-04T10:00:00')).toBe(7); // a Sunday
    expect(dayOfWeek('2011-12-05T10:00:00')).toBe(1);
  });

  it('gives the same answer from the cache as on first sight', () => {
    const first = [dateKey('2011-05-05T17:01:02'), hourOfDay('2011-05-05T17:01:02')];
    const again = [dateKey('2011-05-05T17:59:59'), hourOfDay('2011-05-05T17:59:59')];
    expect(again).toEqual(first);
    expect(utc('2011-05-05T17:59:59')).toBe('2011-05-05T16:59:59.000Z');
  });
});
