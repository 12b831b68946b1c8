import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response, Router } from 'express';
import type { Logger } from '#adapters/logger';
import type { QueryPort } from './db.ts';
import { num, runQuery } from './db.ts';
import { type InvalidDurationError, latencyReport, parseDuration } from './latency.ts';
import type { RateMeter } from './rate-meter.ts';
import { revenueByCountry, revenueByDay, salesKpis, topProducts } from './sales.ts';

export interface AnalyticsRouterDeps {
  /** The warehouse (a pg Pool or a Warehouse adapter). */
  db: QueryPort;
  /** Live lines/s from the API; without it the rate comes from the warehouse. */
  rate?: RateMeter;
  logger?: Logger;
}

const DASHBOARD_DIR = fileURLToPath(new URL('./dashboard/', import.meta.url));
const CHART_JS = path.join(path.dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.js');

class BadRequestError extends Error {
  override name = 'BadRequestError';
}

function intParam(req: Request, name: string, fallback: number, max: number): number {
  const raw = req.query[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new BadRequestError(`${name} must be an integer 1..${max}`);
  return n;
}

function durationParam(req: Request, name: string, fallback: string | undefined): number | undefined {
  const raw = req.query[name];
  if (raw === undefined || raw === '' || raw === 'all') return fallback ? parseDuration(fallback) : undefined;
  try {
    return parseDuration(String(raw));
  } catch (err) {
    throw new BadRequestError((err as InvalidDurationError).message);
  }
}

/**
 * GET /dashboard and its assets: static files, no data, so they need no API key (the page sends
 * the key it was opened with, `/dashboard?apiKey=K`, on its JSON calls).
 */
export function createDashboardRouter(): Router {
  const router = Router();
  router.get('/dashboard', (_req, res) => {
    res.set('Cache-Control', 'no-cache').sendFile(path.join(DASHBOARD_DIR, 'index.html'));
  });
  router.get('/dashboard/assets/chart.umd.js', (_req, res) => {
    res.set('Cache-Control', 'max-age=3600').sendFile(CHART_JS);
  });
  router.use('/dashboard/assets', express.static(DASHBOARD_DIR, { index: false, maxAge: 0 }));
  return router;
}

/**
 * GET /stats/latency, /stats/sales/{summary,by-country,by-day,top-products,rate} (JSON) and
 * GET /dashboard (a static page polling those). Mount it at the API's root.
 */
export function createAnalyticsRouter(deps: AnalyticsRouterDeps): Router {
  const { db, rate, logger } = deps;
  const router = Router();
  const json =
    (handler: (req: Request) => Promise<unknown>) =>
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        res.set('Cache-Control', 'no-store').json(await handler(req));
      } catch (err) {
        next(err);
      }
    };

  router.get(
    '/stats/latency',
    json((req) => latencyReport(db, { since: durationParam(req, 'since', undefined) })),
  );
  router.get(
    '/stats/sales/summary',
    json(() => salesKpis(db)),
  );
  router.get(
    '/stats/sales/by-country',
    json(async (req) => ({ countries: await revenueByCountry(db, intParam(req, 'limit', 12, 100)) })),
  );
  router.get(
    '/stats/sales/by-day',
    json(async (req) => ({ days: await revenueByDay(db, intParam(req, 'days', 60, 3660)) })),
  );
  router.get(
    '/stats/sales/top-products',
    json(async (req) => ({ products: await topProducts(db, intParam(req, 'limit', 10, 100)) })),
  );
  router.get(
    '/stats/sales/rate',
    json(async (req) => {
      const seconds = intParam(req, 'seconds', 120, 3600);
      const now = Date.now();
      if (rate) {
        const points = rate.series(now).filter(([t]) => t > now - seconds * 1000);
        return { source: 'api', bucketSeconds: rate.bucketMs / 1000, current: rate.current(10, now), points };
      }
      const bucket = 5;
      const rows = await runQuery<Record<string, unknown>>(db, 'sales-line-rate', [
        new Date(now - seconds * 1000).toISOString(),
        bucket,
      ]);
      const points: Array<[number, number]> = rows.map((r) => [num(r.bucket_s) * 1000, num(r.n) / bucket]);
      const recent = points.filter(([t]) => t >= now - 30_000);
      const current = recent.reduce((s, [, v]) => s + v, 0) / Math.max(1, recent.length);
      return { source: 'warehouse', bucketSeconds: bucket, current, points };
    }),
  );

  // Error mapping for these routes: 4xx says why, 5xx says little and logs the detail.
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (!req.path.startsWith('/stats/')) {
      next(err);
      return;
    }
    if (err instanceof BadRequestError) {
      res.status(400).json({ error: err.message });
      return;
    }
    logger?.error({ err, path: req.path }, 'analytics request failed');
    res.status(503).json({ error: 'warehouse query failed' });
  });
  return router;
}
