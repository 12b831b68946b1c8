import { configure } from '@codegenie/serverless-express';
import type { Context } from 'aws-lambda';
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { KinesisWriteError, type LineWriter } from '#adapters/kinesis-writer';
import { createApp } from '#api/app';
import { enrich } from '#core/enrich';
import type { AcceptedLine } from '#core/invoice-line';
import { INVOICE_NO_WORDING } from '#core/rules';
import type { CountryAggregate, InvoiceHeader, InvoiceReader, StoredLine } from '#core/serving';
import { InvalidCursorError } from '#core/serving';

// Requests go through the Lambda adapter in process: no port, and the API Gateway path is tested too.
type Reply = { status: number; body: Record<string, unknown>; text: string; headers: Record<string, string> };

function client(app: ReturnType<typeof createApp>) {
  const handler = configure({ app, logSettings: { level: 'error' } });
  return async (
    method: string,
    path: string,
    opts: { body?: string; headers?: Record<string, string>; base64?: boolean } = {},
  ) => {
    const [rawPath, rawQueryString = ''] = path.split('?');
    const event = {
      version: '2.0',
      routeKey: '$default',
      rawPath,
      rawQueryString,
      headers: { host: 'test', ...(opts.headers ?? {}) },
      requestContext: {
        accountId: '000000000000',
        apiId: 'test',
        domainName: 'test',
        http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
        requestId: 'r',
        routeKey: '$default',
        stage: '$default',
        time: '',
        timeEpoch: 0,
      },
      body: opts.body,
      isBase64Encoded: opts.base64 === true,
    };
    const out = (await handler(event, {} as Context, () => {})) as {
      statusCode: number;
      body: string;
      headers: Record<string, string>;
    };
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(out.body);
    } catch {}
    return { status: out.statusCode, body, text: out.body, headers: out.headers } satisfies Reply;
  };
}

const validLine = (over: Record<string, unknown> = {}) => ({
  invoiceNo: '536365',
  lineNo: 1,
  stockCode: '85123A',
  description: 'WHITE HANGING HEART T-LIGHT HOLDER',
  quantity: 6,
  invoiceDate: '2010-12-01T08:26:00',
  unitPrice: '2.55',
  customerId: '17850',
  country: 'United Kingdom',
  ...over,
});

class FakeWriter implements LineWriter {
  batches: AcceptedLine[][] = [];
  fail: Error | undefined;
  async putLines(lines: readonly AcceptedLine[]) {
    if (this.fail) throw this.fail;
    this.batches.push([...lines]);
    return { lines: lines.length, records: lines.length, calls: 1 };
  }
}

/** A line as read back from the table: it holds when its write was sent, not the acknowledgement. */
function stored(line: Record<string, unknown>, streamWriteSentAt = '2024-01-01T00:00:00.250Z'): StoredLine {
  const accepted = {
    ...validLine(line),
    unitPrice: String((line.unitPrice as string | undefined) ?? '2.550'),
    producedAt: '2024-01-01T00:00:00.000Z',
    acceptedAt: '2024-01-01T00:00:00.100Z',
  } as AcceptedLine;
  return { ...enrich(accepted), shardId: 'shardId-000000000000', sequenceNumber: '1', streamWriteSentAt };
}

class FakeStore implements InvoiceReader {
  invoices = new Map<string, { header: InvoiceHeader | undefined; lines: StoredLine[] }>();
  fail: Error | undefined;
  cursors: (string | undefined)[] = [];
  async getInvoice(no: string) {
    if (this.fail) throw this.fail;
    return this.invoices.get(no);
  }
  async listCustomerInvoices(customerId: string, page: { limit: number; cursor?: string }) {
    this.cursors.push(page.cursor);
    if (page.cursor === 'bad') throw new InvalidCursorError('cursor is not valid');
    const all = [...this.invoices.values()]
      .map((i) => i.header)
      .filter((h): h is InvoiceHeader => h?.customerId === customerId)
      .sort((a, b) => b.invoiceTs.localeCompare(a.invoiceTs));
    const start = page.cursor ? Number(page.cursor) : 0;
    const items = all.slice(start, start + page.limit);
    return start + page.limit < all.length ? { items, nextCursor: String(start + page.limit) } : { items };
  }
  async getProductLines(stockCode: string) {
    const lines = [...this.invoices.values()]
      .flatMap((i) => i.lines)
      .filter((l) => l.stockCode === stockCode);
    if (lines.length === 0) return undefined;
    return {
      recent: lines,
      totals: { lines: lines.length, quantity: 1, amount: '1.000' },
      totalsComplete: true,
    };
  }
  countries: CountryAggregate[] = [];
  async getCountryStats() {
    return this.countries;
  }
  async ping() {
    if (this.fail) throw this.fail;
  }
}

