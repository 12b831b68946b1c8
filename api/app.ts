import { isUtf8 } from 'node:buffer';
import crypto from 'node:crypto';
import express, { type Express, type RequestHandler, type Router } from 'express';
import type { LineWriter } from '#adapters/kinesis-writer';
import type { Logger } from '#adapters/logger';
import { CUSTOMER_ID_WORDING, customerIdOf, INVOICE_NO, INVOICE_NO_WORDING, textProblem } from '#core/rules';
import type { InvoiceReader } from '#core/serving';
import { badRequest, errorHandler, HttpError, notFound } from './errors.ts';
import { acceptedAnswer, acceptLines, type BodyFormat, parseBody } from './ingest.ts';
import { openApiDocument } from './openapi.ts';
import { countryStatsView, invoiceSummaryView, invoiceView, productSalesView } from './views.ts';

export interface ApiLimits {
  maxLines: number;
  maxBytes: number;
}

export interface ApiDeps {
  store: InvoiceReader;
  writer: LineWriter;
  logger: Logger;
  limits?: ApiLimits;
  /** When set, every route but /health and /openapi.json needs `x-api-key: <apiKey>`. */
  apiKey?: string | undefined;
  clock?: () => Date;
  /** Extra readiness detail for /health; throwing makes /health answer 503. Default: the store answers. */
  health?: () => Promise<Record<string, unknown>>;
  /** Mount more routes (behind the API key, before the 404 and error mapping). */
  extraRoutes?: (router: Router) => void;
  /** Mount routes that need no API key (static pages holding no data), beside /health. */
  publicRoutes?: (router: Router) => void;
}

export const DEFAULT_LIMITS: ApiLimits = { maxLines: 5000, maxBytes: 5 * 1024 * 1024 };

/** The HTTP API: the same app object runs on a local port and behind API Gateway (api/functions). */
export function createApp(deps: ApiDeps): Express {
  const limits = deps.limits ?? DEFAULT_LIMITS;
  const clock = deps.clock ?? (() => new Date());
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.get('/health', async (_req, res) => {
    try {
      let detail: Record<string, unknown> = {};
      if (deps.health) detail = await deps.health();
      else await deps.store.ping();
      res.json({ status: 'ok', ...detail });
    } catch (err) {
      deps.logger.warn({ err }, 'health check failed');
      res.status(503).json({ status: 'unavailable' });
    }
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument);
  });

  if (deps.publicRoutes) {
    const open = express.Router();
    deps.publicRoutes(open);
    app.use(open);
  }

  const router = express.Router();
  if (deps.apiKey) router.use(requireApiKey(deps.apiKey));

  const readBody = express.text({
    type: ['application/json', 'application/x-ndjson'],
    limit: limits.maxBytes,
    // Decoding would silently turn invalid bytes into U+FFFD; refuse them instead (mapped to 415).
    verify: (_req, _res, buf) => {
      if (!isUtf8(buf)) throw Object.assign(new Error('body is not UTF-8'), { type: 'charset.unsupported' });
    },
  });
  router.post('/invoices', requireContentType, readBody, async (req, res) => {
    const format: BodyFormat = req.is('application/x-ndjson') ? 'ndjson' : 'json';
    const lines = acceptLines(parseBody(String(req.body ?? ''), format), limits.maxLines, clock());
    const result = await deps.writer.putLines(lines);
    res.status(202).json(acceptedAnswer(lines, result.lines));
  });

  router.get('/invoices/:invoiceNo', async (req, res) => {
    const invoiceNo = req.params.invoiceNo;
    if (!INVOICE_NO.test(invoiceNo)) throw badRequest(`invoiceNo must be ${INVOICE_NO_WORDING}`);
    const found = await deps.store.getInvoice(invoiceNo);
    if (!found) throw notFound(`invoice ${invoiceNo} not found`);
    res.json(invoiceView(found.header, found.lines));
  });

  router.get('/customers/:customerId/invoices', async (req, res) => {
    // The id as lines carry it: `17850.0` is customer 17850, as in a file.
    const customerId = customerIdOf(req.params.customerId);
    if (!customerId) throw badRequest(`customerId must be ${CUSTOMER_ID_WORDING}`);
    const limit = intParam(req.query.limit, 'limit', 20, 1, 100);
    const cursor = stringParam(req.query.cursor, 'cursor');
    const page = await deps.store.listCustomerInvoices(customerId, { limit, ...(cursor ? { cursor } : {}) });
    if (page.items.length === 0 && !cursor) throw notFound(`no invoices for customer ${customerId}`);
    res.json({
      customerId,
      invoices: page.items.map(invoiceSummaryView),
      nextCursor: page.nextCursor ?? null,
    });
  });

  router.get('/products/:stockCode/sales', async (req, res) => {
    const stockCode = req.params.stockCode;
    const problem = stockCode.trim() === '' ? 'must not be empty' : textProblem(stockCode, 'stockCode');
    if (problem) throw badRequest(`stockCode ${problem}`);
    const limit = intParam(req.query.limit, 'limit', 20, 1, 100);
    const sales = await deps.store.getProductLines(stockCode, { limit });
    if (!sales) throw notFound(`no sales for product ${stockCode}`);
    res.json(productSalesView(stockCode, sales));
  });

  router.get('/stats/countries', async (_req, res) => {
    res.json(countryStatsView(await deps.store.getCountryStats(), clock()));
  });

  deps.extraRoutes?.(router);
  app.use(router);

  app.use((req, _res, next) => {
    next(new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler(deps.logger));
  return app;
}

const requireContentType: RequestHandler = (req, _res, next) => {
  if (!req.is(['application/json', 'application/x-ndjson'])) {
    next(
      new HttpError(
        415,
        'unsupported_media_type',
        'Content-Type must be application/json (an array of lines) or application/x-ndjson',
      ),
    );
    return;
  }
  next();
};

function requireApiKey(apiKey: string): RequestHandler {
  const expected = crypto.createHash('sha256').update(apiKey).digest();
  return (req, _res, next) => {
    const given = req.get('x-api-key');
    // Hash both sides so the comparison is constant-time whatever the lengths.
    const ok =
      given !== undefined &&
      crypto.timingSafeEqual(crypto.createHash('sha256').update(given).digest(), expected);
    next(ok ? undefined : new HttpError(401, 'unauthorized', 'missing or wrong x-api-key'));
  };
}

function intParam(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw badRequest(`${name} must be a whole number from ${min} to ${max}`);
  return n;
}

function stringParam(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048)
    throw badRequest(`${name} is not valid`);
  return value;
}
