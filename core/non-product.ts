/**
 * Stock codes that are not products: postage, fees, manual adjustments, discounts, samples,
 * vouchers. Derived from the Online Retail data set (2010-12-01..2011-12-09): of its codes that do
 * not start with a digit, these are the bookkeeping ones (description in brackets, line count):
 *
 *   POST (POSTAGE, 1256)          DOT (DOTCOM POSTAGE, 710)      C2 (CARRIAGE, 144)
 *   M, m (Manual, 571 + 1)        D (Discount, 77)               S (SAMPLES, 63)
 *   BANK CHARGES (37)             AMAZONFEE (AMAZON FEE, 34)     CRUK (CRUK Commission, 16)
 *   PADS (PADS TO MATCH ALL CUSHIONS, 4; priced 0.001, an adjustment device, not stock)
 *   B (Adjust bad debt, 3)        gift_0001_10..50 (Dotcomgiftshop Gift Voucher, 34)
 *
 * The other non-numeric codes, DCGS0003..DCGS0076, DCGSSBOY, DCGSSGIRL, ARE products (the
 * dotcom gift shop's own items: ashtray, party bags, dog collars) and stay products.
 * Matching is case-insensitive because the source has both 'M' and 'm'.
 */
export const NON_PRODUCT_CODES: ReadonlySet<string> = new Set([
  'POST',
  'DOT',
  'C2',
  'M',
  'D',
  'S',
  'B',
  'BANK CHARGES',
  'AMAZONFEE',
  'CRUK',
  'PADS',
]);

/** Gift vouchers: `gift_0001_<amount>`; any series number and amount is a voucher. */
const GIFT_VOUCHER = /^GIFT_\d{4}_\d+$/;

export function isNonProductCode(stockCode: string): boolean {
  const code = stockCode.trim().toUpperCase();
  return NON_PRODUCT_CODES.has(code) || GIFT_VOUCHER.test(code);
}
