import { beforeAll, describe, expect, it } from 'vitest';
import { readParquet, writeParquet } from '#adapters/parquet-writer';
import { currencyName } from '#cdc/currencies';
import type { TotesysTableName } from '#cdc/totesys/tables';
import { parseIngestionCsv, processedObjectKey } from '#cdc/transform';
import {
  dateRow,
  type RemodelResult,
  remodel,
  type SourceRow,
  splitTimestamp,
  WAREHOUSE_TABLES,
} from '#cdc/transform-model';
import { TimeSlicer } from '#core/time-slice';

const at = (day: string, t = '09:15:00.123456') => ({
  created_at: `${day}T08:00:00.000001`,
  last_updated: `${day}T${t}`,
});

const ADDRESS: SourceRow = {
  address_id: '7',
  address_line_1: '6826 Herzog Via',
  address_line_2: null,
  district: 'Avon',
  city: 'New Patienceburgh',
  postal_code: '28441',
  country: 'Turkey',
  phone: '1803 637401',
  ...at('2022-11-03'),
};
const COUNTERPARTY: SourceRow = {
  counterparty_id: '3',
  counterparty_legal_name: "Fahey and Sons'); DROP TABLE x;--",
  legal_address_id: '7',
  commercial_contact: 'Micheal Toy',
  delivery_contact: null,
  ...at('2022-11-03'),
};
const DEPARTMENT: SourceRow = {
  department_id: '2',
  department_name: 'Purchasing',
  location: 'Manchester',
  manager: null,
  ...at('2022-11-03'),
};
const STAFF: SourceRow = {
  staff_id: '11',
  first_name: 'Jeremie',
  last_name: 'Franey',
  department_id: '2',
  email_address: 'jeremie.franey@terrifictotes.com',
  ...at('2022-11-03'),
};
const SALE: SourceRow = {
  sales_order_id: '2',
  design_id: '3',
  staff_id: '11',
  counterparty_id: '3',
  units_sold: '42972',
  unit_price: '3.94',
  currency_id: '2',
  agreed_delivery_date: '2022-11-07',
  agreed_payment_date: '2022-11-08',
  agreed_delivery_location_id: '7',
  ...at('2022-11-03', '14:20:52.186000'),
};
const PURCHASE: SourceRow = {
  purchase_order_id: '1',
  staff_id: '11',
  counterparty_id: '3',
  item_code: 'ZDOI5EA',
  item_quantity: '371',
  item_unit_price: '361.39',
  currency_id: '1',
  agreed_delivery_date: '2022-11-09',
  agreed_payment_date: '2022-11-07',
  agreed_delivery_location_id: '7',
  ...at('2022-11-04'),
};
const PAYMENT: SourceRow = {
  payment_id: '2',
  transaction_id: '2',
  counterparty_id: '3',
  payment_amount: '552548.62',
  currency_id: '2',
  payment_type_id: '3',
  paid: 'false',
  payment_date: '2022-11-04',
  company_ac_number: '67305075',
  counterparty_ac_number: '31622269',
  ...at('2022-11-03'),
};

function state(entries: Partial<Record<TotesysTableName, SourceRow[]>>) {
  return new Map(
    Object.entries(entries).map(([t, rows]) => [
      t as TotesysTableName,
      new Map((rows ?? []).map((r) => [String(Object.values(r)[0]), r])),
    ]),
  );
}
const runOf = (entries: Partial<Record<TotesysTableName, SourceRow[]>>) =>
  new Map(Object.entries(entries) as Array<[TotesysTableName, SourceRow[]]>);

