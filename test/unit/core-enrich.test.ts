import { describe, expect, it } from 'vitest';
import { enrich } from '#core/enrich';
import type { AcceptedLine } from '#core/invoice-line';
import { acceptedLine } from '#test/helpers/lines';

// A summer date: the Europe/London offset (BST) shows in the derived instant.
const base: AcceptedLine = acceptedLine({ invoiceDate: '2011-06-01T08:26:00' });

describe('enrich', () => {
  it('derives totals, keys and country for an ordinary sale and keeps the input fields', () => {
    const e = enrich(base);
    expect(e).toEqual({
      ...base,
      lineTotal: '15.300',
      isCancellation: false,
      isAdjustment: false,
      isNonProduct: false,
      countryCode: 'GB',
      region: 'UK',
      customerKnown: true,
      dateKey: 20110601,
      invoiceTs: '2011-06-01T07:26:00.000Z',
    });
  });

  it('flags cancellations with their negative total', () => {
    const e = enrich({ ...base, invoiceNo: 'C536379', quantity: -1, stockCode: 'D', unitPrice: '27.50' });
    expect(e).toMatchObject({
      isCancellation: true,
      isAdjustment: false,
      isNonProduct: true,
      lineTotal: '-27.500',
    });
  });

  it('flags adjustments, unknown customers and unknown countries', () => {
    const e = enrich({
      ...base,
      invoiceNo: 'A563185',
      stockCode: 'B',
      quantity: 1,
      unitPrice: '-11062.06',
      customerId: null,
      country: 'Narnia',
      invoiceDate: '2011-12-09T12:50:00',
    });
    expect(e).toMatchObject({
      isAdjustment: true,
      isCancellation: false,
      isNonProduct: true,
      customerKnown: false,
      countryCode: 'XX',
      region: 'Unknown',
      lineTotal: '-11062.060',
      dateKey: 20111209,
      invoiceTs: '2011-12-09T12:50:00.000Z',
    });
  });

  it('does not mutate its input', () => {
    const input = { ...base };
    enrich(input);
    expect(input).toEqual(base);
  });
});
