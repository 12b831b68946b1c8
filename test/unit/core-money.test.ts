import { describe, expect, it } from 'vitest';
import { addMoney, compareMoney, formatMoney, InvalidMoneyError, lineTotal, sumMoney } from '#core/money';

describe('lineTotal', () => {
  it('multiplies exactly with 3 decimals', () => {
    expect(lineTotal(6, '2.55')).toBe('15.300');
    expect(lineTotal(3, '0.1')).toBe('0.300');
    expect(lineTotal(1, '0.001')).toBe('0.001');
    expect(lineTotal(80995, '2.08')).toBe('168469.600');
  });

  it('keeps the sign of cancellations and never yields negative zero', () => {
    expect(lineTotal(-12, '1.25')).toBe('-15.000');
    expect(lineTotal(-5, '0')).toBe('0.000');
    expect(lineTotal(0, '-11062.06')).toBe('0.000');
  });

  it('is exact at the limits of the input schema (12 integer digits, 1e7 quantity)', () => {
    expect(lineTotal(10_000_000, '999999999999.999')).toBe('9999999999999990000.000');
  });

  it('rejects text that is not a number and non-integer quantities', () => {
    expect(() => lineTotal(1, 'abc')).toThrow(InvalidMoneyError);
    expect(() => lineTotal(1.5, '1')).toThrow(InvalidMoneyError);
    expect(() => lineTotal(1, 'Infinity')).toThrow(InvalidMoneyError);
  });
});

describe('addMoney and sumMoney', () => {
  it('adds without binary floating point error', () => {
    expect(addMoney('0.1', '0.2')).toBe('0.300');
    expect(sumMoney(Array.from({ length: 10 }, () => '0.1'))).toBe('1.000');
    // The float sum of the same values is 0.9999999999999999.
    expect(Array.from({ length: 10 }, () => 0.1).reduce((a, b) => a + b, 0)).not.toBe(1);
  });

  it('sums an empty iterable to zero and accepts any iterable', () => {
    expect(sumMoney([])).toBe('0.000');
    expect(sumMoney(new Set(['1.005', '-2.010']))).toBe('-1.005');
  });
});

describe('formatMoney', () => {
  it('rounds half away from zero for display', () => {
    expect(formatMoney('2.005')).toBe('2.01');
    expect(formatMoney('-2.005')).toBe('-2.01');
    expect(formatMoney('2.004')).toBe('2.00');
    expect(formatMoney('1234.5', 0)).toBe('1235');
    expect(formatMoney('-0.001')).toBe('0.00');
  });
});

describe('compareMoney', () => {
  it('orders numerically, not lexically', () => {
    expect(compareMoney('10.000', '9.5')).toBe(1);
    expect(compareMoney('2.50', '2.5')).toBe(0);
    expect(compareMoney('-1', '0')).toBe(-1);
  });
});

describe('lineTotal fast path', () => {
  it('agrees with decimal arithmetic on many generated prices and quantities', async () => {
    const { Decimal } = await import('decimal.js');
    let seed = 42;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let i = 0; i < 5000; i++) {
      const int = String(next() % 10 ** (1 + (i % 9)));
      const frac =
        i % 4 === 0
          ? ''
          : `.${String(next() % 1000)
              .padStart(3, '0')
              .slice(0, 1 + (i % 3))}`;
      const price = `${i % 7 === 0 ? '-' : ''}${int}${frac}`;
      const quantity = (next() % 200_001) - 100_000;
      const expected = new Decimal(price).times(quantity);
      expect(lineTotal(quantity, price), `${quantity} x ${price}`).toBe(
        expected.isZero() ? '0.000' : expected.toFixed(3),
      );
    }
  });
});

describe('sumMoney beyond the fast path', () => {
  it('switches to decimal arithmetic for more decimals or sums past 2^53 thousandths', () => {
    expect(sumMoney(['1.000', '0.0001', '2'])).toBe('3.000');
    expect(sumMoney(['0.0004', '0.0004'])).toBe('0.001');
    expect(sumMoney(['999999999999.999', '999999999999.999', '999999999999.999', '0.003'])).toBe(
      '3000000000000.000',
    );
    expect(sumMoney(['9007199254740.991', '0.001', '-0.001'])).toBe('9007199254740.991');
    expect(() => sumMoney(['1', 'x'])).toThrow(InvalidMoneyError);
  });
});