describe('cdc transform: values', () => {
  it('splits a source timestamp into its date and time exactly', () => {
    expect(splitTimestamp('2022-11-03T14:20:52.186000')).toEqual({
      date: '2022-11-03',
      time: '14:20:52.186000',
    });
    expect(splitTimestamp('2024-02-29 00:00:00')).toEqual({ date: '2024-02-29', time: '00:00:00' });
    expect(() => splitTimestamp('03/11/2022 14:20')).toThrow(/not a timestamp/);
  });

  it('builds dim_date rows with ISO weekdays and quarters', () => {
    expect(dateRow('2022-11-03')).toEqual({
      date_id: '2022-11-03',
      year: 2022,
      month: 11,
      day: 3,
      day_of_week: 4,
      day_name: 'Thursday',
      month_name: 'November',
      quarter: 4,
    });
    expect(dateRow('2023-01-01')).toMatchObject({ day_of_week: 7, day_name: 'Sunday', quarter: 1 });
    expect(() => dateRow('2023-02-30')).toThrow(/not a date/);
  });

  it('names currencies from ISO 4217', () => {
    expect(currencyName('GBP')).toBe('Pound Sterling');
    expect(currencyName('USD')).toBe('US Dollar');
    expect(currencyName('eur ')).toBe('Euro');
    expect(currencyName('JPY')).toBe('Yen');
    expect(currencyName('XQQ')).toBe('Unknown currency XQQ');
  });

  it('reads the ingestion CSV: NULL is an empty unquoted field, "" an empty string, the header must match', async () => {
    const header = 'department_id,department_name,location,manager,created_at,last_updated';
    const rows = await parseIngestionCsv(
      'department',
      `${header}\n1,"Sales, North",,"",2022-11-03T14:20:49.962000,2022-11-03T14:20:49.962000\n`,
    );
    expect(rows).toEqual([
      {
        department_id: '1',
        department_name: 'Sales, North',
        location: null,
        manager: '',
        created_at: '2022-11-03T14:20:49.962000',
        last_updated: '2022-11-03T14:20:49.962000',
      },
    ]);
    await expect(parseIngestionCsv('department', 'department_id,name\n1,x\n')).rejects.toThrow(/header is/);
  });

  it('reads the same rows whatever slices the CSV is parsed in, and refuses a broken CSV sliced too', async () => {
    const header = 'department_id,department_name,location,manager,created_at,last_updated';
    const stamp = '2022-11-03T14:20:49.962000';
    const text = [
      header,
      `1,"Zoë, 東京 🙂",,"",${stamp},${stamp}`,
      `2,"two\nlines ""quoted""",Leeds,Ann,${stamp},${stamp}`,
      `3,Über,,,${stamp},${stamp}`,
      '',
    ].join('\n');
    const whole = await parseIngestionCsv('department', text, new TimeSlicer(), text.length * 4);
    expect(whole.map((r) => r.department_name)).toEqual(['Zoë, 東京 🙂', 'two\nlines "quoted"', 'Über']);
    // Slices of 1-7 bytes cut through the multi-byte characters, the quotes and the line ends.
    for (const bytes of [1, 2, 3, 5, 7])
      expect(await parseIngestionCsv('department', text, new TimeSlicer(), bytes)).toEqual(whole);
    const broken = `${header}\n1,"open quote,,,${stamp},${stamp}\n`;
    await expect(parseIngestionCsv('department', broken, new TimeSlicer(), 4)).rejects.toThrow(/quote/i);
    const short = `${header}\n1,x\n`;
    await expect(parseIngestionCsv('department', short, new TimeSlicer(), 4)).rejects.toThrow(
      /Invalid Record Length/,
    );
  });

  it('lays processed objects out by table and run date', () => {
    expect(processedObjectKey('dim_staff', '20261206T081500123Z-a1b2c3')).toBe(
      'processed/totesys/dim_staff/2026/12/06/20261206T081500123Z-a1b2c3.parquet',
    );
  });
});

