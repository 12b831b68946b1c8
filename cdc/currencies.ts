/**
 * ISO 4217 currency names, for dim_currency (totesys keeps only the code). The common currencies,
 * not the whole standard: a code outside this table gets UNKNOWN_CURRENCY_NAME rather than failing
 * the run, and `currencyName` says so in its name so a report shows it.
 */
export const ISO_4217: Readonly<Record<string, string>> = {
  AED: 'UAE Dirham',
  ARS: 'Argentine Peso',
  AUD: 'Australian Dollar',
  BGN: 'Bulgarian Lev',
  BRL: 'Brazilian Real',
  CAD: 'Canadian Dollar',
  CHF: 'Swiss Franc',
  CLP: 'Chilean Peso',
  CNY: 'Yuan Renminbi',
  COP: 'Colombian Peso',
  CZK: 'Czech Koruna',
  DKK: 'Danish Krone',
  EGP: 'Egyptian Pound',
  EUR: 'Euro',
  GBP: 'Pound Sterling',
  HKD: 'Hong Kong Dollar',
  HUF: 'Forint',
  IDR: 'Rupiah',
  ILS: 'New Israeli Sheqel',
  INR: 'Indian Rupee',
  ISK: 'Iceland Krona',
  JPY: 'Yen',
  KRW: 'Won',
  MXN: 'Mexican Peso',
  MYR: 'Malaysian Ringgit',
  NGN: 'Naira',
  NOK: 'Norwegian Krone',
  NZD: 'New Zealand Dollar',
  PHP: 'Philippine Peso',
  PKR: 'Pakistan Rupee',
  PLN: 'Zloty',
  RON: 'Romanian Leu',
  SAR: 'Saudi Riyal',
  SEK: 'Swedish Krona',
  SGD: 'Singapore Dollar',
  THB: 'Baht',
  TRY: 'Turkish Lira',
  TWD: 'New Taiwan Dollar',
  UAH: 'Hryvnia',
  USD: 'US Dollar',
  VND: 'Dong',
  ZAR: 'Rand',
};

export const UNKNOWN_CURRENCY_NAME = 'Unknown currency';

/** The ISO 4217 name of a code (case and surrounding space ignored). */
export function currencyName(code: string): string {
  const key = code.trim().toUpperCase();
  return ISO_4217[key] ?? `${UNKNOWN_CURRENCY_NAME} ${key}`;
}
