import fs from 'node:fs/promises';
import path from 'node:path';
import { formatTime } from '#adapters/terminal';
import { formatMs, hopLabel, type LatencyReport } from './latency.ts';
import { escapeXml, renderLatencySvg } from './latency-chart.ts';

/** A standalone HTML page: the table and the inline SVG; nothing to fetch, no script. */
export function renderLatencyHtml(report: LatencyReport, svg = renderLatencySvg(report)): string {
  const rows = report.hops
    .map(
      (h) =>
        `<tr class="${h.hop === 'total' ? 'total' : ''}"><td>${h.path}</td><td>${escapeXml(
          h.hop === 'total' ? `TOTAL ${hopLabel(h)}` : hopLabel(h),
        )}</td><td>${h.count}</td><td>${formatMs(h.p50)}</td><td>${formatMs(h.p90)}</td><td>${formatMs(
          h.p99,
        )}</td><td>${formatMs(h.max)}</td></tr>`,
    )
    .join('\n');
  const window = report.windowStart
    ? `lines produced since ${formatTime(new Date(report.windowStart))} UTC (cdc: source rows updated since then)`
    : 'all lines and source row versions in the warehouse';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>retail-pipeline latency: stream, batch and cdc</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#111827;background:#f9fafb}
h1{font-size:1.4rem;margin:0 0 .25rem}
p.meta{color:#4b5563;margin:0 0 1.25rem}
table{border-collapse:collapse;background:#fff;margin-bottom:1.5rem}
th,td{border:1px solid #e5e7eb;padding:.35rem .7rem;text-align:right}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}
tr.total td{font-weight:600;background:#f3f4f6}
figure{margin:0;background:#fff;border:1px solid #e5e7eb;display:inline-block}
footer{color:#6b7280;font-size:.85rem;margin-top:1rem;max-width:60rem}
</style>
</head>
<body>
<h1>Latency: stream, batch and cdc paths</h1>
<p class="meta">${escapeXml(window)}; generated ${escapeXml(formatTime(new Date(report.generatedAt)))} UTC</p>
<table>
<thead><tr><th>path</th><th>hop</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
<figure>
${svg}
</figure>
<footer>Stream: produced (producer) &rarr; accepted (API) &rarr; stream-visible (DynamoDB write acknowledged).
Batch: produced &rarr; archived (the archive object reached the loader: its S3 notification, or the sweep that found it)
&rarr; warehouse-visible (MERGE committed).
Cdc (totesys change data capture): source-updated (the source row's last_updated) &rarr; ingested (its extraction run's
CSVs and marker durable) &rarr; processed (the run's Parquet reached the loader) &rarr; warehouse-visible (the fact version
loaded), per fact version, counting changes made after the warehouse first saw totesys data.
Percentiles are nearest-rank over millisecond delays. Only lines and versions already in the warehouse count.</footer>
</body>
</html>
`;
}

export interface LatencyFiles {
  html: string;
  svg: string;
  json: string;
}

/** Writes latency.html, latency.svg and latency.json into `outDir`. */
export async function writeLatencyReport(report: LatencyReport, outDir: string): Promise<LatencyFiles> {
  await fs.mkdir(outDir, { recursive: true });
  const svg = renderLatencySvg(report);
  const files = {
    html: path.join(outDir, 'latency.html'),
    svg: path.join(outDir, 'latency.svg'),
    json: path.join(outDir, 'latency.json'),
  };
  await Promise.all([
    fs.writeFile(files.html, renderLatencyHtml(report, svg)),
    fs.writeFile(files.svg, `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`),
    fs.writeFile(files.json, `${JSON.stringify(report, null, 2)}\n`),
  ]);
  return files;
}