function header(no: string, customerId: string, invoiceTs: string): InvoiceHeader {
  return {
    invoiceNo: no,
    invoiceDate: invoiceTs.slice(0, 19),
    invoiceTs,
    dateKey: 20101201,
    customerId,
    country: 'United Kingdom',
    countryCode: 'GB',
    region: 'Europe',
    isCancellation: no.startsWith('C'),
    isAdjustment: false,
  };
}

const silent = pino({ level: 'silent' });
const JSON_HEADERS = { 'content-type': 'application/json' };

describe('POST /invoices', () => {
  let writer: FakeWriter;
  let call: ReturnType<typeof client>;
  beforeEach(() => {
    writer = new FakeWriter();
    call = client(
      createApp({
        store: new FakeStore(),
        writer,
        logger: silent,
        limits: { maxLines: 3, maxBytes: 2000 },
        clock: () => new Date('2024-05-01T10:00:00.000Z'),
      }),
    );
  });

  it('accepts a JSON array, stamps acceptedAt and defaults producedAt to it', async () => {
    const res = await call('POST', '/invoices', {
      headers: JSON_HEADERS,
      body: JSON.stringify([validLine(), validLine({ lineNo: 2, producedAt: '2024-05-01T09:59:59.000Z' })]),
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ accepted: 2, invoices: 1, acceptedAt: '2024-05-01T10:00:00.000Z' });
    const [first, second] = writer.batches[0] ?? [];
    expect(first).toMatchObject({
      acceptedAt: '2024-05-01T10:00:00.000Z',
      producedAt: '2024-05-01T10:00:00.000Z',
    });
    expect(second?.producedAt).toBe('2024-05-01T09:59:59.000Z');
  });

  it('accepts NDJSON, ignoring blank lines', async () => {
    const body = `${JSON.stringify(validLine())}\n\n${JSON.stringify(validLine({ lineNo: 2 }))}\n`;
    const res = await call('POST', '/invoices', {
      headers: { 'content-type': 'application/x-ndjson' },
      body,
    });
    expect(res.status).toBe(202);
    expect(writer.batches[0]?.map((l) => l.lineNo)).toEqual([1, 2]);
  });

  it('refuses the whole batch and lists every bad line with its index and reason', async () => {
    const res = await call('POST', '/invoices', {
      headers: JSON_HEADERS,
      body: JSON.stringify([
        validLine(),
        validLine({ lineNo: 2, quantity: 'six' }),
        { invoiceNo: '1', lineNo: 3 },
      ]),
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_lines');
    expect(res.body.message).toMatch(/2 of 3 lines are invalid; nothing was accepted/);
    const invalid = res.body.invalid as { index: number; reason: string }[];
    expect(invalid.map((i) => i.index)).toEqual([1, 2]);
    expect(invalid[0]?.reason).toMatch(/^quantity: /);
    expect(invalid[1]?.reason).toMatch(/stockCode/);
    expect(invalid[1]?.reason).toMatch(/invoiceDate/);
    expect(writer.batches).toHaveLength(0);
  });

  it('refuses a line sent twice in one request', async () => {
    const res = await call('POST', '/invoices', {
      headers: JSON_HEADERS,
      body: JSON.stringify([validLine(), validLine()]),
    });
    expect(res.status).toBe(400);
    expect((res.body.invalid as { reason: string }[])[0]?.reason).toMatch(/duplicate of line 0/);
  });

  it('reports unparseable NDJSON lines by index', async () => {
    const body = `${JSON.stringify(validLine())}\n{not json\n`;
    const res = await call('POST', '/invoices', {
      headers: { 'content-type': 'application/x-ndjson' },
      body,
    });
    expect(res.status).toBe(400);
    expect(res.body.invalid).toEqual([{ index: 1, reason: 'not valid JSON' }]);
  });

  it.each([
    ['not JSON', '{"a":', 400, /not valid JSON/],
    ['not an array', '{"invoiceNo":"1"}', 400, /JSON array/],
    ['an empty array', '[]', 400, /no lines/],
    ['an array of non-objects', '[1]', 400, /invalid/],
  ])('answers %s with %i', async (_what, body, status, message) => {
    const res = await call('POST', '/invoices', { headers: JSON_HEADERS, body });
    expect(res.status).toBe(status);
    expect(res.body.message).toMatch(message);
  });

  it('answers 413 for too many lines and for too many bytes', async () => {
    const many = await call('POST', '/invoices', {
      headers: JSON_HEADERS,
      body: JSON.stringify([1, 2, 3, 4].map((lineNo) => validLine({ lineNo }))),
    });
    expect(many.status).toBe(413);
    expect(many.body.message).toMatch(/too many lines: 4 > 3/);
    const big = await call('POST', '/invoices', {
      headers: JSON_HEADERS,
      body: JSON.stringify([
        validLine({ description: 'x'.repeat(250) }),
        validLine({ lineNo: 2 }),
        'y'.repeat(2000),
      ]),
    });
    expect(big.status).toBe(413);
    expect(big.body.message).toMatch(/larger than 2000 bytes/);
  });

  it('answers 415 for a wrong or missing content type', async () => {
    const res = await call('POST', '/invoices', {
      headers: { 'content-type': 'text/csv' },
      body: 'a,b',
    });
    expect(res.status).toBe(415);
    expect(res.body.message).toMatch(/application\/json/);
    const none = await call('POST', '/invoices', { body: '[]' });
    expect(none.status).toBe(415);
  });

  it('answers 415 for a body that is not UTF-8 instead of decoding it with replacement characters', async () => {
    const latin1 = Buffer.from('[{"invoiceNo":"536365","description":"caf\u00e9"}]', 'latin1');
    const res = await call('POST', '/invoices', {
      headers: { 'content-type': 'application/json' },
      body: latin1.toString('base64'),
      base64: true,
    });
    expect(res.status).toBe(415);
    expect(res.body.message).toBe('request body must be UTF-8');
    expect(writer.batches).toHaveLength(0);
  });

  it('answers 503 with a resend hint when the stream does not take every line', async () => {
    writer.fail = new KinesisWriteError('3 records still failing', 3);
    const res = await call('POST', '/invoices', {
      headers: JSON_HEADERS,
      body: JSON.stringify([validLine()]),
    });
    expect(res.status).toBe(503);
    expect(res.body.message).toMatch(/resend/);
    expect(res.headers['retry-after']).toBe('1');
  });
});

describe('reads and error mapping', () => {
  let store: FakeStore;
  let call: ReturnType<typeof client>;
  beforeEach(() => {
    store = new FakeStore();
    call = client(createApp({ store, writer: new FakeWriter(), logger: silent, apiKey: 'secret-key-123' }));
  });
  const auth = { 'x-api-key': 'secret-key-123' };

  it('requires the API key except on /health and /openapi.json', async () => {
    expect((await call('GET', '/invoices/1')).status).toBe(401);
    expect((await call('GET', '/invoices/1', { headers: { 'x-api-key': 'wrong' } })).status).toBe(401);
    expect((await call('GET', '/health')).status).toBe(200);
    const doc = await call('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths as object)).toContain('/invoices/{invoiceNo}');
  });

  it('returns an invoice with exact totals, status and lineage', async () => {
    store.invoices.set('536365', {
      header: header('536365', '17850', '2010-12-01T08:26:00.000Z'),
      lines: [
        stored({ lineNo: 2, quantity: 3, unitPrice: '0.1' }),
        stored({ lineNo: 1, quantity: 3, unitPrice: '0.2' }),
      ],
    });
    const res = await call('GET', '/invoices/536365', { headers: auth });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      invoiceNo: '536365',
      status: 'complete',
      kind: 'sale',
      customerId: '17850',
    });
    expect(res.body.totals).toEqual({ lines: 2, quantity: 6, amount: '0.900' });
    const lines = res.body.lines as { lineNo: number; lineage: Record<string, string> }[];
    expect(lines.map((l) => l.lineNo)).toEqual([1, 2]);
    expect(lines[0]?.lineage).toEqual({
      producedAt: '2024-01-01T00:00:00.000Z',
      acceptedAt: '2024-01-01T00:00:00.100Z',
      streamWriteSentAt: '2024-01-01T00:00:00.250Z',
    });
  });

  it('marks an invoice with a gap as partial and a C invoice as cancellation', async () => {
    store.invoices.set('5', { header: undefined, lines: [stored({ invoiceNo: '5', lineNo: 2 })] });
    store.invoices.set('C6', { header: undefined, lines: [stored({ invoiceNo: 'C6', quantity: -1 })] });
    expect((await call('GET', '/invoices/5', { headers: auth })).body.status).toBe('partial');
    const c = await call('GET', '/invoices/C6', { headers: auth });
    expect(c.body.status).toBe('cancellation');
    expect(c.body.totals).toMatchObject({ amount: '-2.550' });
  });

  it('answers 404 JSON for unknown ids and routes, 400 for malformed ids', async () => {
    const res = await call('GET', '/invoices/999', { headers: auth });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'not_found', message: 'invoice 999 not found' });
    expect((await call('GET', '/customers/1/invoices', { headers: auth })).status).toBe(404);
    expect((await call('GET', '/products/NOPE/sales', { headers: auth })).status).toBe(404);
    expect((await call('GET', '/nowhere', { headers: auth })).body.message).toBe('no route for GET /nowhere');
    expect((await call('GET', '/invoices/12;drop', { headers: auth })).status).toBe(400);
    expect((await call('GET', '/customers/abc/invoices', { headers: auth })).status).toBe(400);
  });

  it("checks route ids by the lines' rules (core/rules.ts) and words the refusal from them", async () => {
    // Any capital letter prefixes an invoice number, not only C and A.
    expect((await call('GET', '/invoices/B536365', { headers: auth })).status).toBe(404);
    const lower = await call('GET', '/invoices/c536365', { headers: auth });
    expect(lower.status).toBe(400);
    expect(lower.body.message).toBe(`invoiceNo must be ${INVOICE_NO_WORDING}`);
    expect((await call('GET', '/invoices/12345678901', { headers: auth })).status).toBe(400);
    // A customer id as a file writes it is the same customer.
    expect((await call('GET', '/customers/17850.0/invoices', { headers: auth })).body.message).toBe(
      'no invoices for customer 17850',
    );
    expect((await call('GET', '/customers/1234567890123/invoices', { headers: auth })).status).toBe(400);
    expect((await call('GET', `/products/${'X'.repeat(32)}/sales`, { headers: auth })).status).toBe(404);
    const long = await call('GET', `/products/${'X'.repeat(33)}/sales`, { headers: auth });
    expect(long.body.message).toBe('stockCode is longer than 32 characters');
    expect((await call('GET', '/products/A%07B/sales', { headers: auth })).body.message).toBe(
      'stockCode contains control characters',
    );
  });

  it('pages a customer newest first with an opaque cursor; bad limit or cursor is a 400', async () => {
    for (const [no, ts] of [
      ['1', '2010-12-01T08:00:00.000Z'],
      ['2', '2010-12-02T08:00:00.000Z'],
      ['3', '2010-12-03T08:00:00.000Z'],
    ] as const) {
      store.invoices.set(no, { header: header(no, '42', ts), lines: [] });
    }
    const first = await call('GET', '/customers/42/invoices?limit=2', { headers: auth });
    expect((first.body.invoices as { invoiceNo: string }[]).map((i) => i.invoiceNo)).toEqual(['3', '2']);
    const second = await call('GET', `/customers/42/invoices?limit=2&cursor=${first.body.nextCursor}`, {
      headers: auth,
    });
    expect((second.body.invoices as { invoiceNo: string }[]).map((i) => i.invoiceNo)).toEqual(['1']);
    expect(second.body.nextCursor).toBeNull();
    expect((await call('GET', '/customers/42/invoices?limit=0', { headers: auth })).status).toBe(400);
    const bad = await call('GET', '/customers/42/invoices?cursor=bad', { headers: auth });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toBe('cursor is not valid');
  });

  it('sorts country stats by revenue and totals them exactly', async () => {
    store.countries = [
      {
        country: 'France',
        countryCode: 'FR',
        region: 'Europe',
        lineCount: 1,
        invoiceCount: 1,
        quantity: 1,
        amount: '0.100',
      },
      {
        country: 'Spain',
        countryCode: 'ES',
        region: 'Europe',
        lineCount: 2,
        invoiceCount: 1,
        quantity: 2,
        amount: '0.200',
      },
    ];
    const res = await call('GET', '/stats/countries', { headers: auth });
    expect((res.body.countries as { country: string }[]).map((c) => c.country)).toEqual(['Spain', 'France']);
    expect(res.body.totals).toEqual({ lines: 3, invoices: 2, quantity: 3, revenue: '0.300' });
  });

  it('hides internal errors behind a generic 500 and reports an unhealthy store as 503', async () => {
    store.fail = new Error('ECONNREFUSED /srv/secret/path.ts:12');
    const res = await call('GET', '/invoices/1', { headers: auth });
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: 'internal', message: 'internal error' });
    expect(res.text).not.toMatch(/secret|ECONNREFUSED|at /);
    expect((await call('GET', '/health')).status).toBe(503);
  });

  it('mounts extra routes behind the key and the error mapping', async () => {
    const app = createApp({
      store,
      writer: new FakeWriter(),
      logger: silent,
      apiKey: 'secret-key-123',
      extraRoutes: (router) => {
        router.get('/extra', () => {
          throw new Error('boom');
        });
      },
    });
    const c = client(app);
    expect((await c('GET', '/extra')).status).toBe(401);
    expect((await c('GET', '/extra', { headers: auth })).body).toEqual({
      error: 'internal',
      message: 'internal error',
    });
  });
});
