/**
 * Figures measured on the real "Online Retail" file (541,909 lines, 2010-12-01 .. 2011-12-09) that the
 * generator's distributions are derived from. docs/producer.md says how each one is used.
 */

export const REAL = {
  lines: 541_909,
  invoices: 25_900,
  cancellationInvoices: 3_836,
  cancellationLines: 9_288,
  adjustmentLines: 3,
  customers: 4_372,
  stockCodes: 4_070,
  productCodes: 4_037,
  linesWithoutCustomer: 135_080,
  zeroPriceLines: 2_515,
  duplicateLines: 5_268,
  missingDescriptionLines: 1_454,
  nonProductLines: 2_995,
  /** Lines per invoice over all invoices. */
  linesPerInvoice: { median: 10, mean: 20.92, p90: 47, p99: 192, max: 1_114 },
  /** Invoices with a customer (18,536): lines per invoice. */
  customerInvoiceLines: { median: 15, mean: 21.47, p90: 48, p99: 110, singleShare: 0.075 },
  /** Invoices without a customer (3,525): 2,315 single lines (stock adjustments), the rest large orders. */
  guestInvoiceLines: { count: 3_525, singles: 2_315, mean: 38.2 },
  /** Cancellation invoices: lines per invoice. */
  cancellationInvoiceLines: { median: 1, mean: 2.42, max: 101 },
  /** Trading days in the file and invoices per trading day. */
  tradingDays: 305,
  invoicesPerDay: 84.9,
} as const;

/** Lines per country (38 countries, the data set's own names). */
export const COUNTRY_LINES: ReadonlyArray<readonly [string, number]> = [
  ['United Kingdom', 495478],
  ['Germany', 9495],
  ['France', 8557],
  ['EIRE', 8196],
  ['Spain', 2533],
  ['Netherlands', 2371],
  ['Belgium', 2069],
  ['Switzerland', 2002],
  ['Portugal', 1519],
  ['Australia', 1259],
  ['Norway', 1086],
  ['Italy', 803],
  ['Channel Islands', 758],
  ['Finland', 695],
  ['Cyprus', 622],
  ['Sweden', 462],
  ['Unspecified', 446],
  ['Austria', 401],
  ['Denmark', 389],
  ['Japan', 358],
  ['Poland', 341],
  ['Israel', 297],
  ['USA', 291],
  ['Hong Kong', 288],
  ['Singapore', 229],
  ['Iceland', 182],
  ['Canada', 151],
  ['Greece', 146],
  ['Malta', 127],
  ['United Arab Emirates', 68],
  ['European Community', 61],
  ['RSA', 58],
  ['Lebanon', 45],
  ['Lithuania', 35],
  ['Brazil', 32],
  ['Czech Republic', 30],
  ['Bahrain', 19],
  ['Saudi Arabia', 10],
];

/** Lines without a customer, per country (the rest of each country's lines have one). */
export const GUEST_COUNTRY_LINES: ReadonlyArray<readonly [string, number]> = [
  ['United Kingdom', 133600],
  ['EIRE', 711],
  ['Hong Kong', 288],
  ['Unspecified', 202],
  ['Switzerland', 125],
  ['France', 66],
  ['Israel', 47],
  ['Portugal', 39],
  ['Bahrain', 2],
];

/** Customers per home country (4,372 customers; 8 of them appear under two countries). */
export const CUSTOMER_COUNTRIES: ReadonlyArray<readonly [string, number]> = [
  ['United Kingdom', 3950],
  ['Germany', 95],
  ['France', 87],
  ['Spain', 29],
  ['Belgium', 24],
  ['Switzerland', 20],
  ['Portugal', 19],
  ['Italy', 15],
  ['Finland', 12],
  ['Norway', 10],
  ['Australia', 9],
  ['Netherlands', 9],
  ['Channel Islands', 9],
  ['Austria', 9],
  ['Japan', 8],
  ['Denmark', 8],
  ['Sweden', 8],
  ['Cyprus', 7],
  ['Poland', 6],
  ['Israel', 4],
  ['Greece', 4],
  ['Canada', 4],
  ['Unspecified', 4],
  ['USA', 4],
  ['EIRE', 3],
  ['United Arab Emirates', 2],
  ['Bahrain', 2],
  ['Malta', 2],
  ['Lithuania', 1],
  ['Iceland', 1],
  ['Singapore', 1],
  ['Lebanon', 1],
  ['Saudi Arabia', 1],
  ['Czech Republic', 1],
  ['Brazil', 1],
  ['European Community', 1],
  ['RSA', 1],
];