describe('cdc transform: every column of every warehouse table', () => {
  const everything = runOf({
    address: [ADDRESS],
    counterparty: [COUNTERPARTY],
    currency: [
      { currency_id: '1', currency_code: 'GBP', ...at('2022-11-03') },
      { currency_id: '2', currency_code: 'USD', ...at('2022-11-03') },
    ],
    department: [DEPARTMENT],
    design: [
      {
        design_id: '3',
        design_name: 'Steel',
        file_location: '/usr/ports',
        file_name: 'steel-20221103.json',
        ...at('2022-11-03'),
      },
    ],
    staff: [STAFF],
    sales_order: [SALE],
    purchase_order: [PURCHASE],
    payment_type: [{ payment_type_id: '3', payment_type_name: 'PURCHASE_PAYMENT', ...at('2022-11-03') }],
    payment: [PAYMENT],
    transaction: [
      {
        transaction_id: '2',
        transaction_type: 'PURCHASE',
        sales_order_id: null,
        purchase_order_id: '1',
        ...at('2022-11-03'),
      },
    ],
  });
  const current = state({
    address: [ADDRESS],
    counterparty: [COUNTERPARTY],
    department: [DEPARTMENT],
    staff: [STAFF],
  });
  let tables: RemodelResult['tables'];
  let unresolved: string[];
  beforeAll(async () => {
    ({ tables, unresolved } = await remodel(everything, current));
  });

  it('gives the same rows when every row is a slice of its own', async () => {
    // A clock that moves a budget per read: the slicer is due before every row.
    let clock = 0;
    const everyRow = new TimeSlicer(1, () => clock++);
    expect(await remodel(everything, current, everyRow)).toEqual({ tables, unresolved });
  });

  it('covers the eleven warehouse tables with exactly their columns', () => {
    expect(unresolved).toEqual([]);
    expect([...tables.keys()].sort()).toEqual(WAREHOUSE_TABLES.map((t) => t.name).sort());
    for (const t of WAREHOUSE_TABLES)
      for (const row of tables.get(t.name) ?? [])
        expect(Object.keys(row)).toEqual(t.columns.map((c) => c.name));
  });

  it('facts: one row per source row version, timestamps split', () => {
    expect(tables.get('fact_sales_order')).toEqual([
      {
        sales_order_id: 2,
        created_date: '2022-11-03',
        created_time: '08:00:00.000001',
        last_updated_date: '2022-11-03',
        last_updated_time: '14:20:52.186000',
        sales_staff_id: 11,
        counterparty_id: 3,
        units_sold: 42972,
        unit_price: '3.94',
        currency_id: 2,
        design_id: 3,
        agreed_payment_date: '2022-11-08',
        agreed_delivery_date: '2022-11-07',
        agreed_delivery_location_id: 7,
      },
    ]);
    expect(tables.get('fact_purchase_orders')).toEqual([
      {
        purchase_order_id: 1,
        created_date: '2022-11-04',
        created_time: '08:00:00.000001',
        last_updated_date: '2022-11-04',
        last_updated_time: '09:15:00.123456',
        staff_id: 11,
        counterparty_id: 3,
        item_code: 'ZDOI5EA',
        item_quantity: 371,
        item_unit_price: '361.39',
        currency_id: 1,
        agreed_delivery_date: '2022-11-09',
        agreed_payment_date: '2022-11-07',
        agreed_delivery_location_id: 7,
      },
    ]);
    expect(tables.get('fact_payment')).toEqual([
      {
        payment_id: 2,
        created_date: '2022-11-03',
        created_time: '08:00:00.000001',
        last_updated_date: '2022-11-03',
        last_updated_time: '09:15:00.123456',
        transaction_id: 2,
        counterparty_id: 3,
        payment_amount: '552548.62',
        currency_id: 2,
        payment_type_id: 3,
        paid: false,
        payment_date: '2022-11-04',
      },
    ]);
  });

  it('dimensions: joined, looked up and copied', () => {
    expect(tables.get('dim_counterparty')).toEqual([
      {
        counterparty_id: 3,
        counterparty_legal_name: "Fahey and Sons'); DROP TABLE x;--",
        counterparty_legal_address_line_1: '6826 Herzog Via',
        counterparty_legal_address_line_2: null,
        counterparty_legal_district: 'Avon',
        counterparty_legal_city: 'New Patienceburgh',
        counterparty_legal_postal_code: '28441',
        counterparty_legal_country: 'Turkey',
        counterparty_legal_phone_number: '1803 637401',
      },
    ]);
    expect(tables.get('dim_staff')).toEqual([
      {
        staff_id: 11,
        first_name: 'Jeremie',
        last_name: 'Franey',
        department_name: 'Purchasing',
        location: 'Manchester',
        email_address: 'jeremie.franey@terrifictotes.com',
      },
    ]);
    expect(tables.get('dim_location')).toEqual([
      {
        location_id: 7,
        address_line_1: '6826 Herzog Via',
        address_line_2: null,
        district: 'Avon',
        city: 'New Patienceburgh',
        postal_code: '28441',
        country: 'Turkey',
        phone: '1803 637401',
      },
    ]);
    expect(tables.get('dim_currency')).toEqual([
      { currency_id: 1, currency_code: 'GBP', currency_name: 'Pound Sterling' },
      { currency_id: 2, currency_code: 'USD', currency_name: 'US Dollar' },
    ]);
    expect(tables.get('dim_design')).toEqual([
      { design_id: 3, design_name: 'Steel', file_location: '/usr/ports', file_name: 'steel-20221103.json' },
    ]);
    expect(tables.get('dim_payment_type')).toEqual([
      { payment_type_id: 3, payment_type_name: 'PURCHASE_PAYMENT' },
    ]);
    expect(tables.get('dim_transaction')).toEqual([
      { transaction_id: 2, transaction_type: 'PURCHASE', sales_order_id: null, purchase_order_id: 1 },
    ]);
  });

  it('dim_date: every date a fact names, once, in order', () => {
    expect(tables.get('dim_date')?.map((r) => r.date_id)).toEqual([
      '2022-11-03',
      '2022-11-04',
      '2022-11-07',
      '2022-11-08',
      '2022-11-09',
    ]);
  });

  it('every table writes to Parquet and reads back the same', async () => {
    for (const t of WAREHOUSE_TABLES) {
      const rows = tables.get(t.name) ?? [];
      const back = await readParquet(writeParquet(t.columns, rows), t.columns);
      expect(back.map((r) => ({ ...r }))).toEqual(
        rows.map((r) =>
          Object.fromEntries(
            Object.entries(r).map(([k, v]) => [
              k,
              typeof v === 'string' && /_time$/.test(k) ? v.padEnd(15, '0') : v,
            ]),
          ),
        ),
      );
    }
  });
});

