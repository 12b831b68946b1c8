import { describe, expect, it } from 'vitest';
import { isNonProductCode, NON_PRODUCT_CODES } from '#core/non-product';

describe('isNonProductCode', () => {
  it.each([
    'POST',
    'DOT',
    'C2',
    'M',
    'm',
    'D',
    'S',
    'B',
    'BANK CHARGES',
    'AMAZONFEE',
    'CRUK',
    'PADS',
    'gift_0001_10',
    'gift_0001_50',
    'GIFT_0001_20',
  ])('%s is not a product', (code) => {
    expect(isNonProductCode(code)).toBe(true);
  });

  it.each([
    '85123A',
    '71053',
    '22423',
    '79323W',
    'DCGS0003',
    'DCGSSBOY',
    'DCGSSGIRL',
    'POSTCARD',
    'gift_card',
  ])('%s is a product', (code) => {
    expect(isNonProductCode(code)).toBe(false);
  });

  it('lists its codes in upper case so the case-insensitive lookup finds them', () => {
    for (const code of NON_PRODUCT_CODES) expect(code).toBe(code.toUpperCase());
  });
});