/** Lines per invoice hour (local time): trading hours 6..20. */
export const HOUR_LINES: ReadonlyArray<readonly [number, number]> = [
  [6, 41],
  [7, 383],
  [8, 8909],
  [9, 34332],
  [10, 49037],
  [11, 57674],
  [12, 78709],
  [13, 72259],
  [14, 67471],
  [15, 77519],
  [16, 54516],
  [17, 28509],
  [18, 7974],
  [19, 3705],
  [20, 871],
];

/** Lines per weekday (0 = Sunday); no Saturday trading. */
export const WEEKDAY_LINES: readonly number[] = [64375, 95111, 101808, 94565, 103857, 82193, 0];

/** Lines per calendar month (1..12) averaged to a full month: the seasonal curve (Nov peak). */
export const MONTH_LINES: readonly number[] = [
  35147, 27707, 36748, 29916, 37030, 36874, 39518, 35284, 50226, 60742, 84711, 42481,
];

/**
 * Rank-frequency of the 4,037 product stock codes (lines at rank r). Flat head, steep tail: Zipf-like
 * with an exponent that grows with rank, so the generator interpolates this curve in log-log space.
 */
export const PRODUCT_RANK_LINES: ReadonlyArray<readonly [number, number]> = [
  [1, 2313],
  [3, 2159],
  [10, 1350],
  [30, 1107],
  [100, 698],
  [300, 411],
  [1000, 169],
  [2000, 64],
  [3000, 15],
  [3500, 5],
  [4037, 1],
];

/** Rank-frequency of invoices per customer (4,339 customers with a non-cancelled invoice). */
export const CUSTOMER_RANK_INVOICES: ReadonlyArray<readonly [number, number]> = [
  [1, 210],
  [3, 124],
  [10, 62],
  [30, 37],
  [100, 20],
  [300, 11],
  [1000, 5],
  [2000, 3],
  [3000, 1],
  [4372, 1],
];

/** The 20 most frequent quantities on sale lines with their line counts (91.6% of lines). */
export const QUANTITY_LINES: ReadonlyArray<readonly [number, number]> = [
  [1, 148227],
  [2, 81829],
  [12, 61063],
  [6, 40868],
  [4, 38484],
  [3, 37121],
  [24, 24021],
  [10, 22288],
  [8, 13129],
  [5, 11757],
  [48, 6068],
  [25, 5124],
  [20, 5019],
  [16, 4266],
  [36, 3822],
  [7, 2914],
  [9, 2037],
  [72, 1946],
  [100, 1819],
];

/** Unit price quantiles (GBP) over all lines: the generator's log-normal fit. */
export const PRICE_QUANTILES = { p10: 0.63, p25: 1.25, p50: 2.08, p75: 4.13, p90: 7.95, p99: 18 } as const;

/** Non-product stock codes with their line counts, descriptions and a typical price. */
export const NON_PRODUCT_CODES: ReadonlyArray<{
  code: string;
  lines: number;
  description: string;
  price: string;
}> = [
  { code: 'POST', lines: 1256, description: 'POSTAGE', price: '18' },
  { code: 'DOT', lines: 710, description: 'DOTCOM POSTAGE', price: '566.18' },
  { code: 'M', lines: 571, description: 'Manual', price: '2.55' },
  { code: 'C2', lines: 144, description: 'CARRIAGE', price: '50' },
  { code: 'D', lines: 77, description: 'Discount', price: '18.62' },
  { code: 'S', lines: 63, description: 'SAMPLES', price: '10.4' },
  { code: 'BANK CHARGES', lines: 37, description: 'Bank Charges', price: '15' },
  { code: 'AMAZONFEE', lines: 34, description: 'AMAZON FEE', price: '5575.28' },
  { code: 'CRUK', lines: 16, description: 'CRUK Commission', price: '361.59' },
  { code: 'DCGSSGIRL', lines: 13, description: 'GIRLS PARTY BAG', price: '3.29' },
  // PADS carries the file's 3-decimal prices (0.001); weighted up (real: 4 lines) so that
  // a 100k-line run shows the quirk.
  { code: 'PADS', lines: 60, description: 'PADS TO MATCH ALL CUSHIONS', price: '0.001' },
];
