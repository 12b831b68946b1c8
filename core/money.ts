import { Decimal } from 'decimal.js';

/** Money errors carry the offending text so a quarantined row says what was wrong. */
export class InvalidMoneyError extends Error {
  constructor(
    readonly value: string,
    options?: { cause?: unknown },
  ) {
    super(`not a decimal amount: '${value}'`, options);
    this.name = 'InvalidMoneyError';
  }
}

/**
 * A private Decimal constructor: 40 significant digits hold any quantity (<= 1e7) times any price
 * (15 digits) exactly, and a sum of a million such totals, without touching the global config.
 */
const Money = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_UP });
type Money = Decimal;

const SCALE = 3;

function toMoney(v: string): Money {
  try {
    const d = new Money(v);
    if (!d.isFinite()) throw new Error('not finite');
    return d;
  } catch (err) {
    throw new InvalidMoneyError(v, { cause: err });
  }
}

/** `toFixed` keeps the sign of a negative zero ('-0.000' for -5 x 0); money has no negative zero. */
function fixed(d: Money, scale: number): string {
  return d.isZero() ? d.abs().toFixed(scale) : d.toFixed(scale);
}

/** quantity x unitPrice, exact, always 3 decimals ('15.300'). */
export function lineTotal(quantity: number, unitPrice: string): string {
  if (!Number.isSafeInteger(quantity)) throw new InvalidMoneyError(String(quantity));
  return fixed(toMoney(unitPrice).times(quantity), SCALE);
}

/** a + b, exact, 3 decimals. */
export function addMoney(a: string, b: string): string {
  return fixed(toMoney(a).plus(toMoney(b)), SCALE);
}

/** Exact sum with 3 decimals; '0.000' for no values. */
export function sumMoney(values: Iterable<string>): string {
  let acc = new Money(0);
  for (const v of values) acc = acc.plus(toMoney(v));
  return fixed(acc, SCALE);
}

/** For display only: rounds half up (away from zero) to `scale` decimals. */
export function formatMoney(v: string, scale = 2): string {
  return fixed(toMoney(v).toDecimalPlaces(scale, Decimal.ROUND_HALF_UP), scale);
}

/** Compares two amounts numerically: -1, 0 or 1 (for sorting and assertions without floats). */
export function compareMoney(a: string, b: string): -1 | 0 | 1 {
  return toMoney(a).comparedTo(toMoney(b)) as -1 | 0 | 1;
}
