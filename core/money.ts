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

const PRICE_3 = /^(-?)(\d{1,12})(?:\.(\d{1,3}))?$/;

/** Thousandths as an integer (exact: at most 15 digits < 2^53), or undefined for other text. */
export function thousandths(v: string): number | undefined {
  const m = PRICE_3.exec(v);
  if (!m) return undefined;
  const n = Number(m[2]) * 1000 + (m[3] ? Number(m[3].padEnd(3, '0')) : 0);
  return m[1] ? -n : n;
}

export function formatThousandths(n: number): string {
  const abs = Math.abs(n);
  const frac = abs % 1000;
  return `${n < 0 ? '-' : ''}${(abs - frac) / 1000}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

/** quantity x unitPrice, exact, always 3 decimals ('15.300'). */
export function lineTotal(quantity: number, unitPrice: string): string {
  if (!Number.isSafeInteger(quantity)) throw new InvalidMoneyError(String(quantity));
  // Hot path: integer thousandths times an integer is exact while the product stays below 2^53,
  // which covers every real line; Decimal handles the rest.
  const t = thousandths(unitPrice);
  if (t !== undefined) {
    const product = t * quantity;
    if (Number.isSafeInteger(product)) return product === 0 ? '0.000' : formatThousandths(product);
  }
  return fixed(toMoney(unitPrice).times(quantity), SCALE);
}

/** a + b, exact, 3 decimals. */
export function addMoney(a: string, b: string): string {
  return fixed(toMoney(a).plus(toMoney(b)), SCALE);
}

/** Exact sum with 3 decimals; '0.000' for no values. */
export function sumMoney(values: Iterable<string>): string {
  // Integer thousandths while every value has <= 3 decimals and the sum stays below 2^53 (a sum of
  // the whole data set is ~1e10); from the first value that does not fit, Decimal takes over.
  let fast = 0;
  let slow: Money | undefined;
  for (const v of values) {
    if (slow === undefined) {
      const t = thousandths(v);
      if (t !== undefined && Number.isSafeInteger(fast + t)) {
        fast += t;
        continue;
      }
      slow = new Money(fast).dividedBy(1000);
    }
    slow = slow.plus(toMoney(v));
  }
  if (slow === undefined) return fast === 0 ? '0.000' : formatThousandths(fast);
  return fixed(slow, SCALE);
}

/** For display only: rounds half up (away from zero) to `scale` decimals. */
export function formatMoney(v: string, scale = 2): string {
  return fixed(toMoney(v).toDecimalPlaces(scale, Decimal.ROUND_HALF_UP), scale);
}

/** Compares two amounts numerically: -1, 0 or 1 (for sorting and assertions without floats). */
export function compareMoney(a: string, b: string): -1 | 0 | 1 {
  return toMoney(a).comparedTo(toMoney(b)) as -1 | 0 | 1;
}