describe('cdc transform: a run that changes one side of a join', () => {
  it('re-emits the counterparty when only its address changed, from the current state', async () => {
    const moved = { ...ADDRESS, city: 'Leeds', ...at('2022-12-01') };
    const { tables } = await remodel(
      runOf({ address: [moved] }),
      state({ address: [moved], counterparty: [COUNTERPARTY] }),
    );
    expect(tables.get('dim_counterparty')?.[0]).toMatchObject({
      counterparty_id: 3,
      counterparty_legal_city: 'Leeds',
    });
    expect(tables.has('fact_sales_order')).toBe(false);
  });

  it('re-emits staff when only their department changed', async () => {
    const renamed = { ...DEPARTMENT, department_name: 'Procurement', ...at('2022-12-01') };
    const { tables } = await remodel(
      runOf({ department: [renamed] }),
      state({ department: [renamed], staff: [STAFF] }),
    );
    expect(tables.get('dim_staff')).toEqual([
      expect.objectContaining({ staff_id: 11, department_name: 'Procurement' }),
    ]);
  });

  it('holds a member whose joined row is not captured yet, and says so', async () => {
    const { tables, unresolved } = await remodel(
      runOf({ counterparty: [COUNTERPARTY] }),
      state({ counterparty: [COUNTERPARTY] }),
    );
    expect(tables.has('dim_counterparty')).toBe(false);
    expect(unresolved).toEqual(['counterparty 3: address 7 not captured yet']);
  });

  it('keeps every version of a fact row and the latest of a dimension member', async () => {
    const later = { ...SALE, units_sold: '5', ...at('2022-11-03', '15:00:00.000000') };
    const design1 = {
      design_id: '3',
      design_name: 'Old',
      file_location: '/a',
      file_name: 'a.json',
      ...at('2022-11-03', '10:00:00'),
    };
    const design2 = { ...design1, design_name: 'New', ...at('2022-11-03', '11:00:00') };
    const { tables } = await remodel(
      runOf({ sales_order: [later, SALE], design: [design2, design1] }),
      state({}),
    );
    expect(tables.get('fact_sales_order')?.map((r) => [r.units_sold, r.last_updated_time])).toEqual([
      [42972, '14:20:52.186000'],
      [5, '15:00:00.000000'],
    ]);
    expect(tables.get('dim_design')).toEqual([expect.objectContaining({ design_name: 'New' })]);
  });

  it('names the table and column of a bad source value', async () => {
    await expect(
      remodel(runOf({ sales_order: [{ ...SALE, units_sold: 'many' }] }), state({})),
    ).rejects.toThrow(/sales_order\.units_sold: "many" is not an integer/);
  });
});
