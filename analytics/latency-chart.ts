import { formatMs, type HopStats, hopLabel, type LatencyReport, PATHS, type PathName } from './latency.ts';

/**
 * A self-contained SVG of the latency report (no fonts, scripts or links to fetch): the CDF of
 * each path's end-to-end delay on the left, per-hop p50/p90/p99 bars on the right, both on a
 * log time axis because the stream path is milliseconds and the batch and cdc paths seconds.
 */
const WIDTH = 1000;
const MIN_HEIGHT = 430;
const BAR_ROW = 52;
const COLORS: Record<PathName, string> = { stream: '#1f6fb4', batch: '#c2410c', cdc: '#15803d' };
const SHADES: Record<PathName, [string, string, string]> = {
  stream: ['#1f6fb4', '#6aa6dc', '#b7d5f0'],
  batch: ['#c2410c', '#f08a4b', '#f8c7a6'],
  cdc: ['#15803d', '#4ade80', '#bbf7d0'],
};

export const escapeXml = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

interface LogAxis {
  lo: number;
  hi: number;
  x(ms: number): number;
  ticks: number[];
}

function logAxis(values: number[], left: number, right: number): LogAxis {
  const positive = values.filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.max(1, Math.min(...positive, 1_000))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(lo * 10, ...positive)));
  const span = Math.log10(hi) - Math.log10(lo);
  const x = (ms: number) =>
    left + ((Math.log10(Math.min(hi, Math.max(lo, ms))) - Math.log10(lo)) / span) * (right - left);
  const ticks: number[] = [];
  for (let t = lo; t <= hi; t *= 10) ticks.push(t);
  return { lo, hi, x, ticks };
}

function tickLabel(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 1_000_000) return `${ms / 1000} s`;
  if (ms < 36_000_000) return `${+(ms / 60_000).toFixed(1)} min`;
  return `${+(ms / 3_600_000).toFixed(1)} h`;
}

const f = (n: number) => n.toFixed(1);

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${f(x)}" y="${f(y)}" ${attrs}>${escapeXml(s)}</text>`;
}

function xAxis(axis: LogAxis, y: number, top: number): string[] {
  const out: string[] = [];
  for (const t of axis.ticks) {
    const x = axis.x(t);
    out.push(`<line x1="${f(x)}" y1="${f(top)}" x2="${f(x)}" y2="${f(y)}" stroke="#e5e7eb"/>`);
    out.push(text(x, y + 16, tickLabel(t), 'text-anchor="middle" class="tick"'));
  }
  return out;
}

function cdfPanel(report: LatencyReport, axis: LogAxis): string[] {
  const top = 50;
  const bottom = 370;
  const left = 70;
  const right = 460;
  const y = (frac: number) => bottom - frac * (bottom - top);
  const out = [text(left, 30, 'End-to-end delay, cumulative share of lines', 'class="title"')];
  out.push(...xAxis(axis, bottom, top));
  for (const frac of [0, 0.25, 0.5, 0.75, 0.9, 1]) {
    out.push(`<line x1="${left}" y1="${f(y(frac))}" x2="${right}" y2="${f(y(frac))}" stroke="#e5e7eb"/>`);
    out.push(text(left - 6, y(frac) + 4, `${Math.round(frac * 100)}%`, 'text-anchor="end" class="tick"'));
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#9ca3af"/>`,
  );
  PATHS.forEach((path, i) => {
    const points = report.cdf[path];
    if (points.length > 0) {
      let d = `M${f(axis.x((points[0] as [number, number])[0]))},${f(y(0))}`;
      let prev = 0;
      for (const [ms, frac] of points) {
        d += ` V${f(y(prev))} H${f(axis.x(ms))} V${f(y(frac))}`;
        prev = frac;
      }
      out.push(
        `<path d="${d}" fill="none" stroke="${COLORS[path]}" stroke-width="2.5" class="cdf-${path}"/>`,
      );
    }
    const ly = top + 18 + i * 18;
    if (i === 0)
      out.push(
        `<rect x="${right - 156}" y="${top + 4}" width="150" height="${PATHS.length * 18 + 4}" fill="#ffffff" opacity="0.9"/>`,
      );
    out.push(`<rect x="${right - 150}" y="${ly - 9}" width="14" height="4" fill="${COLORS[path]}"/>`);
    const total = report.hops.find((h) => h.path === path && h.hop === 'total');
    const unit = path === 'cdc' ? 'versions' : 'lines';
    out.push(text(right - 130, ly - 3, `${path} (${total?.count ?? 0} ${unit})`, 'class="legend"'));
  });
  out.push(text((left + right) / 2, bottom + 36, 'delay (log scale)', 'text-anchor="middle" class="axis"'));
  return out;
}

function barsPanel(hops: HopStats[], axis: LogAxis): string[] {
  const left = 725;
  const right = 975;
  const top = 50;
  const rowH = BAR_ROW;
  const bottom = top + hops.length * rowH;
  const out = [text(560, 30, 'Per hop: p50 / p90 / p99', 'class="title"')];
  out.push(...xAxis(axis, bottom, top));
  hops.forEach((h, i) => {
    const y0 = top + i * rowH + 6;
    const label = h.hop === 'total' ? `${h.path} TOTAL` : `${h.path}: ${hopLabel(h)}`;
    out.push(text(left - 8, y0 + 14, label, 'text-anchor="end" class="label"'));
    out.push(
      text(left - 8, y0 + 30, `n=${h.count}  p50 ${formatMs(h.p50)}`, 'text-anchor="end" class="tick"'),
    );
    ([h.p50, h.p90, h.p99] as const).forEach((v, k) => {
      if (v === null) return;
      const w = Math.max(1.5, axis.x(Math.max(v, axis.lo)) - left);
      const color = SHADES[h.path][k] as string;
      out.push(
        `<rect x="${left}" y="${f(y0 + k * 13)}" width="${f(w)}" height="11" fill="${color}" class="bar"><title>${escapeXml(
          `${label} p${[50, 90, 99][k]}: ${formatMs(v)}`,
        )}</title></rect>`,
      );
    });
  });
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#9ca3af"/>`);
  out.push(text((left + right) / 2, bottom + 36, 'delay (log scale)', 'text-anchor="middle" class="axis"'));
  return out;
}

/** The report as one standalone SVG document (also inlined into the HTML page). */
export function renderLatencySvg(report: LatencyReport): string {
  const values = report.hops
    .flatMap((h) => [h.p50, h.p90, h.p99, h.max])
    .filter((v): v is number => v !== null);
  const style =
    '<style>text{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;fill:#111827}' +
    '.title{font-size:15px;font-weight:600}.tick{font-size:11px;fill:#4b5563}.axis{font-size:12px;fill:#374151}' +
    '.label{font-size:12px}.legend{font-size:12px}.empty{font-size:16px;fill:#6b7280}</style>';
  const body: string[] = [];
  const height = Math.max(MIN_HEIGHT, 50 + report.hops.length * BAR_ROW + 50);
  if (values.length === 0) {
    body.push(
      text(
        WIDTH / 2,
        height / 2,
        'No lines with lineage timestamps in this window yet, nor totesys changes.',
        'text-anchor="middle" class="empty"',
      ),
    );
  } else {
    body.push(...cdfPanel(report, logAxis(values, 70, 460)));
    body.push(...barsPanel(report.hops, logAxis(values, 725, 975)));
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="Latency: stream, batch and cdc paths">`,
    style,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
  ].join('\n');
}
