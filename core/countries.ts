/** A country as the source names it, with its ISO 3166-1 alpha-2 code and a sales region. */
export interface Country {
  name: string;
  isoCode: string;
  region: string;
}

export interface CountryInfo extends Country {
  /** False when the name is not one of COUNTRIES: such lines are kept, shown as region 'Unknown'. */
  known: boolean;
}

export const UNKNOWN_ISO_CODE = 'XX';
export const UNKNOWN_REGION = 'Unknown';

/**
 * Every country name of the Online Retail data set, spelled exactly as there (38 names).
 * Codes are ISO 3166-1 alpha-2 (always 2 letters, so they fit a CHAR(2) column) with these
 * choices for the names that are not countries:
 * - 'EIRE' is Ireland (IE), 'RSA' South Africa (ZA), 'USA' the United States (US).
 * - 'Channel Islands' (Jersey + Guernsey) has no joint code: JE, the larger island, so map
 *   visuals place it at the right spot; region 'UK' with the United Kingdom, as the shop ships
 *   and charges it like the UK.
 * - 'European Community' uses EU (exceptionally reserved in ISO 3166-1 for the European Union),
 *   region 'Europe (unspecified)': we know the continent, not the country.
 * - 'Unspecified' is XX (user-assigned range), region 'Unknown', the same as an unknown name
 *   but `known: true` because the source states it on purpose.
 * Regions follow the UN geoscheme, except Cyprus (Southern Europe, with the EU's Mediterranean
 * members) and the Middle East / Asia Pacific groupings used in retail reporting.
 */
export const COUNTRIES: ReadonlyArray<Country> = Object.freeze(
  (
    [
      ['United Kingdom', 'GB', 'UK'],
      ['Channel Islands', 'JE', 'UK'],
      ['EIRE', 'IE', 'Northern Europe'],
      ['Denmark', 'DK', 'Northern Europe'],
      ['Finland', 'FI', 'Northern Europe'],
      ['Iceland', 'IS', 'Northern Europe'],
      ['Lithuania', 'LT', 'Northern Europe'],
      ['Norway', 'NO', 'Northern Europe'],
      ['Sweden', 'SE', 'Northern Europe'],
      ['Austria', 'AT', 'Western Europe'],
      ['Belgium', 'BE', 'Western Europe'],
      ['France', 'FR', 'Western Europe'],
      ['Germany', 'DE', 'Western Europe'],
      ['Netherlands', 'NL', 'Western Europe'],
      ['Switzerland', 'CH', 'Western Europe'],
      ['Cyprus', 'CY', 'Southern Europe'],
      ['Greece', 'GR', 'Southern Europe'],
      ['Italy', 'IT', 'Southern Europe'],
      ['Malta', 'MT', 'Southern Europe'],
      ['Portugal', 'PT', 'Southern Europe'],
      ['Spain', 'ES', 'Southern Europe'],
      ['Czech Republic', 'CZ', 'Eastern Europe'],
      ['Poland', 'PL', 'Eastern Europe'],
      ['European Community', 'EU', 'Europe (unspecified)'],
      ['Bahrain', 'BH', 'Middle East'],
      ['Israel', 'IL', 'Middle East'],
      ['Lebanon', 'LB', 'Middle East'],
      ['Saudi Arabia', 'SA', 'Middle East'],
      ['United Arab Emirates', 'AE', 'Middle East'],
      ['Australia', 'AU', 'Asia Pacific'],
      ['Hong Kong', 'HK', 'Asia Pacific'],
      ['Japan', 'JP', 'Asia Pacific'],
      ['Singapore', 'SG', 'Asia Pacific'],
      ['Brazil', 'BR', 'Americas'],
      ['Canada', 'CA', 'Americas'],
      ['USA', 'US', 'Americas'],
      ['RSA', 'ZA', 'Africa'],
      ['Unspecified', UNKNOWN_ISO_CODE, UNKNOWN_REGION],
    ] as const
  ).map(([name, isoCode, region]) => Object.freeze({ name, isoCode, region })),
);

/** Distinct regions in a stable reporting order. */
export const REGIONS: ReadonlyArray<string> = Object.freeze([
  ...new Set([...COUNTRIES.map((c) => c.region), UNKNOWN_REGION]),
]);

const BY_NAME = new Map<string, CountryInfo>(
  COUNTRIES.map((c) => [c.name.toLowerCase(), Object.freeze({ ...c, known: true })]),
);

/** Case-insensitive, whitespace-tolerant; unknown names keep their spelling with XX / Unknown. */
export function countryInfo(name: string): CountryInfo {
  const hit = BY_NAME.get(name.trim().toLowerCase());
  if (hit) return hit;
  return { name, isoCode: UNKNOWN_ISO_CODE, region: UNKNOWN_REGION, known: false };
}
