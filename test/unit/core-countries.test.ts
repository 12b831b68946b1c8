import { describe, expect, it } from 'vitest';
import { COUNTRIES, countryInfo, REGIONS } from '#core/countries';

describe('COUNTRIES', () => {
  it('has the 38 names of the Online Retail data set, unique, with 2-letter codes', () => {
    expect(COUNTRIES).toHaveLength(38);
    expect(new Set(COUNTRIES.map((c) => c.name)).size).toBe(38);
    for (const c of COUNTRIES) {
      expect(c.isoCode).toMatch(/^[A-Z]{2}$/);
      expect(REGIONS).toContain(c.region);
    }
  });

  it('maps the source oddities to their documented codes', () => {
    expect(countryInfo('EIRE')).toMatchObject({ isoCode: 'IE', region: 'Northern Europe', known: true });
    expect(countryInfo('RSA')).toMatchObject({ isoCode: 'ZA', region: 'Africa' });
    expect(countryInfo('USA')).toMatchObject({ isoCode: 'US', region: 'Americas' });
    expect(countryInfo('Channel Islands')).toMatchObject({ isoCode: 'JE', region: 'UK' });
    expect(countryInfo('European Community')).toMatchObject({ isoCode: 'EU', known: true });
    expect(countryInfo('Unspecified')).toMatchObject({ isoCode: 'XX', region: 'Unknown', known: true });
    expect(countryInfo('United Kingdom')).toMatchObject({ isoCode: 'GB', region: 'UK' });
  });
});

describe('countryInfo', () => {
  it('matches case-insensitively and returns the canonical spelling', () => {
    expect(countryInfo('  eire ')).toEqual({
      name: 'EIRE',
      isoCode: 'IE',
      region: 'Northern Europe',
      known: true,
    });
    expect(countryInfo('UNITED KINGDOM').isoCode).toBe('GB');
  });

  it('keeps unknown names with XX / Unknown and known false', () => {
    expect(countryInfo('Atlantis')).toEqual({
      name: 'Atlantis',
      isoCode: 'XX',
      region: 'Unknown',
      known: false,
    });
    expect(countryInfo('').known).toBe(false);
  });
});
